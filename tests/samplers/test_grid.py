"""GridSampler: exact grids of small hand-computed spaces, no repeats, clear errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError, SearchSpaceExhausted, SpaceError
from hpo_plugins.samplers import GridSampler, History
from hpo_plugins.space import SearchSpace

from .conftest import MakeTrial

_shared = hp.quniform("x", 0, 1, 0.5)  # one hyperparameter used in two branches
_big = hp.quniform("big", 0, 1e7, 1)

GRIDS: list[tuple[str, Any, list[dict[str, Any]]]] = [
    ("product", {"a": hp.choice("a", ["p", "q", "r"]), "b": hp.randint("b", 2)},
     [{"a": a, "b": b} for a in range(3) for b in range(2)]),
    ("conditional", hp.choice("m", [{"a": hp.choice("a", [1, 2])},
                                    {"b": hp.quniform("b", 0, 1, 0.5)}]),
     [{"m": 0, "a": 0}, {"m": 0, "a": 1},
      {"m": 1, "b": 0.0}, {"m": 1, "b": 0.5}, {"m": 1, "b": 1.0}]),
    ("nested", hp.choice("m", ["none", {"c": hp.choice("c", [
        "leaf", {"u": hp.uniformint("u", 1, 2)}])}]),
     [{"m": 0}, {"m": 1, "c": 0}, {"m": 1, "c": 1, "u": 1.0}, {"m": 1, "c": 1, "u": 2.0}]),
    ("quniform rounds the bounds", hp.quniform("x", 0.1, 1.0, 0.25),
     [{"x": v} for v in (0.0, 0.25, 0.5, 0.75, 1.0)]),
    ("a bound on a half step adds nothing", hp.quniform("x", 0.5, 10.5, 1),
     [{"x": float(v)} for v in range(1, 11)]),
    ("a range that ends on a half step", hp.quniform("x", 0, 14, 4),
     [{"x": v} for v in (0.0, 4.0, 8.0, 12.0)]),
    ("qloguniform in natural units", hp.qloguniform("x", math.log(1.5), math.log(10), 2),
     [{"x": v} for v in (2.0, 4.0, 6.0, 8.0, 10.0)]),
    ("randint with and without low", {"a": hp.randint("a", 3), "b": hp.randint("b", 5, 7)},
     [{"a": a, "b": b} for a in range(3) for b in (5, 6)]),
    ("pchoice", hp.pchoice("p", [(0.9, "a"), (0.1, "b")]), [{"p": 0}, {"p": 1}]),
    ("shared label in two branches", hp.choice("c", [{"x": _shared},
                                                     {"x": _shared, "y": hp.randint("y", 2)}]),
     [{"c": 0, "x": x} for x in (0.0, 0.5, 1.0)]
     + [{"c": 1, "x": x, "y": y} for x in (0.0, 0.5, 1.0) for y in (0, 1)]),
    ("shared label under two choices", {"c1": hp.choice("c1", [_shared, 0]),
                                        "c2": hp.choice("c2", [_shared, 1])},
     [{"c1": c1, "c2": c2, "x": x} for c1 in (0, 1) for c2 in (0, 1) if (c1, c2) != (1, 1)
      for x in (0.0, 0.5, 1.0)] + [{"c1": 1, "c2": 1}]),
]


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def _exhaust(sampler: GridSampler, space: SearchSpace,
             make_trial: MakeTrial) -> list[dict[str, Any]]:
    """Feed the sampler its own proposals until it raises; return them in order."""
    trials: list[FrozenTrial] = []
    with pytest.raises(SearchSpaceExhausted, match=r"All \d+ points of the grid are held"):
        for number in range(10_000):
            history = History(list(trials), Direction.MINIMIZE, number)
            params = sampler.sample(space, history, np.random.default_rng([3, number]))
            trials.append(make_trial(number, TrialState.COMPLETE, 0.0, params))
    return [dict(t.params) for t in trials]


@pytest.mark.parametrize(("name", "raw", "expected"), GRIDS, ids=[g[0] for g in GRIDS])
def test_grid_enumerates_exactly_the_expected_points_in_order(
    name: str, raw: Any, expected: list[dict[str, Any]], make_trial: MakeTrial,
) -> None:
    space = SearchSpace(raw)
    sampler = GridSampler(shuffle=False)
    assert sampler.grid_size(space) == len(expected)
    proposals = _exhaust(sampler, space, make_trial)
    if name.startswith("shared label under"):  # a union of branches: same set, own order
        proposals, expected = sorted(proposals, key=_key), sorted(expected, key=_key)
    assert proposals == expected
    assert all(type(p[k]) is type(q[k]) for p, q in zip(proposals, expected) for k in p)


@pytest.mark.parametrize(("name", "raw", "expected"), GRIDS, ids=[g[0] for g in GRIDS])
def test_shuffled_grid_covers_every_point_once(name: str, raw: Any,
                                               expected: list[dict[str, Any]],
                                               make_trial: MakeTrial) -> None:
    proposals = _exhaust(GridSampler(), SearchSpace(raw), make_trial)
    assert sorted(proposals, key=_key) == sorted(expected, key=_key)


def test_nested_discrete_space_is_covered_without_repeats(discrete_space: SearchSpace,
                                                          make_trial: MakeTrial) -> None:
    sampler = GridSampler()
    proposals = _exhaust(sampler, discrete_space, make_trial)
    assert sampler.grid_size(discrete_space) == 3 * (2 + 3 * (3 + 3)) == len(proposals)
    assert len({_key(p) for p in proposals}) == len(proposals)
    assert all(discrete_space.validate(p) == p for p in proposals)


def test_shuffle_order_depends_on_rng_only(discrete_space: SearchSpace,
                                           make_trial: MakeTrial) -> None:
    first = _exhaust(GridSampler(), discrete_space, make_trial)
    again = _exhaust(GridSampler(), discrete_space, make_trial)
    ordered = _exhaust(GridSampler(shuffle=False), discrete_space, make_trial)
    assert first == again
    assert first != ordered


@pytest.mark.parametrize("state", list(TrialState))
def test_a_point_held_in_any_state_is_skipped(state: TrialState, make_trial: MakeTrial) -> None:
    space = SearchSpace({"a": hp.choice("a", [1, 2, 3])})
    history = History([make_trial(0, state, None, {"a": 0}),
                       make_trial(1, TrialState.COMPLETE, 1.0, {"a": 1}),
                       make_trial(2, TrialState.RUNNING)],  # no params yet: holds nothing
                      Direction.MINIMIZE, 3)
    params = GridSampler(shuffle=False).sample(space, history, np.random.default_rng(0))
    assert params == {"a": 2}


def test_enqueued_values_match_grid_points_up_to_rounding(make_trial: MakeTrial) -> None:
    space = SearchSpace({"x": hp.quniform("x", 0, 0.3, 0.1)})  # 3 * 0.1 = 0.30000000000000004
    held = [make_trial(i, TrialState.WAITING, None, {"x": x})
            for i, x in enumerate([0.0, 0.1, 0.2])]
    sampler = GridSampler(shuffle=False)
    history = History(held, Direction.MINIMIZE, 3)
    assert sampler.sample(space, history, np.random.default_rng(0)) == {"x": 3 * 0.1}
    full = History([*held, make_trial(3, TrialState.FAIL, None, {"x": 0.3})],
                   Direction.MINIMIZE, 4)
    with pytest.raises(SearchSpaceExhausted, match="nothing new to propose"):
        sampler.sample(space, full, np.random.default_rng(0))


@pytest.mark.parametrize(("raw", "message"), [
    (hp.uniform("x", 0, 1),
     r"'x' \(hp.uniform\) is continuous: use hp.quniform\('x', 0, 1, q\) with a step q, or "
     r"hp.choice\('x', \[...\]\)"),
    (hp.loguniform("lr", -5, 0), r"'lr' \(hp.loguniform\) is continuous: use hp.qloguniform"),
    (hp.normal("n", 0, 1), r"'n' \(hp.normal\) is continuous: use hp.quniform\('n', low, high"),
    (hp.lognormal("n", 0, 1), r"'n' \(hp.lognormal\) is continuous"),
    (hp.qnormal("n", 0, 1, 0.5), r"'n' \(hp.qnormal\) is unbounded: use hp.quniform\('n', low, "
                                 r"high, 0.5\)"),
    (hp.qlognormal("n", 0, 1, 2), r"'n' \(hp.qlognormal\) is unbounded"),
    ({"a": hp.choice("a", [1, 2]), "b": hp.uniform("b", 0, 1), "c": hp.normal("c", 0, 1)},
     r"'b' \(hp.uniform\) is continuous.* 'c' \(hp.normal\) is continuous"),
    ({"a": hp.quniform("a", 0, 1e4, 1), "b": hp.quniform("b", 0, 1e4, 1)},
     r"has 100,020,001 points, more than GridSampler's limit of 10,000,000"),
    (hp.choice("c", [hp.randint(f"r{i}", 2) for i in range(3)] + [
        {"x": hp.quniform("x", 0, 1e8, 1)}]), r"has 100,000,007 points"),
    ({"c1": hp.choice("c1", [_big, 0]), "c2": hp.choice("c2", [_big, 1])},
     r"has more than 10,000,000 points"),
])
def test_spaces_without_a_finite_grid_are_rejected(raw: Any, message: str) -> None:
    space = SearchSpace(raw)
    sampler = GridSampler()
    with pytest.raises(SpaceError, match=message):
        sampler.check_space(space)
    with pytest.raises(SpaceError, match=message):
        sampler.sample(space, History([], Direction.MINIMIZE), np.random.default_rng(0))


def test_shared_labels_with_too_many_branches_are_rejected() -> None:
    shared = hp.quniform("x", 0, 99, 1)
    space = SearchSpace({f"c{i}": hp.choice(f"c{i}", [shared, i]) for i in range(20)})
    with pytest.raises(SpaceError, match="more than 10,000 combinations of its choices"):
        GridSampler().check_space(space)


def test_large_grids_are_not_materialised() -> None:
    space = SearchSpace({"a": hp.choice("a", list(range(5))),
                         "x": hp.quniform("x", 0, 1e6, 1)})
    sampler = GridSampler(shuffle=False)
    assert sampler.grid_size(space) == 5 * 1_000_001
    held = [FrozenTrial(trial_id=0, number=0, state=TrialState.COMPLETE, value=0.0,
                        params={"a": 0, "x": 0.0})]
    assert sampler.sample(space, History(held, Direction.MINIMIZE, 1),
                          np.random.default_rng(0)) == {"a": 0, "x": 1.0}


@pytest.mark.parametrize("shuffle", ["yes", 1, None])
def test_shuffle_must_be_a_bool(shuffle: Any) -> None:
    with pytest.raises(ConfigurationError,
                       match=rf"Expected `shuffle` to be True or False\. Received: "
                             rf"shuffle={shuffle!r}"):
        GridSampler(shuffle=shuffle)


@pytest.mark.parametrize("expr", [hp.quniform("x", 0.5, 10.5, 1), hp.quniform("x", 0, 14, 4),
                                  hp.quniform("x", 0.1, 1.0, 0.25), hp.quniform("x", -1, 1, 0.5),
                                  hp.qloguniform("x", math.log(1.5), math.log(10), 2),
                                  hp.quniform("x", 0.15, 0.45, 0.1),
                                  hp.quniform("x", 0.35, 0.85, 0.1)],
                         ids=["half-step bounds", "ends on a half step", "rounded bounds",
                              "negative", "qloguniform", "inexact half step low",
                              "inexact half steps"])
def test_the_grid_of_a_quantised_range_is_what_hyperopt_draws(expr: Any,
                                                              make_trial: MakeTrial) -> None:
    """Every point of the grid is drawn by Hyperopt's own sampler, and nothing else is."""
    from hyperopt.pyll.stochastic import sample

    space = SearchSpace({"x": expr})
    grid = {p["x"] for p in _exhaust(GridSampler(shuffle=False), space, make_trial)}
    rng = np.random.default_rng(0)
    drawn = {float(sample(expr, rng=rng)) for _ in range(4000)}
    assert {round(v, 9) for v in grid} == {round(v, 9) for v in drawn}


