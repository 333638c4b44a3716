"""PercentilePruner against hand-computed cases; at 50 it is MedianPruner, decision for decision."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import MedianPruner, PercentilePruner
from hpo_plugins.pruners._median import percentile_of

from . import make_trial

C = TrialState.COMPLETE

# Five COMPLETE rivals; their best values up to step 1 (minimising) are 0.2, 0.4, 0.6, 0.8, 1.0.
# Linear percentiles of those five: 0 -> 0.2, 25 -> 0.4, 50 -> 0.6, 75 -> 0.8, 100 -> 1.0;
# 10 -> 0.2 + 0.4 * (0.2) = 0.28.
RIVALS = [make_trial(i, [1.5, v], C) for i, v in enumerate([0.6, 0.2, 1.0, 0.4, 0.8])]


@pytest.mark.parametrize(("percentile", "best", "expected"), [
    (25.0, 0.41, True), (25.0, 0.4, False), (25.0, 0.39, False),
    (50.0, 0.61, True), (50.0, 0.6, False),
    (75.0, 0.81, True), (75.0, 0.79, False),
    (0.0, 0.21, True), (0.0, 0.2, False),
    (100.0, 1.01, True), (100.0, 1.0, False),
    (10.0, 0.29, True), (10.0, 0.27, False),
])
def test_minimising(percentile: float, best: float, expected: bool) -> None:
    pruner = PercentilePruner(percentile, n_startup_trials=5)
    assert pruner.prune(make_trial(9, [1.5, best]), RIVALS, Direction.MINIMIZE) is expected


@pytest.mark.parametrize(("percentile", "best", "expected"), [
    # accuracies: the best end is the high end, so 25 means "keep up with the top quarter"
    (25.0, -0.41, True), (25.0, -0.4, False),
    (75.0, -0.81, True), (75.0, -0.79, False),
])
def test_maximising_counts_from_the_high_end(percentile: float, best: float,
                                             expected: bool) -> None:
    rivals = [make_trial(i, [-1.5, -v], C) for i, v in enumerate([0.6, 0.2, 1.0, 0.4, 0.8])]
    pruner = PercentilePruner(percentile, n_startup_trials=5)
    assert pruner.prune(make_trial(9, [-1.5, best]), rivals, Direction.MAXIMIZE) is expected


def test_the_rules_of_the_median_pruner_apply() -> None:
    pruner = PercentilePruner(25.0, n_startup_trials=6)
    assert not pruner.prune(make_trial(9, [1.5, 0.5]), RIVALS, Direction.MINIMIZE)  # start-up
    pruner = PercentilePruner(25.0, n_startup_trials=0, n_warmup_steps=2)
    assert not pruner.prune(make_trial(9, [1.5, 0.5]), RIVALS, Direction.MINIMIZE)  # warm-up
    pruner = PercentilePruner(25.0, n_startup_trials=0, n_min_trials=6)
    assert not pruner.prune(make_trial(9, [1.5, 0.5]), RIVALS, Direction.MINIMIZE)
    pruner = PercentilePruner(90.0, n_startup_trials=0)
    assert pruner.prune(make_trial(9, [1.5, float("nan")]), RIVALS, Direction.MINIMIZE)


def best_up_to(trial: FrozenTrial, step: int, direction: Direction) -> float:
    """The best non-NaN value ``trial`` reported at steps ``<= step`` (NaN if none), by a scan."""
    values = [v for s, v in trial.intermediate_values.items() if s <= step and not math.isnan(v)]
    if not values:
        return math.nan
    return min(values) if direction is Direction.MINIMIZE else max(values)


def _median_rule(me: FrozenTrial, rivals: list[FrozenTrial], direction: Direction) -> bool:
    """The median stopping rule written out with ``statistics.median`` (no start-up, no
    warm-up, every report a decision), as MedianPruner decided before it became
    PercentilePruner(50)."""
    step = me.last_step
    if step is None:
        return False
    if math.isnan(me.intermediate_values[step]):
        return True
    bests = [best_up_to(t, step, direction) for t in rivals if step in t.intermediate_values]
    bests = [b for b in bests if not math.isnan(b)]
    return bool(bests) and direction.better(statistics.median(bests),
                                            best_up_to(me, step, direction))


def test_at_50_it_decides_exactly_as_the_median_rule() -> None:
    rng = random.Random(0)
    for n_rivals, direction in itertools.product([1, 2, 3, 4, 7, 10], Direction):
        # values on a coarse grid, so ties with the median happen often
        rivals = [make_trial(i, [rng.choice([0.1, 0.2, 0.3, 0.35, 0.4]) for _ in range(3)], C)
                  for i in range(n_rivals)]
        for _ in range(40):
            me = make_trial(99, [rng.choice([0.1, 0.2, 0.25, 0.3, 0.35, 0.4]) for _ in range(3)])
            expected = _median_rule(me, rivals, direction)
            assert PercentilePruner(50.0, n_startup_trials=0).prune(me, rivals,
                                                                    direction) is expected
            assert MedianPruner(n_startup_trials=0).prune(me, rivals, direction) is expected


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8])
def test_percentile_50_is_the_median_to_the_last_bit(n: int) -> None:
    rng = random.Random(n)
    for _ in range(200):
        values = [rng.uniform(-1e3, 1e3) for _ in range(n)]
        assert percentile_of(values, 50.0) == statistics.median(values)


def test_percentile_interpolates_linearly() -> None:
    assert percentile_of([-1e308, 1e308], 25.0) == pytest.approx(-5e307)  # no overflow
    assert percentile_of([1.0, 2.0, 3.0, 4.0, 5.0], 10.0) == pytest.approx(1.4)
    assert percentile_of([3.0], 37.0) == 3.0
    assert percentile_of([1.0, 3.0], 0.0) == 1.0 and percentile_of([1.0, 3.0], 100.0) == 3.0


def test_it_prunes_in_a_real_study() -> None:
    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        for step in range(5):
            trial.report(params["x"] + 0.01 * (5 - step), step)
            if trial.should_prune():
                raise hpo.TrialPruned()
        return float(params["x"])

    study = hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=30,
                         storage=":memory:", seed=0,
                         pruner=PercentilePruner(25.0, n_startup_trials=5))
    pruned = study.get_trials([TrialState.PRUNED])
    assert len(pruned) >= 10  # most later trials fall behind the best quarter
    assert study.pruner.get_params() == {"percentile": 25.0, "n_startup_trials": 5,
                                         "n_warmup_steps": 0, "interval_steps": 1,
                                         "n_min_trials": 1}
    rebuilt = hpo.load_study(study.study_name, study.storage).pruner
    assert repr(rebuilt) == repr(study.pruner)  # a child process prunes alike


@pytest.mark.parametrize("value", [-1.0, 100.5, float("nan"), "25", True, None])
def test_a_percentile_outside_0_to_100_is_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError,
                       match=r"Expected `percentile` to be a number from 0 to 100"):
        PercentilePruner(value)
