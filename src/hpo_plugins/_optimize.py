"""The run loop: a thin loop over the public ``ask`` and ``tell``.

:func:`run_one` runs exactly one trial (ask, call the objective under the trial's context and
heartbeat, tell) and is what every launcher's worker calls. :func:`run` loops it in this process
until a limit is reached, or hands the work to a launcher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import (
    FrozenTrial,
    TrialState,
)
from hpo_plugins._heartbeat import Heartbeat
from hpo_plugins._outcome import (
    ended_elsewhere,
    fail_if_running,
    tell_exception,
    tell_raised_pruned,
    tell_result,
    tell_stopped,
    tell_trial,
)
from hpo_plugins._process import process_record
from hpo_plugins._progress import progress
from hpo_plugins._run_settings import RunSettings
from hpo_plugins._sigterm import INTERRUPTED_BY_USER
from hpo_plugins.exceptions import (
    SearchSpaceExhausted,
    StudyFull,
    TrialPruned,
    is_trial_pruned,
)
from hpo_plugins.storages._base import stale_after

if TYPE_CHECKING:
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial

__all__ = ["TIMED_OUT_WAITING", "launcher_for", "run", "run_one", "run_sequential"]

_logger = logging.getLogger(__name__)
#: The FAIL reason of a trial of a seeded parallel run whose ask waited for the trials before
#: it until past the run's ``timeout``: it is not run.
TIMED_OUT_WAITING = ("not run: the run's timeout passed while it waited for the trials before "
                     "it (a seeded parallel run samples each trial after those)")
_FULL_POLL_SECONDS = 1.0  # how often a full study is checked for room while trials still run


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
            tell_trial(study, trial, state=TrialState.FAIL, fail_reason=TIMED_OUT_WAITING)
            _logger.info("Trial %d not run: %s.", trial.number, TIMED_OUT_WAITING)
            return None
        frozen = _evaluate(study, trial, objective, settings)
    except BaseException as exc:
        fail_if_running(study, trial, exc)
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
    with Heartbeat(study, trial), trial:
        try:
            result = objective(trial.params)
        except TrialPruned:
            return tell_raised_pruned(study, trial)
        except KeyboardInterrupt:
            tell_trial(study, trial, state=TrialState.FAIL,
                       fail_reason=f"{INTERRUPTED_BY_USER} (KeyboardInterrupt)")
            _logger.warning("Interrupted: trial %d marked FAIL; stopping.", trial.number)
            raise
        except Exception as exc:
            if is_trial_pruned(exc):  # Optuna's TrialPruned: a ported objective's idiom
                return tell_raised_pruned(study, trial)
            # its trial was failed elsewhere meanwhile (see tell_trial): whatever the objective met
            # then (TrialFinishedError at its next report, most likely), the trial is gone
            ended = ended_elsewhere(study, trial, exc)
            if ended is not None:
                return ended
            frozen = tell_exception(study, trial, exc)
            if not isinstance(exc, settings.catch):
                raise
            return frozen
        except BaseException as exc:  # SystemExit, GeneratorExit: never leave the trial RUNNING
            tell_stopped(study, trial, exc)
            if _interrupt_turned_exit(exc):
                # Lightning's sys.exit(1) after Ctrl-C: at a prompt or in a notebook, the
                # interrupt the user asked for ("To exit: use 'exit'" answered it there)
                raise KeyboardInterrupt from exc
            raise
    return tell_result(study, trial, result)


def _interrupt_turned_exit(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``SystemExit`` raised while handling a ``KeyboardInterrupt``, in a
    session that outlives the run (a script exits on it, as the framework meant)."""
    from hpo_plugins._interactive import interactive

    return (isinstance(exc, SystemExit) and isinstance(exc.__context__, KeyboardInterrupt)
            and interactive())


def _sentence(exc: BaseException) -> str:
    """An exception's message ending in exactly one full stop (for a log line)."""
    return str(exc).rstrip(".") + "."
