"""SuccessiveHalvingPruner (asynchronous successive halving) against hand-computed cases.

Unless a case says otherwise: min_resource=1, reduction_factor (eta)=3,
min_early_stopping_rate=0, so the rungs sit at steps 1, 3, 9, 27, ...
A trial is kept at a rung if fewer than max(1, n // eta) rivals have a strictly better rung
value, n counting every trial that reached the rung (this one included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import SuccessiveHalvingPruner

from . import make_trial

C, P, R, F, W = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL,
                 TrialState.WAITING)
NAN = math.nan
MIN, MAX = Direction.MINIMIZE, Direction.MAXIMIZE


def at_rung_1(values: Sequence[float], state: TrialState = R) -> list[FrozenTrial]:
    """Rivals that reported at steps 0 and 1: their rung-1 value is their step-1 value."""
    return [make_trial(i, [1.0, v], state) for i, v in enumerate(values)]


def decide(curve: Sequence[float] | Mapping[int, float], others: Sequence[FrozenTrial],
           direction: Direction = MIN, **kwargs: Any) -> bool:
    kwargs = {"min_resource": 1, **kwargs}
    return SuccessiveHalvingPruner(**kwargs).prune(make_trial(99, curve), others, direction)


RUNG_1_CASES = [
    # (id, rivals' rung-1 values, this trial's rung-1 value, direction, expected)
    # [0.1, 0.5, 0.9] + 0.3: n=4, keep floor(4/3)=1; 0.1 is better -> only 0.1 survives.
    ("n=4 keep 1, second best pruned", [0.1, 0.5, 0.9], 0.3, MIN, True),
    ("n=4 keep 1, new best kept", [0.1, 0.5, 0.9], 0.05, MIN, False),
    ("n=4 keep 1, tie with the best kept", [0.1, 0.5, 0.9], 0.1, MIN, False),
    # maximising: 0.9 is the best rival
    ("maximise n=4, new best kept", [0.1, 0.5, 0.9], 0.95, MAX, False),
    ("maximise n=4, second best pruned", [0.1, 0.5, 0.9], 0.6, MAX, True),
    # fewer than eta at the rung: keep max(1, 2 // 3) = 1 -> only the best so far continues
    ("n=2 < eta, worse than the one rival", [0.5], 0.6, MIN, True),
    ("n=2 < eta, better than the one rival", [0.5], 0.4, MIN, False),
    ("n=1 alone at the rung", [], 100.0, MIN, False),
    # n=3: keep 1
    ("n=3 keep 1, second pruned", [0.2, 0.4], 0.3, MIN, True),
    # n=5: keep floor(5/3)=1
    ("n=5 keep 1", [0.1, 0.2, 0.3, 0.4], 0.15, MIN, True),
    # n=6: keep 2: [0.1, 0.2, 0.3, 0.4, 0.5] + x
    ("n=6 keep 2, third pruned", [0.1, 0.2, 0.3, 0.4, 0.5], 0.25, MIN, True),
    ("n=6 keep 2, second kept", [0.1, 0.2, 0.3, 0.4, 0.5], 0.15, MIN, False),
    ("n=6 keep 2, tie with second kept", [0.1, 0.2, 0.3, 0.4, 0.5], 0.2, MIN, False),
    # n=9: keep 3: [0.1 .. 0.8] + x
    ("n=9 keep 3, fourth pruned", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 0.35, MIN, True),
    ("n=9 keep 3, third kept", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 0.25, MIN, False),
    ("maximise n=9 keep 3, fourth pruned", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 0.55,
     MAX, True),
    ("maximise n=9 keep 3, third kept", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], 0.65,
     MAX, False),
    # NaN rivals rank last but count in n: [nan, nan, 0.5] + x, n=4 keep 1
    ("NaN rivals: 0.5 is still better", [NAN, NAN, 0.5], 0.6, MIN, True),
    ("NaN rivals: best finite kept", [NAN, NAN, 0.5], 0.4, MIN, False),
    ("NaN rivals only: n=3 keep 1, kept", [NAN, NAN], 0.6, MIN, False),
    ("own NaN at a rung is pruned, even alone", [], NAN, MIN, True),
]


@pytest.mark.parametrize(("rivals", "value", "direction", "expected"),
                         [c[1:] for c in RUNG_1_CASES], ids=[c[0] for c in RUNG_1_CASES])
def test_promotion_boundaries_at_rung_1(rivals: list[float], value: float,
                                        direction: Direction, expected: bool) -> None:
    assert decide([1.0, value], at_rung_1(rivals), direction) is expected


@pytest.mark.parametrize("state", [C, P, R, F])
def test_rivals_in_any_state_count(state: TrialState) -> None:
    # [0.1, 0.5, 0.9] + 0.3 -> keep 1 -> pruned, whatever the rivals' states
    assert decide([1.0, 0.3], at_rung_1([0.1, 0.5, 0.9], state)) is True


def test_trials_that_never_reached_the_rung_do_not_count() -> None:
    # Only [0.5] reached step 1 (rival 1 is at step 0, rival 2 is WAITING): n=2, keep 1.
    # 0.4 beats 0.5 -> kept; had rival 1's 0.1 counted, n would be 3 with 0.1 better.
    others = [make_trial(0, [1.0, 0.5]), make_trial(1, [0.1]), make_trial(2, {}, W)]
    assert decide([1.0, 0.4], others) is False


def test_reports_between_rungs_never_prune() -> None:
    # previous report at step 1, latest at 2: no rung in (1, 2] -> no check at all
    assert decide([1.0, 0.01, 99.0], at_rung_1([0.1, 0.2, 0.3])) is False
    # ... and a NaN between rungs waits for the next rung
    assert decide([1.0, 0.01, NAN], at_rung_1([0.1, 0.2, 0.3])) is False


def test_each_rung_is_checked_once() -> None:
    # At rung 1 this trial (0.3) lost, but its report at step 2 crosses no rung: it continues.
    assert decide([1.0, 0.3, 0.3], at_rung_1([0.1, 0.5, 0.9])) is False


# Rung 3 (k=1): rivals with curves up to step 3; rival 3 stopped at step 1 (rung 1 only).
# Rung-3 values: 0.3, 0.35, 0.5 (rival 3 does not count) -> with x, n=4, keep 1.
RUNG_3_RIVALS = [
    make_trial(0, [1.0, 0.6, 0.4, 0.3], C),
    make_trial(1, [1.0, 0.5, 0.4, 0.35], R),
    make_trial(2, [1.0, 0.7, 0.6, 0.5], P),
    make_trial(3, [1.0, 0.01], P),
]


@pytest.mark.parametrize(("value", "expected"), [(0.4, True), (0.3, False), (0.25, False)])
def test_promotion_boundary_at_rung_3(value: float, expected: bool) -> None:
    assert decide([1.0, 0.9, 0.8, value], RUNG_3_RIVALS) is expected


# Skipping rungs: rivals' rung values, each at its first step >= the rung:
#   rival 0 {1: 0.9, 3: 0.8, 9: 0.1}; rival 1 {1: 0.8, 3: 0.7, 9: 0.2}; rival 2 {1: 0.7, 3: 0.6}
#   rung 1: [0.9, 0.8, 0.7] + x, n=4 keep 1; rung 3: [0.8, 0.7, 0.6] + x, n=4 keep 1;
#   rung 9: [0.1, 0.2] + x, n=3 keep 1.
# This trial reports at step 0 then 10: (0, 10] crosses rungs 1, 3 and 9, each with its
# step-10 value.
SKIP_RIVALS = [
    make_trial(0, {0: 1.0, 1: 0.9, 3: 0.8, 9: 0.1}, C),
    make_trial(1, {0: 1.0, 1: 0.8, 3: 0.7, 9: 0.2}, C),
    make_trial(2, {0: 1.0, 1: 0.7, 3: 0.6}, P),
]


@pytest.mark.parametrize(("value", "expected"), [
    (0.5, True),    # best at rungs 1 and 3, but 0.1 and 0.2 beat it at rung 9
    (0.15, True),   # 0.1 beats it at rung 9 (keep 1)
    (0.05, False),  # best at every rung
    (0.65, True),   # 0.6 beats it at rung 3 already
])
def test_a_report_that_skips_rungs_is_checked_at_each(value: float, expected: bool) -> None:
    assert decide({0: 1.0, 10: value}, SKIP_RIVALS) is expected


def test_first_report_past_rungs_is_checked() -> None:
    # the very first report at step 5 crosses rungs 1 and 3 (previous step is "-1")
    assert decide({5: 0.95}, SKIP_RIVALS) is True
    assert decide({5: 0.5}, SKIP_RIVALS) is False


def test_a_rival_that_skipped_the_rung_competes_with_its_later_value() -> None:
    # rival 0 reported at steps 0 and 5 only: its rung-1 value is its step-5 value, 0.2.
    # [0.2, 0.9, 0.8] + 0.3: n=4, keep 1 -> 0.2 is better -> pruned.
    others = [make_trial(0, {0: 1.0, 5: 0.2}), make_trial(1, [1.0, 0.9]),
              make_trial(2, [1.0, 0.8])]
    assert decide([1.0, 0.3], others) is True


@pytest.mark.parametrize(("bootstrap_count", "expected"), [(0, True), (3, True), (4, False),
                                                           (10, False)])
def test_bootstrap_count(bootstrap_count: int, expected: bool) -> None:
    # [0.1, 0.5, 0.9] + 0.3: n=4; kept while n <= bootstrap_count, else keep 1 -> pruned
    others = at_rung_1([0.1, 0.5, 0.9])
    assert decide([1.0, 0.3], others, bootstrap_count=bootstrap_count) is expected


def test_bootstrap_does_not_save_a_nan() -> None:
    assert decide([1.0, NAN], [], bootstrap_count=5) is True


@pytest.mark.parametrize(("kwargs", "step", "expected"), [
    # min_early_stopping_rate=1: rungs at 3, 9, ...; step 1 is not a rung any more
    ({"min_early_stopping_rate": 1}, 1, False),
    ({"min_early_stopping_rate": 1}, 3, True),
    # min_resource=2, eta=2: rungs at 2, 4, 8: steps 2 and 4 are rungs, 3 is not
    ({"min_resource": 2, "reduction_factor": 2}, 1, False),
    ({"min_resource": 2, "reduction_factor": 2}, 2, True),
    ({"min_resource": 2, "reduction_factor": 2}, 3, False),
    ({"min_resource": 2, "reduction_factor": 2}, 4, True),
])
def test_rung_positions(kwargs: dict[str, Any], step: int, expected: bool) -> None:
    # Three rivals report 0.1 at every step 0..9, this trial 0.5 at every step: n=4 at any rung,
    # eta=3 keeps 1 and eta=2 keeps 2, but 3 rivals are better -> pruned wherever it is checked.
    others = [make_trial(i, [0.1] * 10) for i in range(3)]
    assert decide([0.5] * (step + 1), others, **kwargs) is expected


def test_auto_min_resource_waits_for_a_complete_trial() -> None:
    # a terrible trial at rung 1 among running rivals: no COMPLETE trial -> rungs unknown
    assert decide([1.0, 9.0], at_rung_1([0.1, 0.2, 0.3]), min_resource="auto") is False


@pytest.mark.parametrize(("complete_last_step", "step", "expected"), [
    # longest COMPLETE curve ends at step 99 -> min_resource = max(1, 99 // 100) = 1 -> rung 1
    (99, 1, True),
    # 250 // 100 = 2 -> rungs 2, 6, 18: step 1 is not a rung, step 2 is
    (250, 1, False),
    (250, 2, True),
    (250, 5, False),
    (250, 6, True),
])
def test_auto_min_resource(complete_last_step: int, step: int, expected: bool) -> None:
    done = make_trial(0, [0.1] * (complete_last_step + 1), C)
    others = [done, *(make_trial(i, [0.1] * 10) for i in (1, 2))]
    assert decide([0.5] * (step + 1), others, min_resource="auto") is expected


def test_auto_min_resource_uses_the_longest_complete_curve() -> None:
    # COMPLETE curves end at 150 and 250 -> 250 // 100 = 2 -> step 1 is no rung
    others = [make_trial(0, [0.1] * 151, C), make_trial(1, [0.1] * 251, C)]
    assert decide([0.5, 0.5], others, min_resource="auto") is False
    assert decide([0.5, 0.5, 0.5], others, min_resource="auto") is True


def test_the_trial_itself_in_others_is_ignored() -> None:
    # [0.1, 0.5, 0.9] + 0.3: n=4 <= bootstrap 4 -> kept; counted twice, n=5 would prune it.
    me = make_trial(99, [1.0, 0.3])
    others = at_rung_1([0.1, 0.5, 0.9])
    pruner = SuccessiveHalvingPruner(min_resource=1, bootstrap_count=4)
    assert pruner.prune(me, [*others, me], MIN) is False


def test_params_round_trip() -> None:
    pruner = SuccessiveHalvingPruner(min_resource="auto", reduction_factor=4,
                                     min_early_stopping_rate=1, bootstrap_count=2)
    assert pruner.get_params() == {"min_resource": "auto", "reduction_factor": 4,
                                   "min_early_stopping_rate": 1, "bootstrap_count": 2}
    assert repr(SuccessiveHalvingPruner(**pruner.get_params())) == repr(pruner)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"reduction_factor": 1},
     r"^Expected `reduction_factor` to be an integer >= 2\. Received: reduction_factor=1\.$"),
    ({"reduction_factor": 2.5}, r"`reduction_factor` to be an integer >= 2\. .*=2\.5"),
    ({"min_resource": 0},
     r'^Expected `min_resource` to be an integer >= 1 or "auto"\. Received: min_resource=0\.$'),
    ({"min_resource": "fast"}, r"`min_resource` .* Received: min_resource='fast'"),
    ({"min_resource": True}, r"Received: min_resource=True"),
    ({"min_early_stopping_rate": -1}, r"`min_early_stopping_rate` to be an integer >= 0\."),
    ({"bootstrap_count": -1}, r"`bootstrap_count` to be an integer >= 0\. .*=-1"),
])
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        SuccessiveHalvingPruner(**kwargs)


@pytest.mark.parametrize("direction", list(Direction))
def test_a_trial_cut_at_a_lower_rung_by_the_same_report_does_not_count_higher(
        direction: Direction) -> None:
    """Reports every few steps cross several rungs at once (every 250 batches: rungs 1, 3, 9,
    27, 81, 243). Every trial whose curve passed a rung counted there, also those the same
    report cut at a lower rung, so a higher rung kept the top 1/eta of everybody instead of
    the survivors of the rung below: 41 of 60 trials pruned at such a first report, against
    57 for Optuna's pruner. Here, eta=2 and rungs 1, 2 and 4 at the first report (step 4):
    at rung 1 the trial (0.2) and the best (0.1) are kept of 5; at rung 2 only one of those
    two survives, so the trial is pruned, as Optuna prunes it."""
    sign = direction.sign()
    others = [FrozenTrial(trial_id=n, number=n, state=TrialState.PRUNED,
                          intermediate_values={4: sign * v})
              for n, v in enumerate([0.1, 0.8, 0.9, 0.95])]
    me = FrozenTrial(trial_id=9, number=9, state=TrialState.RUNNING,
                     intermediate_values={4: sign * 0.2})
    pruner = SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    assert pruner.prune(me, others, direction) is True
    # a rival that is still running survived every rung it passed, and counts at each
    running = [FrozenTrial(trial_id=n, number=n, state=TrialState.RUNNING,
                           intermediate_values={4: sign * v})
               for n, v in enumerate([0.1, 0.8, 0.9, 0.95])]
    assert pruner.prune(me, running, direction) is False  # second of 5 at every rung: kept
