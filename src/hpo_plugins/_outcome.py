"""How an objective's end becomes exactly one ``tell``: its value or result dict, pruning,
an exception, an interruption, a lost worker; and the log line of each trial's end."""

from __future__ import annotations

import contextvars
import logging
import math
import traceback
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import (
    DIVERGED_ATTR,
    LOST_ATTR,
    MAXIMISED_LOSS_ATTR,
    Direction,
    FrozenTrial,
    TrialState,
)
from hpo_plugins._numbers import read_number
from hpo_plugins._results import ResultDict, read_result_dict, store_other_keys
from hpo_plugins._sigterm import (
    INTERRUPTED_BY_USER,
    exception_text,
    exit_as_sigterm,
    sigterm_reason,
    stopped_by_sigterm,
)
from hpo_plugins.exceptions import (
    StudyNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
)

if TYPE_CHECKING:
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial


__all__ = ["ENDS_LOGGED_BY_LAUNCHER", "NOTHING_REPORTED_ATTR", "REASON_CHARS", "ended_elsewhere",
           "fail_if_running", "shortened", "tell_exception", "tell_lost", "tell_raised_pruned",
           "tell_result", "tell_stopped", "tell_trial"]

#: The run loop's logger: users (and the examples) quiet the per-trial lines by this name.
_logger = logging.getLogger("hpo_plugins._optimize")
_TRACEBACK_CHARS = 8000
#: System attribute where an adapter says why a fit reported nothing (no validation ran); the
#: reason of a trial that ends without a value quotes it.
NOTHING_REPORTED_ATTR = "nothing_reported"
#: The longest fail reason stored from an exception's text: Keras and NumPy errors may embed a
#: whole array (hundreds of kilobytes per trial); its start and end are kept.
REASON_CHARS = 2000


def tell_trial(study: Study, trial: Trial, value: float | None = None, *,
               state: TrialState | None = None, fail_reason: str | None = None,
               system_attrs: dict[str, Any] | None = None) -> FrozenTrial:
    """``study.tell`` for a trial this loop runs; a trial failed meanwhile by another process
    keeps that end (see :func:`ended_elsewhere`)."""
    try:
        return study.tell(trial, value, state=state, fail_reason=fail_reason,
                          system_attrs=system_attrs)
    except TrialNotFoundError:
        raise _gone(study, trial) from None
    except TrialFinishedError as exc:
        ended = ended_elsewhere(study, trial)
        if ended is None:
            told = study.storage.get_trial(trial.trial_id)
            raise TrialFinishedError(
                f"Trial {trial.number} was already finished ({told.state.value}, value "
                f"{told.value}) when its objective returned: the objective (or code it calls) "
                f"told it itself. Under optimize/minimize the objective returns its value (or "
                f"raises TrialPruned) and the run loop tells the trial: remove the "
                f"study.tell(...) call from the objective. ({exc})") from None
        return ended


def ended_elsewhere(study: Study, trial: Trial,
                    error: BaseException | None = None) -> FrozenTrial | None:
    """``trial`` as another process failed it while this one ran it, or None (it was not).

    Only a heartbeat check (this process was stopped or frozen past the grace period, and came
    back) or a launcher (its worker looked dead) ends another process's trial, and always as
    FAIL; the trial may already be retried elsewhere. Its end stands: this process's result
    (or the ``error`` its objective raised) is dropped with a warning, and the run goes on
    instead of failing on the finished trial. An objective that told its own trial COMPLETE or
    PRUNED made a mistake to report, not to hide (one that told it FAIL is taken at its word).
    """
    try:
        frozen = study.storage.get_trial(trial.trial_id)
    except TrialNotFoundError:
        raise _gone(study, trial) from None
    if frozen.state is not TrialState.FAIL:
        return None
    raised = f"; its objective then raised {type(error).__name__}: {error}" if error else ""
    _logger.warning("Trial %d was failed elsewhere while this process ran it (%s%s): this "
                    "process's result is dropped.", trial.number, frozen.fail_reason, raised)
    return frozen


def _gone(study: Study, trial: Trial) -> Exception:
    """The error for a trial that vanished from the storage while this run ran it: its study
    was deleted (``delete_study``, ``hpo-plugins delete``), which ends the run."""
    try:
        study.storage.get_study_id(study.study_name)
    except StudyNotFoundError:
        return StudyNotFoundError(
            f"Study {study.study_name!r} was deleted from {study.storage.describe()} while this "
            f"run ran its trial {trial.number}: the run stopped, and the study's trials are "
            f"gone with it. Run again to start the study afresh.")
    return TrialNotFoundError(f"Trial {trial.number} (id {trial.trial_id}) of study "
                              f"{study.study_name!r} vanished from the storage while it ran.")


