"""ThresholdPruner against hand-computed cases."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._frozen import Direction, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import ThresholdPruner

from . import make_trial


def decide(curve: Sequence[float] | Mapping[int, float], **kwargs: Any) -> bool:
    return ThresholdPruner(**kwargs).prune(make_trial(0, curve), [], Direction.MINIMIZE)


@pytest.mark.parametrize(("curve", "kwargs", "expected"), [
    ([1.0, 11.0], {"upper": 10.0}, True),
    ([1.0, 10.0], {"upper": 10.0}, False),  # equal to the bound continues
    ([11.0, 1.0], {"upper": 10.0}, False),  # only the latest report counts
    ([0.5, 0.05], {"lower": 0.1}, True),
    ([0.5, 0.1], {"lower": 0.1}, False),
    ([0.5, 0.2], {"lower": 0.1, "upper": 0.3}, False),
    ([0.5, 0.35], {"lower": 0.1, "upper": 0.3}, True),
    ([0.5, math.nan], {"upper": 10.0}, True),  # NaN is out of every range
    ([50.0], {"upper": 10.0, "n_warmup_steps": 1}, False),
    ([1.0, 50.0], {"upper": 10.0, "n_warmup_steps": 1}, True),
    # checkpoints 0, 3, 6 with interval 3: step 4 is not one, step 3 is
    ([1.0, 1.0, 1.0, 1.0, 50.0], {"upper": 10.0, "interval_steps": 3}, False),
    ([1.0, 1.0, 1.0, 50.0], {"upper": 10.0, "interval_steps": 3}, True),
    # sparse reports at 0, 2, 4: checkpoint 3 fell between, so step 4 decides
    ({0: 1.0, 2: 1.0, 4: 50.0}, {"upper": 10.0, "interval_steps": 3}, True),
    ({}, {"upper": 10.0}, False),
])
def test_table(curve: Any, kwargs: dict[str, Any], expected: bool) -> None:
    assert decide(curve, **kwargs) is expected


def test_the_bounds_ignore_the_direction_and_the_other_trials() -> None:
    rivals = [make_trial(i, [100.0, 100.0], TrialState.COMPLETE) for i in range(1, 5)]
    pruner = ThresholdPruner(lower=0.15)  # accuracy at chance after ten classes
    for direction in Direction:
        assert pruner.prune(make_trial(0, [0.5, 0.12]), rivals, direction)
        assert not pruner.prune(make_trial(0, [0.5, 0.2]), rivals, direction)


def test_it_stops_a_diverging_trial_from_the_first_trial_on() -> None:
    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        loss = 1.0
        for step in range(10):
            loss = loss * (3.0 if params["lr"] > 0.5 else 0.5)  # a large rate diverges
            trial.report(loss, step)
            if trial.should_prune():
                raise hpo.TrialPruned()
        return loss

    study = hpo.minimize(objective, {"lr": hp.uniform("lr", 0, 1)}, n_trials=12,
                         storage=":memory:", seed=1, pruner=ThresholdPruner(upper=10.0))
    for trial in study.trials:
        if trial.params["lr"] > 0.5:
            assert trial.state is TrialState.PRUNED
            assert max(trial.intermediate_values) == 2  # 27 > 10 at the third report
        else:
            assert trial.state is TrialState.COMPLETE
    assert {t.state for t in study.trials} == {TrialState.PRUNED, TrialState.COMPLETE}
    rebuilt = hpo.load_study(study.study_name, study.storage).pruner
    assert repr(rebuilt) == repr(study.pruner) == (
        "ThresholdPruner(lower=None, upper=10.0, n_warmup_steps=0, interval_steps=1)")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, r"Expected `lower`, `upper` or both\. Received neither"),
    ({"lower": 2.0, "upper": 1.0},
     r"Expected `lower` <= `upper`\. Received: lower=2\.0, upper=1\.0"),
    ({"upper": math.inf}, r"Expected `upper` to be a finite number or None\. Received: upper=inf"),
    ({"lower": "0.1"}, r"Received: lower='0\.1'"),
    ({"upper": 1.0, "n_warmup_steps": -1}, r"`n_warmup_steps` to be an integer >= 0"),
    ({"upper": 1.0, "interval_steps": 0}, r"`interval_steps` to be an integer >= 1"),
])
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ThresholdPruner(**kwargs)
