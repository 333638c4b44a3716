"""Study callbacks that end a run early: no progress for a while, a good enough value, or
trials that keep failing.

Hyperopt passes such rules to ``fmin`` as ``early_stop_fn`` and ``loss_threshold``; Ray Tune
has stoppers; Keras Tuner stops after ``max_consecutive_failed_trials``. Here they are
ordinary study callbacks, ``callback(study, frozen_trial)``, called after each trial:
``minimize(..., callbacks=[NoImprovementStop(20)])``. Each one calls
:meth:`Study.stop <hpo_plugins.Study.stop>`, so trials already running finish and are recorded,
and the call returns (or, for :class:`FailureStop`, raises). They keep no state of their own:
each decision is read from the study's finished trials, so a resumed study and parallel
workers decide alike.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from hpo_plugins._checks import check_bool, check_int, check_real
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins._sigterm import stopped_from_outside
from hpo_plugins._text import clip
from hpo_plugins.exceptions import TooManyFailuresError

if TYPE_CHECKING:
    from hpo_plugins.study import Study

__all__ = ["FailureStop", "NoImprovementStop", "ThresholdStop"]

_logger = logging.getLogger(__name__)


class NoImprovementStop:
    """Stop once ``patience`` trials in a row have finished without a better value.

    A value counts as better when it beats the best before it by more than ``min_delta`` (in
    the study's direction). Trials count in the order of their numbers; pruned and failed ones
    count as trials without improvement (they cost time, as Hyperopt's ``no_progress_loss``
    counts every evaluation). Nothing is stopped before the first COMPLETE trial.

    Args:
        patience: Finished trials without improvement that end the run (Hyperopt's
            ``iteration_stop_count``).
        min_delta: The smallest change that counts as an improvement (an absolute amount,
            where Hyperopt's ``percent_increase`` is relative), >= 0.
    """

    def __init__(self, patience: int, *, min_delta: float = 0.0) -> None:
        self.patience = check_int("patience", patience, minimum=1)
        self.min_delta = check_real("min_delta", min_delta, low=0.0)

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        finished = study.get_trials(["COMPLETE", "PRUNED", "FAIL"])
        since = self.trials_since_improvement(finished, study.direction)
        if since is not None and since >= self.patience:
            _logger.info("Stopping: %d trials in a row without improving the best value by "
                         "more than %g (NoImprovementStop).", since, self.min_delta)
            study.stop()

    def trials_since_improvement(self, finished: list[FrozenTrial],
                                 direction: Direction) -> int | None:
        """How many of ``finished`` came after the last improvement; None before any value."""
        sign = 1.0 if direction is Direction.MINIMIZE else -1.0
        best, since = math.inf, None
        for frozen in sorted(finished, key=lambda t: t.number):
            value = frozen.value if frozen.state is TrialState.COMPLETE else None
            if value is not None and math.isfinite(value) and (
                    since is None or sign * value < best - self.min_delta):
                best, since = sign * value, 0
            elif since is not None:
                since += 1
        return since

    def __repr__(self) -> str:
        return f"NoImprovementStop(patience={self.patience}, min_delta={self.min_delta:g})"


class ThresholdStop:
    """Stop once a COMPLETE trial reaches ``value`` (at or below it when minimising, at or above
    it when maximising): Hyperopt's ``loss_threshold``."""

    def __init__(self, value: float) -> None:
        self.value = check_real("value", value, low=-math.inf)

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        if trial.state is not TrialState.COMPLETE or trial.value is None:
            return
        reached = (trial.value <= self.value if study.direction is Direction.MINIMIZE
                   else trial.value >= self.value)
        if reached:
            _logger.info("Stopping: trial %d reached %g (ThresholdStop(%g)).", trial.number,
                         trial.value, self.value)
            study.stop()

    def __repr__(self) -> str:
        return f"ThresholdStop({self.value:g})"


class FailureStop:
    """End the run once ``max_failures`` trials in a row have failed: a broken set-up
    (a wrong data path, a model that cannot be built, a command that exits at once) under
    ``catch=``, or workers that keep dying, would otherwise fail every remaining trial.

    Trials count in the order of their numbers: the streak runs from the highest-numbered
    failed trial back to the last trial before it that did not fail (COMPLETE, PRUNED, or
    still RUNNING or WAITING: a trial running in another worker breaks it, as it may yet
    succeed), so a parallel run stops where the same trials run one by one would. Failures of
    every kind count, a diverged (NaN) result and a lost worker too, except the trials that a
    stop of the run failed (Ctrl-C, SIGTERM, SIGHUP): they say nothing about the set-up, so
    they are skipped, neither counted nor breaking the streak. When the streak reaches
    ``max_failures`` the run starts no new trial, lets the trials other workers are running
    finish, and then ``optimize`` raises :class:`~hpo_plugins.exceptions.TooManyFailuresError` (with
    ``error=False`` it logs a warning and returns). As Keras Tuner's
    ``max_consecutive_failed_trials`` (default 3), but kept in the study, not in the callback:
    a study that ended so stops again at its next failure when run again, and goes on once a
    trial succeeds.

    Args:
        max_failures: Failed trials in a row that end the run, >= 1.
        error: Raise :class:`TooManyFailuresError` from ``optimize`` (True) or return after a
            warning (False).
    """

    def __init__(self, max_failures: int = 3, *, error: bool = True) -> None:
        self.max_failures = check_int("max_failures", max_failures, minimum=1)
        self.error = check_bool("error", error)

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        if trial.state is not TrialState.FAIL or study.stop_requested:
            return
        streak = self.failures_in_a_row(study.trials)
        if len(streak) < self.max_failures:
            return
        message = (
            f"{failed_in_a_row([t.number for t in streak])}, so the run stopped ({self!r}); "
            f"the last one: "
            f"{_one_line(streak[-1].fail_reason or 'no reason stored')}. Fix the cause (each "
            f"trial's reason: hpo-plugins trials --study {study.study_name}, or "
            f"study.trials_dataframe()), or give FailureStop a larger max_failures.")
        if self.error:
            study.stop(error=TooManyFailuresError(message, [t.number for t in streak]))
        else:
            _logger.warning("%s", message)
            study.stop()

    @staticmethod
    def failures_in_a_row(trials: list[FrozenTrial]) -> list[FrozenTrial]:
        """The FAIL trials up to the highest-numbered one of ``trials``, back to the last
        trial before it that did not fail (in any state, a running one too), by number; a
        trial failed by a stop of the run (Ctrl-C, SIGTERM) is skipped."""
        ordered = sorted((t for t in trials
                          if not (t.state is TrialState.FAIL
                                  and stopped_from_outside(t.fail_reason))),
                         key=lambda t: t.number)
        last = max((t.number for t in ordered if t.state is TrialState.FAIL), default=-1)
        streak: list[FrozenTrial] = []
        for frozen in ordered:
            if frozen.number > last:
                break
            if frozen.state is TrialState.FAIL:
                streak.append(frozen)
            else:
                streak = []
        return streak

    def __repr__(self) -> str:
        error = "" if self.error else ", error=False"
        return f"FailureStop({self.max_failures}{error})"


def numbers_text(trial_numbers: list[int], most: int = 6) -> str:
    """``3, 4, 5`` or, for a long streak, ``3, 4, ..., 11, 12``."""
    numbers = [str(n) for n in trial_numbers]
    if len(numbers) > most:
        numbers = [*numbers[:2], "...", *numbers[-2:]]
    return ", ".join(numbers)


def failed_in_a_row(trial_numbers: list[int]) -> str:
    """``3 trials in a row failed (trials 3, 4, 5)``, or ``Trial 3 failed`` for one."""
    if len(trial_numbers) == 1:
        return f"Trial {trial_numbers[0]} failed"
    return (f"{len(trial_numbers)} trials in a row failed (trials "
            f"{numbers_text(trial_numbers)})")


def _one_line(reason: str, most: int = 300) -> str:
    """A stored fail reason's first line, cut to ``most`` characters."""
    return clip(reason.strip().splitlines()[0] if reason.strip() else reason, most)
