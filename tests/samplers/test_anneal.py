"""AnnealSampler: start-up from the prior, then shrinking neighbourhoods of good trials."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers import AnnealSampler, History
from hpo_plugins.space import SearchSpace

from .conftest import MakeTrial

N_FINISHED = 200  # neighbourhood: 1 / (1 + 200 * 0.1) = 1/21 of the prior's width


def _history(make_trial: MakeTrial, best: dict[str, Any], others: dict[str, Any],
             direction: Direction = Direction.MINIMIZE) -> History:
    """One best trial among N_FINISHED - 1 worse ones."""
    sign = direction.sign()
    trials = [make_trial(0, TrialState.COMPLETE, 0.0, best)]
    trials += [make_trial(i, TrialState.COMPLETE, sign * i, others) for i in range(1, N_FINISHED)]
    return History(trials, direction, N_FINISHED)


def _draws(space: SearchSpace, history: History, n: int = 200,
           sampler: AnnealSampler | None = None) -> list[dict[str, Any]]:
    sampler = sampler or AnnealSampler(avg_best_idx=0.0)
    return [sampler.sample(space, history, np.random.default_rng([5, i])) for i in range(n)]


@pytest.mark.parametrize(("raw", "best", "other", "low", "high"), [
    (hp.uniform("v", 0, 10), 5.0, 1.0, 5.0 - 10 / 42, 5.0 + 10 / 42),
    (hp.uniform("v", 0, 10), 9.9, 1.0, 10 - 10 / 21, 10.0),  # window shifted inside the bounds
    (hp.quniform("v", 0, 100, 0.5), 50.0, 5.0, 47.5, 52.5),
    (hp.loguniform("v", math.log(1e-4), math.log(1)), 1e-2, 0.5,
     1e-2 * (1e4) ** (-1 / 42), 1e-2 * (1e4) ** (1 / 42)),  # the window is in log space
    (hp.qloguniform("v", 0, math.log(1000), 1), 100.0, 2.0,
     round(100 * 1000 ** (-1 / 42)), round(100 * 1000 ** (1 / 42))),
    (hp.randint("v", 0, 100), 50, 3, 47, 53),
    (hp.uniformint("v", 0, 100), 50.0, 3.0, 47.0, 53.0),
    (hp.normal("v", 0, 21), 3.0, 0.0, 3.0 - 5, 3.0 + 5),  # sigma 21 / 21 = 1: within 5 sigma
    (hp.lognormal("v", 0, 21), 3.0, 1.0, 3.0 * math.exp(-5), 3.0 * math.exp(5)),
    (hp.qnormal("v", 0, 21, 0.5), 3.0, 0.0, -2.0, 8.0),
    (hp.qlognormal("v", 0, 21, 1), 0.0, 9.0, 0.0, 75.0),  # 0 is read as half a step
])
def test_values_stay_near_the_best_trial(raw: Any, best: float, other: float, low: float,
                                         high: float, make_trial: MakeTrial) -> None:
    space = SearchSpace({"v": raw})
    values = [p["v"] for p in _draws(space, _history(make_trial, {"v": best}, {"v": other}))]
    assert all(low <= v <= high for v in values), (min(values), max(values))
    assert len(set(values)) > 1
    assert all(type(v) is type(best) for v in values)


@pytest.mark.parametrize("direction", list(Direction))
def test_choices_mostly_keep_the_best_trials_option(direction: Direction,
                                                    make_trial: MakeTrial) -> None:
    space = SearchSpace({"c": hp.choice("c", list(range(10)))})
    draws = _draws(space, _history(make_trial, {"c": 7}, {"c": 2}, direction))
    kept = sum(p["c"] == 7 for p in draws) / len(draws)
    assert 0.9 <= kept < 1.0  # keeps with probability 20/21, else a fresh prior draw


def test_neighbourhood_is_the_prior_with_few_trials_and_no_shrinking(
        make_trial: MakeTrial) -> None:
    space = SearchSpace({"v": hp.uniform("v", 0, 1)})
    sampler = AnnealSampler(avg_best_idx=0.0, shrink_coef=0.0)
    values = [p["v"] for p in _draws(space, _history(make_trial, {"v": 0.5}, {"v": 0.5}),
                                     sampler=sampler)]
    assert min(values) < 0.05 and max(values) > 0.95


def test_branches_the_chosen_trial_did_not_take_come_from_the_prior(
        make_trial: MakeTrial) -> None:
    space = SearchSpace(hp.choice("m", [{"a": hp.uniform("a", 0, 1)},
                                        {"b": hp.uniform("b", 10, 20)}]))
    history = _history(make_trial, {"m": 0, "a": 0.5}, {"m": 0, "a": 0.1})
    switched = [p for p in _draws(space, history, 400) if p["m"] == 1]
    assert switched and all(set(p) == {"m", "b"} and 10 <= p["b"] <= 20 for p in switched)


def test_geometric_pick_explores_around_several_good_trials(make_trial: MakeTrial) -> None:
    space = SearchSpace({"v": hp.uniform("v", 0, 1000)})
    trials = [make_trial(i, TrialState.COMPLETE, float(i), {"v": 10.0 * i}) for i in range(200)]
    history = History(trials, Direction.MINIMIZE, 200)
    near = [round(p["v"] / 10) for p in _draws(space, history, 400,
                                                 AnnealSampler(shrink_coef=100.0))]
    assert 1.5 < float(np.mean(near)) < 2.5  # the mean position of the picked trial


def test_failed_running_and_waiting_trials_are_not_picked(make_trial: MakeTrial) -> None:
    space = SearchSpace({"v": hp.uniform("v", 0, 100)})
    trials: list[FrozenTrial] = [
        make_trial(0, TrialState.COMPLETE, 5.0, {"v": 50.0}),
        make_trial(1, TrialState.FAIL, None, {"v": 1.0}),
        make_trial(2, TrialState.RUNNING, None, {"v": 2.0}),
        make_trial(3, TrialState.WAITING, None, {"v": 3.0}),
    ]
    sampler = AnnealSampler(avg_best_idx=0.0, shrink_coef=1000.0, n_startup_trials=1)
    values = [p["v"] for p in _draws(space, History(trials, Direction.MINIMIZE, 4), 50,
                                     sampler)]
    assert all(49 < v < 51 for v in values)


def test_start_up_samples_the_prior(make_trial: MakeTrial) -> None:
    space = SearchSpace({"v": hp.uniform("v", 0, 1)})
    trials = [make_trial(i, TrialState.COMPLETE, 0.0, {"v": 0.5}) for i in range(4)]
    trials += [make_trial(i, TrialState.RUNNING, None, {"v": 0.5}) for i in range(4, 20)]
    history = History(trials, Direction.MINIMIZE, 20)
    params = AnnealSampler(n_startup_trials=5).sample(space, history, np.random.default_rng(3))
    assert params == space.sample_prior(np.random.default_rng(3))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"avg_best_idx": -1}, r"Expected `avg_best_idx` to be a number in \[0, inf\)\. "
                           r"Received: avg_best_idx=-1\."),
    ({"avg_best_idx": "2"}, r"Received: avg_best_idx='2'"),
    ({"shrink_coef": float("nan")}, r"Expected `shrink_coef` to be a number in \[0, inf\)"),
    ({"shrink_coef": float("inf")}, r"Received: shrink_coef=inf"),
    ({"n_startup_trials": 1.5}, r"Expected `n_startup_trials` to be an integer >= 0\. "
                                r"Received: n_startup_trials=1\.5\."),
    ({"n_startup_trials": True}, r"Received: n_startup_trials=True"),
    ({"n_startup_trials": -1}, r"Received: n_startup_trials=-1"),
])
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AnnealSampler(**kwargs)
