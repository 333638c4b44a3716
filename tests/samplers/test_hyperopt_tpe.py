"""HyperoptTPESampler: what reaches Hyperopt's TPE, and that TPE then beats random search."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hyperopt import Domain, Trials, tpe

from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers import History, HyperoptTPESampler, RandomSampler, Sampler
from hpo_plugins.samplers._hyperopt_tpe import RUNNING_POLICIES
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


def _history_with_pending(space: SearchSpace, n: int, seed: int) -> History:
    """``n`` trials from the prior: mostly COMPLETE, some PRUNED, FAIL, RUNNING and WAITING."""
    rng = np.random.default_rng(seed)
    states = [TrialState.COMPLETE] * 6 + [TrialState.RUNNING, TrialState.WAITING,
                                          TrialState.PRUNED, TrialState.FAIL]
    trials = []
    for number in rng.permutation(n).tolist():  # any order: Hyperopt sorts by tid
        state = states[number % len(states)]
        value = float(rng.normal()) if state == TrialState.COMPLETE else None
        curve = {1: float(rng.normal())} if state == TrialState.PRUNED else {}
        trials.append(FrozenTrial(trial_id=7 * number, number=number, state=state, value=value,
                                  params=space.sample_prior(rng), intermediate_values=curve))
    return History(trials, Direction.MINIMIZE, n + 3)


@pytest.mark.parametrize("policy", RUNNING_POLICIES)
@pytest.mark.parametrize("kwargs", [{}, {"gamma": 0.6, "prior_weight": 0.5, "n_ei_candidates": 7}])
def test_proposals_are_those_of_hyperopts_tpe_suggest(
        full_space: SearchSpace, policy: str, kwargs: dict[str, Any]) -> None:
    """``sample`` runs the body of ``tpe.suggest`` on a compiled graph: same answer, any call."""
    sampler = HyperoptTPESampler(n_startup_trials=0, running_policy=policy, **kwargs)
    for n, seed in [(0, 0), (1, 1), (30, 2), (30, 3), (80, 4)]:
        history = _history_with_pending(full_space, n, seed)
        rng = np.random.default_rng(seed)
        ours = sampler.sample(full_space, history, rng)
        hyperopt_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
        (doc,) = tpe.suggest([history.number], Domain(lambda _: 0.0, full_space.space),
                             sampler.hyperopt_trials(full_space, history), hyperopt_seed,
                             n_startup_jobs=0, n_EI_candidates=sampler.n_ei_candidates,
                             gamma=sampler.gamma, prior_weight=sampler.prior_weight)
        expected = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
        assert ours == expected
        assert full_space.validate(ours) == ours


def test_one_sampler_serves_several_spaces_in_any_order(full_space: SearchSpace) -> None:
    """The compiled spaces are a cache: interleaving spaces changes no answer."""
    spaces = [full_space, X, SearchSpace({"y": hp.randint("y", 3, 9)})]
    histories = [_history_with_pending(s, 25, i) for i, s in enumerate(spaces)]

    def answers(sampler: HyperoptTPESampler, order: list[int]) -> dict[int, dict[str, Any]]:
        return {i: sampler.sample(spaces[i], histories[i], np.random.default_rng(i))
                for i in order}

    shared = HyperoptTPESampler(n_startup_trials=5)
    first = answers(shared, [0, 1, 2])
    assert answers(shared, [2, 0, 1, 0]) == first
    assert {i: answers(HyperoptTPESampler(n_startup_trials=5), [i])[i] for i in range(3)} == first
    assert pickle.loads(pickle.dumps(shared)).sample(
        spaces[0], histories[0], np.random.default_rng(0)) == first[0]


def test_liar_proposes_what_fmin_proposes_with_pending_documents(
        full_space: SearchSpace) -> None:
    """Running trials as ``fmin``'s parallel path holds them: NEW documents without a loss."""
    sampler = HyperoptTPESampler(n_startup_trials=0)
    history = _history_with_pending(full_space, 60, 5)
    finished = HyperoptTPESampler(running_policy="ignore").hyperopt_trials(full_space, history)
    domain = Domain(lambda _: 0.0, full_space.space)
    pending = [t for t in history.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert pending
    docs = finished.new_trial_docs(
        [t.number for t in pending], [None] * len(pending), [{"status": "new"}] * len(pending),
        [{"tid": t.number, "cmd": domain.cmd, "workdir": None,
          "idxs": {k: [t.number] if k in t.params else [] for k in full_space.labels},
          "vals": {k: [t.params[k]] if k in t.params else [] for k in full_space.labels}}
         for t in pending])
    finished.insert_trial_docs(docs)
    finished.refresh()
    for seed in range(4):
        hyperopt_seed = int(np.random.default_rng(seed).integers(2**31 - 1))
        (doc,) = tpe.suggest([history.number], domain, finished, hyperopt_seed,
                             n_startup_jobs=0)
        expected = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
        assert sampler.sample(full_space, history, np.random.default_rng(seed)) == expected


def test_threads_sharing_one_sampler_get_the_serial_answers(full_space: SearchSpace) -> None:
    """The compiled graph is shared by threads (several studies, one sampler) without a lock."""
    sampler = HyperoptTPESampler(n_startup_trials=5)
    histories = [_history_with_pending(full_space, 20 + 10 * i, i) for i in range(6)]

    def propose(i: int) -> dict[str, Any]:
        return sampler.sample(full_space, histories[i % 6], np.random.default_rng(i))

    serial = [propose(i) for i in range(24)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(propose, range(24))) == serial
