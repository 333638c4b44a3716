"""The run loop: a thin loop over the public ``ask`` and ``tell``.

:func:`run_one` runs exactly one trial (ask, call the objective under the trial's context and
heartbeat, tell) and is what every launcher's worker calls. :func:`run` loops it in this process
until a limit is reached, or hands the work to a launcher.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import numbers
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import (
    DIVERGED_ATTR,
    LOST_ATTR,
    MAXIMISED_LOSS_ATTR,
    Direction,
    FrozenTrial,
    TrialState,
)
from hpo_plugins._numbers import optional_count, read_number
from hpo_plugins._process import process_record
from hpo_plugins._results import ResultDict, read_result_dict, store_other_keys
from hpo_plugins._signature import two_argument_problem
from hpo_plugins.exceptions import (
    ConfigurationError,
    SearchSpaceExhausted,
    StudyFull,
    StudyNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
    TrialPruned,
    is_trial_pruned,
)
from hpo_plugins.storages._base import stale_after

if TYPE_CHECKING:
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial

__all__ = ["ENDS_LOGGED_BY_LAUNCHER", "NOTHING_REPORTED_ATTR", "STOPS_THE_RUN",
           "TIMED_OUT_WAITING", "RunSettings", "exception_text", "exit_as_sigterm",
           "launcher_for", "progress", "run", "run_one", "run_sequential", "shortened",
           "sigterm_reason", "stopped_by_sigterm", "tell_raised_pruned"]

_logger = logging.getLogger(__name__)
_TRACEBACK_CHARS = 8000
#: System attribute where an adapter says why a fit reported nothing (no validation ran); the
#: reason of a trial that ends without a value quotes it.
NOTHING_REPORTED_ATTR = "nothing_reported"
#: The longest fail reason stored from an exception's text: Keras and NumPy errors may embed a
#: whole array (hundreds of kilobytes per trial); its start and end are kept.
REASON_CHARS = 2000
#: The attribute, True, of a signal handler that stops the run by raising (the CLI's SIGTERM
#: and SIGHUP one): a parallel run wraps only such handlers, and Python's default Ctrl-C one,
#: to give the workers' script-mode commands their grace first. A handler that returns (a
#: user's "stop after this trial" flag) would leave the frozen workers waited on for ever.
STOPS_THE_RUN = "hpo_plugins_stops_the_run"
#: The FAIL reason of a trial of a seeded parallel run whose ask waited for the trials before
#: it until past the run's ``timeout``: it is not run.
TIMED_OUT_WAITING = ("not run: the run's timeout passed while it waited for the trials before "
                     "it (a seeded parallel run samples each trial after those)")
_FULL_POLL_SECONDS = 1.0  # how often a full study is checked for room while trials still run
#: What ``record_heartbeat`` raises when the trial's heartbeat is over for good: the trial is
#: finished (told, or failed elsewhere as stale), or gone with its study, or not RUNNING.
_TRIAL_OVER = (TrialFinishedError, TrialNotFoundError, StudyNotFoundError, ConfigurationError)
#: The exceptions that mean "this process got SIGTERM", by module and name: Lightning's (its
#: training loop raises it once its own handler saw the signal) and the command line's
#: (``hpo_plugins.cli``, which the core must not import). See :func:`stopped_by_sigterm`.
_SIGTERM_EXCEPTIONS = frozenset({
    "lightning.pytorch.utilities.exceptions.SIGTERMException",
    "pytorch_lightning.utilities.exceptions.SIGTERMException",
    "hpo_plugins.cli._base.Terminated",
})


@dataclass(frozen=True)
class RunSettings:
    """Validated options of one ``optimize`` call (picklable, so launchers can ship it)."""

    n_trials: int | None
    max_trials: int | None
    timeout: float | None
    catch: tuple[type[BaseException], ...]
    callbacks: tuple[Callable[[Study, FrozenTrial], None], ...]
    show_progress_bar: bool

    @classmethod
    def build(cls, study: Study, *, n_trials: int | None, max_trials: int | None,
              timeout: float | None,
              catch: Iterable[type[BaseException]] | type[BaseException],
              callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None,
              show_progress_bar: bool | None) -> RunSettings:
        """Check every option; raise ConfigurationError with the fix when one is wrong."""
        finite = study.space is not None and study.sampler.finite
        return cls.check(n_trials=n_trials, max_trials=max_trials, timeout=timeout, catch=catch,
                         callbacks=callbacks, show_progress_bar=show_progress_bar,
                         finite=finite)

    @classmethod
    def check(cls, *, n_trials: Any, max_trials: Any, timeout: Any, catch: Any, callbacks: Any,
              show_progress_bar: Any, finite: bool) -> RunSettings:
        """:meth:`build` without a study: ``finite`` says whether the sampler can run out
        (then no limit is needed). ``hpo.minimize`` calls it before it creates the study, so
        bad options store nothing."""
        n_trials = optional_count("n_trials", n_trials)
        max_trials = optional_count("max_trials", max_trials)
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, numbers.Real)
                                    or not float(timeout) > 0):
            raise ConfigurationError(
                f"Expected `timeout` to be a number of seconds > 0 or None. Received: "
                f"timeout={timeout!r}."
            )
        if n_trials is None and max_trials is None and timeout is None and not finite:
            raise ConfigurationError(
                "Expected a limit: pass n_trials= (trials to run now), max_trials= (the study's "
                "total) or timeout= (seconds). Received none, so the study would never stop."
            )
        if show_progress_bar is not None and not isinstance(show_progress_bar, bool):
            raise ConfigurationError(
                f"Expected `show_progress_bar` to be True, False or None (on when stderr is a "
                f"terminal). Received: show_progress_bar={show_progress_bar!r}."
            )
        return cls(n_trials, max_trials, None if timeout is None else float(timeout),
                   _catch_tuple(catch), _callback_tuple(callbacks),
                   sys.stderr.isatty() if show_progress_bar is None else show_progress_bar)

    @property
    def budget(self) -> int | None:
        """Most trials this call may start: ``n_trials`` (``max_trials`` is enforced by the
        storage), or ``max_trials`` when only it is given, for the progress bar's total."""
        return self.n_trials if self.n_trials is not None else self.max_trials

    def should_stop(self, started: int, failed: int, elapsed: float) -> bool:
        """Whether a call that started and failed that many trials must start no more.

        Without ``n_trials`` a call runs until the storage says the study is full; failed trials
        do not count toward ``max_trials``, so a call also stops after ``max_trials`` failures,
        and an objective that always fails cannot loop forever.
        """
        if self.timeout is not None and elapsed >= self.timeout:
            return True
        if self.n_trials is not None:
            return started >= self.n_trials
        return self.max_trials is not None and failed >= self.max_trials


