"""The percentile and median stopping rules, plus the small curve helpers every pruner here
shares."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from hpo_plugins._checks import check_int
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.pruners._curves import curve_memo

__all__ = ["MedianPruner", "PercentilePruner"]


class PercentilePruner(Pruner):
    """Stop a trial whose best value so far is worse than a percentile of the others' at its step.

    The median stopping rule of Google Vizier (Golovin et al., 2017) with any percentile, made
    pure. ``percentile`` says how much of the field a trial must keep up with: at 25 a trial
    survives only while its best value so far is at least as good as the best quarter of its
    rivals' (an aggressive rule), at 50 the median (:class:`MedianPruner`), at 75 it must only
    stay out of the worst quarter. After each report at step ``t`` the trial is pruned when all
    of these hold, checked in this order:

    1. At least ``n_startup_trials`` other trials are COMPLETE.
    2. ``t >= n_warmup_steps``.
    3. ``t`` is a decision step: the first report at or after one of the checkpoints
       ``n_warmup_steps + k * interval_steps`` (``k = 0, 1, ...``), i.e. the previous report
       was before the latest checkpoint ``<= t``. With a report at every step this is exactly
       ``(t - n_warmup_steps) % interval_steps == 0``; with sparser reports (every 2 epochs, say)
       a checkpoint that falls between two reports is checked at the next one, never skipped.
    4. The value reported at ``t`` is NaN: the trial is stopped, whatever the others did (a NaN
       loss is almost always divergence, and a diverged network does not recover; the best value
       so far would otherwise hide it until the end). Steps 5-6 are skipped. Through
       :meth:`Trial.report` a NaN is never stored: the trial is marked FAIL there, and this
       decision only ends its training (it ends FAIL, not PRUNED); the rule covers curves
       given to the pruner directly.
    5. At least ``n_min_trials`` other trials reported at exactly step ``t`` and have a finite
       best value up to ``t``; otherwise the trial continues.
    6. The trial's best value over its steps ``<= t`` (min when minimising, max when maximising,
       NaN reports ignored) is strictly worse than the reference: the ``percentile``-th
       percentile of those other trials' best values over their steps ``<= t``, counted from the
       best end (the ``percentile``-th percentile of the values when minimising, the
       ``100 - percentile``-th when maximising; linear interpolation between neighbours, so 50
       is exactly the median). A tie with the reference continues.

    The reference set in 5-6 is every other trial that reported at step ``t``, *whatever its
    state*: COMPLETE, PRUNED, RUNNING and FAIL alike. A value at step ``t`` is final once reported,
    so a RUNNING trial past ``t`` is as informative as a finished one; in an asynchronous run with
    many workers, ignoring it would compare early trials with nobody. Keeping PRUNED (and FAIL)
    trials avoids survivor bias: a percentile over COMPLETE trials only is one over the trials
    that survived pruning, which tightens the rule as the study goes on. (Optuna's pruners use
    COMPLETE trials only.) ``n_startup_trials`` still counts COMPLETE trials: it says when the
    pruner switches on, not who is compared.

    Args:
        percentile: From 0 to 100: the share of rivals, counted from the best, whose level a
            trial must keep up with (0: as good as the best rival; 100: not worse than the
            worst).
        n_startup_trials: No pruning until this many other trials are COMPLETE.
        n_warmup_steps: No pruning at steps below this one.
        interval_steps: Distance between checkpoints, counted from ``n_warmup_steps``.
        n_min_trials: Fewest other trials reporting at the step for a decision.

    Raises:
        ConfigurationError: ``percentile`` is not a number from 0 to 100, or another argument
            is not an integer in its range.

    Example:
        >>> from hpo_plugins import Direction, FrozenTrial, TrialState
        >>> done = [FrozenTrial(trial_id=i, number=i, state=TrialState.COMPLETE, value=v,
        ...                     intermediate_values={0: v}) for i, v in enumerate([.2, .4, .6])]
        >>> me = FrozenTrial(trial_id=3, number=3, state=TrialState.RUNNING,
        ...                  intermediate_values={0: 0.35})
        >>> PercentilePruner(25.0, n_startup_trials=3).prune(me, done, Direction.MINIMIZE)
        True
        >>> PercentilePruner(50.0, n_startup_trials=3).prune(me, done, Direction.MINIMIZE)
        False
    """

    def __init__(self, percentile: float, *, n_startup_trials: int = 5,
                 n_warmup_steps: int = 0, interval_steps: int = 1,
                 n_min_trials: int = 1) -> None:
        self.percentile = check_percentile(percentile)
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=0)
        self.n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, minimum=0)
        self.interval_steps = check_int("interval_steps", interval_steps, minimum=1)
        self.n_min_trials = check_int("n_min_trials", n_min_trials, minimum=1)

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """True if the trial's best value so far is worse than the others' percentile at its
        step (see the class docstring for the order of the checks)."""
        memo = curve_memo(self)
        mine = memo.curve(trial)
        step = mine.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        others = peers_of(trial, others)
        if sum(t.state is TrialState.COMPLETE for t in others) < self.n_startup_trials:
            return False
        if not is_decision_step(mine.previous_step, step, self.n_warmup_steps,
                                self.interval_steps):
            return False
        if math.isnan(trial.intermediate_values[step]):
            return True
        reference = memo.bests_at(step, direction, others)
        memo.forget_others(others)
        reference = reference[~np.isnan(reference)]
        if reference.size < self.n_min_trials:
            return False
        level = self.percentile if direction is Direction.MINIMIZE else 100.0 - self.percentile
        return direction.better(percentile_of(reference, level),
                                mine.best_up_to(step, direction))


class MedianPruner(PercentilePruner):
    """Stop a trial whose best value so far is worse than the median of the others at that step.

    :class:`PercentilePruner` at the 50th percentile: the median stopping rule of Google Vizier
    (Golovin et al., 2017). Its docstring gives the exact rule: start-up, warm-up and interval,
    a NaN report prunes at once, and every other trial that reported at the step counts,
    whatever its state. A tie with the median continues.

    Args:
        n_startup_trials: No pruning until this many other trials are COMPLETE.
        n_warmup_steps: No pruning at steps below this one.
        interval_steps: Distance between checkpoints, counted from ``n_warmup_steps``.
        n_min_trials: Fewest other trials reporting at the step for a decision.

    Raises:
        ConfigurationError: An argument is not an integer in its range.

    Example:
        >>> from hpo_plugins import Direction, FrozenTrial, TrialState
        >>> done = [FrozenTrial(trial_id=i, number=i, state=TrialState.COMPLETE, value=v,
        ...                     intermediate_values={0: v}) for i, v in enumerate([.2, .4, .6])]
        >>> me = FrozenTrial(trial_id=3, number=3, state=TrialState.RUNNING,
        ...                  intermediate_values={0: 0.5})
        >>> MedianPruner(n_startup_trials=3).prune(me, done, Direction.MINIMIZE)  # 0.5 > 0.4
        True
    """

    def __init__(self, *, n_startup_trials: int = 5, n_warmup_steps: int = 0,
                 interval_steps: int = 1, n_min_trials: int = 1) -> None:
        super().__init__(50.0, n_startup_trials=n_startup_trials,
                         n_warmup_steps=n_warmup_steps, interval_steps=interval_steps,
                         n_min_trials=n_min_trials)


def percentile_of(values: Sequence[float] | np.ndarray, percentile: float) -> float:
    """The ``percentile``-th percentile of ``values`` (not empty), interpolating linearly
    between the two closest ranks; at 50 exactly :func:`statistics.median`.

    Example:
        >>> percentile_of([4.0, 1.0, 3.0, 2.0], 50.0), percentile_of([1.0, 2.0, 3.0], 25.0)
        (2.5, 1.5)
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64)).tolist()
    position = (len(ordered) - 1) * percentile / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    if fraction == 0.0 or low == high:
        return ordered[low]
    if fraction == 0.5:  # the median's own formula, so that 50 gives it to the last bit
        return (ordered[low] + ordered[high]) / 2
    return ordered[low] * (1.0 - fraction) + ordered[high] * fraction  # no overflow at extremes


def check_percentile(value: Any) -> float:
    """``value`` as a float if it is a real number from 0 to 100, else a ConfigurationError."""
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and 0.0 <= float(value) <= 100.0):
        return float(value)
    raise ConfigurationError(
        f"Expected `percentile` to be a number from 0 to 100 (e.g. 25.0 keeps trials that "
        f"keep up with the best quarter). Received: percentile={value!r}")


# Helpers shared by the pruners of this package (``_base.py`` would be their natural home).

def is_decision_step(previous: int, step: int, n_warmup_steps: int,
                     interval_steps: int) -> bool:
    """Whether a report at ``step`` (``>= n_warmup_steps``) whose previous report was at
    ``previous`` (-1 for none) is the first report at or after a checkpoint
    ``n_warmup_steps + k * interval_steps``."""
    checkpoint = step - (step - n_warmup_steps) % interval_steps
    return previous < checkpoint


def peers_of(trial: FrozenTrial, others: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """``others`` without ``trial`` itself, in case a caller passed the whole study."""
    return [t for t in others if t.number != trial.number]
