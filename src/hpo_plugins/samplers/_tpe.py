"""Our Tree-structured Parzen Estimator: vectorised, multivariate, tree-aware, with a liar.

TPE (Bergstra et al. 2011) splits the finished trials at a loss threshold into a *good* set and
a *bad* set, estimates the density of each, ``l(x)`` and ``g(x)``, draws candidates from ``l``
and proposes the one with the largest ``l(x) / g(x)``, which maximises expected improvement.
This implementation follows the components Watanabe (2023, "Tree-structured Parzen estimator:
understanding its algorithm components and their roles for better empirical performance")
found to matter, with BOHB's (Falkner et al. 2018) multivariate kernel densities:

* **Model space.** Every numeric parameter gets a coordinate on which its prior is uniform (or
  the declared normal) and its geometry natural: log-scaled kinds in log space, quantised and
  integer kinds continuous and rounded on the way out (:mod:`._tpe_space`).
* **Densities.** A mixture of one product kernel per trial plus the prior: truncated normal
  kernels per numeric coordinate (no mass leaks past the bounds), a categorical kernel per
  choice, and the prior with weight ``prior_weight`` (:mod:`._tpe_kernels`).
* **Bandwidths.** Per kernel and coordinate, the larger gap to the neighbouring observations,
  at least ``1 / min(100, n + 2)`` of the range ("magic clip") and one quantisation step, at
  most the range (for an unbounded parameter, the prior's spread); a choice keeps its option
  with probability ``1 - lam``, ``lam = C a / (1 + C a)``, ``a = prior_weight / (n + 1)`` for
  ``C`` options and ``n`` observations.
* **Split.** The best ``min(ceil(gamma * n), 25)`` of the ``n`` finished trials are good
  (ranked by :func:`~hpo_plugins.samplers.ranked_for_model`: COMPLETE by value, PRUNED after
  them, deeper step first, then better last value, those pruned before any report last;
  FAIL trials that diverged after them, other FAIL ones ignored). Good trials weigh 1; in the
  bad set the trials older than the newest 25 weigh linearly less (Bergstra et al. 2013).
* **The tree.** Parameters with the same activation condition form a group (see
  :func:`~._tpe_space.groups`), modelled jointly on the trials where it is active, with the
  global threshold restricted to those trials: ``l(x | branch)`` is the density of the good
  trials that took the branch, the prior alone if none did. A candidate is a whole
  configuration drawn top-down from ``l``: the gating choices first, then each active group
  conditionally on the chosen branch. Its score is the sum over its active groups of
  ``log l - log g``, which is ``log l(x) - log g(x)`` of the tree-structured density, so
  branches compete through their own parameters (an unexplored region of a branch can beat a
  well-known region of another).
* **Running trials** (and WAITING ones holding enqueued parameters) join the bad set: a constant
  liar that reports them worse than every finished trial, so parallel workers spread out. The
  repulsion is kept local and sharp, and a proposal made beside running trials exploits harder
  (see :class:`TPESampler`, "Running trials"), which brought 4 parallel workers asking 4 and
  telling 4 from about 1.2x to about 1.06x the sequential regret (geometric mean over 600
  seeds, docs/benchmarks.md).

Example:
    >>> import numpy as np
    >>> from hpo_plugins import hp
    >>> from hpo_plugins import Direction, FrozenTrial, TrialState
    >>> from hpo_plugins.samplers import History
    >>> from hpo_plugins.space import SearchSpace
    >>> space = SearchSpace({"x": hp.uniform("x", -1, 1)})
    >>> done = [FrozenTrial(trial_id=i, number=i, state=TrialState.COMPLETE, value=x * x,
    ...                     params={"x": x}) for i, x in enumerate(np.linspace(-1, 1, 11))]
    >>> params = TPESampler().sample(space, History(done, Direction.MINIMIZE, number=11),
    ...                              np.random.default_rng(0))
    >>> abs(params["x"]) < 0.5
    True
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_plugins._checks import check_bool, check_int, check_real
from hpo_plugins._frozen import TrialState
from hpo_plugins.samplers._base import History, Sampler, ranked_for_model
from hpo_plugins.samplers._tpe_kernels import ParzenMixture, neighbour_bandwidths
from hpo_plugins.samplers._tpe_space import Group, dims_of, groups
from hpo_plugins.space import SearchSpace

__all__ = ["TPESampler", "age_weights", "categorical_lambda", "n_good"]

_logger = logging.getLogger(__name__)

_PENDING = (TrialState.RUNNING, TrialState.WAITING)
_PENDING_BANDWIDTH = 0.5  # a running trial's kernel: this share of its gap to any observation
_MAX_CANDIDATE_FACTOR = 8  # candidates grow with running trials up to this many times
_MIN_FINISHED_SHARE = 0.5  # with trials running, the model may start with this share finished
_MAX_GOOD = 25  # cap on the good set: beyond it l(x) stops sharpening (Optuna uses the same)
_RECENT = 25  # bad trials this recent keep full weight


def n_good(n: int, gamma: float) -> int:
    """Size of the good set among ``n`` finished trials: ``min(ceil(gamma * n), 25)``.

    Example:
        >>> [n_good(n, 0.15) for n in (0, 1, 10, 100, 1000)]
        [0, 1, 2, 15, 25]
    """
    return min(math.ceil(gamma * n), _MAX_GOOD, n)


def age_weights(numbers: np.ndarray) -> np.ndarray:
    """Weights of the bad trials by age: 1 for the newest 25, a ramp from ``1/n`` to 1 for the
    ``n - 25`` older ones (oldest lightest).

    Example:
        >>> age_weights(np.arange(27)).round(3)[:3].tolist()
        [0.037, 1.0, 1.0]
    """
    n = len(numbers)
    if n <= _RECENT:
        return np.ones(n)
    age_rank = np.argsort(np.argsort(numbers, kind="stable"), kind="stable")  # 0 is oldest
    ramp = np.linspace(1.0 / n, 1.0, num=n - _RECENT)
    return np.where(age_rank < n - _RECENT, ramp[np.minimum(age_rank, n - _RECENT - 1)], 1.0)


def categorical_lambda(n_options: np.ndarray, n: int, prior_weight: float) -> np.ndarray:
    """Probability that a categorical kernel leaves its option: ``C a / (1 + C a)`` with
    ``a = prior_weight / (n + 1)`` (the same smoothing as adding ``a`` to every option count).

    Example:
        >>> categorical_lambda(np.array([3]), 9, 1.0).round(4).tolist()
        [0.2308]
    """
    a = prior_weight / (n + 1)
    return np.asarray(n_options * a / (1.0 + n_options * a), dtype=float)


@dataclass(frozen=True)
class _Observations:
    """The trials a model sees, as one matrix: finished ones best first, then pending ones.

    Attributes:
        values: ``(N, L)`` internal values per label of the space, NaN where inactive.
        numbers: ``(N,)`` trial numbers.
        n_finished: The first ``n_finished`` rows are finished trials, ranked best first.
        column: Label -> column of ``values``.
    """

    values: np.ndarray
    numbers: np.ndarray
    n_finished: int
    column: dict[str, int]

    @classmethod
    def of(cls, space: SearchSpace, history: History, *, liar: bool) -> _Observations:
        """Rank the finished trials; add the pending ones with parameters if ``liar``."""
        finished = [t for t, _ in ranked_for_model(history)]
        pending = [t for t in history.in_states(*_PENDING) if t.params] if liar else []
        trials, labels = finished + pending, list(space.params)
        missing = [math.nan] * len(labels)
        values = np.array([list(map(t.params.get, labels, missing)) for t in trials],
                          dtype=float).reshape(len(trials), len(labels))
        numbers = np.array([t.number for t in trials], dtype=float)
        return cls(values, numbers, len(finished), {lbl: i for i, lbl in enumerate(labels)})


@dataclass(frozen=True)
class _GroupModel:
    """``l`` and ``g`` of one group, and how to draw and score candidates from them."""

    group: Group
    good: ParzenMixture
    bad: ParzenMixture

    def propose(self, rng: np.random.Generator, m: int) -> tuple[dict[str, np.ndarray],
                                                                  np.ndarray]:
        """``m`` candidates drawn from ``l`` (label -> values) and their ``log l - log g``.

        Numeric candidates are decoded (rounded, clipped) and scored where they will land.
        """
        z, cats = self.good.sample(rng, m)
        numeric = self.group.numeric
        values = {e.param.label: e.decode(z[:, i]) for i, e in enumerate(numeric)}
        if numeric:
            z = np.column_stack([e.encode(values[e.param.label]) for e in numeric])
        values.update({p.label: cats[:, j].astype(float)
                       for j, p in enumerate(self.group.categorical)})
        return values, self.good.log_pdf(z, cats) - self.bad.log_pdf(z, cats)


class TPESampler(Sampler):
    """Tree-structured Parzen Estimator, written for this package (see the module doc).

    Policies:

    * **Start-up.** Trials are drawn from the prior until ``n_startup_trials`` trials are
      finished (COMPLETE, PRUNED, or FAIL as diverged). In a parallel run the model may start
      earlier: once finished plus running trials reach ``n_startup_trials`` and at least half of
      them are finished. The running ones are start-up draws themselves, so more prior draws
      beside them add exploration the run already has; with 4 workers the model then starts at
      trial 10, not 13. A small gain: in ``benchmarks/parallel.py`` (4 asynchronous workers, 100
      trials) the geometric-mean regret against sequential went from 1.24x to 1.02x on Branin
      and from 1.15x to 1.08x on Hartmann6 (seeds 0-299), and from 1.08x to 1.01x and from 1.10x
      to 1.06x on fresh seeds 300-599; with 8 workers it helped on Hartmann6 and cost a little
      on Branin (docs/benchmarks.md has the table). Sequential runs are unchanged.
    * **Finished trials.** Ranked by :func:`~hpo_plugins.samplers.ranked_for_model`; FAIL ones
      are ignored, except those that diverged (ranked last).
    * **Running trials.** With ``constant_liar`` (default) RUNNING trials, and WAITING ones
      that hold enqueued parameters, join the bad set as if worse than every finished trial:
      parallel workers then avoid each other's pending points instead of proposing the same
      one. Without it they are ignored. Two details keep the liar from costing regret:

      - *Local repulsion.* A running trial's kernel in ``g`` is half the neighbour gap among
        *all* observations (finished and running), not among the bad ones only. A running
        trial usually sits in the good region, where bad trials are sparse, so a bad-set gap
        gives it a wide, flat kernel: it lowers the whole good region a little and still lets
        the next worker land next to it. The narrow kernel rules out the spot itself and
        leaves the rest of the good region as it was. (In a 1-D example with one running
        trial at the best point, 27 % of the next proposals fell within 0.01 of it before
        this change, 9 % with the extra candidates below alone, none with both; all stayed
        in the good region.)
      - *Harder exploitation.* With ``k`` trials running, ``n_ei_candidates * (1 + k)``
        candidates are drawn (at most 8 times as many): the liar already keeps the proposals
        apart, so the extra candidates find the best spot that is still free instead of
        settling for a random one.

      In ``benchmarks/parallel.py`` (4 workers asking 4 and telling 4, a synchronous batch;
      100 trials, 600 seeds) these two brought the geometric-mean regret of 4 workers from
      1.23x and 1.22x of the sequential one (Branin, Hartmann6) to 1.06x and 1.07x.
      Sequential runs are unchanged.

    Args:
        n_startup_trials: Trials drawn from the prior before the model starts (finished
            ones; in parallel runs see "Start-up" above). 10, as Optuna: enough for a first
            split (1 to 2 good trials), and a small share of the 100-evaluation budgets TPE is
            used with.
        n_ei_candidates: Candidates drawn from ``l`` per proposal. 64: the maximum of
            ``l / g`` over more candidates exploits the model more, which pays off in 5 to 10
            dimensions at 100 evaluations (in our benchmark 24, Hyperopt's and Optuna's
            default, was worse there); far more (128, 256) made parallel workers propose too
            similar points. Scoring is vectorised, so candidates cost little.
        gamma: The good set is the best ``min(ceil(gamma * n), 25)`` of ``n`` finished trials.
            0.1, a linear split as Optuna's (Watanabe 2023 finds the linear split better than
            Hyperopt's square root at small budgets). Larger values explore more: 0.15 was
            as good sequentially but worse with 8 parallel workers in our benchmark.
        multivariate: Model the parameters of a group jointly (default) or each parameter on
            its own, chosen one at a time (Bergstra et al.'s original, "independent" TPE).
            Joint kernels capture interactions (Falkner et al. 2018; Watanabe 2023).
        constant_liar: See the policies above. Default True.
        prior_weight: Weight of the prior in both densities, relative to one trial. 1.0, as
            Hyperopt and Optuna: it keeps ``l`` and ``g`` positive everywhere, so unexplored
            regions stay reachable.
        consider_endpoints: Let the outermost kernels' bandwidths reach the ends of the range
            (see :func:`~._tpe_kernels.neighbour_bandwidths`). False, as Optuna: otherwise a
            lone good trial near an edge gets a kernel as wide as the empty space beside it.

    Raises:
        ConfigurationError: An argument has the wrong type or is out of range.

    Example:
        >>> import numpy as np
        >>> from hpo_plugins import hp
        >>> from hpo_plugins import Direction
        >>> from hpo_plugins.samplers import History
        >>> from hpo_plugins.space import SearchSpace
        >>> space = SearchSpace({"x": hp.uniform("x", -1, 1)})
        >>> sampler = TPESampler(n_startup_trials=5)
        >>> params = sampler.sample(space, History([], Direction.MINIMIZE),
        ...                         np.random.default_rng(0))  # start-up: from the prior
        >>> -1 <= params["x"] <= 1
        True
    """

    def __init__(self, *, n_startup_trials: int = 10, n_ei_candidates: int = 64,
                 gamma: float = 0.1, multivariate: bool = True, constant_liar: bool = True,
                 prior_weight: float = 1.0, consider_endpoints: bool = False) -> None:
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=0)
        self.n_ei_candidates = check_int("n_ei_candidates", n_ei_candidates, minimum=1)
        self.gamma = check_real("gamma", gamma, low=0.0, high=1.0, open_low=True,
                                open_high=False)
        self.multivariate = check_bool("multivariate", multivariate)
        self.constant_liar = check_bool("constant_liar", constant_liar)
        self.prior_weight = check_real("prior_weight", prior_weight, low=0.0, open_low=True)
        self.consider_endpoints = check_bool("consider_endpoints", consider_endpoints)

    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        """Propose flat internal parameters (see the class doc for the policies)."""
        if self._in_start_up(history):
            _logger.debug("Start-up: %d of %d trials finished, sampling the prior",
                          history.n_finished, self.n_startup_trials)
            return space.sample_prior(rng)
        obs = _Observations.of(space, history, liar=self.constant_liar)
        models = [self._model(g, obs) for g in groups(space, multivariate=self.multivariate)]
        n_pending = len(obs.numbers) - obs.n_finished
        m = self.n_ei_candidates * (1 + min(n_pending, _MAX_CANDIDATE_FACTOR - 1))
        if self.multivariate:
            flat = self._best_configuration(models, rng, m)
        else:
            flat = self._one_at_a_time(models, rng, m)
        return _plain(space, flat)

    def _in_start_up(self, history: History) -> bool:
        """Whether to draw from the prior (see "Start-up" in the class doc)."""
        finished = history.n_finished
        if finished >= self.n_startup_trials:
            return False
        started = finished + sum(1 for t in history.in_states(*_PENDING) if t.params)
        return (started < self.n_startup_trials
                or finished < math.ceil(_MIN_FINISHED_SHARE * self.n_startup_trials))

    def _best_configuration(self, models: list[_GroupModel], rng: np.random.Generator,
                            m: int) -> dict[str, float]:
        """Draw ``m`` whole configurations top-down; return the one of largest summed score."""
        columns: dict[str, np.ndarray] = {}
        score = np.zeros(m)
        for model in models:
            rows = np.flatnonzero(_active(model.group, columns, m))
            values, group_score = model.propose(rng, len(rows))
            for label in model.group.labels:
                columns[label] = np.full(m, np.nan)
                columns[label][rows] = values[label]
            score[rows] += group_score
        best = int(np.argmax(score))
        return {lbl: float(col[best]) for lbl, col in columns.items() if not np.isnan(col[best])}

    def _one_at_a_time(self, models: list[_GroupModel], rng: np.random.Generator,
                       m: int) -> dict[str, float]:
        """Independent TPE: each active parameter's best of ``m`` candidates, top-down."""
        flat: dict[str, float] = {}
        for model in models:
            if model.group.is_active(flat):
                values, score = model.propose(rng, m)
                best = int(np.argmax(score))
                flat.update({lbl: float(v[best]) for lbl, v in values.items()})
        return flat

    def _model(self, group: Group, obs: _Observations) -> _GroupModel:
        """Fit ``l`` and ``g`` of ``group`` on the trials where it is active."""
        sub = obs.values[:, [obs.column[lbl] for lbl in group.labels]]
        active = np.flatnonzero(~np.isnan(sub).any(axis=1))
        good, bad = self._split(active, obs.n_finished)
        n_num = len(group.numeric)
        z = np.column_stack([e.encode(sub[:, i]) for i, e in enumerate(group.numeric)] or
                            [np.empty((len(sub), 0))])
        cats = np.nan_to_num(sub[:, n_num:]).astype(np.intp)
        good_mix = self._fit(group, z[good], cats[good], np.ones(len(good)))
        bad_sigma = self._bandwidths(group, z[bad])
        pending = bad >= obs.n_finished
        if pending.any():  # local repulsion: gaps among every observation, halved
            local = self._bandwidths(group, z[active])[np.searchsorted(active, bad[pending])]
            bad_sigma[pending] = _PENDING_BANDWIDTH * local
        bad_mix = self._fit(group, z[bad], cats[bad], age_weights(obs.numbers[bad]), bad_sigma)
        return _GroupModel(group, good_mix, bad_mix)

    def _split(self, rows: np.ndarray, n_finished: int) -> tuple[np.ndarray, np.ndarray]:
        """Good rows (global rank below the threshold) and bad rows (the rest, and pending)."""
        threshold = n_good(n_finished, self.gamma)
        return rows[rows < threshold], rows[rows >= threshold]

    def _bandwidths(self, group: Group, z: np.ndarray) -> np.ndarray:
        """Neighbour-gap bandwidths of ``z`` with the magic clip (see the module doc)."""
        dims, n = dims_of(group), len(z)
        steps = np.array([e.step for e in group.numeric], dtype=float)
        min_bw = np.maximum(1.0 / min(100.0, n + 2.0), steps)
        return neighbour_bandwidths(z, dims.low, dims.high, min_bw, dims.max_bandwidth,
                                    consider_endpoints=self.consider_endpoints)

    def _fit(self, group: Group, z: np.ndarray, cats: np.ndarray, weights: np.ndarray,
             sigma: np.ndarray | None = None) -> ParzenMixture:
        """The mixture of ``z`` / ``cats`` with ``weights``; bandwidths from
        :meth:`_bandwidths` unless ``sigma`` is given."""
        dims, n = dims_of(group), len(z)
        if sigma is None:
            sigma = self._bandwidths(group, z)
        lam = categorical_lambda(np.asarray(dims.n_options, dtype=float), n, self.prior_weight)
        return ParzenMixture.fit(z, cats, weights, dims, sigma=sigma, cat_lambda=lam,
                                 prior_weight=self.prior_weight)


def _active(group: Group, columns: dict[str, np.ndarray], m: int) -> np.ndarray:
    """Which of ``m`` partial candidates (label -> values, NaN if inactive) activate ``group``."""
    mask = np.zeros(m, dtype=bool)
    for conjunction in group.condition:
        hit = np.ones(m, dtype=bool)
        for label, index in conjunction:
            hit &= columns[label] == index
        mask |= hit
    return mask


def _plain(space: SearchSpace, flat: dict[str, float]) -> dict[str, Any]:
    """Plain Python numbers: ``int`` for choices and ``randint``, ``float`` otherwise."""
    return {lbl: int(v) if space.params[lbl].is_choice or space.params[lbl].kind == "randint"
            else float(v) for lbl, v in flat.items()}