def _catch_tuple(catch: Iterable[type[BaseException]] | type[BaseException]
                 ) -> tuple[type[BaseException], ...]:
    if catch is None:
        return ()
    if isinstance(catch, str):  # iterated, it would be refused letter by letter
        raise ConfigurationError(
            f"Expected `catch` to be an exception class or a tuple of them, such as "
            f"catch=(ValueError, RuntimeError). Received the text catch={catch!r}: pass the "
            f"class itself, without quotes.")
    try:
        items = (catch,) if isinstance(catch, type) else tuple(catch)
    except TypeError:  # not iterable, e.g. an exception instance
        items = (catch,)  # type: ignore[assignment]
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigurationError(
                f"Expected `catch` to be an exception class or a tuple of them, such as "
                f"catch=(ValueError, RuntimeError). Received: {item!r}."
            )
    return items


def _callback_tuple(callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None
                    ) -> tuple[Callable[[Study, FrozenTrial], None], ...]:
    if callbacks is None:
        return ()
    if callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise ConfigurationError(
            f"Expected `callbacks` to be a list of functions fn(study, frozen_trial). Received "
            f"{callbacks!r} itself; wrap it in a list: callbacks=[...]."
        )
    items = tuple(callbacks)
    for item in items:
        _check_callback(item)
    return items


