"""A Dask run whose scheduler dies: a clear error, and the trials on the workers keep their work.

The cluster is the test's own (``own_dask_cluster``: a ``dask scheduler`` and one worker with
two threads, real processes); the scheduler is killed with SIGKILL while two trials run. SQLite
(every worker on this machine).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import ClusterLostError
from hpo_plugins.launchers import DaskLauncher
from hpo_plugins.storages import SQLStorage

OBJECTIVE_SECONDS = 3.0


def _slow() -> Callable[[dict[str, Any]], float]:
    """An objective that takes a while (a closure: cloudpickle sends it by value)."""

    def objective(params: dict[str, Any]) -> float:
        import time as clock

        clock.sleep(OBJECTIVE_SECONDS)
        return float(params["x"])

    return objective


def _kill_scheduler_once_running(url: str, cluster: Any, n: int) -> None:
    """SIGKILL the scheduler of ``cluster`` (conftest's DaskCluster) once ``n`` trials are
    RUNNING."""
    store = SQLStorage(url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                running = store.get_all_trials(store.get_study_id("lost"),
                                               [TrialState.RUNNING])
            except hpo.exceptions.StorageError:
                running = []  # the study does not exist yet
            if len(running) >= n:
                os.killpg(cluster.scheduler.pid, signal.SIGKILL)
                return
            time.sleep(0.1)
    finally:
        store.close()


def _states_once_settled(url: str) -> list[TrialState]:
    store = SQLStorage(url)
    try:
        deadline = time.monotonic() + OBJECTIVE_SECONDS + 20
        while True:
            trials = store.get_all_trials(store.get_study_id("lost"))
            if all(t.state is not TrialState.RUNNING for t in trials) or (
                    time.monotonic() > deadline):
                return [t.state for t in trials]
            time.sleep(0.2)
    finally:
        store.close()


@pytest.mark.parametrize("heartbeat", [0.5, None])
def test_losing_the_scheduler_stops_the_run_and_the_workers_finish_their_trials(
        own_dask_cluster: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        heartbeat: float | None) -> None:
    """With heartbeats the running trials are left to their workers; without, nothing could
    judge them later, so the launcher fails them."""
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    killer = threading.Thread(target=_kill_scheduler_once_running,
                              args=(url, own_dask_cluster, 2))
    killer.start()
    left = (r"Trials running on workers go on there.*" if heartbeat else
            r"The trials that were running are marked FAIL \(the study sends no heartbeats.*")
    try:
        with pytest.raises(ClusterLostError,
                           match=r"(?s)The run lost its Dask scheduler at tcp://127\.0\.0\.1:\d+ "
                                 r"and stopped \(.*scheduler-connection-lost.*\)\. " + left
                                 + r"run the same command"):
            hpo.minimize(_slow(), {"x": hp.uniform("x", 0, 1)}, n_trials=6, storage=url,
                         study_name="lost", launcher=DaskLauncher(own_dask_cluster.address),
                         heartbeat_interval=heartbeat, grace_period=3 if heartbeat else None,
                         max_retries=1, show_progress_bar=False)
    finally:
        killer.join()
    if heartbeat:
        assert any("stay RUNNING on their workers" in r.getMessage() for r in caplog.records)
        # the two trials on the worker were not failed by the launcher: they finish there
        assert _states_once_settled(url) == [TrialState.COMPLETE] * 2
    else:
        assert _states_once_settled(url) == [TrialState.FAIL] * 2