def test_a_grid_point_enqueued_twice_runs_once() -> None:
    """The grid runs each point once: an enqueued point a trial already holds is skipped
    (it ran twice), as add_trial refuses one."""
    import hpo_plugins as hpo

    study = hpo.create_study(space={"a": hp.choice("a", [1, 2, 3]), "b": hp.choice("b", [0, 1])},
                             storage=None, sampler=GridSampler())
    assert study.enqueue({"a": 2, "b": 1}) is not None
    assert study.enqueue({"a": 2, "b": 1}) is None
    study.optimize(lambda p: p["a"] + p["b"])
    points = [(t.params["a"], t.params["b"]) for t in study.trials]
    assert len(points) == len(set(points)) == 6
    assert study.enqueue({"a": 1, "b": 0}) is None  # held by a finished trial


def test_a_failed_grid_point_can_be_enqueued_to_run_again() -> None:
    import hpo_plugins as hpo

    study = hpo.create_study(space={"a": hp.choice("a", [1, 2])}, storage=None,
                             sampler=GridSampler())
    trial = study.ask()
    study.tell(trial, state="FAIL")
    assert study.enqueue({"a": trial.params["a"]}) is not None  # a FAIL point may run again


def test_one_sampler_shared_by_studies_keeps_their_trials_apart() -> None:
    """The sampler remembers each trial's key (an ask then costs a look-up per trial); two
    in-memory studies number their trials and ids alike, yet each runs the whole grid."""
    import copy
    import pickle

    import hpo_plugins as hpo

    space = {"a": hp.choice("a", [1, 2, 3]), "b": hp.choice("b", [0, 1])}
    sampler = GridSampler()
    studies = [hpo.create_study(space=space, storage=":memory:", sampler=sampler)
               for _ in range(2)]
    for _ in range(3):  # taking turns, so that each ask finds the other's keys remembered
        for study in studies:
            study.optimize(lambda p: p["a"], n_trials=2)
    for study in studies:
        points = {(t.params["a"], t.params["b"]) for t in study.trials}
        assert len(study.trials) == len(points) == 6
    assert sampler._held  # remembered ...
    assert not pickle.loads(pickle.dumps(sampler))._held  # ... but not sent to workers
    assert copy.deepcopy(sampler).shuffle is True