def _check_callback(callback: Any) -> None:
    """Refuse, before any trial, a callback that cannot be called as ``callback(study,
    frozen_trial)``: not callable, or of another signature (``lambda t: ...``). A callable
    whose signature Python cannot read is let through."""
    if not callable(callback):
        raise ConfigurationError(
            f"Expected `callbacks` to hold functions fn(study, frozen_trial). Received: "
            f"{callback!r} (a {type(callback).__name__})."
        )
    if (getattr(callback, "__module__", None) or "").startswith("hyperopt."):
        raise ConfigurationError(
            f"Expected each of `callbacks` to be a function fn(study, frozen_trial). Received "
            f"Hyperopt's {getattr(callback, '__qualname__', callback)!r}, which takes Hyperopt's "
            f"Trials object (an early_stop_fn). Use a stopper of hpo_plugins.stoppers, e.g. "
            f"callbacks=[NoImprovementStop(20)] for no_progress_loss(20), or "
            f"ThresholdStop(0.1) for loss_threshold=0.1; or write a callback that calls "
            f"study.stop().")
    problem = two_argument_problem(callback)
    if problem is not None:
        raise ConfigurationError(
            f"Expected each of `callbacks` to be callable with two arguments, "
            f"fn(study, frozen_trial), called after each trial. Received: {problem}. Accept "
            f"both, e.g. `lambda study, trial: ...`, or bind other arguments with "
            f"functools.partial."
        )


def run(study: Study, objective: Callable[..., Any], settings: RunSettings, *, n_jobs: int = 1,
        launcher: Any = None) -> None:
    """Run trials in this process, or through ``launcher`` (or ``n_jobs`` > 1 workers)."""
    _warn_if_full(study, settings)
    launcher = launcher_for(n_jobs, launcher)
    if launcher is not None:
        launcher.run(study, objective, settings)
        return
    run_sequential(study, objective, settings)


def launcher_for(n_jobs: int, launcher: Any) -> Any:
    """The launcher of a run: ``launcher``; for ``n_jobs`` other than 1 without one, a
    ``JoblibLauncher(n_jobs)``; None: this process. (``hpo.minimize`` builds it before the
    study exists, so that the launcher checks the storage first.)"""
    if launcher is None and n_jobs != 1:
        from hpo_plugins.launchers import JoblibLauncher

        return JoblibLauncher(n_jobs=int(n_jobs))
    return launcher


def _warn_if_full(study: Study, settings: RunSettings) -> None:
    """Warn when ``max_trials`` is already reached by finished trials: the call runs none.

    Only COMPLETE and PRUNED trials are counted: they never leave, so nothing can run. (A study
    full with RUNNING trials may get room back when a dead worker's trial is failed; the loop
    waits for that itself.) A warning, not the loop's INFO record, because the user who passed
    ``n_trials`` with it expects trials to run and would otherwise see nothing happen.
    """
    if settings.max_trials is None:
        return
    finished = study.storage.count_trials(study.study_id,
                                          [TrialState.COMPLETE, TrialState.PRUNED])
    if finished >= settings.max_trials:
        asked = f"n_trials={settings.n_trials} " if settings.n_trials is not None else ""
        _logger.warning(
            "Study %r already holds %d finished trials, max_trials=%d: this call runs none%s. "
            "Raise max_trials to run more, or leave it out to add n_trials to the study.",
            study.study_name, finished, settings.max_trials,
            f" (the {asked.strip()} asked for are not run)" if asked else "")


def run_sequential(study: Study, objective: Callable[..., Any], settings: RunSettings) -> None:
    """Run trials one after another in this process until a limit is reached, or until
    :meth:`Study.stop` is called (from a callback or the objective)."""
    started = time.monotonic()
    deadline = None if settings.timeout is None else time.time() + settings.timeout
    bar = progress(study, settings)
    count = failed = 0
    # where its trials run: a later run on this host fails a trial whose process is gone at
    # once (a kill -9), instead of waiting for its heartbeat to grow stale
    here = {"worker": process_record()}
    try:
        while not settings.should_stop(count, failed, time.monotonic() - started):
            if study.stop_requested:
                _logger.info("Study %r: stop() was called; no new trial starts.",
                             study.study_name)
                break
            frozen = run_one(study, objective, settings, deadline=deadline, system_attrs=here)
            if frozen is None:
                break
            count += 1
            failed += frozen.state is TrialState.FAIL
            if bar is not None:
                bar.update(study, frozen)
    finally:
        if bar is not None:
            bar.close()


