"""``Study.stop()``: the run starts no new trial once asked, sequentially and in parallel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.launchers import JoblibLauncher
from hpo_plugins.samplers import RandomSampler

SPACE = {"x": hp.uniform("x", 0, 1)}


def _stop_at(number: int) -> Any:
    def callback(study: hpo.Study, frozen: hpo.FrozenTrial) -> None:
        if frozen.number == number:
            study.stop()
    return callback


def test_a_callback_stops_a_sequential_run_after_its_trial() -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())
    study.optimize(lambda p: p["x"], n_trials=10, callbacks=[_stop_at(2)])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    study.optimize(lambda p: p["x"], n_trials=2)  # the next call starts afresh
    assert len(study.trials) == 5


def test_the_objective_stops_a_sequential_run() -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())

    def objective(params: dict[str, Any]) -> float:
        if hpo.current_trial().number == 1:
            study.stop()
        return float(params["x"])

    study.optimize(objective, n_trials=10)
    assert len(study.trials) == 2 and study.trials[1].state is TrialState.COMPLETE


def _slow(params: dict[str, Any]) -> float:
    time.sleep(0.3)
    return float(params["x"])


def test_a_callback_stops_a_parallel_run_and_running_trials_finish(tmp_path: Path) -> None:
    """With 2 workers the trials in flight when the callback stops the run finish and are
    told; no trial is left RUNNING and far fewer than ``n_trials`` run."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/stop.db",
                             sampler=RandomSampler())
    study.optimize(_slow, n_trials=40, callbacks=[_stop_at(0)],
                   launcher=JoblibLauncher(n_jobs=2))
    states = [t.state for t in study.trials]
    assert all(s is TrialState.COMPLETE for s in states), states
    assert 1 <= len(states) <= 4, states  # trial 0, what was in flight, at most one more
    study.storage.close()
