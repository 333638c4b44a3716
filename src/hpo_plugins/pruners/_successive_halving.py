"""Asynchronous successive halving (ASHA), decided from the trials' curves alone."""

from __future__ import annotations

import math
from collections.abc import Sequence

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.pruners._median import check_int, peers_of, previous_step

__all__ = ["SuccessiveHalvingPruner"]


class SuccessiveHalvingPruner(Pruner):
    """Asynchronous successive halving (Li et al., 2018, "A System for Massively Parallel
    Hyperparameter Tuning"), as a pure function of the curves.

    Rung ``k = 0, 1, ...`` sits at step ``r_k = min_resource * reduction_factor **
    (min_early_stopping_rate + k)``. The rules, for a report at step ``t`` whose previous report
    was at step ``p`` (``-1`` for the first report):

    * **When.** The trial is checked at every rung with ``p < r_k <= t``, lowest first, and is
      pruned at the first one it fails. So each rung is checked exactly once, at the first report
      at or after it; a report that skips rungs (``p=2``, ``t=30`` with rungs 3, 9, 27) is checked
      at all of them in that one call. Other reports never prune.
    * **Rung value.** A trial's value at rung ``r`` is the value it reported at its first step
      ``>= r``; a trial *reached* the rung if it reported at any step ``>= r``, whatever its state
      (COMPLETE, PRUNED, RUNNING, FAIL). This is the value the trial itself has when it is checked
      (its latest report), it is measured after at least ``r`` steps of training, and every other
      trial's rung value is computed the same way from its own curve, so the competition is the
      same in every process. A trial that skipped the rung competes with its later value.
    * **Who is kept.** Let ``n`` be the number of trials that reached the rung, this one included.
      The first ``bootstrap_count`` of them (``n <= bootstrap_count``) are kept. Otherwise the
      trial is kept if fewer than ``max(1, n // reduction_factor)`` of the others have a strictly
      better rung value (so ties at the boundary are kept). NaN rung values rank last; a trial
      whose own rung value is NaN is pruned at that rung, bootstrap or not.
    * **Start.** With ``min_resource="auto"`` nothing is pruned until a trial is COMPLETE; then
      ``min_resource = max(1, L // 100)`` where ``L`` is the largest last step of the COMPLETE
      trials (it only grows, and stops changing once a full-length trial has finished).

    Why ``max(1, n // reduction_factor)``: ASHA promotes the top ``floor(n / eta)`` of a rung and,
    while a rung holds fewer than ``eta`` configurations, promotes none and starts a new one
    instead, *pausing* the others until they can be promoted later. Here a trial cannot be paused
    and resumed: the decision is final and made on arrival. Pruning the first ``eta - 1`` arrivals
    of every rung unconditionally would throw away possibly the best configurations, so while
    ``n < eta`` a trial continues only if it is the best so far. From ``n >= eta`` on, the rule is
    ASHA's ``floor``; ``ceil`` would keep noticeably more than ``1/eta`` of the small rungs. Over
    many arrivals in random order each rung keeps about ``1/eta`` of its trials.

    Args:
        min_resource: The step unit of the rungs, or ``"auto"`` (see above).
        reduction_factor: ``eta``: keep about one trial in ``eta`` at each rung.
        min_early_stopping_rate: ``s``: the first rung sits at ``min_resource * eta ** s``.
        bootstrap_count: The first this many trials to reach a rung are always kept.

    Raises:
        ConfigurationError: An argument is not an integer in its range (or ``"auto"``).

    Example:
        >>> from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
        >>> def at_rung(number, value):  # reports at steps 0 and 1 (rung 0 is step 1)
        ...     return FrozenTrial(trial_id=number, number=number, state=TrialState.RUNNING,
        ...                        intermediate_values={0: 1.0, 1: value})
        >>> others = [at_rung(i, v) for i, v in enumerate([0.1, 0.5, 0.9])]
        >>> pruner = SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        >>> pruner.prune(at_rung(3, 0.3), others, Direction.MINIMIZE)  # 4 // 3 = 1 kept: 0.1
        True
        >>> pruner.prune(at_rung(3, 0.05), others, Direction.MINIMIZE)
        False
    """

    def __init__(self, *, min_resource: int | str = "auto", reduction_factor: int = 3,
                 min_early_stopping_rate: int = 0, bootstrap_count: int = 0) -> None:
        self.min_resource = check_int("min_resource", min_resource, minimum=1, auto=True)
        self.reduction_factor = check_int("reduction_factor", reduction_factor, minimum=2)
        self.min_early_stopping_rate = check_int("min_early_stopping_rate",
                                                 min_early_stopping_rate, minimum=0)
        self.bootstrap_count = check_int("bootstrap_count", bootstrap_count, minimum=0)

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """True if the latest report crossed a rung at which the trial is not in the top."""
        step = trial.last_step
        if step is None:
            return False
        others = peers_of(trial, others)
        first_rung = self._first_rung(others)
        if first_rung is None:
            return False
        rungs = rungs_between(previous_step(trial), step, first_rung, self.reduction_factor)
        return any(not self._is_kept(trial, others, r, direction) for r in rungs)

    def _first_rung(self, others: Sequence[FrozenTrial]) -> int | None:
        if isinstance(self.min_resource, int):
            min_resource = self.min_resource
        else:
            longest = longest_complete_curve(others)
            if longest is None:
                return None
            min_resource = max(1, longest // 100)
        return min_resource * self.reduction_factor ** self.min_early_stopping_rate

    def _is_kept(self, trial: FrozenTrial, others: Sequence[FrozenTrial], rung: int,
                 direction: Direction) -> bool:
        value = rung_value(trial, rung)
        if value is None or math.isnan(value):
            return False
        rivals = [v for v in (rung_value(t, rung) for t in others) if v is not None]
        n_reached = len(rivals) + 1
        if n_reached <= self.bootstrap_count:
            return True
        n_kept = max(1, n_reached // self.reduction_factor)
        n_better = sum(not math.isnan(v) and direction.better(v, value) for v in rivals)
        return n_better < n_kept


def rungs_between(previous: int, step: int, first_rung: int, reduction_factor: int) -> list[int]:
    """The rungs ``r`` with ``previous < r <= step``: the ones a report at ``step`` crosses."""
    rungs, rung = [], first_rung
    while rung <= step:
        if rung > previous:
            rungs.append(rung)
        rung *= reduction_factor
    return rungs


def rung_value(trial: FrozenTrial, rung: int) -> float | None:
    """The value at the trial's first step ``>= rung``, or None if it never got there."""
    steps = [s for s in trial.intermediate_values if s >= rung]
    return trial.intermediate_values[min(steps)] if steps else None


def longest_complete_curve(trials: Sequence[FrozenTrial]) -> int | None:
    """The largest last step among COMPLETE trials with a curve, or None if there is none."""
    steps = [t.last_step for t in trials if t.state is TrialState.COMPLETE]
    return max((s for s in steps if s is not None), default=None)