def run_one(study: Study, objective: Callable[..., Any], settings: RunSettings, *,
            system_attrs: Mapping[str, Any] | None = None, lag: int | None = None,
            deadline: float | None = None,
            stop: Callable[[], bool] | None = None) -> FrozenTrial | None:
    """Ask one trial, run the objective on it, tell the result; None when nothing is left.

    When ``max_trials`` is reached while trials with heartbeats are still RUNNING, this waits
    for them (see :func:`_room_may_come`): one of them may belong to a worker that died, and
    once its heartbeat is stale it is failed and its place is free again. So re-running a
    script right after a crash completes the study rather than stopping one trial short.

    Args:
        system_attrs: Stored on the trial (launchers record the worker, GPU and run id).
        lag: Passed to :meth:`Study.ask` for deterministic parallel sampling.
        deadline: ``time.time()`` after which no trial starts (the call's ``timeout``).
        stop: Asked before each ``ask`` (also while waiting for room in a full study): True
            when the launcher has stopped the run, so this task starts no trial.

    Raises:
        Exception: The objective's exception, unless its type is in ``settings.catch``.
        KeyboardInterrupt: After the running trial was recorded FAIL.
    """
    full_since: float | None = None
    while True:
        if stop is not None and stop():
            _logger.info("The run was stopped by its launcher: no trial started.")
            return None
        try:
            trial = study.ask(limit=settings.max_trials,
                              heartbeat=study.heartbeat_interval is not None,
                              system_attrs=system_attrs, lag=lag)
            trial.finish_on_error = False  # the loop tells it, whatever the objective raises
            break
        except StudyFull as full:
            announce = full_since is None
            full_since = time.monotonic() if full_since is None else full_since
            if not _room_may_come(study, deadline, full_since, announce=announce,
                                  run_id=(system_attrs or {}).get("run_id")):
                _logger.info("No more trials to run: %s", _sentence(full))
                return None
        except SearchSpaceExhausted as exhausted:
            _logger.info("No more trials to run: %s", _sentence(exhausted))
            return None
    try:
        if trial.waited_for_earlier and deadline is not None and time.time() >= deadline:
            # its sampling waited for earlier trials (a seeded parallel run), maybe for as long
            # as one runs: past the timeout, it must not start its objective now
            _tell(study, trial, state=TrialState.FAIL, fail_reason=TIMED_OUT_WAITING)
            _logger.info("Trial %d not run: %s.", trial.number, TIMED_OUT_WAITING)
            return None
        frozen = _evaluate(study, trial, objective, settings)
    except BaseException as exc:
        _fail_if_running(study, trial, exc)
        raise
    for callback in settings.callbacks:
        callback(study, frozen)
    return frozen


def _room_may_come(study: Study, deadline: float | None, full_since: float, *,
                   announce: bool, run_id: Any = None) -> bool:
    """Wait a moment if a full study may get room back; False when it cannot.

    Room comes back when a RUNNING trial with a heartbeat fails: its worker died, and
    :meth:`Study.ask` fails it once the heartbeat is older than the grace period. So the wait
    lasts at most one grace period and one heartbeat interval from ``full_since`` (when this
    call first found the study full): by then every trial of a dead worker has been failed, and
    the trials still running belong to live workers, which this call need not wait for. Trials
    without heartbeats (asked by hand) are never failed that way and are not waited for. If
    the running trials finish first, the next ``ask`` finds the study full with nothing
    running, and the loop stops.

    ``announce``: log the wait (the first time this call waits). It is a WARNING when a trial
    waited for is not of this call's run (``run_id``, the launcher's tag; a sequential run has
    none): a re-run after a crash waiting for the dead run's trials, up to a grace period
    (minutes), which a command-line user, who sees warnings only, would otherwise take for a
    hang. A worker of a parallel run that waits only for its siblings' last trials, the usual
    end of such a run, logs it at INFO.
    """
    if study.grace_period is None:
        return False
    running = [t for t in study.storage.get_all_trials(study.study_id, (TrialState.RUNNING,))
               if t.last_heartbeat is not None]
    pause = min(_FULL_POLL_SECONDS, study.grace_period / 4)
    # a trial is judged lost after the grace period its own process recorded, if longer
    grace = max((stale_after(t.system_attrs, study.grace_period) for t in running),
                default=study.grace_period)
    longest = grace + (study.heartbeat_interval or 0.0) + pause
    if (not running or time.monotonic() - full_since > longest
            or (deadline is not None and time.time() + pause >= deadline)):
        return False
    if announce:
        foreign = run_id is None or any(t.system_attrs.get("run_id") != run_id for t in running)
        _logger.log(
            logging.WARNING if foreign else logging.INFO,
            "The study holds max_trials trials, %d of them still RUNNING (trials %s). Waiting "
            "until they finish, or until a trial whose worker is gone (no heartbeat for %g s) "
            "is failed and its place runs again (at most that long).", len(running),
            ", ".join(str(t.number) for t in running[:10]), grace)
    time.sleep(pause)
    return True


