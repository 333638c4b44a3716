"""The median stopping rule, plus the small curve helpers every pruner here shares."""

from __future__ import annotations

import math
import numbers
import statistics
from collections.abc import Sequence
from typing import Any

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners._base import Pruner

__all__ = ["MedianPruner"]


class MedianPruner(Pruner):
    """Stop a trial whose best value so far is worse than the median of the others at that step.

    The median stopping rule of Google Vizier (Golovin et al., 2017), made pure. After each
    report at step ``t`` the trial is pruned when all of these hold, checked in this order:

    1. At least ``n_startup_trials`` other trials are COMPLETE.
    2. ``t >= n_warmup_steps``.
    3. ``t`` is a decision step: the first report at or after one of the checkpoints
       ``n_warmup_steps + k * interval_steps`` (``k = 0, 1, ...``), i.e. the previous report
       was before the latest checkpoint ``<= t``. With a report at every step this is exactly
       ``(t - n_warmup_steps) % interval_steps == 0``; with sparser reports (every 2 epochs, say)
       a checkpoint that falls between two reports is checked at the next one, never skipped.
    4. The value reported at ``t`` is NaN: the trial is pruned, whatever the others did (a NaN
       loss is almost always divergence, and a diverged network does not recover; the best value
       so far would otherwise hide it until the end). Steps 5-6 are skipped.
    5. At least ``n_min_trials`` other trials reported at exactly step ``t`` and have a finite
       best value up to ``t``; otherwise the trial continues.
    6. The trial's best value over its steps ``<= t`` (min when minimising, max when maximising,
       NaN reports ignored) is strictly worse than the median of those other trials' best
       values over their steps ``<= t``. A tie with the median continues.

    The reference set in 5-6 is every other trial that reported at step ``t``, *whatever its
    state*: COMPLETE, PRUNED, RUNNING and FAIL alike. A value at step ``t`` is final once reported,
    so a RUNNING trial past ``t`` is as informative as a finished one; in an asynchronous run with
    many workers, ignoring it would compare early trials with nobody. Keeping PRUNED (and FAIL)
    trials avoids survivor bias: a median over COMPLETE trials only is a median over the trials
    that survived pruning, which tightens the rule as the study goes on. (Optuna's
    ``MedianPruner`` uses COMPLETE trials only.) ``n_startup_trials`` still counts COMPLETE
    trials: it says when the pruner switches on, not who is compared.

    Args:
        n_startup_trials: No pruning until this many other trials are COMPLETE.
        n_warmup_steps: No pruning at steps below this one.
        interval_steps: Distance between checkpoints, counted from ``n_warmup_steps``.
        n_min_trials: Fewest other trials reporting at the step for a decision.

    Raises:
        ConfigurationError: An argument is not an integer in its range.

    Example:
        >>> from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
        >>> done = [FrozenTrial(trial_id=i, number=i, state=TrialState.COMPLETE, value=v,
        ...                     intermediate_values={0: v}) for i, v in enumerate([.2, .4, .6])]
        >>> me = FrozenTrial(trial_id=3, number=3, state=TrialState.RUNNING,
        ...                  intermediate_values={0: 0.5})
        >>> MedianPruner(n_startup_trials=3).prune(me, done, Direction.MINIMIZE)  # 0.5 > 0.4
        True
    """

    def __init__(self, *, n_startup_trials: int = 5, n_warmup_steps: int = 0,
                 interval_steps: int = 1, n_min_trials: int = 1) -> None:
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=0)
        self.n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, minimum=0)
        self.interval_steps = check_int("interval_steps", interval_steps, minimum=1)
        self.n_min_trials = check_int("n_min_trials", n_min_trials, minimum=1)

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """True if the trial's best value so far is worse than the others' median at its step."""
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        others = peers_of(trial, others)
        if sum(t.state is TrialState.COMPLETE for t in others) < self.n_startup_trials:
            return False
        if not self._is_decision_step(trial, step):
            return False
        if math.isnan(trial.intermediate_values[step]):
            return True
        reference = [best_up_to(t, step, direction) for t in others
                     if step in t.intermediate_values]
        reference = [v for v in reference if not math.isnan(v)]
        if len(reference) < self.n_min_trials:
            return False
        return direction.better(statistics.median(reference), best_up_to(trial, step, direction))

    def _is_decision_step(self, trial: FrozenTrial, step: int) -> bool:
        checkpoint = step - (step - self.n_warmup_steps) % self.interval_steps
        return previous_step(trial) < checkpoint


def best_up_to(trial: FrozenTrial, step: int, direction: Direction) -> float:
    """Best non-NaN value ``trial`` reported at steps ``<= step``, or NaN if there is none."""
    values = [v for s, v in trial.intermediate_values.items() if s <= step and not math.isnan(v)]
    if not values:
        return math.nan
    return min(values) if direction is Direction.MINIMIZE else max(values)


# Helpers shared by the pruners of this package (``_base.py`` would be their natural home).

def previous_step(trial: FrozenTrial) -> int:
    """The step of the report before the latest one, or -1 if the latest is the first."""
    steps = sorted(trial.intermediate_values)
    return steps[-2] if len(steps) > 1 else -1


def peers_of(trial: FrozenTrial, others: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """``others`` without ``trial`` itself, in case a caller passed the whole study."""
    return [t for t in others if t.number != trial.number]


def check_int(name: str, value: Any, *, minimum: int, auto: bool = False) -> Any:
    """``value`` as a Python int (numpy integers too) if it is ``>= minimum``, or ``"auto"``
    where allowed; else a ConfigurationError.

    ``bool`` is refused although it is an ``int``: ``True`` is never a meaningful count.
    """
    if auto and isinstance(value, str) and value == "auto":
        return value
    if (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and int(value) >= minimum):
        return int(value)
    expected = f"an integer >= {minimum}" + (' or "auto"' if auto else "")
    raise ConfigurationError(f"Expected `{name}` to be {expected}. Received: {name}={value!r}")
