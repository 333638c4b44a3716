"""Annealing: sample near one of the best trials, in a neighbourhood that shrinks over time.

The idea is Hyperopt's ``anneal`` algorithm; the code is ours and works on flat internal
parameters instead of Hyperopt's vectorised graph.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hpo_plugins._checks import check_int, check_real
from hpo_plugins._frozen import FrozenTrial
from hpo_plugins.samplers._base import History, Sampler, ranked_for_model
from hpo_plugins.space import Param, SearchSpace

__all__ = ["AnnealSampler"]

_logger = logging.getLogger(__name__)


class AnnealSampler(Sampler):
    """Perturb one of the best finished trials; the perturbation narrows as trials finish.

    Until ``n_startup_trials`` trials are finished (COMPLETE, PRUNED, or FAIL as diverged: see
    :attr:`History.n_finished`) every trial is drawn from the prior. Afterwards each ``sample``:

    1. ranks the finished trials with :func:`ranked_for_model` (COMPLETE by value, then PRUNED,
       then diverged)
       and picks position ``k`` of the ranking with ``k ~ Geometric - 1`` of mean
       ``avg_best_idx`` (so ``avg_best_idx=0`` always takes the best trial; Hyperopt's own
       ``avg_best_idx`` is the mean of ``k + 1`` instead);
    2. for every parameter active in that trial, draws a value near the trial's value. With
       ``n`` the number of finished trials in which the parameter was active, the neighbourhood
       has the fraction ``s = 1 / (1 + n * shrink_coef)`` of the prior's width:

       * bounded numbers (``uniform``, ``loguniform``, ``randint`` and their ``q`` forms): a
         uniform window of width ``s * (high - low)`` around the value (in log space for log
         kinds), shifted to stay inside the bounds, then rounded to ``q`` (and to an integer for
         ``randint``);
       * unbounded numbers (``normal``, ``lognormal`` and their ``q`` forms): a normal of spread
         ``s * sigma`` around the value (around its log for log kinds), rounded to ``q``;
       * choices: the same option with probability ``1 - s``, else a fresh draw from the prior;
    3. draws parameters the chosen trial did not use (branches it did not take) from the prior,
       and drops those that are inactive in the new configuration.

    Args:
        avg_best_idx: Mean position, in the ranking of finished trials (0 is the best), of the
            trial to perturb. Larger values explore around more trials.
        shrink_coef: How fast the neighbourhood narrows with the number of finished trials;
            0 keeps it at the prior's full width.
        n_startup_trials: Number of finished trials drawn from the prior before annealing.

    Raises:
        ConfigurationError: An argument is out of range.

    Example:
        >>> import numpy as np
        >>> from hpo_plugins import hp
        >>> from hpo_plugins import Direction, FrozenTrial, TrialState
        >>> from hpo_plugins.samplers import AnnealSampler, History
        >>> from hpo_plugins.space import SearchSpace
        >>> space = SearchSpace({"x": hp.uniform("x", 0, 1)})
        >>> done = [FrozenTrial(trial_id=0, number=0, state=TrialState.COMPLETE, value=0.1,
        ...                     params={"x": 0.5})]
        >>> sampler = AnnealSampler(n_startup_trials=1)
        >>> params = sampler.sample(space, History(done, Direction.MINIMIZE, number=1),
        ...                         np.random.default_rng(0))
        >>> 0.0 <= params["x"] <= 1.0
        True
    """

    def __init__(self, *, avg_best_idx: float = 2.0, shrink_coef: float = 0.1,
                 n_startup_trials: int = 5) -> None:
        self.avg_best_idx = check_real("avg_best_idx", avg_best_idx, low=0.0)
        self.shrink_coef = check_real("shrink_coef", shrink_coef, low=0.0)
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=0)

    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        """Propose flat internal parameters near a good finished trial (see the class doc)."""
        if history.n_finished < self.n_startup_trials:
            return space.sample_prior(rng)
        ranked = ranked_for_model(history)
        if not ranked:  # no finished trial yet (n_startup_trials=0): nothing to anneal around
            return space.sample_prior(rng)
        base = self._pick(ranked, rng)
        observed = _observations(space, [trial for trial, _ in ranked])
        _logger.debug("Annealing around trial %d", base.number)
        proposal: dict[str, Any] = {}
        for label, param in space.params.items():
            if label in base.params and param.contains(base.params[label]):
                width = 1.0 / (1.0 + observed[label] * self.shrink_coef)
                proposal[label] = _perturb(param, base.params[label], width, rng)
            else:
                proposal[label] = param.sample(rng)
        return space.prune_inactive(proposal)

    def _pick(self, ranked: Sequence[tuple[FrozenTrial, float]],
              rng: np.random.Generator) -> FrozenTrial:
        """A trial of the ranking at a geometric position of mean ``avg_best_idx``."""
        position = int(rng.geometric(1.0 / (1.0 + self.avg_best_idx))) - 1
        return ranked[min(position, len(ranked) - 1)][0]


def _observations(space: SearchSpace, trials: Sequence[FrozenTrial]) -> dict[str, int]:
    """label -> number of ``trials`` in which it was active."""
    counts = dict.fromkeys(space.params, 0)
    for trial in trials:
        for label in trial.params:
            if label in counts:
                counts[label] += 1
    return counts


def _perturb(param: Param, value: Any, width: float, rng: np.random.Generator) -> float | int:
    """A value of ``param`` near ``value``; ``width`` is the fraction of the prior's spread."""
    if param.is_choice:
        return int(value) if rng.random() < 1.0 - width else param.sample(rng)
    if param.kind == "randint":
        low, high = param.args["low"], param.args["high"]
        x = _window(float(value) + 0.5, low, high, width, rng)  # cell [v, v + 1) of the integer
        return int(min(max(math.floor(x), low), high - 1))
    if param.kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        low, high = param.args["low"], param.args["high"]
        center = _to_model_scale(param, float(value))
        x = _window(center, low, high, width, rng)
        return param.quantize(math.exp(x) if param.log else x)
    sigma = param.args["sigma"] * width  # normal, qnormal, lognormal, qlognormal
    x = float(rng.normal(_to_model_scale(param, float(value)), sigma))
    return param.quantize(math.exp(x) if param.log else x)


def _window(center: float, low: float, high: float, width: float,
            rng: np.random.Generator) -> float:
    """Uniform draw in a window of ``width * (high - low)`` around ``center``, kept in bounds."""
    half = 0.5 * width * (high - low)
    center = min(max(center, low + half), high - half)
    return min(max(float(rng.uniform(center - half, center + half)), low), high)


def _to_model_scale(param: Param, value: float) -> float:
    """The value on the scale its distribution is defined on (log for log kinds).

    A quantised log value may be 0 (the draw rounded down); it is read as half a step, the
    largest value that rounds to it, so the neighbourhood stays near the small end.
    """
    if not param.log:
        return value
    if value <= 0.0:
        q = param.q or 1.0
        value = 0.5 * q
    return math.log(value)