def fail_if_running(study: Study, trial: Trial, exc: BaseException) -> None:
    """Fail ``trial`` if ``exc`` (a Ctrl-C, most likely) struck outside the objective, where
    the run loop's ``_evaluate`` does not look (starting the heartbeat, reading the result,
    telling it) and left the trial RUNNING: it would be re-queued later as lost, which a trial
    the user interrupted must not be. A trial already told (the usual case) is left alone."""
    try:
        if study.storage.get_trial(trial.trial_id).state is not TrialState.RUNNING:
            return
        if isinstance(exc, KeyboardInterrupt):
            tell_trial(study, trial, state=TrialState.FAIL,
                       fail_reason=f"{INTERRUPTED_BY_USER} (KeyboardInterrupt)")
        elif not isinstance(exc, Exception):
            tell_stopped(study, trial, exc)
    except Exception as error:  # the storage failed too: the run's own exception goes on
        _logger.warning(
            "Could not mark trial %d FAIL after %r (%s: %s). It stays RUNNING until its "
            "heartbeat is older than the grace period; without heartbeats "
            "(heartbeat_interval=None) until you fail it: study.tell(%d, state='FAIL').",
            trial.number, exc, type(error).__name__, error, trial.number)


def tell_stopped(study: Study, trial: Trial, exc: BaseException) -> None:
    """Fail ``trial`` for a ``BaseException`` that is not ``KeyboardInterrupt`` and stops the run.

    Lightning catches Ctrl-C during ``fit`` and calls ``sys.exit(1)``, so the interrupt arrives
    here as ``SystemExit`` with the ``KeyboardInterrupt`` as its context; the reason says so.
    Without this the trial stayed RUNNING until its heartbeat's grace period ran out. A stop by
    SIGTERM is a lost trial instead (:func:`tell_lost`).
    """
    if stopped_by_sigterm(type(exc)):
        tell_lost(study, trial, exc)
        return
    interrupted = isinstance(exc.__context__, KeyboardInterrupt)
    what = exception_text(type(exc), exc)
    reason = (f"{INTERRUPTED_BY_USER} (KeyboardInterrupt, raised again as {what})"
              if interrupted else f"stopped by {what}")
    tell_trial(study, trial, state=TrialState.FAIL, fail_reason=reason)
    _logger.warning("Trial %d marked FAIL (%s); stopping.", trial.number, reason)


def tell_lost(study: Study, trial: Trial, exc: BaseException) -> None:
    """Fail ``trial``, stopped by SIGTERM, as lost, and re-queue it under ``max_retries`` as a
    trial failed by its stale heartbeat would be (:meth:`Study.requeue_lost`): the next run
    retries it, and ``resume_lost_trials`` resumes it from its last checkpoint. A trial that
    another process failed meanwhile was re-queued by that one."""
    reason = sigterm_reason(exc, type(exc))
    exit_as_sigterm(exc)
    try:
        frozen = study.tell(trial, state=TrialState.FAIL, fail_reason=reason,
                            system_attrs={LOST_ATTR: True})
    except TrialFinishedError:
        if ended_elsewhere(study, trial) is None:
            raise
        return  # failed by another process (a launcher), which re-queued it if it may
    _logger.warning("Trial %d marked FAIL (%s); stopping.", trial.number, reason)
    study.requeue_lost(frozen)


def _tell_pruned(study: Study, trial: Trial) -> FrozenTrial:
    _log_end(logging.INFO, "Trial %d pruned at step %s.", trial.number,
                 max(trial.intermediate_values) if trial.intermediate_values else None)
    return tell_trial(study, trial, state=TrialState.PRUNED)


