"""Which parameters matter: how much of the spread of a study's results each one explains.

:func:`param_importances` answers the question Optuna's ``get_param_importances`` answers, with
a method that needs no extra package: an additive analysis of variance of the results' ranks.

* The trials are the COMPLETE ones with a finite value. Their values are replaced by their ranks
  (ties share the mean rank), so one diverged trial with a huge loss does not decide everything,
  and only the order of the results matters, as it does for the search itself.
* Each parameter splits the trials where it is active into groups: a choice by its option, a
  number by the bins of its ranks (``n_bins`` bins of nearly equal counts; equal values always
  share a bin, and a number with no more distinct values than bins is grouped by value).
  Quantile bins are the same for ``uniform`` and ``loguniform``: only the order of the values
  matters. Options or values held by fewer than 3 trials are pooled into one group: one trial
  says nothing about its option.
* A conditional parameter is judged among the trials where it is active only: a layer count
  that exists only for the "mlp" branch explains what differs between "mlp" trials, and does
  not take credit for the difference between "mlp" and "cnn" (that is the choice's own).
* One least-squares fit of the ranks on every parameter's groups at once (each parameter's
  effect centred over the trials where it is active) measures each parameter net of the
  others: a strong choice does not bury a learning rate whose bins happen to hold more trials
  of one option, and the answer does not depend on the order of the parameters (two parameters
  that always move together share their effect equally). A parameter's raw importance is the
  sum of squares of its fitted effect, less ``k - 1`` times the residual variance for its ``k``
  groups (what it would explain of pure noise), and 0 when that is negative. The importances
  are these, divided by their sum, so they add up to 1.

What it measures is each parameter's *main effect*: how much the results move with that
parameter, the others held fixed on average. Interactions (a learning rate that is good only with
one optimiser) are not split out, and with few trials every figure is rough: read them as a
ranking, not as exact shares. With fewer trials than groups to fit, nothing is left to measure
the noise by; the whole spread of the ranks stands in for it (so little or nothing stands out),
and a warning says so.
"""

from __future__ import annotations

import logging
import math
import numbers
import reprlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import rankdata

from hpo_plugins._dataframe import space_description
from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins._require import require_study
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.space import CHOICE_KINDS

if TYPE_CHECKING:
    from hpo_plugins.study import Study

__all__ = ["MIN_TRIALS", "param_importances"]

_logger = logging.getLogger(__name__)

#: The fewest COMPLETE trials with a finite value an importance is computed from.
MIN_TRIALS = 3
#: Options (or values) held by fewer trials than this are pooled into one group.
_MIN_GROUP = 3


