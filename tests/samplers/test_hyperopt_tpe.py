"""HyperoptTPESampler: what reaches Hyperopt's TPE, and that TPE then beats random search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hyperopt import Trials

from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers import History, HyperoptTPESampler, RandomSampler, Sampler
from hpo_plugins.space import SearchSpace

from .conftest import MakeTrial

X = SearchSpace({"x": hp.uniform("x", -1, 1)})


def _losses_by_tid(sampler: HyperoptTPESampler, space: SearchSpace,
                   history: History) -> dict[int, float]:
    trials = sampler.hyperopt_trials(space, history)
    return dict(zip(trials.tids, trials.losses()))


def test_start_up_counts_only_finished_trials(make_trial: MakeTrial) -> None:
    running = [make_trial(i, TrialState.RUNNING, None, {"x": 0.5}) for i in range(25)]
    history = History(running, Direction.MINIMIZE, 25)
    for seed in range(5):
        params = HyperoptTPESampler().sample(X, history, np.random.default_rng(seed))
        assert params == X.sample_prior(np.random.default_rng(seed))


def test_tpe_starts_once_enough_trials_finished(make_trial: MakeTrial) -> None:
    xs = np.linspace(-1, 1, 12).tolist()
    trials = [make_trial(i, TrialState.COMPLETE, (x + 0.7) ** 2, {"x": x})
              for i, x in enumerate(xs[:-1])]
    trials.append(make_trial(11, TrialState.PRUNED, 9.0, {"x": xs[-1]}, {1: 9.0}))
    history = History(trials, Direction.MINIMIZE, 12)
    sampler = HyperoptTPESampler(n_startup_trials=12)
    proposals = [sampler.sample(X, history, np.random.default_rng(s))["x"] for s in range(10)]
    assert all(-0.8 < x < -0.55 for x in proposals)  # near the good trials, unlike the prior
    fewer = History(trials[:-1], Direction.MINIMIZE, 11)
    assert sampler.sample(X, fewer, np.random.default_rng(0)) == X.sample_prior(
        np.random.default_rng(0))


def test_losses_follow_the_ranking_of_finished_trials(make_trial: MakeTrial) -> None:
    trials = [
        make_trial(0, TrialState.COMPLETE, 3.0, {"x": 0.0}),
        make_trial(1, TrialState.COMPLETE, 1.0, {"x": 0.1}),
        make_trial(2, TrialState.PRUNED, 10.0, {"x": 0.2}, {1: 50.0, 5: 10.0}),  # shallow
        make_trial(3, TrialState.PRUNED, 50.0, {"x": 0.3}, {9: 50.0}),  # deep, worse value
        make_trial(4, TrialState.PRUNED, 20.0, {"x": 0.4}, {9: 20.0}),  # deep, better value
        make_trial(5, TrialState.COMPLETE, 2.0, {"x": 0.5}),
        make_trial(6, TrialState.FAIL, None, {"x": 0.6}),
    ]
    losses = _losses_by_tid(HyperoptTPESampler(running_policy="ignore"), X,
                            History(trials, Direction.MINIMIZE, 7))
    assert 6 not in losses  # failed trials are ignored
    order = sorted(losses, key=losses.__getitem__)
    assert order == [1, 5, 0, 4, 3, 2]
    assert [losses[t] for t in (1, 5, 0)] == [1.0, 2.0, 3.0]


def test_losses_are_signed_when_maximising(make_trial: MakeTrial) -> None:
    trials = [make_trial(i, TrialState.COMPLETE, v, {"x": 0.0}) for i, v in enumerate([1., 5.])]
    losses = _losses_by_tid(HyperoptTPESampler(), X, History(trials, Direction.MAXIMIZE, 2))
    assert losses == {0: -1.0, 1: -5.0}


@pytest.mark.parametrize(("policy", "expected"), [
    ("liar", {0: 1.0, 1: 4.0, 2: 4.0, 4: 4.0}),  # running and enqueued get the worst loss
    ("ignore", {0: 1.0, 1: 4.0}),
])
def test_running_policy(policy: str, expected: dict[int, float], make_trial: MakeTrial) -> None:
    trials = [
        make_trial(0, TrialState.COMPLETE, 1.0, {"x": 0.0}),
        make_trial(1, TrialState.COMPLETE, 4.0, {"x": 0.1}),
        make_trial(2, TrialState.RUNNING, None, {"x": 0.2}),
        make_trial(3, TrialState.RUNNING),  # parameters not chosen yet
        make_trial(4, TrialState.WAITING, None, {"x": 0.3}),
        make_trial(5, TrialState.WAITING),
    ]
    history = History(trials, Direction.MINIMIZE, 6)
    assert _losses_by_tid(HyperoptTPESampler(running_policy=policy), X, history) == expected


def test_liar_needs_a_finished_trial_to_lie_with(make_trial: MakeTrial) -> None:
    history = History([make_trial(0, TrialState.RUNNING, None, {"x": 0.2})],
                      Direction.MINIMIZE, 1)
    sampler = HyperoptTPESampler(n_startup_trials=0)
    assert _losses_by_tid(sampler, X, history) == {}
    assert -1 <= sampler.sample(X, history, np.random.default_rng(0))["x"] <= 1


def test_documents_hold_active_labels_only(full_space: SearchSpace,
                                           make_trial: MakeTrial) -> None:
    params = full_space.sample_prior(np.random.default_rng(1))
    history = History([make_trial(0, TrialState.COMPLETE, 1.0, params)], Direction.MINIMIZE, 1)
    trials = HyperoptTPESampler().hyperopt_trials(full_space, history)
    (doc,) = trials.trials
    assert Trials().assert_valid_trial(doc) is doc  # what insert_trial_docs would check
    assert set(doc["misc"]["vals"]) == set(full_space.labels)
    assert {k: v[0] for k, v in doc["misc"]["vals"].items() if v} == params
    assert {k for k, v in doc["misc"]["idxs"].items() if v == [0]} == set(params)
    assert doc["result"] == {"status": "ok", "loss": 1.0}


def _minimise(sampler: Sampler, space: SearchSpace, seed: int, n_trials: int,
              objective: Callable[[dict[str, Any]], float]) -> float:
    """A tiny ask/tell loop; returns the best value found."""
    trials: list[FrozenTrial] = []
    for number in range(n_trials):
        history = History(list(trials), Direction.MINIMIZE, number)
        params = sampler.sample(space, history, np.random.default_rng([seed, number]))
        trials.append(FrozenTrial(trial_id=number, number=number, state=TrialState.COMPLETE,
                                  value=objective(params), params=params))
    return min(float(t.value) for t in trials if t.value is not None)


def test_tpe_beats_random_search_on_a_quadratic() -> None:
    def quadratic(params: dict[str, Any]) -> float:
        return (params["x"] - 0.3) ** 2

    space = SearchSpace({"x": hp.uniform("x", -10, 10)})
    tpe = [_minimise(HyperoptTPESampler(n_startup_trials=10), space, seed, 60, quadratic)
           for seed in range(5)]
    rand = [_minimise(RandomSampler(), space, seed, 60, quadratic) for seed in range(5)]
    assert float(np.median(tpe)) < float(np.median(rand))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gamma": 2}, r"Expected `gamma` to be a number in \(0, 1\)\. Received: gamma=2\."),
    ({"gamma": 0.0}, r"Received: gamma=0\.0"),
    ({"prior_weight": 0}, r"Expected `prior_weight` to be a number in \(0, inf\)\. "
                          r"Received: prior_weight=0\."),
    ({"n_startup_trials": -1}, r"Expected `n_startup_trials` to be an integer >= 0\. "
                               r"Received: n_startup_trials=-1\."),
    ({"n_ei_candidates": 0}, r"Expected `n_ei_candidates` to be an integer >= 1\. "
                             r"Received: n_ei_candidates=0\."),
    ({"running_policy": "pessimist"}, r'Expected `running_policy` to be "liar" or "ignore"\. '
                                      r"Received: running_policy='pessimist'\."),
    ({"running_policy": None}, r"Received: running_policy=None"),
])
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HyperoptTPESampler(**kwargs)


def test_reused_documents_follow_changed_parameters(make_trial: MakeTrial) -> None:
    sampler = HyperoptTPESampler()  # one sampler, two studies whose trials share ids
    for x in (0.1, 0.7):
        history = History([make_trial(0, TrialState.COMPLETE, 1.0, {"x": x})],
                          Direction.MINIMIZE, 1)
        (doc,) = sampler.hyperopt_trials(X, history).trials
        assert doc["misc"]["vals"] == {"x": [x]}