def shortened(text: str, limit: int = REASON_CHARS) -> str:
    """``text``, or its start and end around a note of how much was left out when it is longer
    than ``limit`` characters."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return f"{text[:head]} [... {len(text) - head - tail} characters left out ...] {text[-tail:]}"


def tell_exception(study: Study, trial: Trial, exc: BaseException) -> FrozenTrial:
    """Fail ``trial`` for the exception its objective raised: ``Type: message`` (shortened)
    as the reason, the end of the traceback stored beside it."""
    _explain_optuna_style(exc)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    reason = shortened(" ".join([f"{type(exc).__name__}: {exc}",
                                 *getattr(exc, "__notes__", ())]))
    _log_end(logging.WARNING, "Trial %d failed: %s", trial.number, reason)
    return tell_trial(study, trial, state=TrialState.FAIL, fail_reason=reason,
                      system_attrs={"traceback": text[-_TRACEBACK_CHARS:]})


def tell_raised_pruned(study: Study, trial: Trial) -> FrozenTrial:
    """Tell a trial whose objective raised :class:`TrialPruned`: PRUNED, or FAIL when a NaN
    report (or an adapter) marked it failed and ``should_prune()`` said stop so that the
    training ends at once (FAIL, as ``report()`` documents: a pruned trial ranks among the
    results)."""
    if trial.fail_reason is not None:
        return tell_trial(study, trial, state=TrialState.FAIL, fail_reason=trial.fail_reason)
    return _tell_pruned(study, trial)


def _explain_optuna_style(exc: BaseException) -> None:
    """Add a note to the error of an objective written for Optuna (``trial.suggest_float``).

    Such an objective receives the params dict here and fails with a bare
    ``AttributeError: 'dict' object has no attribute 'suggest_float'``; the note says how the
    two libraries differ, in the trial's reason and in the traceback the user sees.
    """
    if (isinstance(exc, AttributeError) and "'dict' object has no attribute 'suggest_" in str(exc)
            and _OPTUNA_NOTE not in getattr(exc, "__notes__", ())):
        exc.add_note(_OPTUNA_NOTE)


_OPTUNA_NOTE = ("hpo_plugins calls the objective with the sampled parameters (a dict), not with "
                "an Optuna-style trial: declare each parameter in the search space (hp.uniform, "
                "hp.loguniform, hp.choice...) and read it as params['name'] in the objective.")


#: True while a task of a launcher that runs in another process runs here (a joblib or Dask
#: worker): the launcher logs each trial's end where the user set logging up (``RunState``),
#: so the worker, whose logging is not set up, logs it at DEBUG only. Per task: a reused
#: worker process may later run a loop of its own, which logs as usual.
ENDS_LOGGED_BY_LAUNCHER: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hpo_ends_logged_by_launcher", default=False)


def _log_end(level: int, message: str, *args: Any) -> None:
    """Log a trial's end at ``level``, or at DEBUG in a launcher's worker process."""
    _logger.log(logging.DEBUG if ENDS_LOGGED_BY_LAUNCHER.get() else level, message, *args)


def tell_result(study: Study, trial: Trial, result: Any) -> FrozenTrial:
    """Tell ``trial`` what its objective returned (a number, a Hyperopt result dict, None),
    or the state a mark or a NaN report gave it (see :func:`_interpret`)."""
    if trial.fail_reason is not None:
        return tell_trial(study, trial, state=TrialState.FAIL, fail_reason=trial.fail_reason)
    if trial.pruned:
        return _tell_pruned(study, trial)
    # a maximising study given Hyperopt's "loss" (which Hyperopt minimises): marked, so that
    # the calling process warns once per run (see Study.optimize), wherever the trial ran
    marks = ({MAXIMISED_LOSS_ATTR: True} if isinstance(result, dict) and "loss" in result
             and study.direction is Direction.MAXIMIZE else None)
    if isinstance(result, dict):
        result = read_result_dict(result)
        store_other_keys(trial, result.others)
    value, failure, diverged = _interpret(result, trial)
    if failure is not None:
        _log_end(logging.WARNING, "Trial %d failed: %s", trial.number, failure)
        # a NaN or an infinity (a diverged training) says something of the parameters
        return tell_trial(study, trial, state=TrialState.FAIL, fail_reason=failure,
                          system_attrs={DIVERGED_ATTR: True} if diverged else None)
    frozen = tell_trial(study, trial, value, system_attrs=marks)
    _log_end(logging.INFO, "Trial %d finished with value %.6g.", trial.number, value)
    return frozen


def _interpret(result: Any, trial: Trial) -> tuple[float, str | None, bool]:
    """Turn what the objective returned into (value, failure reason or None, diverged): the
    last is True when the failure is a NaN or an infinity (directly, as a dict's ``loss`` or
    ``value``, or as the last report ``None`` stands for)."""
    if isinstance(result, ResultDict):
        if result.failure is not None:
            return math.nan, result.failure, False
        result = result.value
    if result is None:
        if trial.last_value is None:
            why = trial.system_attrs.get(NOTHING_REPORTED_ATTR)  # an adapter saw why
            return math.nan, ("the objective returned None and reported no value; return a "
                              "number, call trial.report(), or let an adapter's HPOCallback "
                              "report (it reports after each validation: check that one "
                              "ran)" + (f". {why}" if isinstance(why, str) else "")), False
        result = trial.last_value
    number, what = read_number(result)
    if number is None:
        return math.nan, f"the objective returned {what}; expected a number", False
    if not math.isfinite(number):
        return math.nan, f"the objective returned {number!r}", True
    return number, None, False