def param_importances(study: Study, *, params: Sequence[str] | None = None,
                      n_bins: int | None = None,
                      trials: Sequence[FrozenTrial] | None = None) -> dict[str, float]:
    """Each parameter's share of what explains the study's results, largest first.

    Args:
        study: The study; its recorded space says which parameters are choices (their flat
            values are option indices, whose order means nothing).
        params: The flat parameter labels to report (default: every label a COMPLETE trial
            has). Every parameter is fitted whatever this says; the shares of those reported
            are scaled to add up to 1.
        n_bins: How many bins a numeric parameter's values are cut into (>= 2); default: one
            per 6 trials where it is active, from 3 to 8 (a U-shaped effect needs 3; more bins
            than that measure mostly noise with few trials). Never more than one bin per 3
            active trials.
        trials: The trials to learn from (default: the study's); only the COMPLETE ones with
            a finite value count.

    Returns:
        ``{label: importance}``, ordered from the most important; the values are >= 0 and add
        up to 1, unless no parameter explains more than chance would (then every value is 0).

    Raises:
        ConfigurationError: ``study`` is not a Study; ``trials`` is not an iterable of
            FrozenTrial; fewer than :data:`MIN_TRIALS` COMPLETE trials with a finite value, a
            label in ``params`` that no such trial has, or a bad ``n_bins``.

    Example:
        >>> import hpo_plugins as hpo
        >>> space = {"x": hpo.hp.uniform("x", -1, 1), "noise": hpo.hp.uniform("noise", 0, 1)}
        >>> study = hpo.minimize(lambda p: p["x"] ** 2 + 0.01 * p["noise"], space,
        ...                      n_trials=40, storage=":memory:", seed=0)
        >>> importances = hpo.importance.param_importances(study)
        >>> list(importances)[0], round(sum(importances.values()), 6)
        ('x', 1.0)
    """
    _check_study(study)
    if n_bins is not None and (isinstance(n_bins, bool)
                               or not isinstance(n_bins, numbers.Integral) or n_bins < 2):
        raise ConfigurationError(
            f"Expected `n_bins` to be an integer >= 2, or None for a number that grows with "
            f"the trials. Received: n_bins={n_bins!r}.")
    pool = study.get_trials(TrialState.COMPLETE) if trials is None else _checked_trials(trials)
    done = [t for t in pool if t.state is TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value)]
    if len(done) < MIN_TRIALS:
        raise ConfigurationError(
            f"Expected at least {MIN_TRIALS} COMPLETE trials with a finite value to rank the "
            f"parameters by. Received {len(done)}: run more trials first.")
    every = _labels(done)
    labels = every if params is None else _checked_params(params, every)
    choices = _choice_labels(study)
    factors = []
    for label in every:  # every parameter, so each is measured net of the others
        active = np.array([label in t.params for t in done])
        values = [t.params[label] for t in done if label in t.params]
        bins = int(n_bins) if n_bins is not None else min(8, max(3, len(values) // 6))
        bins = min(bins, max(2, len(values) // _MIN_GROUP))
        factors.append((label, active, _groups(values, bins, label in choices)))
    results = [float(t.value) for t in done]  # type: ignore[arg-type]
    explained = _least_squares(factors, rankdata(results))
    raw = {label: explained[label] for label in labels}
    total = sum(raw.values())
    shares = {label: (value / total if total > 0 else 0.0) for label, value in raw.items()}
    return dict(sorted(shares.items(), key=lambda item: (-item[1], item[0])))


def _check_study(study: Any) -> None:
    """Refuse anything but a Study (a name, a storage, a list of trials) with the fix."""
    require_study(study, "a Study, as hpo.create_study, hpo.load_study or hpo.minimize return",
                  "For a stored study, pass hpo.load_study(study_name, storage=...); to rank "
                  "given trials, pass the study and trials=[...].")


def _checked_trials(trials: Any) -> list[FrozenTrial]:
    """``trials`` as a list if it is an iterable of FrozenTrial (a list, ``study.trials``, a
    generator), else a ConfigurationError: trial numbers or one trial on its own would fail
    later with an ``AttributeError`` or ``TypeError`` that does not name the argument."""
    expected = ("Expected `trials` to be a list of FrozenTrial, such as study.trials or "
                "study.get_trials('COMPLETE'), or None for the study's COMPLETE trials.")
    if isinstance(trials, FrozenTrial):
        raise ConfigurationError(
            f"{expected} Received: trials=FrozenTrial(number={trials.number}), one trial on its "
            f"own. Pass a list: trials=[trial, ...].")
    try:
        pool = list(trials)
    except TypeError:
        raise ConfigurationError(
            f"{expected} Received: trials={reprlib.repr(trials)} (of type "
            f"{type(trials).__name__}), which is not iterable.") from None
    wrong = next((t for t in pool if not isinstance(t, FrozenTrial)), None)
    if wrong is not None:
        raise ConfigurationError(
            f"{expected} Received: trials={reprlib.repr(trials)}, which holds "
            f"{reprlib.repr(wrong)} (of type {type(wrong).__name__}). For trial numbers, pass "
            f"the trials themselves: trials=[study.trials[n] for n in numbers].")
    return pool


def _labels(done: Sequence[FrozenTrial]) -> list[str]:
    """Every flat label the trials have, sorted."""
    return sorted({label for trial in done for label in trial.params})


def _checked_params(params: Sequence[str], seen: Sequence[str]) -> list[str]:
    """``params`` if each is one of the trials' labels ``seen``, else a ConfigurationError."""
    missing = [] if isinstance(params, str) else [label for label in params if label not in seen]
    if missing or isinstance(params, str):
        raise ConfigurationError(
            f"Expected `params` to be a list of parameter labels of the study's COMPLETE "
            f"trials ({list(seen)}). Received: params={params!r}"
            f"{f', where {missing} never occurs' if missing else ''}.")
    return list(params)


def _choice_labels(study: Study) -> set[str]:
    """The labels of the study's choices (their flat values are option indices, not numbers
    whose order means anything), from the study's space."""
    return {str(p.get("label")) for p in space_description(study)
            if p.get("kind") in CHOICE_KINDS}


def _groups(values: Sequence[Any], bins: int, choice: bool) -> np.ndarray:
    """A group number per value: by option (a choice, or a number with at most ``bins``
    distinct values), else by bin of the values' ranks (ties stay together). Options and values
    held by fewer than :data:`_MIN_GROUP` trials share one group."""
    numeric = not choice and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for v in values)
    if not numeric or len(set(values)) <= bins:
        keys = [repr(v) for v in values]
        counts: dict[str, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        pooled = [key if counts[key] >= _MIN_GROUP else "<rare>" for key in keys]
        return np.unique(np.array(pooled), return_inverse=True)[1]
    ranks = rankdata(np.asarray(values, dtype=float))  # ties share one (mean) rank
    cut = np.minimum(np.floor((ranks - 1) * bins / len(values)), bins - 1).astype(int)
    return np.unique(cut, return_inverse=True)[1]


def _least_squares(factors: Sequence[tuple[str, np.ndarray, np.ndarray]],
                   ranks: np.ndarray) -> dict[str, float]:
    """Each factor's sum of squares in a least-squares additive model of the ranks, less what
    chance gives.

    A factor's columns are the indicators of its groups, centred over the trials where it is
    active and 0 elsewhere. ``lstsq`` gives the minimum-norm solution: the same for any order
    of the factors, and an even split between factors whose columns coincide.
    """
    n = len(ranks)
    centred = ranks - ranks.mean()
    blocks = []
    for _, active, groups in factors:
        block = np.zeros((n, int(groups.max()) + 1))
        block[np.flatnonzero(active), groups] = 1.0
        block[active] -= block[active].mean(axis=0)
        blocks.append(block)
    design = np.hstack(blocks)
    coef, _, rank, _ = np.linalg.lstsq(design, centred, rcond=None)
    residual = float(((centred - design @ coef) ** 2).sum())
    dof = n - 1 - int(rank)
    if dof >= 1:
        noise = residual / dof
    else:
        _logger.warning("Parameter importances: %d trials for %d groups to fit leave nothing "
                        "to measure the noise by; the shares are unreliable (run more trials, "
                        "or pass a smaller n_bins).", n, int(rank))
        noise = float((centred ** 2).sum()) / (n - 1)
    explained, start = {}, 0
    for (label, _, groups), block in zip(factors, blocks):
        width = block.shape[1]
        effect = block @ coef[start:start + width]
        start += width
        charged = (len(np.unique(groups)) - 1) * noise
        explained[label] = max(0.0, float((effect ** 2).sum()) - charged)
    return explained
