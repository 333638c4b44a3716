"""Stop a trial whose reported value leaves a fixed range: divergence, or a hopeless start."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from hpo_plugins._checks import check_int
from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.pruners._curves import curve_memo
from hpo_plugins.pruners._median import is_decision_step

__all__ = ["ThresholdPruner"]


class ThresholdPruner(Pruner):
    """Stop a trial as soon as its latest report is above ``upper``, below ``lower`` or NaN
    (a NaN report through :meth:`Trial.report` marks the trial FAIL: it ends FAIL, not PRUNED).

    Other trials play no part: the rule needs no start-up trials, so it works from the very
    first trial, and it can guard against what no comparison catches, e.g. a loss that blows up
    (``upper=10.0``) or an accuracy still at chance after the warm-up (``lower=0.15`` with ten
    classes). After each report at step ``t`` the trial is pruned when all of these hold:

    1. ``t >= n_warmup_steps``.
    2. ``t`` is a decision step: the first report at or after one of the checkpoints
       ``n_warmup_steps + k * interval_steps``, as for :class:`PercentilePruner` (a checkpoint
       between two sparse reports is checked at the next one, never skipped).
    3. The value reported at ``t`` is NaN, or strictly above ``upper``, or strictly below
       ``lower`` (a value equal to a bound continues).

    The bounds are in the metric's own units and do not depend on the study's direction.

    Args:
        lower: Prune below this value; None: no lower bound.
        upper: Prune above this value; None: no upper bound.
        n_warmup_steps: No pruning at steps below this one.
        interval_steps: Distance between checkpoints, counted from ``n_warmup_steps``.

    Raises:
        ConfigurationError: Neither bound is given, a bound is not a finite number, ``lower``
            is above ``upper``, or a step argument is not an integer in its range.

    Example:
        >>> from hpo_plugins import Direction, FrozenTrial, TrialState
        >>> diverged = FrozenTrial(trial_id=0, number=0, state=TrialState.RUNNING,
        ...                        intermediate_values={0: 2.3, 1: 57.0})
        >>> ThresholdPruner(upper=10.0).prune(diverged, [], Direction.MINIMIZE)
        True
        >>> ThresholdPruner(upper=100.0).prune(diverged, [], Direction.MINIMIZE)
        False
    """

    def __init__(self, *, lower: float | None = None, upper: float | None = None,
                 n_warmup_steps: int = 0, interval_steps: int = 1) -> None:
        self.lower = _check_bound("lower", lower)
        self.upper = _check_bound("upper", upper)
        if self.lower is None and self.upper is None:
            raise ConfigurationError(
                "Expected `lower`, `upper` or both. Received neither, so the pruner would only "
                "stop NaN reports: pass e.g. upper=10.0 to stop a loss that blows up.")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise ConfigurationError(
                f"Expected `lower` <= `upper`. Received: lower={self.lower!r}, "
                f"upper={self.upper!r}, which would prune every trial.")
        self.n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, minimum=0)
        self.interval_steps = check_int("interval_steps", interval_steps, minimum=1)

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """True if the latest report, at a decision step past the warm-up, is out of range."""
        curve = curve_memo(self).curve(trial)
        step = curve.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        if not is_decision_step(curve.previous_step, step, self.n_warmup_steps,
                                self.interval_steps):
            return False
        value = trial.intermediate_values[step]
        return (math.isnan(value) or (self.upper is not None and value > self.upper)
                or (self.lower is not None and value < self.lower))


def _check_bound(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value))):
        return float(value)
    raise ConfigurationError(
        f"Expected `{name}` to be a finite number or None. Received: {name}={value!r}")
