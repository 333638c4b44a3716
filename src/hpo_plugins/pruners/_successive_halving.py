"""Asynchronous successive halving (ASHA), decided from the trials' curves alone."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from hpo_plugins._checks import check_int
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.pruners._curves import CurveMemo, curve_memo
from hpo_plugins.pruners._median import peers_of

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
        >>> from hpo_plugins import Direction, FrozenTrial, TrialState
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
        memo = curve_memo(self)
        decision = self.decide(trial, others, direction, memo)
        memo.forget_others(others)
        return decision

    def decide(self, trial: FrozenTrial, others: Sequence[FrozenTrial], direction: Direction,
               memo: CurveMemo) -> bool:
        """:meth:`prune` with the curves of ``memo`` (Hyperband's, shared by its brackets)."""
        mine = memo.curve(trial)
        step = mine.last_step
        if step is None:
            return False
        others = peers_of(trial, others)
        first_rung = self._first_rung(others, memo)
        if first_rung is None:
            return False
        rungs = rungs_between(mine.previous_step, step, first_rung, self.reduction_factor)
        if not rungs:
            return False
        return trial.number in self._cut_by_last_report([*others, trial], memo, trial.number,
                                                        rungs[-1], first_rung, direction)

    def _cut_by_last_report(self, population: Sequence[FrozenTrial], memo: CurveMemo,
                            current: int, top: int, first_rung: int,
                            direction: Direction) -> set[int]:
        """The numbers of the trials of ``population`` (PRUNED ones, and trial ``current``)
        that lost a rung (up to ``top``) that their last report crossed, rung by rung from the
        lowest.

        One report may cross several rungs (reports every 250 batches cross rungs 1, 3, 9,
        27, 81 and 243 at once). A trial cut at a lower rung by such a report never reached
        the higher ones: it does not count there, so each rung judges the survivors of the
        one below, as Optuna's pruner, which records each rung in turn, does. (Counting every
        trial whose curve passes a rung kept far more than 1/reduction_factor at the higher
        rungs: 41 of 60 trials pruned at such a first report, against Optuna's 57.) A trial
        whose last report crossed no rung is alive at every rung its curve passes: an earlier
        report crossed them, and it survived them; so is one that is not PRUNED (still
        running or finished: it survived every rung it passed). Where no report crosses two
        rungs, this is exactly the rule of comparing with every trial that passed the rung.
        """
        curves = {t.number: memo.curve(t) for t in population}
        crossed = {number: set(rungs_between(curve.previous_step, curve.last_step,
                                              first_rung, self.reduction_factor))
                   for number, curve in curves.items() if curve.last_step is not None}
        judged = {t.number for t in population if crossed.get(t.number)
                  and (t.state is TrialState.PRUNED or t.number == current)}
        cut: set[int] = set()
        rung = first_rung
        while rung <= top:
            reached = [(t, value) for t in population if t.number not in cut
                       for value in (curves[t.number].first_value_from(rung),)
                       if value is not None]
            kept = self._kept_at(reached, direction)
            cut |= {t.number for t, _ in reached
                    if t.number in judged and rung in crossed[t.number]
                    and t.number not in kept}
            rung *= self.reduction_factor
        return cut

    def _kept_at(self, reached: Sequence[tuple[FrozenTrial, float]],
                 direction: Direction) -> set[int]:
        """The numbers of the trials kept at a rung that ``reached`` (trial, value) reached:
        all (a NaN excepted) while no more than ``bootstrap_count`` did, else those with fewer than
        ``max(1, len(reached) // reduction_factor)`` rivals better (a NaN is never kept and
        never better)."""
        if len(reached) <= self.bootstrap_count:
            return {t.number for t, v in reached if not math.isnan(v)}
        n_kept = max(1, len(reached) // self.reduction_factor)
        sign = direction.sign()
        ordered = sorted(sign * v for _, v in reached if not math.isnan(v))
        return {t.number for t, v in reached
                if not math.isnan(v) and bisect.bisect_left(ordered, sign * v) < n_kept}

    def _first_rung(self, others: Sequence[FrozenTrial], memo: CurveMemo) -> int | None:
        if isinstance(self.min_resource, int):
            min_resource = self.min_resource
        else:
            longest = longest_complete_curve(others, memo)
            if longest is None:
                return None
            min_resource = max(1, longest // 100)
        return min_resource * self.reduction_factor ** self.min_early_stopping_rate


def rungs_between(previous: int, step: int, first_rung: int, reduction_factor: int) -> list[int]:
    """The rungs ``r`` with ``previous < r <= step``: the ones a report at ``step`` crosses."""
    rungs, rung = [], first_rung
    while rung <= step:
        if rung > previous:
            rungs.append(rung)
        rung *= reduction_factor
    return rungs


def longest_complete_curve(trials: Sequence[FrozenTrial], memo: CurveMemo) -> int | None:
    """The largest last step among COMPLETE trials with a curve, or None if there is none."""
    return memo.longest_complete(trials)
