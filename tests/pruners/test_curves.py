"""The curve memo of the pruners: the same answers as reading the curves afresh, call after call."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import pickle
import random

import pytest

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.pruners import (
    HyperbandPruner,
    MedianPruner,
    PercentilePruner,
    Pruner,
    SuccessiveHalvingPruner,
    ThresholdPruner,
)
from hpo_plugins.pruners._curves import MEMO_ATTR, Curve, CurveMemo, curve_memo
from hpo_plugins.storages._cache import read_only_trial

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _stored(number: int, points: dict[int, float], state: TrialState) -> FrozenTrial:
    """A trial as a storage hands it out: a start time, a fresh dict, finished ones read-only."""
    trial = FrozenTrial(trial_id=100 + number, number=number, state=state,
                        value=points[max(points)] if state.is_finished and points else None,
                        intermediate_values=dict(points),
                        datetime_start=START + dt.timedelta(seconds=number))
    return read_only_trial(trial) if state.is_finished else trial


def _naive_best(points: dict[int, float], step: int, direction: Direction) -> float:
    values = [v for s, v in points.items() if s <= step and not math.isnan(v)]
    if not values:
        return math.nan
    return min(values) if direction is Direction.MINIMIZE else max(values)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
def test_a_curve_answers_as_a_scan_of_its_points(order: str) -> None:
    rng = random.Random(1)
    steps = sorted(rng.sample(range(200), 40))
    points = {s: rng.choice([math.nan, rng.random()]) for s in steps}
    if order == "shuffled":
        items = list(points.items())
        rng.shuffle(items)
        points = dict(items)
    curve = Curve.of(points)
    assert curve.last_step == max(steps)
    assert curve.previous_step == sorted(steps)[-2]
    for probe in range(-1, 202):
        later = [s for s in steps if s >= probe]
        assert _same(curve.first_value_from(probe), points[min(later)] if later else None)
        for direction in Direction:
            assert _same(curve.best_up_to(probe, direction),
                         _naive_best(points, probe, direction))


def test_an_empty_or_single_point_curve() -> None:
    empty = Curve.of({})
    assert empty.last_step is None and empty.previous_step == -1
    assert math.isnan(empty.best_up_to(5, Direction.MINIMIZE))
    assert empty.first_value_from(0) is None
    single = Curve.of({3: 0.5})
    assert (single.last_step, single.previous_step) == (3, -1)
    assert math.isnan(single.best_up_to(2, Direction.MAXIMIZE))
    assert single.best_up_to(3, Direction.MAXIMIZE) == 0.5


def test_the_memo_follows_a_growing_curve_and_reindexes_anything_else() -> None:
    memo = CurveMemo()
    rng = random.Random(2)
    points: dict[int, float] = {}
    step = 0
    for call in range(300):
        action = rng.random()
        if action < 0.6 or not points:  # new points after the last
            for _ in range(rng.randint(1, 4)):
                step += rng.randint(1, 3)
                points[step] = rng.choice([math.nan, rng.random(), rng.random()])
        elif action < 0.8:  # the last report again, with a new value
            points[max(points)] = rng.random()
        elif action < 0.9:  # not a continuation: a shorter curve (the memo must not trust it)
            for s in sorted(points)[-rng.randint(1, len(points)):]:
                del points[s]
            step = max(points, default=0)
        else:  # nothing new
            pass
        trial = _stored(0, points, TrialState.RUNNING)
        curve = memo.curve(trial)
        assert list(curve.steps) == sorted(points), call
        for direction in Direction:
            for probe in (0, step // 2, step):
                assert _same(curve.best_up_to(probe, direction),
                             _naive_best(points, probe, direction)), (call, probe)


def test_a_finished_trial_is_indexed_once() -> None:
    memo = CurveMemo()
    trial = _stored(0, {0: 1.0, 1: 0.5}, TrialState.COMPLETE)
    assert memo.curve(trial) is memo.curve(trial)
    running = _stored(1, {0: 1.0, 1: 0.5}, TrialState.RUNNING)  # a fresh dict every read
    first = memo.curve(running)
    assert memo.curve(_stored(1, {0: 1.0, 1: 0.5}, TrialState.RUNNING)).steps is first.steps


def test_trials_without_a_start_time_are_never_taken_from_the_memo() -> None:
    """Hand-built trials may reuse a number with any curve: each call reads them afresh."""
    memo = CurveMemo()
    first = FrozenTrial(trial_id=0, number=0, state=TrialState.RUNNING,
                        intermediate_values={0: 0.1, 1: 0.9, 2: 0.5})
    second = FrozenTrial(trial_id=0, number=0, state=TrialState.RUNNING,
                         intermediate_values={0: 0.8, 1: 0.9, 2: 0.5})
    assert memo.curve(first).best_up_to(2, Direction.MINIMIZE) == 0.1
    assert memo.curve(second).best_up_to(2, Direction.MINIMIZE) == 0.5


def test_the_memo_forgets_trials_it_no_longer_sees() -> None:
    memo = CurveMemo()
    old = [_stored(i, {0: 0.1 * i}, TrialState.COMPLETE) for i in range(40)]
    for trial in old:
        memo.curve(trial)
    now = [_stored(i, {0: 1.0}, TrialState.COMPLETE) for i in range(100, 105)]
    for trial in now:
        memo.curve(trial)
    memo.forget_others(now)
    assert {key[1] for key in memo._curves} == {t.number for t in now}


@pytest.mark.parametrize("pruner", [MedianPruner(n_startup_trials=2),
                                    PercentilePruner(25.0, n_startup_trials=1),
                                    SuccessiveHalvingPruner(),
                                    SuccessiveHalvingPruner(min_resource=2, reduction_factor=2),
                                    HyperbandPruner(min_resource=1, max_resource=40),
                                    HyperbandPruner(),
                                    ThresholdPruner(upper=0.9, interval_steps=3)],
                         ids=repr)
@pytest.mark.parametrize("direction", list(Direction))
def test_a_pruner_with_its_memo_decides_as_a_fresh_one(pruner: Pruner,
                                                       direction: Direction) -> None:
    """An asynchronous study simulated report by report: every decision of one pruner object,
    asked again and again, equals that of a copy made for the call (which starts empty)."""
    rng = random.Random(3)
    curves: dict[int, dict[int, float]] = {}
    states: dict[int, TrialState] = {}
    pace = {}
    decisions = 0
    for _ in range(500):
        running = [n for n, s in states.items() if s is TrialState.RUNNING]
        if len(running) < 6:
            number = len(curves)
            curves[number], states[number] = {}, TrialState.RUNNING
            pace[number] = rng.choice([1, 1, 2, 5])
            continue
        number = rng.choice(running)
        curve = curves[number]
        step = max(curve) + pace[number] if curve else rng.choice([0, 1, 3])
        level = 0.5 + 0.5 * rng.random()
        curve[step] = math.nan if rng.random() < 0.02 else level / (1 + step / 10)
        trials = [_stored(n, c, states[n]) for n, c in curves.items()]
        me = trials[number]
        expected = copy.deepcopy(pruner).prune(me, trials, direction)
        assert pruner.prune(me, trials, direction) is expected
        decisions += expected
        if expected:
            states[number] = TrialState.PRUNED
        elif step >= 40:
            states[number] = TrialState.COMPLETE
    assert decisions > 0  # the simulation exercises pruning, not only the continue branch


def test_copies_and_pickles_of_a_pruner_start_without_a_memo() -> None:
    pruner = MedianPruner(n_startup_trials=0)
    trial = _stored(0, {0: 1.0}, TrialState.RUNNING)
    pruner.prune(trial, [_stored(1, {0: 0.5}, TrialState.COMPLETE)], Direction.MINIMIZE)
    assert MEMO_ATTR in vars(pruner)
    for clone in (copy.deepcopy(pruner), pickle.loads(pickle.dumps(pruner)), copy.copy(pruner)):
        assert MEMO_ATTR not in vars(clone)
        assert clone.get_params() == pruner.get_params()
    assert curve_memo(pruner) is curve_memo(pruner)


def test_the_longest_complete_curve_is_kept_across_calls_and_follows_the_trials() -> None:
    memo = CurveMemo()
    trials = [_stored(0, {0: 1.0, 9: 0.5}, TrialState.COMPLETE),
              _stored(1, {0: 1.0, 30: 0.5}, TrialState.RUNNING)]
    assert memo.longest_complete(trials) == 9  # running trials do not count
    trials.append(_stored(2, {0: 1.0, 20: 0.4}, TrialState.COMPLETE))
    assert memo.longest_complete(trials) == 20
    assert memo.longest_complete(trials[:2]) == 9  # only the trials asked about
    by_hand = FrozenTrial(trial_id=7, number=7, state=TrialState.COMPLETE, value=1.0,
                          intermediate_values={50: 1.0})
    assert memo.longest_complete([*trials, by_hand]) == 50
    by_hand_again = FrozenTrial(trial_id=7, number=7, state=TrialState.COMPLETE, value=1.0,
                                intermediate_values={5: 1.0})  # same number, another curve
    assert memo.longest_complete([*trials, by_hand_again]) == 20


def _reference(trials: list[FrozenTrial], step: int, direction: Direction) -> list[float]:
    """What the percentile rule compares with, scanned point by point."""
    return sorted((_naive_best(dict(t.intermediate_values), step, direction) for t in trials
                   if step in t.intermediate_values), key=lambda v: (math.isnan(v), v))


@pytest.mark.parametrize("direction", list(Direction))
def test_bests_at_answers_as_a_scan_of_every_trial(direction: Direction) -> None:
    """Finished trials are asked at once from packed arrays; running ones, trials built by
    hand and curves with steps beyond 2**32 one by one: the same answers as a scan."""
    rng = random.Random(7)
    states = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING]
    trials = []
    for number in range(60):
        steps = sorted(rng.sample(range(50), rng.randint(0, 30)))
        if number % 17 == 5:
            steps.append(2**32 + 3)  # cannot be packed with its row
        points = {s: rng.choice([math.nan, rng.random(), rng.random()]) for s in steps}
        trial = _stored(number, points, rng.choice(states))
        if number % 13 == 0:
            trial = dataclasses.replace(trial, datetime_start=None)  # built by hand
        trials.append(trial)
    memo = CurveMemo()
    for round_ in range(3):  # the arrays grow as trials finish between the questions
        for step in [*range(-1, 52), 2**32 + 3]:
            got = sorted(memo.bests_at(step, direction, trials).tolist(),
                         key=lambda v: (math.isnan(v), v))
            want = _reference(trials, step, direction)
            assert len(got) == len(want) and all(map(_same, got, want)), (round_, step)
        trials = [_stored(t.number, dict(t.intermediate_values), TrialState.COMPLETE)
                  if t.state is TrialState.RUNNING and t.number % 2 else t for t in trials]
    assert len(memo._finished) > 30  # the finished trials were packed


def test_bests_at_starts_afresh_when_the_trials_are_gone() -> None:
    memo = CurveMemo()
    old = [_stored(n, {0: float(n)}, TrialState.COMPLETE) for n in range(40)]
    assert sorted(memo.bests_at(0, Direction.MINIMIZE, old).tolist()) == [float(n)
                                                                           for n in range(40)]
    new = [dataclasses.replace(_stored(n, {0: 10.0 + n}, TrialState.COMPLETE),
                               trial_id=500 + n) for n in range(3)]
    assert sorted(memo.bests_at(0, Direction.MINIMIZE, new).tolist()) == [10.0, 11.0, 12.0]
    assert len(memo._finished) == 3  # the 40 old rows were dropped