def _evaluate(study: Study, trial: Trial, objective: Callable[..., Any],
              settings: RunSettings) -> FrozenTrial:
    with _Heartbeat(study, trial), trial:
        try:
            result = objective(trial.params)
        except TrialPruned:
            return tell_raised_pruned(study, trial)
        except KeyboardInterrupt:
            _tell(study, trial, state=TrialState.FAIL,
                  fail_reason="interrupted by the user (KeyboardInterrupt)")
            _logger.warning("Interrupted: trial %d marked FAIL; stopping.", trial.number)
            raise
        except Exception as exc:
            if is_trial_pruned(exc):  # Optuna's TrialPruned: a ported objective's idiom
                return tell_raised_pruned(study, trial)
            # its trial was failed elsewhere meanwhile (see _tell): whatever the objective met
            # then (TrialFinishedError at its next report, most likely), the trial is gone
            ended = _ended_elsewhere(study, trial, exc)
            if ended is not None:
                return ended
            frozen = _tell_exception(study, trial, exc)
            if not isinstance(exc, settings.catch):
                raise
            return frozen
        except BaseException as exc:  # SystemExit, GeneratorExit: never leave the trial RUNNING
            _tell_stopped(study, trial, exc)
            raise
    return _tell_result(study, trial, result)


def _tell(study: Study, trial: Trial, value: float | None = None, *,
          state: TrialState | None = None, fail_reason: str | None = None,
          system_attrs: dict[str, Any] | None = None) -> FrozenTrial:
    """``study.tell`` for a trial this loop runs; a trial failed meanwhile by another process
    keeps that end (see :func:`_ended_elsewhere`)."""
    try:
        return study.tell(trial, value, state=state, fail_reason=fail_reason,
                          system_attrs=system_attrs)
    except TrialNotFoundError:
        raise _gone(study, trial) from None
    except TrialFinishedError as exc:
        ended = _ended_elsewhere(study, trial)
        if ended is None:
            told = study.storage.get_trial(trial.trial_id)
            raise TrialFinishedError(
                f"Trial {trial.number} was already finished ({told.state.value}, value "
                f"{told.value}) when its objective returned: the objective (or code it calls) "
                f"told it itself. Under optimize/minimize the objective returns its value (or "
                f"raises TrialPruned) and the run loop tells the trial: remove the "
                f"study.tell(...) call from the objective. ({exc})") from None
        return ended


