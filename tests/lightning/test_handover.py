"""The hand-over of a trial to another process, as a spawned Lightning worker does it.

A second handle opened from the note stands for the worker: the storage is the only state the
two share, exactly as between processes. This checks the core's side of ``ddp_spawn`` quickly;
``test_ddp.py`` runs the real thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpo_plugins import TrialState
from hpo_plugins.lightning._handover import hand_over, open_trial


def worker_objective(action: str) -> Any:
    """An objective that hands its trial over and lets a 'worker' handle act on it."""
    from hpo_plugins import current_trial

    def objective(params: Any) -> None:
        note = hand_over(current_trial())
        assert note is not None
        worker = open_trial(note)
        for step, value in enumerate([0.9, 0.7, 0.8]):
            worker.report(value, step)
        if action == "prune":
            worker.mark_pruned()
        elif action == "fail":
            worker.mark_failed("the monitored metric 'val_los' was not logged")

    return objective


def run(study: Any, action: str) -> Any:
    study.optimize(worker_objective(action), n_trials=1)
    return study.trials[0]


def test_parent_ends_the_trial_with_the_workers_last_value(make_study: Any,
                                                           tmp_path: Path) -> None:
    frozen = run(make_study(f"sqlite:///{tmp_path}/h.db"), "nothing")
    assert (frozen.state, frozen.value) == (TrialState.COMPLETE, 0.8)


def test_pruning_in_the_worker_reaches_the_parent(make_study: Any, tmp_path: Path) -> None:
    frozen = run(make_study(f"sqlite:///{tmp_path}/h.db"), "prune")
    assert (frozen.state, frozen.value) == (TrialState.PRUNED, 0.8)
    assert frozen.system_attrs["pruned"] is True


def test_failure_in_the_worker_reaches_the_parent(make_study: Any, tmp_path: Path) -> None:
    frozen = run(make_study(f"sqlite:///{tmp_path}/h.db"), "fail")
    assert frozen.state is TrialState.FAIL
    assert frozen.fail_reason == "the monitored metric 'val_los' was not logged"
