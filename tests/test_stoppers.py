"""Stoppers: study callbacks that end a run after no progress, or at a good enough value."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.stoppers import NoImprovementStop, ThresholdStop

SPACE = {"x": hp.uniform("x", 0, 1)}


def _run(values: Sequence[float | str], stopper: Callable[..., None], *,
         direction: str = "minimize") -> list[hpo.FrozenTrial]:
    """Run trials whose objective gives ``values`` in turn ("prune", "fail" for those ends)."""
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler(),
                             direction=direction)

    def objective(params: dict[str, Any]) -> float:
        value = values[hpo.current_trial().number]
        if value == "prune":
            raise hpo.TrialPruned()
        if value == "fail":
            raise ValueError("broken")
        return float(value)

    study.optimize(objective, n_trials=len(values), catch=(ValueError,), callbacks=[stopper])
    return study.trials


@pytest.mark.parametrize(("values", "stopper", "ran"), [
    ([5, 4, 4.5, 4.2, 4.1, 3, 2], NoImprovementStop(3), 5),  # 4.5, 4.2, 4.1 do not beat 4
    ([5, 4, 4.5, 3, 3.5, 3.2, 3.1, 1], NoImprovementStop(3), 7),  # the count restarts at 3
    ([5, 4.8, 4.6, 4.55, 1, 1], NoImprovementStop(3, min_delta=0.5), 4),  # 0.45 in all
    (["fail", "prune", 5, "prune", "fail", 9, 1], NoImprovementStop(3), 6),  # they count too
    (["fail", "fail", "fail", "fail", 2], NoImprovementStop(2), 5),  # not before a value
    ([5, 0.4, 0.09, 0.01], ThresholdStop(0.1), 3),
])
def test_a_stopper_ends_the_run_when_its_rule_says(
        values: list[float | str], stopper: Callable[..., None], ran: int) -> None:
    trials = _run(values, stopper)
    assert len(trials) == ran
    assert all(t.state is not TrialState.RUNNING for t in trials)


def test_stoppers_follow_the_direction() -> None:
    assert len(_run([1, 2, 1.5, 1.9, 3], NoImprovementStop(2), direction="maximize")) == 4
    assert len(_run([1, 2, 3, 4], ThresholdStop(2.5), direction="maximize")) == 3
    assert len(_run([1, 2, 3, 4], ThresholdStop(2.5))) == 1  # minimising: 1 <= 2.5 at once


@pytest.mark.parametrize(("make", "message"), [
    (lambda: NoImprovementStop(0), r"Expected `patience` to be an integer >= 1"),
    (lambda: NoImprovementStop(5, min_delta=-1), r"Expected `min_delta` to be a number in "
                                                 r"\[0, inf\)"),
    (lambda: ThresholdStop("low"), r"Expected `value` to be a number"),
])
def test_stopper_arguments_are_checked(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_hyperopts_early_stop_function_is_refused_with_ours_named() -> None:
    from hyperopt.early_stop import no_progress_loss

    study = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(ConfigurationError, match=r"Hyperopt's 'no_progress_loss.<locals>."
                                                 r"stop_fn'.*NoImprovementStop\(20\)"):
        study.optimize(lambda p: p["x"], n_trials=3, callbacks=[no_progress_loss(20)])
    assert study.trials == []
