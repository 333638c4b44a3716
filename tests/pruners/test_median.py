"""MedianPruner against hand-computed cases."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import MedianPruner

from . import make_trial

C, P, R, F, W = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL,
                 TrialState.WAITING)
NAN = math.nan

# Five COMPLETE trials, steps 0..4. Best value up to step 2 (minimising):
#   0.6, 0.7, 0.5, 0.9, 0.6 (trial 4 went up at step 2: its best is 0.6 from step 1)
#   sorted [0.5, 0.6, 0.6, 0.7, 0.9] -> median 0.6.
# Their later, lower values (0.3 at step 4) must not count at step 2.
CURVES = [
    [1.0, 0.8, 0.6, 0.5, 0.4],
    [1.0, 0.9, 0.7, 0.6, 0.5],
    [1.0, 0.7, 0.5, 0.45, 0.3],
    [1.0, 1.0, 0.9, 0.8, 0.7],
    [1.0, 0.6, 0.65, 0.55, 0.5],
]


def study(states: Sequence[TrialState] = (C,) * 5,
          curves: Sequence[Sequence[float]] = CURVES) -> list[FrozenTrial]:
    return [make_trial(i, c, s) for i, (c, s) in enumerate(zip(curves, states))]


def decide(curve: Sequence[float] | Mapping[int, float], others: Sequence[FrozenTrial],
           direction: Direction = Direction.MINIMIZE, **kwargs: Any) -> bool:
    return MedianPruner(**kwargs).prune(make_trial(99, curve), others, direction)


CASES = [
    # (id, this trial's curve, kwargs, expected); the study is study() unless stated.
    ("worse than median 0.6", [1.0, 0.9, 0.61], {}, True),
    ("tie with the median continues", [1.0, 0.9, 0.6], {}, False),
    ("best so far 0.55 counts, not the last 0.7", [1.0, 0.55, 0.7], {}, False),
    ("better than median", [1.0, 0.9, 0.5], {}, False),
    # step 0: every other best is 1.0 -> median 1.0; 1.0 ties; 1.2 is worse.
    ("first report, tie", [1.0], {}, False),
    ("first report, worse", [1.2], {}, True),
    # step 4: bests 0.4, 0.5, 0.3, 0.7, 0.5 -> median 0.5.
    ("step 4 worse than 0.5", [1.0, 1.0, 1.0, 1.0, 0.51], {}, True),
    ("start-up: 5 COMPLETE needed, 5 there", [1.0, 0.9, 0.61], {"n_startup_trials": 5}, True),
    ("start-up: 6 needed", [1.0, 0.9, 0.61], {"n_startup_trials": 6}, False),
    ("warm-up: step 2 < 3", [1.0, 0.9, 0.61], {"n_warmup_steps": 3}, False),
    ("warm-up: step 2 == 2", [1.0, 0.9, 0.61], {"n_warmup_steps": 2}, True),
    # checkpoints 1, 3, 5, ... with warm-up 1 and interval 2
    ("interval: step 2 is between checkpoints", [1.0, 0.9, 0.61],
     {"n_warmup_steps": 1, "interval_steps": 2}, False),
    ("interval: step 3 is a checkpoint", [1.0, 0.9, 0.9, 0.9],
     {"n_warmup_steps": 1, "interval_steps": 2}, True),
    # reports every 2 steps: checkpoint 1 falls between steps 0 and 2 -> decided at step 2
    ("interval: sparse reports, checkpoint 1 decided at step 2", {0: 1.0, 2: 0.61},
     {"n_warmup_steps": 1, "interval_steps": 2}, True),
    # interval 3, reports every 2: checkpoints 0, 3, 6; step 4 is the first report after 3
    ("interval: sparse reports, step 4 after checkpoint 3", {0: 1.0, 2: 1.0, 4: 0.51},
     {"interval_steps": 3}, True),
    ("interval: sparse reports, step 2 before checkpoint 3", {0: 1.0, 2: 0.61},
     {"interval_steps": 3}, False),
    ("n_min_trials 5 reached", [1.0, 0.9, 0.61], {"n_min_trials": 5}, True),
    ("n_min_trials 6 not reached", [1.0, 0.9, 0.61], {"n_min_trials": 6}, False),
    ("NaN report is pruned even with too few rivals", [1.0, 0.1, NAN], {"n_min_trials": 6}, True),
    ("NaN report not pruned in warm-up", [1.0, 0.1, NAN], {"n_warmup_steps": 3}, False),
    ("NaN report not pruned during start-up", [1.0, 0.1, NAN], {"n_startup_trials": 6}, False),
    ("earlier NaN ignored in best so far", [NAN, 0.5, 0.7], {}, False),
]


@pytest.mark.parametrize(("curve", "kwargs", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_minimise_table(curve: Any, kwargs: dict[str, Any], expected: bool) -> None:
    assert decide(curve, study(), **kwargs) is expected


@pytest.mark.parametrize(("curve", "kwargs", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_maximising_negated_curves_gives_the_same_decisions(
        curve: Any, kwargs: dict[str, Any], expected: bool) -> None:
    negate = {s: -v for s, v in (curve.items() if isinstance(curve, Mapping)
                                 else enumerate(curve))}
    others = study(curves=[[-v for v in c] for c in CURVES])
    assert decide(negate, others, Direction.MAXIMIZE, **kwargs) is expected


def test_maximise_accuracy() -> None:
    # accuracies at step 1 (best = max up to step 1): 0.5, 0.7, 0.6 -> median 0.6
    others = [make_trial(i, c, C) for i, c in enumerate([[0.5, 0.4], [0.6, 0.7], [0.2, 0.6]])]
    pruner = MedianPruner(n_startup_trials=3)
    assert pruner.prune(make_trial(9, [0.1, 0.59]), others, Direction.MAXIMIZE)
    assert not pruner.prune(make_trial(9, [0.65, 0.3]), others, Direction.MAXIMIZE)


def test_empty_curve_never_prunes() -> None:
    assert decide({}, study()) is False


@pytest.mark.parametrize("state", [R, P, F])
def test_running_pruned_and_failed_trials_are_rivals(state: TrialState) -> None:
    # Trials 1..4, trial 3 in `state`. Bests at step 2: 0.7, 0.5, 0.9 (trial 3), 0.6
    #   -> sorted [0.5, 0.6, 0.7, 0.9], median 0.65. Without trial 3 it would be 0.6,
    #   and 0.64 would be pruned.
    others = study(states=(C, C, C, state, C))[1:]
    assert decide([1.0, 0.9, 0.66], others, n_startup_trials=3) is True
    assert decide([1.0, 0.9, 0.64], others, n_startup_trials=3) is False


def test_start_up_counts_only_complete_trials() -> None:
    others = study(states=(C, C, C, C, R))
    assert decide([1.0, 0.9, 0.61], others, n_startup_trials=5) is False
    assert decide([1.0, 0.9, 0.61], others, n_startup_trials=4) is True


def test_only_rivals_that_reported_at_this_exact_step_count() -> None:
    # Rival 0 skipped step 2, rival 1 reported 0.1 at step 2, rival 2 stopped at step 1.
    others = [make_trial(0, {0: 1.0, 1: 0.2, 3: 0.2}, P), make_trial(1, [1.0, 0.9, 0.1], C),
              make_trial(2, [1.0, 0.3], P), make_trial(3, {}, W)]
    # Only rival 1 counts: median 0.1 -> 0.5 is worse.
    assert decide([1.0, 0.8, 0.5], others, n_startup_trials=0) is True
    assert decide([1.0, 0.8, 0.5], others, n_startup_trials=0, n_min_trials=2) is False


def test_nan_rivals() -> None:
    # Rival 0: only NaN up to step 1 -> no best -> not counted.
    # Rival 1: NaN at step 1 but 0.3 at step 0 -> best 0.3. Rival 2: best 0.5.
    others = [make_trial(0, [NAN, NAN], P), make_trial(1, [0.3, NAN], P),
              make_trial(2, [0.9, 0.5], C)]
    assert decide([1.0, 0.41], others, n_startup_trials=1) is True   # median 0.4
    assert decide([1.0, 0.39], others, n_startup_trials=1) is False
    assert decide([1.0, 0.39], others, n_startup_trials=1, n_min_trials=3) is False


def test_the_trial_itself_in_others_is_ignored() -> None:
    me = make_trial(99, [1.0, 0.9, 0.61])
    pruner = MedianPruner(n_min_trials=5)
    assert pruner.prune(me, [*study(), me], Direction.MINIMIZE) is True
    assert MedianPruner(n_min_trials=6).prune(me, [*study(), me], Direction.MINIMIZE) is False


def test_params_round_trip() -> None:
    pruner = MedianPruner(n_startup_trials=2, n_warmup_steps=3, interval_steps=4, n_min_trials=5)
    assert pruner.get_params() == {"n_startup_trials": 2, "n_warmup_steps": 3,
                                   "interval_steps": 4, "n_min_trials": 5}
    assert repr(MedianPruner(**pruner.get_params())) == repr(pruner)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_startup_trials": -1},
     r"^Expected `n_startup_trials` to be an integer >= 0\. Received: n_startup_trials=-1\.$"),
    ({"n_warmup_steps": -1}, r"`n_warmup_steps` to be an integer >= 0\. .*=-1"),
    ({"interval_steps": 0}, r"`interval_steps` to be an integer >= 1\. .*=0"),
    ({"n_min_trials": 0}, r"`n_min_trials` to be an integer >= 1\. .*=0"),
    ({"interval_steps": 1.5}, r"`interval_steps` to be an integer >= 1\. .*=1\.5"),
    ({"n_warmup_steps": True}, r"`n_warmup_steps` .* Received: n_warmup_steps=True"),
    ({"n_startup_trials": "5"}, r"Received: n_startup_trials='5'"),
])
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        MedianPruner(**kwargs)


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(ConfigurationError, match="takes its options by keyword"):
        MedianPruner(5)  # type: ignore[call-arg]
