"""DaskLauncher on an in-process Dask cluster (threads, SQLite): fast checks of its contract."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._run_settings import RunSettings
from hpo_plugins.cli import main
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.launchers import DaskLauncher
from hpo_plugins.launchers import _dask as dask_launcher
from hpo_plugins.launchers._dask import _replace_lost
from hpo_plugins.launchers._dask_cluster import SharedFile, trial_capacity
from hpo_plugins.launchers._state import RunState
from hpo_plugins.launchers._worker import CANCELLED_REASON, Job, run_task
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.storages import SQLStorage

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


def test_a_collected_result_is_released_so_a_lost_worker_does_not_run_it_again(
        local_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A result the launcher still held was recomputed when its worker died (the scheduler
    sees it as wanted): a finished trial ran a second time, one trial beyond ``n_trials``."""
    from dask.distributed import Client

    collected: list[Any] = []  # holds every future: only release() lets go of their keys
    collect = dask_launcher._collect

    def watched(run: Any, future: Any) -> None:
        collected.append(future)
        collect(run, future)

    monkeypatch.setattr(dask_launcher, "_collect", watched)
    with Client(local_cluster) as client:
        study = hpo.minimize(_square, SPACE, n_trials=5, storage=f"sqlite:///{tmp_path}/r.db",
                             launcher=DaskLauncher(client))
        assert len(study.trials) == 5 and len(collected) == 5
        held = [1]
        for _ in range(100):  # release() lets go on the client's event loop, a moment later
            held = [client.refcount.get(f.key, 0) for f in collected]
            if not any(held):
                break
            time.sleep(0.02)
        assert held == [0] * 5
        study.storage.close()


def test_a_database_the_launcher_cannot_open_is_its_own_error_not_the_workers(
        local_cluster: Any) -> None:
    """The launcher's own storage error, as without Dask: the workers are not blamed (nor
    told to get a password or a route) for a server this process cannot reach either."""
    from hpo_plugins.exceptions import StorageError

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = SQLStorage(f"postgresql+psycopg://hpo@127.0.0.1:{port}/hpo")
    with pytest.raises(StorageError, match="Could not open the storage") as caught:
        DaskLauncher(local_cluster).check(storage)
    assert "worker" not in str(caught.value)
    storage.close()


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
    ({"gpus_per_trial": -1}, "gpus_per_trial"), ({"n_concurrent": 0}, "n_concurrent"),
    ({"gpus_per_trial": math.nan}, r"`gpus_per_trial` to be a finite number >= 0.*nan"),
    ({"gpus_per_trial": True}, r"gpus_per_trial=True \(of type bool\)"),
    ({"n_concurrent": True}, r"n_concurrent=True \(of type bool\)"),
    ({"n_concurrent": 2.0}, r"`n_concurrent` to be an integer >= 1"),
    ({"deterministic": "yes"}, r"`deterministic` to be True, False or None.*'yes'"),
    ({"worker_timeout": 0}, r"`worker_timeout` to be a finite number of seconds > 0")])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DaskLauncher("tcp://127.0.0.1:1", **kwargs)


@pytest.mark.parametrize(("client", "message"), [
    (42, r"a dask.distributed.Client, a Dask cluster .*Received: client=42 \(of type int\)"),
    ("not an address", r"'tcp://scheduler:8786'.*client='not an address' \(missing port"),
    ("http://scheduler:8786", r"unknown address scheme 'http'"),
    ("tcp://:8786", r"no host")])
def test_a_bad_client_is_refused_before_any_study(client: Any, message: str,
                                                  tmp_path: Path) -> None:
    """The constructor refuses it, so ``minimize`` never creates the study."""
    with pytest.raises(ConfigurationError, match=message):
        hpo.minimize(_square, SPACE, n_trials=1, storage=f"sqlite:///{tmp_path}/a.db",
                     launcher=DaskLauncher(client))
    assert not (tmp_path / "a.db").exists()


def test_numpy_numbers_are_taken_as_python_numbers() -> None:
    launcher = DaskLauncher("127.0.0.1:8786", gpus_per_trial=np.int64(1),
                            n_concurrent=np.int64(2), worker_timeout=np.float64(5))
    assert (launcher.gpus_per_trial, launcher.n_concurrent) == (1, 2)
    assert type(launcher.gpus_per_trial) is int and type(launcher.n_concurrent) is int
    assert DaskLauncher("tcp://h:1", gpus_per_trial=np.float32(0.5)).gpus_per_trial == 0.5


