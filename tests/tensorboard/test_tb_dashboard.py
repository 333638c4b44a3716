"""End to end: a study written by parallel workers, served by a real TensorBoard, seen in Chromium.

A script runs ``hpo.minimize`` with the parallel launcher (two loky workers) while the test
process runs it sequentially, on one SQLite study with one logdir: three processes write at once.
Trials are completed, pruned and failed by number, and one more is left running. TensorBoard,
started with ``hpo-plugins tensorboard``, must list every trial through its HParams POST
endpoints; the HParams dashboard, driven by Playwright in headless Chromium, must show every
trial's row with its state and value, and filter the rows by status.

Set ``HPO_PLUGINS_SCREENSHOT=docs/img/hparams.png`` to refresh the screenshot in the docs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import hpo_plugins as hpo
from hpo_plugins import FrozenTrial, TrialState
from hpo_plugins.exceptions import HPOError
from hpo_plugins.tensorboard import STATE_CODES, STATE_TAG, TENSORBOARD_STATUS, VALUE_TAG

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
TRIALS_PER_WRITER = 4
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]

WORKER = textwrap.dedent("""
    import math, sys, time
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.launchers import JoblibLauncher
    from hpo_plugins.samplers import RandomSampler

    SPACE = {
        "lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
        "opt": hp.choice("opt", [
            {"name": "sgd", "momentum": hp.uniform("momentum", 0.0, 0.9),
             "nesterov": hp.choice("nesterov", ["yes", "no"])},
            {"name": "adam"},
        ]),
        "units": hp.choice("units", [16, 32, 64]),
        "act": hp.choice("act", ["relu", "tanh"]),
    }

    def objective(params):
        trial = hpo.current_trial()
        for step in range(3):
            time.sleep(0.1)  # long enough for the writers to overlap
            trial.report(params["lr"] * (3 - step), step)
            if trial.number % 3 == 1 and step == 1:
                raise hpo.TrialPruned()
        if trial.number % 3 == 2:
            raise ValueError("diverged")
        return params["lr"]

    def run(url, logdir, n_trials, launcher=None, seed=0):
        hpo.minimize(objective, SPACE, n_trials=n_trials, storage=url, study_name="parallel",
                     logdir=logdir, sampler=RandomSampler(), seed=seed, catch=ValueError,
                     launcher=launcher)

    if __name__ == "__main__":
        run(sys.argv[1], sys.argv[2], int(sys.argv[3]), JoblibLauncher(n_jobs=2))
""")


class Written(NamedTuple):
    """The study's storage URL, its logdir and its trials."""

    url: str
    logdir: str
    trials: list[FrozenTrial]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """A study written by three processes at once, with one more trial left RUNNING.

    A script runs the parallel launcher (two loky workers) while this process runs the same
    objective sequentially on the same study.
    """
    root = tmp_path_factory.mktemp("parallel")
    url, logdir = f"sqlite:///{root}/study.db", str(root / "runs")
    script = root / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    launched = subprocess.Popen([sys.executable, str(script), url, logdir,
                                 str(TRIALS_PER_WRITER)], cwd=root, env=env,
                                stderr=subprocess.PIPE, text=True)
    worker = runpy.run_path(str(script))  # the same objective and space, not __main__
    _wait_for_a_trial(url, launched)
    worker["run"](url, logdir, TRIALS_PER_WRITER, seed=1)
    _, errors = launched.communicate(timeout=120)
    assert launched.returncode == 0, errors
    study = hpo.create_study(worker["SPACE"], storage=url, study_name="parallel",
                             logdir=logdir, seed=99)
    study.ask().report(0.5, 0)  # left RUNNING
    return Written(url, logdir, study.trials)


def _wait_for_a_trial(url: str, launched: subprocess.Popen[str]) -> None:
    """Until the launcher's workers have started a trial (so that the writers overlap)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and launched.poll() is None:
        with contextlib.suppress(HPOError):
            if hpo.load_study("parallel", url).trials:
                return
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(base: str, endpoint: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{base}/data/plugin/hparams/{endpoint}", data=json.dumps(body).encode(),
        headers={"X-XSRF-Protected": "1", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _wait_for_sessions(base: str, count: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "TensorBoard exited"
        try:
            if len(_session_groups(base)) >= count:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"TensorBoard at {base} did not list {count} sessions within 60 s")


def _session_groups(base: str) -> list[dict[str, Any]]:
    body = {"experimentName": "", "allowedStatuses": STATUSES, "colParams": [],
            "startIndex": 0, "sliceSize": 1000}
    return list(_post(base, "session_groups", body).get("sessionGroups", []))


@pytest.fixture(scope="module")
def server(written: Written) -> Iterator[str]:
    """TensorBoard on the study's logdir, started with `hpo-plugins tensorboard`."""
    port = _free_port()
    command = [sys.executable, "-m", "hpo_plugins.cli", "tensorboard", "--study", "parallel",
               "--storage", written.url, "--port", str(port)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_sessions(base, len(written.trials), process)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)  # the command stops its server, then exits 143
        code = process.wait(timeout=30)
    assert code == 143  # as every command stopped by SIGTERM (the exit-code table of --help)
    with pytest.raises(OSError):
        _session_groups(base)  # the server is gone too


