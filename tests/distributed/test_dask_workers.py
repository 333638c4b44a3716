"""What a DaskLauncher counts on: each worker's own GPUs and threads, and workers that join late.

Real ``LocalCluster`` schedulers and workers with fake GPUs (the ``GPU`` worker resource, as in
``conftest.py``); SQLite, since every worker runs on this machine. Workers that join during a
test run in this process (``processes=False``): they join within moments, where a worker
process takes seconds to start on a busy machine.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.launchers import DaskLauncher
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.storages import SQLStorage

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


def _cluster(n_workers: int, *, processes: bool = False, **kwargs: Any) -> Any:
    """Workers with one thread each; the log levels are left alone (caplog reads them)."""
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                        dashboard_address=":0", silence_logs=False, **kwargs)


@pytest.fixture(scope="module")
def gpu_workers() -> Iterator[Any]:
    """Two worker processes with one thread and one fake GPU each."""
    with _cluster(2, processes=True, resources={"GPU": 1}) as cluster:
        yield cluster


def _sleeper(seconds: float) -> Callable[[dict[str, Any]], float]:
    """An objective that takes ``seconds`` (a closure: cloudpickle sends it by value)."""

    def objective(params: dict[str, Any]) -> float:
        time.sleep(seconds)
        return float(params["x"])

    return objective


def _most_at_once(trials: list[hpo.FrozenTrial]) -> int:
    """The most trials that ran at the same time."""
    edges = sorted([(t.datetime_start, 1) for t in trials]
                   + [(t.datetime_complete, -1) for t in trials])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


@pytest.mark.timeout(60)  # the old total-GPU check let this run wait for ever
def test_a_trial_needs_its_gpus_on_one_worker(gpu_workers: Any, tmp_path: Path) -> None:
    """Two workers with one GPU each hold two GPUs, but no trial that needs two."""
    with pytest.raises(ConfigurationError,
                       match=r"a Dask worker that advertises at least 2 GPU for gpus_per_trial=2"
                             r".*no single one of the 2 Dask workers at tcp://.* does; the "
                             r'largest advertises 1. Start a worker with --resources "GPU=2"'):
        hpo.minimize(_sleeper(0), SPACE, n_trials=1, storage=f"sqlite:///{tmp_path}/g.db",
                     launcher=DaskLauncher(gpu_workers.scheduler_address, gpus_per_trial=2))


def test_half_a_gpu_per_trial_counts_the_worker_threads(gpu_workers: Any, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """One-thread workers run one trial at a time, whatever GPU share is left: the launcher
    keeps two trials in flight, not four (a deterministic run then samples with lag 1)."""
    caplog.set_level(logging.INFO, logger="hpo_plugins.launchers")
    study = hpo.minimize(_sleeper(0.2), SPACE, n_trials=4, storage=f"sqlite:///{tmp_path}/h.db",
                         sampler=RandomSampler(), seed=0,
                         launcher=DaskLauncher(gpu_workers.scheduler_address,
                                               gpus_per_trial=0.5))
    trials = study.trials
    study.storage.close()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert "Running up to 2 trials at once" in caplog.text


class _ScaleOnLog(logging.Handler):
    """Scales ``cluster`` to ``n`` workers when a record whose message starts with ``prefix``
    is logged (once)."""

    def __init__(self, cluster: Any, n: int, prefix: str) -> None:
        super().__init__()
        self.cluster, self.n, self.prefix, self.scaled = cluster, n, prefix, False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.scaled and record.getMessage().startswith(self.prefix):
            self.scaled = True
            self.cluster.scale(self.n)


def test_a_gpu_run_waits_for_workers_that_join_after_it_started(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The docs' SLURM order: scale the cluster, then run at once (its jobs are still queued)."""
    from dask.distributed import Client

    caplog.set_level(logging.INFO, logger="hpo_plugins.launchers")
    with _cluster(0, resources={"GPU": 1}) as cluster, Client(cluster) as client:
        # the workers join once the run says it waits for them (not after a fixed delay, which
        # a slow start of the run could outlast): scale() only schedules their start
        scaler = _ScaleOnLog(cluster, 2, "No Dask worker has joined")
        logging.getLogger("hpo_plugins.launchers").addHandler(scaler)
        try:
            study = hpo.minimize(_sleeper(0), SPACE, n_trials=2,
                                 storage=f"sqlite:///{tmp_path}/w.db",
                                 launcher=DaskLauncher(client, gpus_per_trial=1))
        finally:
            logging.getLogger("hpo_plugins.launchers").removeHandler(scaler)
        assert scaler.scaled
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
        study.storage.close()
    assert "No Dask worker has joined the scheduler at inproc://" in caplog.text
    assert "client.wait_for_workers(n)" in caplog.text


def test_an_adaptive_cluster_at_zero_workers_gets_one(tmp_path: Path) -> None:
    """While the run waits for its first worker, a task waits too: an adaptive cluster starts
    workers only for tasks it sees."""
    with _cluster(0, resources={"GPU": 1}) as cluster:
        cluster.adapt(minimum=0, maximum=2, interval="100ms")
        study = hpo.minimize(_sleeper(0), SPACE, n_trials=2,
                             storage=f"sqlite:///{tmp_path}/a.db",
                             launcher=DaskLauncher(cluster, gpus_per_trial=1))
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
        study.storage.close()