def test_a_cluster_object_gets_a_client_of_its_own(local_cluster: Any, tmp_path: Path) -> None:
    """``DaskLauncher(cluster)``, as after the docs' SLURMCluster example: the run opens a client
    on it and closes that client after, and the cluster stays up for the next run."""
    for run in range(2):
        study = hpo.minimize(_square, SPACE, n_trials=2, storage=f"sqlite:///{tmp_path}/c.db",
                             study_name=f"c{run}", launcher=DaskLauncher(local_cluster))
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
        study.storage.close()


@pytest.mark.parametrize(("workers", "gpus_per_trial", "capacity"), [
    ([{"nthreads": 2}, {"nthreads": 3}], 0, 5),  # CPU: every thread
    ([{"nthreads": 1, "resources": {"GPU": 1}}] * 2, 2, 0),  # 2 GPUs, but not on one worker
    ([{"nthreads": 1, "resources": {"GPU": 2}}], 2, 1),
    ([{"nthreads": 1, "resources": {"GPU": 1}}] * 2, 0.5, 2),  # one thread: one task at once
    ([{"nthreads": 2, "resources": {"GPU": 1}}] * 2, 0.5, 4),
    ([{"nthreads": 16, "resources": {"GPU": 1}}], 0.1, 10),  # as the worker subtracts:
    ([{"nthreads": 4, "resources": {"GPU": 2.1}}], 0.7, 3),  # 3 fit, though 2.1 // 0.7 == 2
    ([{"nthreads": 4, "resources": {"GPU": 1}}, {"nthreads": 4}], 1, 1),  # a CPU-only worker
])
def test_capacity_counts_each_worker_on_its_own(workers: list[dict[str, Any]],
                                                gpus_per_trial: float, capacity: int) -> None:
    assert trial_capacity(workers, gpus_per_trial) == capacity


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


@pytest.mark.parametrize("killed_worker", [True, False])
def test_a_lost_trial_counts_as_one_failure(tmp_path: Path, killed_worker: bool) -> None:
    """Dask gives up on a task after its workers died (``KilledWorker``: counted at once), or
    runs it again elsewhere without a word: either way the lost trial counts once, toward the
    stop after too many failures."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/count.db",
                             sampler=RandomSampler())
    settings = RunSettings.build(study, n_trials=4, max_trials=None, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=False)
    study.ask(system_attrs={"run_id": "this-run"})
    study.ask(system_attrs={"run_id": "this-run"})
    with RunState(study, settings, Job(b"", "key", "this-run", None, None)) as run:
        run.take(), run.take()
        if killed_worker:
            run.lost_unseen()  # one of the two was given up on; the other ran again
            assert run.failed == 1
        _replace_lost(run)
        assert run.failed == 2
        assert run.uncounted_losses == 0
    study.storage.close()


def test_a_trial_lost_at_the_end_of_the_run_is_requeued_and_the_run_goes_on(tmp_path: Path) -> None:
    """``max_retries`` holds for a trial failed by the run's clean-up, as for a stale heartbeat:
    a WAITING copy, and the run (which stopped because the grid looked done) goes on."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/retry.db",
                             sampler=RandomSampler(), max_retries=1)
    settings = RunSettings.build(study, n_trials=None, max_trials=None, timeout=10.0,
                                 catch=(), callbacks=None, show_progress_bar=False)
    lost = study.ask(system_attrs={"run_id": "this-run"})
    with RunState(study, settings, Job(b"", "key", "this-run", None, None)) as run:
        run.done.set()  # the sampler had nothing left to propose
        assert _replace_lost(run) is True
    trials = study.trials
    study.storage.close()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == lost.params
    assert (trials[1].system_attrs["retry_of"], trials[1].system_attrs["retries"]) == (0, 1)


def test_a_failed_look_at_the_cancel_event_does_not_stop_the_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One transient scheduler error used to answer "cancelled": the task then returned
    "nothing left to run" and the whole run ended, without an error, after one trial."""
    monkeypatch.setattr(dask_launcher, "_EVENT_RETRY_SECONDS", 0.0)

    class Event:
        def __init__(self, answers: list[object]) -> None:
            self.answers = answers

        def is_set(self) -> bool:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return bool(answer)

    assert dask_launcher._is_set(Event([OSError("timed out"), True])) is True  # looked again
    assert dask_launcher._is_set(Event([OSError("timed out"), OSError("gone")])) is False


def test_a_task_of_a_stopped_run_starts_no_trial(tmp_path: Path) -> None:
    """A task that its launcher could not take back: once the run is cancelled it asks no
    trial, and a trial it had already asked (while it waited for room) is failed unrun."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/stop.db", study_name="s")
    ran: list[float] = []
    settings = RunSettings.build(study, n_trials=1, max_trials=None, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=False)
    job = Job.pack(study, ran.append, settings, "run", None, None)
    assert run_task(job, cancelled=lambda: True) is None
    assert study.trials == []
    answers = iter([False, True])  # cancelled between its ask and its objective
    frozen = run_task(job, cancelled=lambda: next(answers))
    study.storage.close()
    assert frozen is not None and frozen.state is TrialState.FAIL
    assert frozen.fail_reason == CANCELLED_REASON and ran == []