def _expected_metrics(trial: FrozenTrial) -> dict[str, float]:
    """The final metrics; a RUNNING trial has no state yet (only the process that ends a
    trial writes it)."""
    metrics = {}
    if trial.state is not TrialState.RUNNING:
        metrics[STATE_TAG] = float(STATE_CODES[trial.state])
    if trial.value is not None:
        metrics[VALUE_TAG] = trial.value
    return metrics


def _expected_status(trial: FrozenTrial) -> str:
    return TENSORBOARD_STATUS.get(trial.state, "STATUS_UNKNOWN")  # RUNNING: no session end


def test_the_written_study_has_every_state(written: Written) -> None:
    states = [t.state for t in written.trials]
    assert states.count(TrialState.RUNNING) == 1
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= set(states)
    assert len(states) == 2 * TRIALS_PER_WRITER + 1
    files = [f for t in written.trials for f in os.listdir(t.log_dir or "")]
    writers = {name.split(".")[-3] for name in files}  # the pid in each file name
    assert len(writers) >= 3  # this process and the launcher's two workers


def test_server_lists_every_trial_with_its_status_and_metrics(
        written: Written, server: str) -> None:
    experiment = _post(server, "experiment", {"experimentName": ""})
    assert {h["name"] for h in experiment["hparamInfos"]} == {
        "lr", "opt", "momentum", "nesterov", "units", "act"}
    groups = {g["name"]: g for g in _session_groups(server)}
    assert sorted(groups) == [f"trial_{t.number:04d}" for t in written.trials]
    for trial in written.trials:
        (session,) = groups[f"trial_{trial.number:04d}"]["sessions"]
        assert session.get("status", "STATUS_UNKNOWN") == _expected_status(trial), trial
        metrics = {m["name"]["tag"]: m["value"] for m in session.get("metricValues", [])}
        expected = _expected_metrics(trial)
        assert {k: metrics.get(k) for k in expected} == pytest.approx(expected, rel=1e-6)
        assert (VALUE_TAG in metrics) == (trial.value is not None)
        assert (STATE_TAG in metrics) == (trial.state is not TrialState.RUNNING)


def test_inactive_parameters_keep_their_column_type(
        written: Written, server: str) -> None:
    groups = {g["name"]: g["hparams"] for g in _session_groups(server)}
    for trial in written.trials:
        hparams = groups[f"trial_{trial.number:04d}"]
        adam = trial.params["opt"] == 1
        assert hparams["nesterov"] in (["<inactive>"] if adam else ["yes", "no"])
        assert ("momentum" in hparams) is not adam  # NaN: left out, the column stays numeric
        assert hparams["units"] in (16, 32, 64) and hparams["act"] in ("relu", "tanh")


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Any]:
    """The HParams dashboard in headless Chromium."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            view = browser.new_page(viewport={"width": 1920, "height": 720})
            view.goto(f"{server}/#hparams")
            yield view
        finally:
            browser.close()


def _rows(page: Any) -> Any:
    grid = page.get_by_role("main").get_by_role("grid")
    return grid.get_by_role("row", name=re.compile(r"^trial_\d{4}\b"))


def _table(page: Any) -> dict[str, dict[str, str]]:
    """Trial ID -> column -> cell text, read from the grid's accessibility tree.

    The grid renders its cells' text through slots, so the cells have no inner text of their
    own; their accessible names are what a screen reader (and this test) reads.
    """
    snapshot = page.get_by_role("main").get_by_role("grid").aria_snapshot()
    headers = re.findall(r'- columnheader "([^"]*)"', snapshot)
    table = {}
    for block in re.split(r"\n\s*- row\b", snapshot)[1:]:
        cells = [m.group(1) or "" for m in re.finditer(r'- gridcell(?: "([^"]*)")?', block)]
        if cells and cells[0].startswith("trial_"):
            table[cells[0]] = dict(zip(headers, cells))
    return table


def test_dashboard_shows_every_trial_with_its_state_and_value(
        written: Written, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    trials = written.trials
    expect(_rows(page)).to_have_count(len(trials), timeout=30_000)
    table = _table(page)
    assert sorted(table) == [f"trial_{t.number:04d}" for t in trials]
    for trial in trials:
        row = table[f"trial_{trial.number:04d}"]
        assert (float(row["state"]) == STATE_CODES[trial.state] if trial.state
                is not TrialState.RUNNING else row["state"] == "")
        shown = row["value"]
        assert (float(shown) == pytest.approx(trial.value, rel=1e-3) if trial.value is not None
                else shown == "")
    _screenshot(page, tmp_path)


def _screenshot(page: Any, tmp_path: Path) -> None:
    path = tmp_path / "hparams.png"
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("HPO_PLUGINS_SCREENSHOT")
    if keep:
        shutil.copyfile(path, keep)


@pytest.mark.parametrize("status", ["Success", "Failure", "Unknown"])
def test_dashboard_status_filter_selects_the_trials_of_that_status(
        written: Written, page: Any, status: str) -> None:
    for name in ("Unknown", "Success", "Failure", "Running"):
        page.get_by_role("main").get_by_role("checkbox", name=name, exact=True).set_checked(
            name == status)
    wanted = [f"trial_{t.number:04d}" for t in written.trials
              if _expected_status(t) == f"STATUS_{status.upper()}"]
    deadline = time.monotonic() + 30
    while sorted(_table(page)) != wanted and time.monotonic() < deadline:
        page.wait_for_timeout(200)  # the table reloads after each filter change
    assert sorted(_table(page)) == wanted
