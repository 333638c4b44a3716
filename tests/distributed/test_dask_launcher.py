"""DaskLauncher on an in-process Dask cluster (threads, SQLite): fast checks of its contract."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._optimize import RunSettings
from hpo_plugins.cli import main
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.launchers import DaskLauncher
from hpo_plugins.launchers._dask import _replace_lost
from hpo_plugins.launchers._state import RunState
from hpo_plugins.launchers._worker import Job
from hpo_plugins.samplers import RandomSampler

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[Any]:
    """One worker with two threads, in this process; no GPU resource."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0") as cluster:
        yield cluster


def _square(params: dict[str, Any]) -> float:
    return float(params["x"]) ** 2


def test_trials_run_on_the_workers_and_record_them(local_cluster: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dask.db"
    launcher = DaskLauncher(local_cluster.scheduler_address)  # an address: its own client
    assert local_cluster.scheduler_address in repr(launcher)
    study = hpo.minimize(_square, SPACE, n_trials=6, storage=url, sampler=RandomSampler(),
                         seed=0, launcher=launcher)
    trials = study.trials
    study.storage.close()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    workers = {t.system_attrs["worker"]["dask"] for t in trials}
    assert workers == set(local_cluster.scheduler_info["workers"])
    assert all(t.system_attrs["worker"]["host"] == socket.gethostname() for t in trials)
    assert len({t.system_attrs["run_id"] for t in trials}) == 1


def test_gpu_trials_need_workers_that_advertise_gpus(local_cluster: Any, tmp_path: Path) -> None:
    from dask.distributed import Client

    with Client(local_cluster) as client, pytest.raises(ConfigurationError,
                                                        match=r'resources "GPU=1"'):
        hpo.minimize(_square, SPACE, n_trials=1, storage=f"sqlite:///{tmp_path}/g.db",
                     launcher=DaskLauncher(client, gpus_per_trial=1, n_concurrent=2))


def test_in_memory_storage_is_refused(local_cluster: Any) -> None:
    with pytest.raises(ConfigurationError, match="every Dask worker reaches.*PostgreSQL"):
        hpo.minimize(_square, SPACE, n_trials=1, storage=":memory:",
                     launcher=DaskLauncher(local_cluster.scheduler_address))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gpus_per_trial": -1}, "gpus_per_trial"), ({"n_concurrent": 0}, "n_concurrent")])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DaskLauncher("tcp://127.0.0.1:1", **kwargs)


@pytest.mark.parametrize(("max_trials", "replace"), [(3, True), (None, False)])
def test_trials_lost_with_their_worker_are_failed_and_replaced(
        tmp_path: Path, max_trials: int | None, replace: bool) -> None:
    """After the run's last task, a trial of the run still RUNNING has lost its worker."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/lost.db",
                             sampler=RandomSampler())
    settings = RunSettings.build(study, n_trials=None if max_trials else 3,
                                 max_trials=max_trials, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=False)
    lost = study.ask(system_attrs={"run_id": "this-run"})
    other = study.ask(system_attrs={"run_id": "another-run"})
    with RunState(study, settings, Job(b"", "key", "this-run", None, None)) as run:
        run.done.set()  # the study looked full
        assert _replace_lost(run) is replace
        assert not run.done.is_set() if replace else run.done.is_set()
    assert study.storage.get_trial(lost.trial_id).state is TrialState.FAIL
    assert "Dask worker was lost" in (study.storage.get_trial(lost.trial_id).fail_reason or "")
    assert study.storage.get_trial(other.trial_id).state is TrialState.RUNNING
    study.storage.close()


def test_job_repr_hides_the_payload() -> None:
    job = Job(b"postgresql://u:secret@h/db", "key", "run", None, None)
    assert "secret" not in repr(job) and "key" in repr(job)


@pytest.mark.parametrize(("argv", "message"), [
    (["--dask", "tcp://127.0.0.1:1", "--gpus", "0"], "--gpus does not apply with --dask"),
    (["--gpus-per-trial", "1"], "--gpus-per-trial needs --dask")])
def test_cli_run_dask_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   argv: list[str], message: str) -> None:
    (tmp_path / "space.py").write_text("from hpo_plugins import hp\n"
                                       "SPACE = {'x': hp.uniform('x', 0, 1)}\n")
    code = main(["run", "--space", f"{tmp_path / 'space.py'}:SPACE", "--n-trials", "1",
                 "--storage", f"sqlite:///{tmp_path}/cli.db", *argv, "--", "true"])
    assert code == 2 and message in capsys.readouterr().err


def test_cli_run_reports_an_unreachable_scheduler(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import dask

    (tmp_path / "space.py").write_text("from hpo_plugins import hp\n"
                                       "SPACE = {'x': hp.uniform('x', 0, 1)}\n")
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["run", "--space", f"{tmp_path / 'space.py'}:SPACE", "--n-trials", "1",
                     "--storage", f"sqlite:///{tmp_path}/cli.db", "--dask",
                     "tcp://127.0.0.1:1", "--", "true"])
    assert code == 1
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err