def _ended_elsewhere(study: Study, trial: Trial,
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


def stopped_by_sigterm(kind: type[BaseException]) -> bool:
    """Whether an exception of type ``kind`` means that the process got SIGTERM.

    SIGTERM is how a machine is taken away (preemption, a Kubernetes eviction, Slurm,
    ``docker stop``, a plain ``kill``): the trial it stops was lost, not given up by the user,
    so it is re-queued like a trial whose worker died (see :func:`sigterm_reason`). The
    exceptions are known by name (:data:`_SIGTERM_EXCEPTIONS`), so neither Lightning nor the
    command line is imported; a subclass of one counts too.
    """
    return any(f"{cls.__module__}.{cls.__qualname__}" in _SIGTERM_EXCEPTIONS
               for cls in kind.__mro__)


def exception_text(kind: type[BaseException], exc: object = None) -> str:
    """``Name(message)``, or ``Name`` for an exception without a message: how stop reasons
    name what stopped a run, in the run loop and in the launchers alike."""
    return f"{kind.__name__}({exc})" if exc is not None and str(exc) else kind.__name__


def sigterm_reason(exc: BaseException | None, kind: type[BaseException]) -> str:
    """The reason of a trial stopped by SIGTERM (:func:`stopped_by_sigterm`), the same in a
    sequential run and in a parallel one (whose launcher fails its running trials)."""
    name = "SIGTERM"  # the CLI's Terminated names its signal: SIGTERM, or SIGHUP
    if kind.__name__ == "Terminated" and exc is not None and exc.args:
        name = str(exc.args[0]) if str(exc.args[0]).startswith("SIG") else name
    return (f"stopped by {name} ({exception_text(kind, exc)}): counted as lost, like a trial "
            f"whose worker died")


def _fail_if_running(study: Study, trial: Trial, exc: BaseException) -> None:
    """Fail ``trial`` if ``exc`` (a Ctrl-C, most likely) struck outside the objective, where
    :func:`_evaluate` does not look (starting the heartbeat, reading the result, telling it)
    and left the trial RUNNING: it would be re-queued later as lost, which a trial the user
    interrupted must not be. A trial already told (the usual case) is left alone."""
    try:
        if study.storage.get_trial(trial.trial_id).state is not TrialState.RUNNING:
            return
        if isinstance(exc, KeyboardInterrupt):
            _tell(study, trial, state=TrialState.FAIL,
                  fail_reason="interrupted by the user (KeyboardInterrupt)")
        elif not isinstance(exc, Exception):
            _tell_stopped(study, trial, exc)
    except Exception as error:  # the storage failed too: the run's own exception goes on
        _logger.warning(
            "Could not mark trial %d FAIL after %r (%s: %s). It stays RUNNING until its "
            "heartbeat is older than the grace period; without heartbeats "
            "(heartbeat_interval=None) until you fail it: study.tell(%d, state='FAIL').",
            trial.number, exc, type(error).__name__, error, trial.number)


def _tell_stopped(study: Study, trial: Trial, exc: BaseException) -> None:
    """Fail ``trial`` for a ``BaseException`` that is not ``KeyboardInterrupt`` and stops the run.

    Lightning catches Ctrl-C during ``fit`` and calls ``sys.exit(1)``, so the interrupt arrives
    here as ``SystemExit`` with the ``KeyboardInterrupt`` as its context; the reason says so.
    Without this the trial stayed RUNNING until its heartbeat's grace period ran out. A stop by
    SIGTERM is a lost trial instead (:func:`_tell_lost`).
    """
    if stopped_by_sigterm(type(exc)):
        _tell_lost(study, trial, exc)
        return
    interrupted = isinstance(exc.__context__, KeyboardInterrupt)
    what = exception_text(type(exc), exc)
    reason = (f"interrupted by the user (KeyboardInterrupt, raised again as {what})"
              if interrupted else f"stopped by {what}")
    _tell(study, trial, state=TrialState.FAIL, fail_reason=reason)
    _logger.warning("Trial %d marked FAIL (%s); stopping.", trial.number, reason)


def _tell_lost(study: Study, trial: Trial, exc: BaseException) -> None:
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
        if _ended_elsewhere(study, trial) is None:
            raise
        return  # failed by another process (a launcher), which re-queued it if it may
    _logger.warning("Trial %d marked FAIL (%s); stopping.", trial.number, reason)
    study.requeue_lost(frozen)


def exit_as_sigterm(exc: BaseException) -> None:
    """Give a ``SystemExit`` without a code (Lightning's ``SIGTERMException``) the status of a
    process ended by SIGTERM, 143: a job runner (Kubernetes, systemd, a retry loop) that reads
    status 0 as success would never start the run that retries the lost trial."""
    if isinstance(exc, SystemExit) and exc.code is None:
        exc.code = 128 + signal.SIGTERM


def _tell_pruned(study: Study, trial: Trial) -> FrozenTrial:
    _log_end(logging.INFO, "Trial %d pruned at step %s.", trial.number,
                 max(trial.intermediate_values) if trial.intermediate_values else None)
    return _tell(study, trial, state=TrialState.PRUNED)


def shortened(text: str, limit: int = REASON_CHARS) -> str:
    """``text``, or its start and end around a note of how much was left out when it is longer
    than ``limit`` characters."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    return f"{text[:head]} [... {len(text) - head - tail} characters left out ...] {text[-tail:]}"


def _tell_exception(study: Study, trial: Trial, exc: BaseException) -> FrozenTrial:
    _explain_optuna_style(exc)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    reason = shortened(" ".join([f"{type(exc).__name__}: {exc}",
                                 *getattr(exc, "__notes__", ())]))
    _log_end(logging.WARNING, "Trial %d failed: %s", trial.number, reason)
    return _tell(study, trial, state=TrialState.FAIL, fail_reason=reason,
                 system_attrs={"traceback": text[-_TRACEBACK_CHARS:]})


def tell_raised_pruned(study: Study, trial: Trial) -> FrozenTrial:
    """Tell a trial whose objective raised :class:`TrialPruned`: PRUNED, or FAIL when a NaN
    report (or an adapter) marked it failed and ``should_prune()`` said stop so that the
    training ends at once (FAIL, as ``report()`` documents: a pruned trial ranks among the
    results)."""
    if trial.fail_reason is not None:
        return _tell(study, trial, state=TrialState.FAIL, fail_reason=trial.fail_reason)
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


def _tell_result(study: Study, trial: Trial, result: Any) -> FrozenTrial:
    if trial.fail_reason is not None:
        return _tell(study, trial, state=TrialState.FAIL, fail_reason=trial.fail_reason)
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
        return _tell(study, trial, state=TrialState.FAIL, fail_reason=failure,
                     system_attrs={DIVERGED_ATTR: True} if diverged else None)
    frozen = _tell(study, trial, value, system_attrs=marks)
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


class _Heartbeat:
    """Refreshes the trial's heartbeat from a daemon thread while the objective runs.

    A heartbeat that fails because the trial is over (finished, failed elsewhere as stale, its
    study deleted) stops the thread. Any other failure (a PostgreSQL connection dropped, a
    SQLite file locked for longer than its timeout) is taken as transient: it is logged once
    per trial at WARNING, and the thread beats again at the next interval. Stopping for good
    there would let another worker fail the still-running trial once its grace period passed.
    """

    def __init__(self, study: Study, trial: Trial) -> None:
        self._storage = study.storage
        self._trial_id = trial.trial_id
        self._number = trial.number
        self._grace = study.grace_period
        self._interval = study.heartbeat_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self._interval is not None:
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name=f"hpo-heartbeat-{self._trial_id}")
            self._thread.start()
        return self

    def _beat(self) -> None:
        assert self._interval is not None
        failing = warned = False
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except _TRIAL_OVER as exc:  # told meanwhile, failed elsewhere, or deleted
                _logger.debug("Heartbeat of trial %d stopped: %s", self._number, exc)
                return
            except Exception as exc:  # the database blinked: beat again at the next interval
                failing = True
                if not warned:
                    warned = True
                    _logger.warning(
                        "Trial %d: recording its heartbeat failed (%s: %s); retrying every "
                        "%g s. If the storage stays unreachable for more than the grace period "
                        "(%s), other workers fail this trial as lost. (Logged once per trial.)",
                        self._number, type(exc).__name__, exc, self._interval,
                        "none set" if self._grace is None else f"{self._grace:g} s")
                continue
            if failing:
                failing = False
                _logger.info("Trial %d: its heartbeat is recorded again.", self._number)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _Progress:
    """A tqdm bar showing trials done and the best value so far."""

    def __init__(self, study: Study, total: int | None, initial: int = 0, *,
                 counts_failures: bool = True) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, desc=study.study_name, unit="trial")
        #: False when the total is ``max_trials``, toward which failed trials do not count
        self._counts_failures = counts_failures

    def update(self, study: Study, frozen: FrozenTrial) -> None:
        # the best first: update() draws the bar, with the postfix as it is then
        with contextlib.suppress(ConfigurationError):  # nothing completed yet
            self._bar.set_postfix(best=f"{study.best_value:.6g}", refresh=False)
        if self._counts_failures or frozen.state is not TrialState.FAIL:
            self._bar.update(1)

    def add_to_total(self, n: int) -> None:
        """Expect ``n`` more (or, negative, fewer) trials than the budget: a parallel run
        whose workers died reports their trials as FAIL and may run replacements."""
        if self._bar.total is not None and n and self._counts_failures:
            self._bar.total = max(self._bar.n, self._bar.total + n)
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def progress(study: Study, settings: RunSettings) -> _Progress | None:
    """The progress bar for this run, or None when it is off.

    With ``max_trials`` alone the bar counts the study's trials toward it, starting from those
    it already holds (a resumed run that adds the last one shows 5/5, not 1/5), failed trials
    left out, as ``max_trials`` leaves them out; with ``n_trials`` it counts this call's
    trials, failed ones too.
    """
    if not settings.show_progress_bar:
        return None
    initial = 0
    toward_max = settings.n_trials is None and settings.max_trials is not None
    if toward_max:
        assert settings.max_trials is not None
        counted = [s for s in TrialState if s is not TrialState.FAIL]  # failures do not count
        initial = min(study.storage.count_trials(study.study_id, counted), settings.max_trials)
    return _Progress(study, settings.budget, initial, counts_failures=not toward_max)


def _sentence(exc: BaseException) -> str:
    """An exception's message ending in exactly one full stop (for a log line)."""
    return str(exc).rstrip(".") + "."
