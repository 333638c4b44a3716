"""HyperbandPruner: bracket counts and budgets, bracket assignment, bracket isolation."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import HyperbandPruner, SuccessiveHalvingPruner

from . import make_trial

C, R = TrialState.COMPLETE, TrialState.RUNNING
MIN = Direction.MINIMIZE


@pytest.mark.parametrize(("min_resource", "max_resource", "eta", "expected"), [
    (1, 81, 3, 5),   # first rungs 1, 3, 9, 27, 81 <= 81
    (1, 80, 3, 4),   # 81 > 80
    (1, 100, 3, 5),
    (3, 81, 3, 4),   # 81 / 3 = 27 = 3 ** 3
    (1, 1, 3, 1),
    (2, 17, 2, 4),   # 2, 4, 8, 16 <= 17
    (1, 1000, 10, 4),  # 10 ** 3 = 1000 exactly: no float rounding
])
def test_number_of_brackets(min_resource: int, max_resource: int, eta: int,
                            expected: int) -> None:
    pruner = HyperbandPruner(min_resource=min_resource, max_resource=max_resource,
                             reduction_factor=eta)
    assert pruner.n_brackets(max_resource) == expected


# Hyperband's configurations per bracket b, s = n - 1 - b: ceil(n * eta ** s / (s + 1)).
# max_resource=81 (n=5): ceil(5*81/5)=81, ceil(5*27/4)=34, ceil(5*9/3)=15, ceil(5*3/2)=8,
#   ceil(5*1/1)=5 -> total 143.
# max_resource=80 (n=4): ceil(4*27/4)=27, ceil(4*9/3)=12, ceil(4*3/2)=6, ceil(4/1)=4 -> 49.
# max_resource=9 (n=3): ceil(3*9/3)=9, ceil(3*3/2)=5, ceil(3/1)=3 -> 17.
BUDGETS = {81: [81, 34, 15, 8, 5], 80: [27, 12, 6, 4], 9: [9, 5, 3]}


@pytest.mark.parametrize("max_resource", sorted(BUDGETS))
def test_brackets_fill_in_proportion_to_their_budgets(max_resource: int) -> None:
    budgets = BUDGETS[max_resource]
    pruner = HyperbandPruner(max_resource=max_resource)
    counts = Counter(pruner.bracket_of(n) for n in range(3000))
    assert sorted(counts) == list(range(len(budgets)))
    for bracket, budget in enumerate(budgets):
        # a hash would need ~2% slack here; the Fibonacci sequence stays within a few trials
        assert abs(counts[bracket] - 3000 * budget / sum(budgets)) <= 3


def test_every_prefix_of_numbers_is_near_proportional() -> None:
    pruner = HyperbandPruner(max_resource=81)
    counts = [0] * 5
    for n in range(1000):
        counts[pruner.bracket_of(n)] += 1
        shares = [(n + 1) * b / 143 for b in BUDGETS[81]]
        assert max(abs(c - s) for c, s in zip(counts, shares)) < 3


def test_bracket_assignment_is_deterministic() -> None:
    # Pinned: every worker, process and version must agree on these, or brackets would mix.
    expected = [0, 1, 0, 2, 0, 0, 1, 0, 2, 1, 0, 1, 0, 0, 1, 0, 2, 0, 0, 1]
    assert [HyperbandPruner(max_resource=9).bracket_of(n) for n in range(20)] == expected
    auto = HyperbandPruner()
    assert [auto.bracket_of(n, max_resource=9) for n in range(20)] == expected


def test_bracket_of_needs_max_resource_when_auto() -> None:
    with pytest.raises(ConfigurationError, match=r"`max_resource` to be given .*\"auto\""):
        HyperbandPruner().bracket_of(3)


def numbers_in(bracket: int, count: int, max_resource: int = 9) -> list[int]:
    pruner = HyperbandPruner(max_resource=max_resource)
    return [n for n in range(200) if pruner.bracket_of(n) == bracket][:count]


def decide(number: int, curve: list[float], others: list[FrozenTrial], **kwargs: Any) -> bool:
    kwargs = {"max_resource": 9, **kwargs}
    return HyperbandPruner(**kwargs).prune(make_trial(number, curve), others, MIN)


def test_a_trial_competes_only_within_its_bracket() -> None:
    # max_resource=9, eta=3: bracket 0 has rungs 1, 3, 9; bracket 1 has 3, 9; bracket 2 has 9.
    me, mate = numbers_in(0, 2)
    strangers = [make_trial(n, [1.0, v]) for n, v in zip(numbers_in(1, 3), [0.1, 0.2, 0.3])]
    # alone in bracket 0 at rung 1 (n=1): kept, however much better the strangers are
    assert decide(me, [1.0, 0.5], strangers) is False
    # a bracket-0 mate with 0.1: n=2, keep max(1, 0) = 1, 0.1 is better -> pruned
    assert decide(me, [1.0, 0.5], [*strangers, make_trial(mate, [1.0, 0.1])]) is True


def test_later_brackets_start_pruning_later() -> None:
    me, *mates = numbers_in(1, 4)
    mates_trials = [make_trial(n, [0.1] * 10) for n in mates]
    # bracket 1: no rung at step 1; at step 3, [0.1, 0.1, 0.1] + 0.5 -> n=4 keep 1 -> pruned
    assert decide(me, [0.5, 0.5], mates_trials) is False
    assert decide(me, [0.5] * 4, mates_trials) is True
    me, *mates = numbers_in(2, 4)
    mates_trials = [make_trial(n, [0.1] * 10) for n in mates]
    assert decide(me, [0.5] * 4, mates_trials) is False   # bracket 2's first rung is 9
    # ... which is max_resource itself: a trial there has run every step (0 .. 8), so the
    # last bracket never prunes, as Hyperband's most conservative bracket runs all to R
    assert decide(me, [0.5] * 10, mates_trials) is False
    assert decide(me, [0.5] * 10, mates_trials, max_resource=11) is True  # rung 9 before 10


def test_matches_successive_halving_within_a_bracket() -> None:
    numbers = numbers_in(1, 7)
    others = [make_trial(n, [1.0, 0.9, 0.8, v]) for n, v in zip(numbers[1:], [.1, .3, .5, .7, .9])]
    sha = SuccessiveHalvingPruner(min_resource=1, min_early_stopping_rate=1, bootstrap_count=2)
    for value in (0.05, 0.2, 0.4, 0.6, 1.0):
        me = make_trial(numbers[0], [1.0, 0.9, 0.8, value])
        assert decide(numbers[0], [1.0, 0.9, 0.8, value], others, bootstrap_count=2) is \
            sha.prune(me, others, MIN)


def test_auto_max_resource_waits_for_a_complete_trial() -> None:
    me, mate = numbers_in(0, 2, max_resource=9)
    running = [make_trial(mate, [1.0, 0.1])]
    assert decide(me, [1.0, 0.5], running, max_resource="auto") is False


def test_auto_max_resource_is_one_past_the_longest_complete_curve() -> None:
    # COMPLETE curve over steps 0..8 -> max_resource 9 -> same brackets and decisions as 9
    me, mate, done = numbers_in(0, 3, max_resource=9)
    others = [make_trial(mate, [1.0, 0.1]), make_trial(done, [1.0] * 9, C)]
    assert decide(me, [1.0, 0.5], others, max_resource="auto") is True
    assert decide(me, [1.0, 0.5], others) is True
    assert decide(me, [1.0, 0.05], others, max_resource="auto") is False


def test_auto_max_resource_counts_steps_from_zero() -> None:
    # Last step 8 -> max_resource 9 -> 3 brackets, and `me` is in bracket 2 (first rung 9), so
    # at step 3 it is not checked. Were max_resource 8 there would be only brackets 0 and 1,
    # and step 3 would be a rung at which 20 better rivals beat it.
    me = numbers_in(2, 1)[0]
    others = [make_trial(n, [0.1] * 9, C) for n in range(21) if n != me]
    assert decide(me, [0.5] * 4, others, max_resource="auto") is False
    assert decide(me, [0.5] * 4, others, max_resource=8) is True


def test_params_round_trip() -> None:
    pruner = HyperbandPruner(min_resource=2, max_resource=50, reduction_factor=2,
                             bootstrap_count=1)
    assert pruner.get_params() == {"min_resource": 2, "max_resource": 50,
                                   "reduction_factor": 2, "bootstrap_count": 1}
    assert repr(HyperbandPruner(**pruner.get_params())) == repr(pruner)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"reduction_factor": 1},
     r"^Expected `reduction_factor` to be an integer >= 2\. Received: reduction_factor=1\.$"),
    ({"min_resource": 0}, r"^Expected `min_resource` to be an integer >= 1\. .*=0\.$"),
    ({"min_resource": "auto"}, r"`min_resource` to be an integer >= 1\. .*='auto'"),
    ({"min_resource": 4, "max_resource": 3},
     r'^Expected `max_resource` to be an integer >= 4 or "auto"\. Received: max_resource=3\.$'),
    ({"max_resource": "big"}, r"Received: max_resource='big'"),
    ({"bootstrap_count": -1}, r"`bootstrap_count` to be an integer >= 0\. .*=-1"),
])
def test_invalid_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        HyperbandPruner(**kwargs)


@pytest.mark.parametrize("max_resource", [10, "auto"])
def test_a_trial_that_ran_every_step_is_never_pruned(max_resource: int | str) -> None:
    """With max_resource=10 and reduction_factor=3 the last bracket's rung is at step 9, the
    last one: trials that had trained every epoch were pruned there, and ranked below the
    COMPLETE ones (Keras Tuner's Hyperband completes them)."""
    import hpo_plugins as hpo
    from hpo_plugins import hp

    def objective(params: dict[str, float]) -> float:
        trial = hpo.current_trial()
        for step in range(10):
            value = params["x"] + 1.0 / (step + 1)
            trial.report(value, step)
            if trial.should_prune():
                raise hpo.TrialPruned()
        return value

    study = hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=40, seed=0,
                         storage=":memory:", pruner=HyperbandPruner(
                             min_resource=1, max_resource=max_resource, reduction_factor=3))
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert pruned  # it still prunes, at the earlier rungs
    assert all(t.last_step is not None and t.last_step < 9 for t in pruned), [
        (t.number, t.last_step) for t in pruned]
