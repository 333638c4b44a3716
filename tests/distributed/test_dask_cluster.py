"""One study on a real Dask cluster and PostgreSQL: GPUs, pruning, a worker killed mid-run."""

from __future__ import annotations

import itertools
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
from hpo_plugins.launchers import DaskLauncher
from hpo_plugins.pruners import MedianPruner
from hpo_plugins.samplers import GridSampler, RandomSampler

pytest_plugins = ["conftest_postgres"]
pytestmark = pytest.mark.slow

N_TRIALS = 40
STEPS = 4
SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


def _objective(step_seconds: float) -> Callable[[dict[str, Any]], float]:
    """A curve of STEPS reports that ends at x; trials with a worse curve get pruned.

    A closure, so cloudpickle sends it by value (workers cannot import this test module).
    """

    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        for step in range(STEPS):
            time.sleep(step_seconds)
            trial.report(params["x"] + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise hpo.TrialPruned()
        return float(params["x"])

    return objective


def _parent_pid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent for {pid}")


class _Killer(threading.Thread):
    """Once ``after`` trials are finished, kill -9 the process running a RUNNING trial."""

    def __init__(self, url: str, after: int) -> None:
        super().__init__(daemon=True)
        self.url, self.after = url, after
        self.victim: dict[str, Any] = {}
        self.finished_before: dict[int, tuple[TrialState, float | None]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        storage = hpo.storages.SQLStorage(self.url)
        try:
            while not self.stop.wait(0.2) and not self.victim:
                self._try_kill(storage)
        finally:
            storage.close()

    def _try_kill(self, storage: Any) -> None:
        try:
            study_id = storage.get_study_id("killed")
        except hpo.exceptions.StudyNotFoundError:
            return
        trials = storage.get_all_trials(study_id)
        done = {t.number: (t.state, t.value) for t in trials if t.state.is_finished}
        # A trial that reported nothing yet has at least 0.3 s to go: it cannot finish between
        # this read and the kill.
        running = [t for t in trials if t.state is TrialState.RUNNING and t.params
                   and not t.intermediate_values]
        if len(done) < self.after or not running:
            return
        target = running[0]
        pid = int(target.system_attrs["worker"]["pid"])
        self.victim = {"number": target.number, "pid": pid, "parent": _parent_pid(pid),
                       "gpu": target.system_attrs.get("gpu")}
        self.finished_before = done
        os.kill(pid, signal.SIGKILL)


def test_study_survives_a_killed_worker(dask_cluster: Any, dask_client: Any,
                                        fresh_postgres_url: str) -> None:
    killer = _Killer(fresh_postgres_url, after=6)
    killer.start()
    started = time.monotonic()
    try:
        study = hpo.minimize(
            _objective(0.15), SPACE, max_trials=N_TRIALS, storage=fresh_postgres_url,
            study_name="killed", sampler=RandomSampler(), seed=0,
            pruner=MedianPruner(n_startup_trials=4, n_warmup_steps=1),
            launcher=DaskLauncher(dask_client, gpus_per_trial=1),
            heartbeat_interval=0.5, grace_period=3.0)
    finally:
        killer.stop.set()
        killer.join(10)
    elapsed = time.monotonic() - started
    assert killer.victim, f"no trial was killed:\n{dask_cluster.logs()}"
    trials = {t.number: t for t in study.trials}
    study.storage.close()
    lost = trials[killer.victim["number"]]

    # The killed process ran the trial: the worker process, a child of the `dask worker` nanny.
    assert killer.victim["parent"] in {p.pid for p in dask_cluster.nannies.values()}
    assert lost.state is TrialState.FAIL
    assert "heartbeat" in (lost.fail_reason or "") or "worker" in (lost.fail_reason or "")

    # The study completed its total, and nothing finished before the kill was lost.
    counted = [t for t in trials.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == N_TRIALS
    assert not [t for t in trials.values() if t.state is TrialState.RUNNING]
    for number, (state, value) in killer.finished_before.items():
        assert (trials[number].state, trials[number].value) == (state, value)
    assert sorted(trials) == list(range(len(trials)))  # unique, gapless numbers

    # Pruning across machines: curves reported on one worker prune trials on the other.
    assert any(t.state is TrialState.PRUNED for t in trials.values())
    _check_gpus(list(trials.values()))
    print(f"{len(trials)} trials ({len(counted)} counted) in {elapsed:.1f} s; "
          f"killed {killer.victim}")


def _check_gpus(trials: list[hpo.FrozenTrial]) -> None:
    """Each trial ran on a fake-GPU worker that saw its own GPU; one trial per GPU at a time."""
    by_gpu: dict[str, list[hpo.FrozenTrial]] = {}
    for trial in trials:
        worker = trial.system_attrs["worker"]
        gpu = trial.system_attrs["gpu"]
        assert worker["name"] == f"gpu{gpu}", worker
        by_gpu.setdefault(gpu, []).append(trial)
    assert sorted(by_gpu) == ["0", "1"]
    for runs in by_gpu.values():
        spans = sorted((t.datetime_start, t.datetime_complete) for t in runs
                       if t.state is not TrialState.FAIL)  # a lost trial ends when reaped
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end is not None and start is not None and end <= start


def _slow_objective(seconds: float) -> Callable[[dict[str, Any]], float]:
    """An objective that takes ``seconds`` and reports nothing (a closure: sent by value)."""

    def objective(params: dict[str, Any]) -> float:
        time.sleep(seconds)
        return float(params["x"])

    return objective


def test_a_grid_point_lost_with_its_worker_runs_again(dask_cluster: Any, dask_client: Any,
                                                      fresh_postgres_url: str) -> None:
    """The run's own clean-up re-queues a lost trial under ``max_retries`` and runs the copy.

    The grace period is long, so the lost trial is failed by the launcher when the run's other
    tasks have returned (not by its heartbeat); the grid then looks done, and the run goes on
    for the copy. Without the retry, that grid point was lost for good.
    """
    space = {"x": hp.choice("x", [1, 2, 3, 4])}
    killer = _Killer(fresh_postgres_url, after=0)
    killer.start()
    try:
        study = hpo.minimize(_slow_objective(1.5), space, storage=fresh_postgres_url,
                             study_name="killed", sampler=GridSampler(), max_retries=1,
                             heartbeat_interval=0.5, grace_period=60.0,
                             launcher=DaskLauncher(dask_client))
    finally:
        killer.stop.set()
        killer.join(10)
    trials = study.trials
    study.storage.close()
    assert killer.victim, f"no trial was killed:\n{dask_cluster.logs()}"
    lost = [t for t in trials if t.state is TrialState.FAIL]
    assert killer.victim["number"] in {t.number for t in lost}
    assert all("Dask worker was lost" in (t.fail_reason or "") for t in lost)
    copies = {t.system_attrs["retry_of"]: t for t in trials if "retry_of" in t.system_attrs}
    assert sorted(copies) == sorted(t.number for t in lost)
    assert all(copies[t.number].state is TrialState.COMPLETE
               and copies[t.number].params == t.params for t in lost)
    completed = sorted(t.params["x"] for t in trials if t.state is TrialState.COMPLETE)
    assert completed == [0, 1, 2, 3]  # every grid point (choice indices)
