"""TPESampler: the estimator on cases computable by hand, the policies, and that TPE works."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm, truncnorm

from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers._base import History
from hpo_plugins.samplers._random import RandomSampler
from hpo_plugins.samplers._tpe import (
    TPESampler,
    _GroupModel,
    age_weights,
    categorical_lambda,
    n_good,
)
from hpo_plugins.samplers._tpe_kernels import (
    Dims,
    ParzenMixture,
    logsumexp,
    neighbour_bandwidths,
    sample_truncnorm,
    truncnorm_log_mass,
)
from hpo_plugins.samplers._tpe_space import PRIOR_SD, dims_of, encoding, groups
from hpo_plugins.space import SearchSpace

from .conftest import MakeTrial

X = SearchSpace({"x": hp.uniform("x", -1, 1)})
ONE_D = Dims(low=np.zeros(1), high=np.ones(1), prior_sd=np.array([np.nan]), n_options=(),
             cat_prior=())
NO_CATS = np.empty((1, 0), dtype=np.intp)


def _mixture(mu: list[float], sigma: list[float], prior_weight: float = 0.0,
             dims: Dims = ONE_D) -> ParzenMixture:
    z = np.array(mu)[:, None]
    return ParzenMixture.fit(z, np.empty((len(mu), 0), dtype=np.intp), np.ones(len(mu)), dims,
                             sigma=np.array(sigma)[:, None], cat_lambda=np.empty(0),
                             prior_weight=prior_weight)


def _pdf(mix: ParzenMixture, z: float, cats: np.ndarray = NO_CATS) -> float:
    return float(np.exp(mix.log_pdf(np.array([[z]]), cats))[0])


def _history(make_trial: MakeTrial, xs: list[float], loss: Any = abs,
             extra: list[FrozenTrial] | None = None) -> History:
    trials = [make_trial(i, TrialState.COMPLETE, loss(x), {"x": x}) for i, x in enumerate(xs)]
    trials += extra or []
    return History(trials, Direction.MINIMIZE, len(trials))


# -- constructor ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"gamma": 0.0}, r"Expected `gamma` to be a number in \(0, 1\]\. Received: gamma=0\.0"),
    ({"gamma": 1.5}, r"Expected `gamma` .* Received: gamma=1\.5"),
    ({"gamma": "0.1"}, r"Expected `gamma` .* Received: gamma='0\.1'"),
    ({"n_startup_trials": -1}, r"Expected `n_startup_trials` to be an integer >= 0\. "
                               r"Received: n_startup_trials=-1"),
    ({"n_ei_candidates": 0}, r"Expected `n_ei_candidates` to be an integer >= 1\. "
                             r"Received: n_ei_candidates=0"),
    ({"n_ei_candidates": 2.5}, r"Received: n_ei_candidates=2\.5"),
    ({"prior_weight": 0.0}, r"Expected `prior_weight` to be a number in \(0, inf\)\. "
                            r"Received: prior_weight=0\.0"),
    ({"multivariate": 1}, r"Expected `multivariate` to be True or False\. "
                          r"Received: multivariate=1"),
    ({"constant_liar": "yes"}, r"Expected `constant_liar` to be True or False\. "
                               r"Received: constant_liar='yes'"),
    ({"consider_endpoints": None}, r"Expected `consider_endpoints` to be True or False\. "
                                   r"Received: consider_endpoints=None"),
])
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TPESampler(**kwargs)


def test_constructor_stores_its_arguments() -> None:
    sampler = TPESampler(gamma=0.2, n_ei_candidates=32, multivariate=False)
    assert sampler.get_params() == {
        "n_startup_trials": 10, "n_ei_candidates": 32, "gamma": 0.2, "multivariate": False,
        "constant_liar": True, "prior_weight": 1.0, "consider_endpoints": False,
    }
    assert repr(sampler).startswith("TPESampler(n_startup_trials=10, n_ei_candidates=32")


# -- the estimator by hand -----------------------------------------------------------------------

def test_truncated_kernel_density_matches_scipy() -> None:
    mix = _mixture([0.9], [0.2])
    for z in (0.0, 0.5, 0.9, 1.0):
        expected = truncnorm.pdf(z, (0 - 0.9) / 0.2, (1 - 0.9) / 0.2, loc=0.9, scale=0.2)
        assert _pdf(mix, z) == pytest.approx(expected, rel=1e-9)
    mass = np.exp(truncnorm_log_mass(np.array(0.9), np.array(0.2), np.array(0.0),
                                     np.array(1.0)))
    assert mass == pytest.approx(norm.cdf(0.5) - norm.cdf(-4.5))


def test_mixture_with_prior_is_the_weighted_sum() -> None:
    mix = _mixture([0.2, 0.6], [0.1, 0.3], prior_weight=1.0)
    z = 0.4
    kernels = [truncnorm.pdf(z, -m / s, (1 - m) / s, loc=m, scale=s)
               for m, s in ((0.2, 0.1), (0.6, 0.3))]
    assert _pdf(mix, z) == pytest.approx((kernels[0] + kernels[1] + 1.0) / 3.0)


def test_density_integrates_to_one_inside_the_bounds() -> None:
    mix = _mixture([0.02, 0.5, 0.97], [0.05, 0.2, 0.4], prior_weight=0.5)
    grid = np.linspace(0.0, 1.0, 20001)[:, None]
    density = np.exp(mix.log_pdf(grid, np.empty((len(grid), 0), dtype=np.intp)))
    assert np.trapezoid(density, grid[:, 0]) == pytest.approx(1.0, abs=1e-6)


def test_unbounded_prior_and_kernels_are_plain_normals() -> None:
    dims = Dims(low=np.array([-np.inf]), high=np.array([np.inf]), prior_sd=np.array([PRIOR_SD]),
                n_options=(), cat_prior=())
    mix = _mixture([2.0], [0.5], prior_weight=1.0, dims=dims)
    expected = 0.5 * norm.pdf(3.0, 2.0, 0.5) + 0.5 * norm.pdf(3.0, 0.5, PRIOR_SD)
    assert _pdf(mix, 3.0) == pytest.approx(expected)


def test_categorical_kernel_keeps_its_option_with_probability_one_minus_lambda() -> None:
    dims = Dims(low=np.empty(0), high=np.empty(0), prior_sd=np.empty(0), n_options=(4,),
                cat_prior=(np.full(4, 0.25),))
    mix = ParzenMixture.fit(np.empty((1, 0)), np.array([[2]]), np.ones(1), dims,
                            sigma=np.empty((1, 0)), cat_lambda=np.array([0.4]), prior_weight=0.0)
    probs = np.exp(mix.log_pdf(np.empty((4, 0)), np.arange(4)[:, None]))
    assert probs.tolist() == pytest.approx([0.1, 0.1, 0.7, 0.1])
    assert categorical_lambda(np.array([4.0]), 3, 1.0).tolist() == pytest.approx([0.5])


def test_bandwidths_are_the_larger_gap_to_the_neighbours() -> None:
    z = np.array([[0.2, 0.9], [0.5, 0.1], [0.6, 0.5]])
    sigma = neighbour_bandwidths(z, np.zeros(2), np.ones(2), np.full(2, 0.05), np.ones(2),
                                 consider_endpoints=True)
    # column 0 sorted with the ends: 0, .2, .5, .6, 1 -> gaps (.2|.3), (.3|.1), (.1|.4)
    # column 1 sorted with the ends: 0, .1, .5, .9, 1 -> gaps (.1|.4), (.4|.4), (.4|.1)
    assert sigma.ravel().tolist() == pytest.approx([0.3, 0.4, 0.3, 0.4, 0.4, 0.4])
    inner = neighbour_bandwidths(z, np.zeros(2), np.ones(2), np.full(2, 0.05), np.ones(2),
                                 consider_endpoints=False)
    assert inner[:, 0].tolist() == pytest.approx([0.3, 0.3, 0.1])  # ends ignore the edges
    clipped = neighbour_bandwidths(np.array([[0.5], [0.5]]), np.zeros(1), np.ones(1),
                                   np.full(1, 0.05), np.full(1, 0.2), consider_endpoints=False)
    assert clipped.ravel().tolist() == [0.05, 0.05]
    lone = neighbour_bandwidths(np.array([[0.5]]), np.zeros(1), np.ones(1), np.zeros(1),
                                np.full(1, 0.2), consider_endpoints=False)
    assert lone.ravel().tolist() == [0.2]


def test_truncated_draws_stay_inside_and_follow_the_kernel() -> None:
    rng = np.random.default_rng(0)
    mu, sigma = np.full(20000, 0.95), np.full(20000, 0.1)
    draws = sample_truncnorm(rng, mu, sigma, np.zeros(1), np.ones(1))
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    expected = truncnorm.mean((0 - 0.95) / 0.1, (1 - 0.95) / 0.1, loc=0.95, scale=0.1)
    assert draws.mean() == pytest.approx(expected, abs=0.003)


def test_logsumexp_handles_empty_mass() -> None:
    a = np.array([[math.log(2.0), math.log(3.0)], [-np.inf, -np.inf]])
    assert logsumexp(a, axis=1).tolist() == [pytest.approx(math.log(5.0)), -np.inf]


def test_good_bad_split_and_age_weights() -> None:
    assert [n_good(n, 0.15) for n in (0, 1, 7, 20, 100, 500)] == [0, 1, 2, 3, 15, 25]
    assert [n_good(n, 1.0) for n in (3, 40)] == [3, 25]
    weights = age_weights(np.arange(30)[::-1])  # newest first
    assert weights[:25].tolist() == [1.0] * 25
    assert weights[25:].tolist() == pytest.approx(np.linspace(1 / 30, 1, 5)[::-1].tolist())


# -- encodings and groups -------------------------------------------------------------------------

def test_encodings_map_every_kind_to_its_natural_geometry(full_space: SearchSpace) -> None:
    alpha = encoding(full_space.params["alpha"])  # loguniform(-5, 0)
    assert alpha.encode(np.array([math.exp(-5), math.exp(-2.5), 1.0])).tolist() == (
        pytest.approx([0.0, 0.5, 1.0]))
    depth = encoding(full_space.params["depth"])  # randint(1, 8): 1..7, cells of width 1/7
    assert depth.encode(np.array([1.0, 7.0])).tolist() == pytest.approx([0.5 / 7, 6.5 / 7])
    assert depth.decode(np.array([0.0, 0.999, 1.0])).tolist() == [1.0, 7.0, 7.0]
    assert depth.step == pytest.approx(1 / 7)
    frac = encoding(full_space.params["frac"])  # quniform(0, 1, 0.25)
    assert frac.decode(np.array([0.1, 0.9])).tolist() == [0.0, 1.0] and frac.step == 0.25
    noise = encoding(full_space.params["noise"])  # normal(0, 1)
    assert not noise.bounded
    assert noise.encode(np.array([0.0, math.sqrt(12.0)])).tolist() == pytest.approx([0.5, 1.5])
    count = encoding(full_space.params["count"])  # qlognormal: a 0 must not break the log
    assert np.isfinite(count.encode(np.array([0.0]))).all()


def test_groups_follow_the_tree_top_down(full_space: SearchSpace) -> None:
    found = {g.labels: g.condition for g in groups(full_space, multivariate=True)}
    assert found[("count", "noise", "scale", "shift", "x", "model")] == ((),)
    assert found[("alpha", "l1")] == ((("model", 0),),)
    assert found[("depth", "leaves", "split")] == ((("model", 1),),)
    assert found[("lr", "seed")] == ((("model", 1), ("split", 1)),)
    order = [g.labels[0] for g in groups(full_space, multivariate=True)]
    assert order.index("count") < order.index("depth") < order.index("lr")
    assert len(groups(full_space, multivariate=False)) == len(full_space)
    dims = dims_of(groups(full_space, multivariate=True)[0])
    assert dims.n_options == (2,) and np.isnan(dims.prior_sd).tolist() == [
        False, False, False, False, True]


# -- the sampler ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("finished", "running", "model"), [
    (0, 15, False),  # nothing finished: prior, however many run
    (4, 11, False),  # fewer than half of n_startup_trials finished
    (5, 4, False),   # finished + running below n_startup_trials
    (5, 5, True),    # a parallel run: half finished, the rest running
    (7, 3, True),    # 4 workers at trial 10
    (9, 0, False),   # sequential: prior until 10 are finished
    (10, 0, True),
])
def test_start_up_ends_with_enough_finished_and_running_trials(
        make_trial: MakeTrial, finished: int, running: int, model: bool) -> None:
    trials = [make_trial(i, TrialState.COMPLETE, float(i), {"x": -0.9 + 0.01 * i})
              for i in range(finished)]
    trials += [make_trial(finished + i, TrialState.RUNNING, None, {"x": 0.9 - 0.01 * i})
               for i in range(running)]
    history = History(trials, Direction.MINIMIZE, len(trials))
    prior = [X.sample_prior(np.random.default_rng(s)) for s in range(5)]
    proposed = [TPESampler().sample(X, history, np.random.default_rng(s)) for s in range(5)]
    assert (proposed != prior) is model


def test_proposals_concentrate_near_the_good_trials(make_trial: MakeTrial) -> None:
    xs = np.linspace(-1, 1, 21).tolist()
    history = _history(make_trial, xs, loss=lambda x: (x - 0.5) ** 2)
    proposals = [TPESampler().sample(X, history, np.random.default_rng(s))["x"]
                 for s in range(20)]
    assert np.median(np.abs(np.array(proposals) - 0.5)) < 0.1


def test_constant_liar_pushes_proposals_away_from_running_trials(make_trial: MakeTrial) -> None:
    xs = [-1.0, -0.6, -0.2, 0.2, 0.6, 1.0, -0.8, 0.8, -0.4, 0.4, 0.0]
    running = [make_trial(11 + i, TrialState.RUNNING, None, {"x": x})
               for i, x in enumerate(np.linspace(-0.15, 0.15, 10))]
    with_liar = _history(make_trial, xs, extra=running)
    near = {}
    for liar in (True, False):
        sampler = TPESampler(constant_liar=liar)
        xs_out = [sampler.sample(X, with_liar, np.random.default_rng(s))["x"] for s in range(20)]
        near[liar] = np.mean(np.abs(xs_out) < 0.15)
    assert near[True] < near[False]


def test_a_running_trial_rules_out_its_spot_but_not_the_good_region(
        make_trial: MakeTrial) -> None:
    xs = np.linspace(-1, 1, 41).tolist()
    running = [make_trial(41, TrialState.RUNNING, None, {"x": 0.3})]
    history = _history(make_trial, xs, loss=lambda x: (x - 0.3) ** 2, extra=running)
    out = np.array([TPESampler().sample(X, history, np.random.default_rng(s))["x"]
                    for s in range(40)])
    distance = np.abs(out - 0.3)
    assert np.mean(distance < 0.01) < 0.05  # not on top of the running trial
    assert np.mean(distance < 0.1) > 0.9  # but still among the good trials (0.2 to 0.4)


@pytest.mark.parametrize(("n_running", "factor"), [(0, 1), (1, 2), (3, 4), (7, 8), (20, 8)])
def test_candidates_grow_with_running_trials(make_trial: MakeTrial, monkeypatch: Any,
                                             n_running: int, factor: int) -> None:
    drawn: list[int] = []
    propose = _GroupModel.propose
    monkeypatch.setattr(_GroupModel, "propose",
                        lambda self, rng, m: drawn.append(m) or propose(self, rng, m))
    running = [make_trial(11 + i, TrialState.RUNNING, None, {"x": 0.1 * (i % 9)})
               for i in range(n_running)]
    history = _history(make_trial, np.linspace(-1, 1, 11).tolist(), extra=running)
    for sampler in (TPESampler(n_ei_candidates=10), TPESampler(n_ei_candidates=10,
                                                                multivariate=False)):
        sampler.sample(X, history, np.random.default_rng(0))
    no_liar = TPESampler(n_ei_candidates=10, constant_liar=False)
    no_liar.sample(X, history, np.random.default_rng(0))
    assert drawn == [10 * factor, 10 * factor, 10]


def test_failed_trials_are_ignored(make_trial: MakeTrial) -> None:
    xs = np.linspace(-1, 1, 12).tolist()
    failed = [make_trial(12 + i, TrialState.FAIL, None, {"x": 0.9}) for i in range(20)]
    plain, noisy = _history(make_trial, xs), _history(make_trial, xs, extra=failed)
    for seed in range(3):
        rng = (np.random.default_rng(seed), np.random.default_rng(seed))
        assert TPESampler().sample(X, plain, rng[0]) == TPESampler().sample(X, noisy, rng[1])


def test_maximize_mirrors_minimize(make_trial: MakeTrial) -> None:
    xs = np.linspace(-1, 1, 15).tolist()
    lo = _history(make_trial, xs, loss=lambda x: (x - 0.3) ** 2)
    hi = History([make_trial(t.number, t.state, -float(t.value or 0), t.params)
                  for t in lo.trials], Direction.MAXIMIZE, lo.number)
    for seed in range(3):
        assert TPESampler().sample(X, lo, np.random.default_rng(seed)) == TPESampler().sample(
            X, hi, np.random.default_rng(seed))


def test_pruned_trials_rank_after_completed_ones(make_trial: MakeTrial) -> None:
    xs = np.linspace(-1, 0.2, 12).tolist()
    pruned = [make_trial(12 + i, TrialState.PRUNED, -100.0, {"x": 0.8 + 0.01 * i}, {3: -100.0})
              for i in range(8)]
    history = _history(make_trial, xs, extra=pruned)
    proposals = [TPESampler().sample(X, history, np.random.default_rng(s))["x"]
                 for s in range(10)]
    assert np.median(proposals) < 0.5  # their great last values do not make them good


@pytest.mark.parametrize("multivariate", [True, False])
def test_every_kind_in_a_nested_space_is_valid_and_reproducible(
        multivariate: bool, full_space: SearchSpace, make_trial: MakeTrial) -> None:
    sampler = TPESampler(n_startup_trials=4, multivariate=multivariate, n_ei_candidates=16)
    trials: list[FrozenTrial] = []
    branches = set()
    for number in range(30):
        history = History(list(trials), Direction.MINIMIZE, number)
        params = sampler.sample(full_space, history, np.random.default_rng([5, number]))
        assert params == sampler.sample(full_space, history, np.random.default_rng([5, number]))
        assert full_space.validate(params) == params
        assert all(type(v) in (int, float) for v in params.values())
        branches.add(frozenset(params))
        state = TrialState.RUNNING if number % 6 == 5 else TrialState.COMPLETE
        value = None if state is TrialState.RUNNING else sum(abs(float(v))
                                                             for v in params.values())
        trials.append(make_trial(number, state, value, params))
    assert len(branches) > 1


def test_tpe_beats_random_search_on_a_simple_function() -> None:
    space = SearchSpace({f"x{i}": hp.uniform(f"x{i}", -5, 5) for i in range(3)})

    def run(sampler: TPESampler | RandomSampler, seed: int) -> float:
        trials: list[FrozenTrial] = []
        for number in range(40):
            history = History(list(trials), Direction.MINIMIZE, number)
            params = sampler.sample(space, history, np.random.default_rng([seed, number]))
            value = sum((v - 1.0) ** 2 for v in params.values())
            trials.append(FrozenTrial(trial_id=number, number=number,
                                      state=TrialState.COMPLETE, value=value, params=params))
        return min(float(t.value or 0.0) for t in trials)

    tpe = [run(TPESampler(), seed) for seed in range(8)]
    rand = [run(RandomSampler(), seed) for seed in range(8)]
    assert sum(t < r for t, r in zip(tpe, rand)) >= 6
    assert np.median(tpe) < 0.5 * np.median(rand)


def test_branches_are_modelled_on_their_own_trials(make_trial: MakeTrial) -> None:
    space = SearchSpace({"m": hp.choice("m", [{"a": hp.uniform("a", 0, 1)},
                                              {"b": hp.uniform("b", 0, 1)}])})
    rng = np.random.default_rng(0)
    trials = []
    for i in range(40):
        branch = i % 2
        x = float(rng.uniform())
        loss = abs(x - 0.2) if branch == 0 else 1.0 + x
        trials.append(make_trial(i, TrialState.COMPLETE, loss,
                                 {"m": branch, "ab"[branch]: x}))
    history = History(trials, Direction.MINIMIZE, 40)
    proposals = [TPESampler().sample(space, history, np.random.default_rng(s)) for s in range(10)]
    assert all(p["m"] == 0 and set(p) == {"m", "a"} for p in proposals)
    assert np.median([abs(p["a"] - 0.2) for p in proposals]) < 0.15  # random: 0.3
