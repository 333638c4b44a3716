"""Ctrl-C in a DaskLauncher: no trial starts on a worker after the launcher has stopped.

``client.cancel`` cannot stop a task whose thread already runs. Here the second task waits for
room in a study full with trial 0 (``max_trials=1``); the interrupt fails trial 0, which frees
that room. Real worker processes (``LocalCluster``), SQLite (every worker on this machine).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.launchers import DaskLauncher
from hpo_plugins.storages import SQLStorage

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}
OBJECTIVE_SECONDS = 3.0


@pytest.fixture
def interrupt_on_sigusr1() -> Iterator[None]:
    """SIGUSR1 raises KeyboardInterrupt in the main thread, as Ctrl-C would (SIGINT itself
    would reach pytest's own handler if it came late)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _marking(folder: Path) -> Callable[[dict[str, Any]], float]:
    """An objective that leaves a file for each time it starts, then takes a while."""

    def objective(params: dict[str, Any]) -> float:
        import time as clock

        (folder / f"ran-{hpo.current_trial().number}").touch()
        clock.sleep(OBJECTIVE_SECONDS)
        return float(params["x"])

    return objective


def _interrupt_once_running(url: str, stop: threading.Event) -> None:
    """Send SIGUSR1 to this process a second after trial 0 started (the other task is then
    waiting for room)."""
    store = SQLStorage(url)
    try:
        while not stop.wait(0.1):
            try:
                trials = store.get_all_trials(store.get_study_id("stop"))
            except hpo.exceptions.StorageError:
                continue  # the study does not exist yet
            if trials:
                time.sleep(1.0)
                os.kill(os.getpid(), signal.SIGUSR1)
                return
    finally:
        store.close()


def _wait_until_quiet(url: str, since: float) -> list[hpo.FrozenTrial]:
    """The study's trials once none is RUNNING and a trial started after ``since`` would have
    finished its objective."""
    store = SQLStorage(url)
    try:
        deadline = time.monotonic() + 20
        while True:
            trials = store.get_all_trials(store.get_study_id("stop"))
            quiet = time.monotonic() - since > OBJECTIVE_SECONDS + 1.5
            if (quiet and all(t.state.is_finished for t in trials)) or \
                    time.monotonic() > deadline:
                return trials
            time.sleep(0.2)
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.usefixtures("interrupt_on_sigusr1")
def test_no_trial_starts_on_a_worker_after_ctrl_c(tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    url = f"sqlite:///{tmp_path}/stop.db"
    stop = threading.Event()
    watcher = threading.Thread(target=_interrupt_once_running, args=(url, stop), daemon=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        watcher.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                hpo.minimize(_marking(tmp_path), SPACE, max_trials=1, storage=url,
                             study_name="stop", heartbeat_interval=0.5, grace_period=30.0,
                             max_retries=1, launcher=DaskLauncher(cluster))
        finally:
            stop.set()
            watcher.join(10)
        trials = _wait_until_quiet(url, time.monotonic())

    assert sorted(p.name for p in tmp_path.glob("ran-*")) == ["ran-0"]
    assert trials[0].state is TrialState.FAIL
    assert "interrupted by the user" in (trials[0].fail_reason or "")
    # the user stopped trial 0: it was not lost, so max_retries does not bring it back
    assert not [t for t in trials if t.state is TrialState.WAITING]
    for later in trials[1:]:  # asked while the launcher stopped: failed before its objective
        assert later.state is TrialState.FAIL
        assert "its launcher had stopped the run" in (later.fail_reason or "")