def test_a_worker_that_sees_another_sqlite_file_is_refused(tmp_path: Path) -> None:
    """What a worker on another machine sees at the launcher's path: another file, or none."""

    class Worker:
        address = "tcp://10.0.0.7:40000"

    path = tmp_path / "hpo.db"
    path.write_bytes(b"")
    store = hpo.storages.SQLStorage(f"sqlite:///{path}")
    shared = SharedFile.of(store)
    assert shared is not None and shared.path == str(path)
    shared.check(Worker())  # the same file: fine
    other = tmp_path / "other.db"  # an empty database made on another machine, say
    other.write_bytes(b"")
    other.replace(path)
    with pytest.raises(ConfigurationError, match="sees another file at that path"):
        shared.check(Worker())
    path.unlink()
    with pytest.raises(ConfigurationError, match=r"tcp://10.0.0.7:40000 on host .* sees no file "
                                                 r"at that path. SQLite works only when every "
                                                 r"worker runs on this machine.*PostgreSQL"):
        shared.check(Worker())
    assert SharedFile.of(hpo.storages.InMemoryStorage()) is None


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


def test_an_unreachable_scheduler_is_refused_before_any_study(tmp_path: Path) -> None:
    """Our error with the address and the fix, not Dask's bare OSError; no study is made."""
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(ConfigurationError, match=r"cannot connect to the Dask scheduler at "
                          r"tcp://127\.0\.0\.1:1 .*`dask scheduler`.*timeouts\.connect"):
        hpo.minimize(_square, SPACE, n_trials=2, storage=f"sqlite:///{tmp_path}/a.db",
                     launcher=DaskLauncher("tcp://127.0.0.1:1"))
    assert not (tmp_path / "a.db").exists()


