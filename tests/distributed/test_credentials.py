"""A storage URL's password never shows: logs, errors, TensorBoard, exports, CLI, trial records.

The server's role ``PASSWORD_ROLE`` must authenticate with ``PASSWORD`` (scram-sha-256 over TCP),
so every test here really uses the password; each then searches what a user or an operator could
see for it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.cli import main
from hpo_plugins.context import TRIAL_ENV, trial_env
from hpo_plugins.exceptions import ConfigurationError, StorageError
from hpo_plugins.launchers import DaskLauncher
from hpo_plugins.launchers._worker import Job
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.storages import SQLStorage

pytest_plugins = ["conftest_postgres"]

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}
WRONG = "Wrong-6a1d0c-password"

Database = dict[str, Any]


def _objective(params: dict[str, Any]) -> float:
    trial = hpo.current_trial()
    for step in range(2):
        trial.report(params["x"] + step, step)
    if trial.number == 2:
        raise ValueError("this trial fails, so a traceback is stored")
    return float(params["x"])


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """Everything hpo_plugins and SQLAlchemy log at DEBUG (statements and rows included)."""
    caplog.set_level(logging.DEBUG, logger="hpo_plugins")
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    yield lambda: caplog.text + "".join(repr(r.args) for r in caplog.records)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """Run ``hpo-plugins`` here; return its exit code, stdout and stderr as one text."""

    def run(*argv: str) -> str:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return f"{code}\n{out}\n{err}"

    return run


def _files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_password_is_never_shown(password_database: Database, tmp_path: Path,
                                 logs: Callable[[], str], cli: Callable[..., str]) -> None:
    url, secret = password_database["url"], password_database["password"]
    study = hpo.minimize(_objective, SPACE, n_trials=4, storage=url, study_name="secret",
                         sampler=RandomSampler(), seed=0, logdir=str(tmp_path / "runs"),
                         catch=ValueError)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 3
    records = [json.dumps(t.system_attrs) + json.dumps(t.user_attrs) for t in study.trials]
    info = study.storage.get_study(study.study_id)
    shown = [*records, json.dumps(dict(info.attrs)), repr(study), repr(study.storage),
             study.storage.describe(), repr(Job.pack(study, _objective, _settings(study), "r",
                                                     None, None))]
    again = SQLStorage(url)
    with pytest.raises(ConfigurationError) as changed:  # its advice names the storage
        hpo.create_study({"y": hp.uniform("y", 0, 1)}, storage=again, study_name="secret")
    again.close()
    assert "hpo.delete_study('secret', 'postgresql+psycopg://" in str(changed.value)
    shown.append(str(changed.value))
    study.storage.close()

    outputs = [cli(*argv, "--storage", url, "-vv") for argv in (
        ["studies"], ["trials", "--study", "secret"], ["best", "--study", "secret"],
        ["export", "--study", "secret", "--format", "csv"],
        ["export", "--study", "secret", "--format", "json"],
        ["trials", "--study", "missing"])]
    assert "secret" in outputs[0] and "3" in outputs[3]
    assert "No study named 'missing'" in outputs[-1] and "***" in outputs[-1]
    assert not [text for text in [*shown, *outputs] if secret in text]
    assert not _files_containing(tmp_path / "runs", secret)  # TensorBoard events, trial dirs
    assert secret not in logs()
    assert "SELECT" in logs()  # SQLAlchemy did log at DEBUG


def _settings(study: hpo.Study) -> Any:
    from hpo_plugins._run_settings import RunSettings

    return RunSettings.build(study, n_trials=1, max_trials=None, timeout=None, catch=(),
                             callbacks=None, show_progress_bar=False)


def test_url_from_the_environment_is_not_logged(password_database: Database,
                                               monkeypatch: pytest.MonkeyPatch,
                                               logs: Callable[[], str],
                                               cli: Callable[..., str]) -> None:
    monkeypatch.setenv("HPO_PLUGINS_STORAGE", password_database["url"])
    study = hpo.minimize(_objective, SPACE, n_trials=2, study_name="from-env", seed=0,
                         sampler=RandomSampler())  # storage=None: $HPO_PLUGINS_STORAGE
    study.storage.close()
    listing = cli("studies", "-vv")
    assert "from-env" in listing
    secret = password_database["password"]
    assert secret not in listing and secret not in logs()


def test_password_from_pgpassword(password_database: Database,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    bare, secret = password_database["bare_url"], password_database["password"]
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(StorageError, match="password") as refused:
        SQLStorage(bare).list_studies()
    monkeypatch.setenv("PGPASSWORD", secret)  # read by libpq itself, never by us
    study = hpo.minimize(_objective, SPACE, n_trials=1, storage=bare, study_name="pgpass",
                         seed=0, sampler=RandomSampler())
    trial = study.ask()
    handed_over = trial_env(trial)[TRIAL_ENV]
    study.tell(trial, 1.0)
    study.storage.close()
    assert json.loads(handed_over)["storage"] == bare  # child processes get no password
    assert secret not in str(refused.value)


@pytest.mark.parametrize("where", ["wrong password", "unreachable server"])
def test_errors_do_not_show_the_password(password_database: Database, where: str,
                                         cli: Callable[..., str]) -> None:
    url, secret = password_database["url"], password_database["password"]
    if where == "wrong password":
        url, secret = url.replace(secret, WRONG), WRONG
        expected = "password authentication failed"
    else:
        server = password_database["server"]
        url = url.replace(f":{server.port}/", ":1/")
        expected = "Connection refused|connection failed"
    with pytest.raises(StorageError, match=expected) as info:
        SQLStorage(url).create_study("s", hpo.Direction.MINIMIZE)
    assert "***" in str(info.value) and secret not in str(info.value)
    text = cli("studies", "--storage", url, "-vv")
    assert text.startswith("3\n") and "cannot open the storage" in text
    assert secret not in text and password_database["password"] not in text


@pytest.mark.parametrize("form", ["user info", "query"])
def test_cli_run_warns_about_a_password_on_the_command_line(password_database: Database,
                                                           tmp_path: Path,
                                                           cli: Callable[..., str],
                                                           form: str) -> None:
    """Also for ``?password=``, which libpq reads as well."""
    (tmp_path / "space.py").write_text("from hpo_plugins import hp\n"
                                       "SPACE = {'x': hp.uniform('x', 0, 1)}\n")
    url = password_database["url"]
    if form == "query":
        secret = password_database["password"]
        url = f"{url.replace(f':{secret}@', '@')}?password={secret}"
    text = cli("run", "--space", f"{tmp_path / 'space.py'}:SPACE", "--n-trials", "1",
               "--storage", url, "--study", "cli", "--", "false")
    assert "visible to other users in process listings" in text and "PGPASSWORD" in text
    assert password_database["password"] not in text
    assert "1 FAIL" in text  # `false` fails its trial; the run itself went fine


@pytest.mark.slow
def test_dask_workers_do_not_log_the_password(password_database: Database, dask_cluster: Any,
                                              dask_client: Any) -> None:
    """A task that fails is logged by its worker with the task's repr: no payload, no URL."""

    def broken(params: dict[str, Any]) -> float:
        raise RuntimeError("objective broke")

    storage = SQLStorage(password_database["url"])
    try:
        with pytest.raises(RuntimeError, match="objective broke"):
            hpo.minimize(broken, SPACE, n_trials=1, storage=storage, study_name="dask",
                         launcher=DaskLauncher(dask_client))
    finally:
        storage.close()
    deadline = time.monotonic() + 30
    while "objective broke" not in dask_cluster.logs() and time.monotonic() < deadline:
        time.sleep(0.2)  # the worker's log may land after the client got the error
    logs = dask_cluster.logs()
    assert "Compute Failed" in logs and "objective broke" in logs
    assert password_database["password"] not in logs
    assert os.environ.get("PGPASSWORD") is None


