"""Which parameters matter: how much of the spread of a study's results each one explains.

:func:`param_importances` answers the question Optuna's ``get_param_importances`` answers, with
a method that needs no extra package: an additive analysis of variance of the results' ranks.

* The trials are the COMPLETE ones with a finite value. Their values are replaced by their ranks
  (ties share the mean rank), so one diverged trial with a huge loss does not decide everything,
  and only the order of the results matters, as it does for the search itself.
* Each parameter splits those trials into groups: a choice by its option, a number by quantile
  bins (``n_bins``; a number with no more distinct values than that by its values). Quantile
  bins are the same for ``uniform`` and ``loguniform``: only the order of the values matters.
* A conditional parameter is judged among the trials where it is active only: a layer count
  that exists only for the "mlp" branch explains what differs between "mlp" trials, and does
  not take credit for the difference between "mlp" and "cnn" (that is the choice's own).
* The ranks are fitted by an additive model, one effect per parameter and group, every parameter
  at once (backfitting), so that each is measured net of the others: a strong choice does not
  bury a learning rate whose bins happen to hold more trials of one option. A parameter's raw
  importance is the sum of squares of its effect, less ``k - 1`` times the residual variance for
  its ``k`` groups (what it would explain of pure noise), and 0 when that is negative. The
  importances are these, divided by their sum, so they add up to 1.

What it measures is each parameter's *main effect*: how much the results move with that
parameter, the others held fixed on average. Interactions (a learning rate that is good only with
one optimiser) are not split out, and with few trials every figure is rough: read them as a
ranking, not as exact shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import rankdata

from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins.study import Study

__all__ = ["MIN_TRIALS", "param_importances"]

#: The fewest COMPLETE trials with a finite value an importance is computed from.
MIN_TRIALS = 3

def param_importances(study: Study | Sequence[FrozenTrial], *,
                      params: Sequence[str] | None = None,
                      n_bins: int | None = None) -> dict[str, float]:
    """Each parameter's share of what explains the study's results, largest first.

    Args:
        study: A study, or its trials (e.g. ``study.trials`` filtered by hand).
        params: The flat parameter labels to rank (default: every label a COMPLETE trial has).
        n_bins: How many quantile bins a numeric parameter's values are cut into (>= 2);
            default: one per 6 trials where it is active, from 3 to 8 (a U-shaped effect
            needs 3; more bins than that measure mostly noise with few trials).

    Returns:
        ``{label: importance}``, ordered from the most important; the values are >= 0 and add
        up to 1, unless no parameter explains more than chance would (then every value is 0).

    Raises:
        ConfigurationError: Fewer than :data:`MIN_TRIALS` COMPLETE trials with a finite value,
            a label in ``params`` that no such trial has, or a bad ``n_bins``.

    Example:
        >>> import hpo_plugins as hpo
        >>> space = {"x": hpo.hp.uniform("x", -1, 1), "noise": hpo.hp.uniform("noise", 0, 1)}
        >>> study = hpo.minimize(lambda p: p["x"] ** 2 + 0.01 * p["noise"], space,
        ...                      n_trials=40, storage=":memory:", seed=0)
        >>> importances = hpo.importance.param_importances(study)
        >>> list(importances)[0], round(sum(importances.values()), 6)
        ('x', 1.0)
    """
    if n_bins is not None and (isinstance(n_bins, bool) or not isinstance(n_bins, int)
                               or n_bins < 2):
        raise ConfigurationError(
            f"Expected `n_bins` to be an integer >= 2, or None for a number that grows with "
            f"the trials. Received: n_bins={n_bins!r}.")
    trials = study if isinstance(study, Sequence) else study.get_trials(TrialState.COMPLETE)
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None
            and math.isfinite(t.value)]
    if len(done) < MIN_TRIALS:
        raise ConfigurationError(
            f"Expected at least {MIN_TRIALS} COMPLETE trials with a finite value to rank the "
            f"parameters by. Received {len(done)}: run more trials first.")
    labels = _labels(done, params)
    choices = set() if isinstance(study, Sequence) else _choice_labels(study)
    ranks = rankdata([float(t.value) for t in done])  # type: ignore[arg-type]
    factors = []
    for label in _labels(done, None):  # every parameter, so each is measured net of the others
        active = np.array([label in t.params for t in done])
        values = [t.params[label] for t in done if label in t.params]
        bins = n_bins if n_bins is not None else min(8, max(3, len(values) // 6))
        factors.append((label, active, _groups(values, bins, label in choices)))
    explained = _additive_fit(factors, ranks)
    raw = {label: explained[label] for label in labels}
    total = sum(raw.values())
    shares = {label: (value / total if total > 0 else 0.0) for label, value in raw.items()}
    return dict(sorted(shares.items(), key=lambda item: (-item[1], item[0])))


def _labels(done: Sequence[FrozenTrial], params: Sequence[str] | None) -> list[str]:
    seen: dict[str, None] = {}
    for trial in done:
        seen.update(dict.fromkeys(trial.params))
    if params is None:
        return list(seen)
    missing = [label for label in params if label not in seen]
    if missing or isinstance(params, str):
        raise ConfigurationError(
            f"Expected `params` to be a list of parameter labels of the study's COMPLETE "
            f"trials ({sorted(seen)}). Received: params={params!r}"
            f"{f', where {missing} never occurs' if missing else ''}.")
    return list(params)


def _choice_labels(study: Study) -> set[str]:
    """The labels of the study's choices (their flat values are option indices, not numbers
    whose order means anything), read from the space recorded with the study."""
    described = study.storage.get_study(study.study_id).attrs.get("space") or []
    return {str(p.get("label")) for p in described
            if isinstance(p, Mapping) and p.get("kind") in ("choice", "pchoice")}


def _groups(values: Sequence[Any], n_bins: int, choice: bool) -> np.ndarray:
    """A group number per value: one per option of a choice or per distinct value (when there
    are at most ``n_bins``), else one per quantile bin of the numeric values."""
    numeric = not choice and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for v in values)
    distinct = sorted(set(values)) if numeric else sorted(set(values), key=repr)
    if not numeric or len(distinct) <= n_bins:
        index: Mapping[Any, int] = {v: i for i, v in enumerate(distinct)}
        return np.array([index[v] for v in values])
    edges = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, np.asarray(values, dtype=float), side="right")


def _additive_fit(factors: Sequence[tuple[str, np.ndarray, np.ndarray]],
                  ranks: np.ndarray, sweeps: int = 200) -> dict[str, float]:
    """Each factor's sum of squares in an additive model of the ranks, less what chance gives.

    The model is ``rank = mean + sum of one effect per factor``, an effect being a constant per
    group of the factor, centred over the trials where the factor is active (0 elsewhere: a
    conditional parameter moves results only inside its branch). It is fitted by backfitting,
    one factor at a time against what the others leave, until nothing changes; so a factor is
    measured net of the others, and a strong choice does not bury a learning rate whose bins
    happen to hold more of one option. A factor with ``k`` groups is then charged ``k - 1``
    times the residual variance, what it would explain of pure noise.
    """
    fitted = {label: np.zeros(len(ranks)) for label, _, _ in factors}
    centred = ranks - ranks.mean()
    total = np.zeros(len(ranks))
    scale = float(np.abs(centred).max()) or 1.0
    for _ in range(sweeps):
        change = 0.0
        for label, active, groups in factors:
            partial = (centred - total + fitted[label])[active]
            means = np.bincount(groups, weights=partial) / np.maximum(np.bincount(groups), 1)
            effect = np.zeros(len(ranks))
            effect[active] = means[groups] - partial.mean()
            change = max(change, float(np.abs(effect - fitted[label]).max()))
            total += effect - fitted[label]
            fitted[label] = effect
        if change < 1e-9 * scale:
            break
    spent = sum(len(np.unique(groups)) - 1 for _, _, groups in factors)
    dof = len(ranks) - 1 - spent
    residual = float(((centred - total) ** 2).sum())
    noise = residual / dof if dof >= 1 else float((centred ** 2).sum()) / (len(ranks) - 1)
    return {label: max(0.0, float((fitted[label] ** 2).sum())
                       - (len(np.unique(groups)) - 1) * noise)
            for label, _, groups in factors}