def test_an_unmatched_killed_worker_loss_does_not_absorb_a_later_one(tmp_path: Path) -> None:
    """A KilledWorker whose trial is already gone (failed by a heartbeat elsewhere) is counted
    once; a trial lost silently in the next round still counts."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/later.db",
                             sampler=RandomSampler())
    settings = RunSettings.build(study, n_trials=4, max_trials=None, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=False)
    with RunState(study, settings, Job(b"", "key", "this-run", None, None)) as run:
        run.take()
        run.lost_unseen()  # its trial is nowhere to be found at the clean-up
        _replace_lost(run)
        assert (run.failed, run.uncounted_losses) == (1, 0)
        study.ask(system_attrs={"run_id": "this-run"})  # the next round loses one silently
        _replace_lost(run)
        assert run.failed == 2
    study.storage.close()


# -- the checks before the study exists ---------------------------------------------------------


class _OneProcessSQLite(SQLStorage):
    """A SQLite storage that declares itself for this process only, as a process-local cache in
    front of the file would: the launcher must refuse it, on a real file."""

    multiprocess = False


@pytest.mark.parametrize("refusal", ["no GPU worker", "one-process storage"])
def test_a_refused_run_leaves_no_study_in_the_sqlite_file(local_cluster: Any, tmp_path: Path,
                                                          refusal: str) -> None:
    """``hpo.minimize`` asks the launcher before it creates the study: a refused run adds no
    empty study to the database (it used to, since ``run`` checked after the creation)."""
    url = f"sqlite:///{tmp_path}/refused.db"
    hpo.create_study(SPACE, study_name="earlier", storage=url).storage.close()
    if refusal == "no GPU worker":
        launcher, storage, message = (DaskLauncher(local_cluster, gpus_per_trial=1), url,
                                      r'advertise a GPU resource.*resources "GPU=1"')
    else:
        launcher, storage, message = (DaskLauncher(local_cluster), _OneProcessSQLite(url),
                                      "every Dask worker reaches.*PostgreSQL")
    with pytest.raises(ConfigurationError, match=message):
        hpo.minimize(_square, SPACE, n_trials=1, study_name="refused", storage=storage,
                     launcher=launcher)
    store = SQLStorage(url)
    assert [info.name for info in store.list_studies()] == ["earlier"]
    store.close()


def test_check_accepts_a_new_sqlite_file_without_making_it(local_cluster: Any,
                                                             tmp_path: Path) -> None:
    """The workers see the folder the file will be made in; nothing is written."""
    launcher = DaskLauncher(local_cluster.scheduler_address)
    launcher.check(SQLStorage(f"sqlite:///{tmp_path}/new.db"))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigurationError, match="every Dask worker reaches"):
        launcher.check(hpo.storages.InMemoryStorage())


def test_run_keeps_its_own_check_for_an_existing_study(local_cluster: Any) -> None:
    """``Study.optimize`` calls ``run`` only: the refusal still comes, and no trial starts."""
    study = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(ConfigurationError, match="every Dask worker reaches"):
        study.optimize(_square, n_trials=1, launcher=DaskLauncher(local_cluster))
    assert study.trials == []


def test_a_new_sqlite_file_is_witnessed_by_its_folder(tmp_path: Path) -> None:
    """Before the file exists, what a worker elsewhere sees at its folder decides."""

    class Worker:
        address = "tcp://10.0.0.7:40000"

    folder = tmp_path / "runs"
    folder.mkdir()
    store = SQLStorage(f"sqlite:///{folder}/hpo.db")
    witness = SharedFile.witness(store)
    assert witness is not None and (witness.path, witness.kind) == (str(folder), "folder")
    witness.check(Worker())  # the same folder: fine
    folder.rename(tmp_path / "moved")
    folder.mkdir()  # a folder of the same name on another machine, say
    with pytest.raises(ConfigurationError, match=r"see the study's folder of the SQLite file "
                                                 r".*runs\. Received: the worker "
                                                 r"tcp://10.0.0.7:40000 .* sees another folder"):
        witness.check(Worker())
    folder.rmdir()
    with pytest.raises(ConfigurationError, match="sees no folder at that path"):
        witness.check(Worker())
    (tmp_path / "moved" / "hpo.db").write_bytes(b"")
    made = SharedFile.witness(SQLStorage(f"sqlite:///{tmp_path}/moved/hpo.db"))
    assert made is not None and made.kind == "file"  # once made, the file itself
    assert SharedFile.witness(SQLStorage(f"sqlite:///{tmp_path}/no/such/hpo.db")) is None
    assert SharedFile.witness(hpo.storages.InMemoryStorage()) is None


def test_a_rerun_after_a_crash_says_in_the_launcher_that_it_may_wait(
        local_cluster: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The wait for a crashed run's trials happens in the tasks, whose logs stay on the
    workers: the launcher says it first, and the run then completes the study."""
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    crashed = hpo.create_study(SPACE, study_name="rerun", storage=url, heartbeat_interval=0.5,
                               grace_period=2)
    lost = crashed.ask(heartbeat=True)  # its launcher died: it stays RUNNING, heartbeat stops
    crashed.storage.close()
    study = hpo.minimize(_square, SPACE, max_trials=3, storage=url, study_name="rerun",
                         launcher=DaskLauncher(local_cluster), heartbeat_interval=0.5,
                         grace_period=2, show_progress_bar=False)
    try:
        warned = [r.getMessage() for r in caplog.records if r.name.endswith("_dask")
                  and "RUNNING from an earlier run" in r.getMessage()]
        assert warned == [f"The study has 1 trial RUNNING from an earlier run "
                          f"({lost.number}). If their workers are gone (a crashed run), they are "
                          f"failed once their heartbeat is 2 s old, and only then do their "
                          f"places run again: the run may wait that long for them."]
        states = [t.state for t in study.trials]
        assert states.count(TrialState.COMPLETE) == 3 and states[0] is TrialState.FAIL
    finally:
        study.storage.close()


def test_a_database_that_never_answers_is_given_up_by_the_worker_check(
        local_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections but never answers (a half-open firewall): each
    worker gives up after the probe's time, without blocking its event loop meanwhile."""
    import time

    from dask.distributed import Client

    from hpo_plugins.launchers import _dask_cluster

    monkeypatch.setattr(_dask_cluster, "_PROBE_SECONDS", 1.0)  # the worker runs in this process
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"postgresql+psycopg://hpo@127.0.0.1:{silent.getsockname()[1]}/hpo"
        storage = SQLStorage(url)
        began = time.monotonic()
        # the workers' probe itself: the launcher's own check would stop first, on its own
        # storage (see the test above)
        with Client(local_cluster) as client, pytest.raises(
                ConfigurationError,
                match=r"1 of 1 cannot: .*no answer from the database within 1 s"):
            _dask_cluster.check_workers_reach(client, storage)
        assert time.monotonic() - began < 20
        storage.close()