def test_workers_that_join_during_a_run_take_trials(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A run started on one worker uses the second one once it joins (no seed: the number of
    trials at once may change). The second worker is added when trial 0 has finished."""
    caplog.set_level(logging.INFO, logger="hpo_plugins.launchers")
    with _cluster(1) as cluster:
        def add_a_worker(study: hpo.Study, frozen: hpo.FrozenTrial) -> None:
            if frozen.number == 0:
                cluster.scale(2)

        study = hpo.minimize(_sleeper(0.5), SPACE, n_trials=8, sampler=RandomSampler(),
                             storage=f"sqlite:///{tmp_path}/j.db", callbacks=[add_a_worker],
                             launcher=DaskLauncher(cluster))
        trials = study.trials
        study.storage.close()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    assert "Running up to 1 trials at once" in caplog.text
    assert "More Dask workers joined: now up to 2 trials at once" in caplog.text
    assert _most_at_once(trials) == 2


def test_a_scheduler_without_workers_is_refused_after_worker_timeout(tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        started = time.monotonic()
        with pytest.raises(ConfigurationError,
                           match=r"Expected Dask workers at the scheduler .* none joined within "
                                 r"0.5 s.*call client.wait_for_workers\(n\) before the run"):
            hpo.minimize(_sleeper(0), SPACE, n_trials=1, storage=f"sqlite:///{tmp_path}/n.db",
                         launcher=DaskLauncher(cluster, worker_timeout=0.5))
        assert time.monotonic() - started < 10
    assert not (tmp_path / "n.db").exists()  # refused before the study (and its file) existed


@pytest.fixture
def worker_with_its_own_disk(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    """A client of a scheduler whose one worker sees an empty folder where this process sees
    ``tmp_path / "db"``: the worker runs in its own mount namespace, with a fresh tmpfs over
    that folder, as a worker on another machine would see its own disk."""
    from dask.distributed import Client, LocalCluster

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to give a worker a disk of its own")
    folder = tmp_path / "db"
    folder.mkdir()
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0",
                      silence_logs=False) as cluster, Client(cluster) as client:
        worker = shlex.join([sys.executable, "-m", "distributed.cli.dask_worker",
                             cluster.scheduler_address, "--nthreads", "1", "--no-dashboard",
                             "--name", "remote"])
        process = subprocess.Popen(["unshare", "-m", "sh", "-c",
                                    f"mount -t tmpfs tmpfs {shlex.quote(str(folder))} && "
                                    f"exec {worker}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            client.wait_for_workers(1, timeout=60)
        except TimeoutError:
            pytest.skip("a worker in its own mount namespace did not start here")
        try:
            yield client, folder
        finally:
            os.killpg(process.pid, 15)
            process.wait(30)


@pytest.mark.parametrize("database", ["new", "existing"])
def test_sqlite_with_a_worker_on_another_disk_is_refused(
        worker_with_its_own_disk: tuple[Any, Path], database: str) -> None:
    """A clear error before the study is created, and no empty database left on either disk.

    A new file is not there yet: the worker must see its folder (a tmpfs over it here is
    another folder). An existing one holds an earlier study, and keeps only that one."""
    client, folder = worker_with_its_own_disk
    url = f"sqlite:///{folder}/hpo.db"
    if database == "existing":
        hpo.create_study(SPACE, study_name="earlier", storage=url).storage.close()
        seen = r"SQLite file .*hpo.db\. Received: the worker tcp://.* sees no file at that path"
    else:
        seen = (r"folder of the SQLite file .*db\. Received: the worker tcp://.* sees another "
                r"folder at that path")
    with pytest.raises(ConfigurationError,
                       match=rf"every Dask worker to see the study's {seen}\. SQLite "
                             r"works only when every worker runs on this machine .*PostgreSQL"):
        hpo.minimize(_sleeper(0), SPACE, n_trials=1, study_name="refused", storage=url,
                     launcher=DaskLauncher(client))
    assert list(client.run(os.listdir, str(folder)).values()) == [[]]
    if database == "new":
        assert list(folder.iterdir()) == []
    else:
        store = SQLStorage(url)
        assert [info.name for info in store.list_studies()] == ["earlier"]
        store.close()


def test_cli_run_refuses_a_sqlite_file_a_worker_cannot_see_and_makes_none(
        worker_with_its_own_disk: tuple[Any, Path], tmp_path: Path) -> None:
    """``hpo-plugins run --dask``: the launcher's check comes before the storage is touched,
    so the refused run leaves no database file (with tables and no study) behind."""
    from hpo_plugins.cli import main

    client, folder = worker_with_its_own_disk
    space_file = tmp_path / "space.py"
    space_file.write_text("from hpo_plugins import hp\nSPACE = {'x': hp.uniform('x', 0, 1)}\n")
    code = main(["run", "--space", f"{space_file}:SPACE", "--n-trials", "1",
                 "--storage", f"sqlite:///{folder}/hpo.db", "--study", "refused",
                 "--dask", client.scheduler.address, "--", sys.executable, "-c", "pass"])
    assert code == 1
    assert list(folder.iterdir()) == []