def test_workers_without_the_password_are_named_before_the_study_exists(
        password_database: Database, dask_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """PGPASSWORD set for the launcher only: the run is refused, naming the workers and why."""
    bare, secret = password_database["bare_url"], password_database["password"]
    monkeypatch.setenv("PGPASSWORD", secret)  # this process's; the workers started without
    with pytest.raises(hpo.exceptions.ConfigurationError,
                       match=r"(?s)Expected every Dask worker to open the storage "
                             r"postgresql\+psycopg://hpo_secret_user@.*2 of 2 cannot: "
                             r"tcp://127\.0\.0\.1:\d+ \(name 'gpu\d'\): StorageError: .*"
                             r"no password supplied.*PGPASSWORD or ~/\.pgpass where `dask "
                             r"worker` runs") as refused:
        hpo.minimize(_objective, SPACE, n_trials=1, storage=bare, study_name="no-password",
                     launcher=DaskLauncher(dask_client), show_progress_bar=False)
    assert secret not in str(refused.value)
    store = SQLStorage(bare)
    try:
        assert store.list_studies() == []  # refused before anything was stored
    finally:
        store.close()


def test_a_mistyped_url_is_not_echoed(cli: Callable[..., str]) -> None:
    typo = "postgresql+psycopg:/hpo:Typo-secret-91@db-host/hpo"  # one slash: not a URL
    with pytest.raises(hpo.exceptions.ConfigurationError, match="not shown") as info:
        hpo.create_study(SPACE, storage=typo)
    assert "Typo-secret-91" not in str(info.value)
    text = cli("studies", "--storage", typo)
    assert "cannot open the storage" in text and "not shown" in text
    assert "Typo-secret-91" not in text
