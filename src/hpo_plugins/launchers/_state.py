"""The parent's side of a parallel run, shared by every launcher."""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import LOST_ATTR, FrozenTrial, TrialState
from hpo_plugins._observers import notify
from hpo_plugins._process import alive_here, gone_here, same_process
from hpo_plugins._resume import discard_stopped
from hpo_plugins._sigterm import (
    INTERRUPTED_BY_USER,
    exception_text,
    sigterm_reason,
    stopped_by_sigterm,
)
from hpo_plugins.exceptions import ClusterLostError, TrialFinishedError, TrialNotFoundError
from hpo_plugins.launchers._worker import Job

if TYPE_CHECKING:
    from hpo_plugins._run_settings import RunSettings
    from hpo_plugins.study import Study

__all__ = ["RunState", "fail_dead_here", "fail_dead_workers", "fail_orphans"]

_logger = logging.getLogger(__name__)

_ENDED = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]


class RunState:
    """The parent's side of one parallel run: budget, results, callbacks, clean-up."""

    def __init__(self, study: Study, settings: RunSettings, job: Job) -> None:
        from hpo_plugins._progress import progress

        self.study, self.settings, self.job = study, settings, job
        # started: budget used (lost tasks give theirs back); taken/returned: tasks sent out
        # and accounted for, so taken - returned is what is in flight
        self.started = self.failed = self.taken = self.returned = self.replaced = 0
        # losses counted as failures before their trial was known (Dask's KilledWorker)
        self.uncounted_losses = 0
        self._announced: set[int] = set()  # trial ids the parent has announced
        self.clock = time.monotonic()
        self.done = threading.Event()
        self._bar = progress(study, settings)

    def __enter__(self) -> RunState:
        return self

    def take(self) -> bool:
        """Reserve one more trial of the budget; False when this run must start no more."""
        if self.exhausted():
            return False
        self.started += 1
        self.taken += 1
        return True

    def exhausted(self) -> bool:
        """True when this run may start no more trials (without reserving one)."""
        elapsed = time.monotonic() - self.clock
        return (self.done.is_set() or self.study.stop_requested
                or self.settings.should_stop(self.started, self.failed, elapsed))

    def finished(self, frozen: FrozenTrial | None) -> None:
        """Record one task's result in the parent: progress bar and callbacks."""
        self.returned += 1
        if frozen is None:
            self.done.set()  # the study is full or the grid exhausted
            return
        self.failed += frozen.state is TrialState.FAIL
        self._announce(frozen)

    def _announce(self, frozen: FrozenTrial) -> None:
        """Log, progress bar and callbacks for one finished trial."""
        self._announced.add(frozen.trial_id)
        _log_end(frozen)
        if self._bar is not None:
            self._bar.update(self.study, frozen)
        for callback in self.settings.callbacks:
            callback(self.study, frozen)

    def in_flight(self) -> int:
        """Tasks sent out whose result has not come back (nor been counted lost)."""
        return self.taken - self.returned

    def lost(self, tasks: int, failed: Sequence[FrozenTrial], *,
             recover_since: float | None = None) -> None:
        """``tasks`` tasks died with their workers, and the trials ``failed`` with them.

        The failed trials count as failed (toward the stop after ``max_trials`` failures) and go
        to the progress bar and the callbacks like any finished trial. The budget the tasks took
        is given back, so the run still reaches ``n_trials``; at most as many replacements as
        the budget itself, so an objective that kills its worker every time cannot loop
        forever.

        ``recover_since``: no other result of this run is on its way (the whole pool, started
        at this ``time.time()``, died), so an ended trial the parent never heard of is
        announced now (:meth:`recover`); one that started in this pool was one of these tasks,
        killed after the storage recorded its end, and its task is not replaced. Without it
        such a task is replaced too, and the run may end one trial over ``n_trials`` (its trial
        is announced when the run ends).
        """
        self.orphaned(failed)
        ended = 0
        if recover_since is not None:
            ended = sum(t.datetime_start is not None
                        and t.datetime_start.timestamp() >= recover_since
                        for t in self.recover())
        self.returned += tasks
        budget = self.settings.budget
        give = min(max(0, tasks - ended), max(0, (budget or 0) - self.replaced))
        self.started -= give
        self.replaced += give
        # the lost tasks report nothing themselves; the replacements will
        self._add_to_total(give - tasks)

    def returned_untried(self) -> None:
        """A task came back without running a trial (its process died as it started): its
        place in the budget is free again."""
        self.returned += 1
        self.started -= 1

    def lost_unseen(self) -> None:
        """A task died with its worker before its trial was known: count one failure now,
        so repeated losses stop the run in time; :meth:`orphaned` matches it to its trial."""
        self.lost(1, [])
        self.failed += 1
        self.uncounted_losses += 1

    def orphaned(self, ended: Sequence[FrozenTrial]) -> None:
        """Trials of this run that ended without their task returning them (their worker is
        gone): count the failed ones and announce them all.

        A failed trial that a loss counted by :meth:`lost_unseen` stands for is not counted
        twice; the others (a worker that died without Dask giving up on its task, which then
        ran again elsewhere) count now.
        """
        failed = sum(t.state is TrialState.FAIL for t in ended)
        known = min(failed, self.uncounted_losses)
        self.uncounted_losses -= known
        self.failed += failed - known
        self._add_to_total(len(ended))  # each one's task was or is counted lost
        for frozen in ended:
            self._announce(frozen)

    def recover(self) -> list[FrozenTrial]:
        """Announce this run's ended trials that never came back to the parent; return them.

        A worker killed after the storage recorded its trial's end but before the result came
        back (joblib stops a whole pool when one of its workers dies; a trial failed by a
        sibling worker's heartbeat check) leaves a trial that no callback, no progress bar and
        perhaps no TensorBoard session end has seen. Each one is counted like an orphan and
        handed to the observers' ``trial_recovered``. Call it only when no result of this run
        is still on its way, or that trial would be announced twice.
        """
        found = [t for t in self.study.storage.get_all_trials(self.study.study_id, _ENDED)
                 if t.system_attrs.get("run_id") == self.job.run_id
                 and t.trial_id not in self._announced]
        # joblib fails a broken pool's tasks before it kills the workers: a worker still
        # alive may be writing its trial's end itself (TensorBoard would get two)
        alive = _still_alive(found, wait=3.0)
        for frozen in found:
            if frozen.trial_id not in alive:
                notify(self.study, "trial_recovered", frozen)
        if found:
            _logger.info("Trials %s ended but their worker died before returning them; they "
                         "are reported now.", [t.number for t in found])
        self.orphaned(found)
        return found

    def _log_unannounced(self) -> None:
        """Log the ends of this run's trials that never came back to the parent (the trial
        whose uncaught error stops the run: its task raised instead of returning it), as a
        sequential run logs a trial before it raises its error."""
        try:
            ended = self.study.storage.get_all_trials(self.study.study_id, _ENDED)
        except Exception as exc:  # the storage is down too: the run's own error matters
            _logger.warning("Could not read this run's ended trials to log them (%s: %s).",
                            type(exc).__name__, exc)
            return
        for frozen in ended:
            if (frozen.system_attrs.get("run_id") == self.job.run_id
                    and frozen.trial_id not in self._announced):
                _log_end(frozen)

    def _add_to_total(self, n: int) -> None:
        """Keep the progress bar's total equal to the trials this run will report."""
        if self._bar is not None:
            self._bar.add_to_total(n)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        try:
            if exc_type is None:  # every task is back: whatever ended unseen is known now
                self.recover()
            else:  # the trial whose error stops the run (raised by its task) is logged too
                self._log_unannounced()
        finally:
            if self._bar is not None:
                self._bar.close()
        if exc_type is not None and issubclass(exc_type, ClusterLostError) and (
                self.study.heartbeat_interval is not None):
            self._leave_to_workers()
        elif exc_type is not None:
            self._stop_running(exc_type, rest[0] if rest else None)

    def _stop_running(self, exc_type: type[BaseException], error: object) -> None:
        """Fail this run's running trials, stopped with it by ``error``.

        Not retried, except after SIGTERM (a preempted machine, ``kill``): those were lost, as
        in a sequential run, and are re-queued under ``max_retries`` with their resumable
        state kept. The state of the trials not re-queued is deleted here, as their killed
        workers could not; a worker that lives on (a Dask task is not killed) deletes its own
        when it ends.
        """
        lost = stopped_by_sigterm(exc_type)
        reason = (sigterm_reason(error if isinstance(error, BaseException) else None, exc_type)
                  if lost else _stop_reason(exc_type, error))
        try:
            stopped = fail_orphans(self.study, self.job.run_id, reason, retry=lost)
            discard_stopped(self.study, _dead_here(_not_retried(self.study, stopped), wait=3.0))
        except Exception as exc:  # the storage is down too: the run's own error matters
            _logger.warning("Could not mark this run's running trials FAIL (%s: %s); they "
                            "stay RUNNING until their heartbeat is older than the grace "
                            "period.", type(exc).__name__, exc)

    def _leave_to_workers(self) -> None:
        """The cluster's scheduler is gone, not the workers: their trials may still finish.

        Failing them here would throw away what they compute; their heartbeats fail those
        whose worker dies (and re-queue them under ``max_retries``), as for any lost worker.
        """
        try:
            running = [t.number for t in self.study.storage.get_all_trials(
                self.study.study_id, [TrialState.RUNNING])
                if t.system_attrs.get("run_id") == self.job.run_id]
        except Exception as exc:  # the storage is down too: the run's own error matters
            _logger.warning("Could not read this run's running trials (%s: %s).",
                            type(exc).__name__, exc)
            return
        if running:
            _logger.warning("Trials %s stay RUNNING on their workers: each keeps its result if "
                            "it finishes, or is failed as lost when its heartbeat is older "
                            "than %g s.", running, self.study.grace_period)


def _log_end(frozen: FrozenTrial) -> None:
    """Log a trial's end in the launcher, as a sequential run logs it (INFO, a failure at
    WARNING), where the user's ``logging.basicConfig`` applies: a worker process's logging is
    not set up, and workers log these ends at DEBUG only (``ENDS_LOGGED_BY_LAUNCHER``).
    Not for a trial run in this very process (joblib runs ``n_jobs=1`` in the launcher), which
    logged it already."""
    if same_process(frozen.system_attrs.get("worker")):
        return
    if frozen.state is TrialState.COMPLETE:
        _logger.info("Trial %d finished with value %.6g.", frozen.number, frozen.value)
    elif frozen.state is TrialState.PRUNED:
        _logger.info("Trial %d pruned at step %s.", frozen.number, frozen.last_step)
    elif frozen.system_attrs.get(LOST_ATTR):  # its loss was logged when it was failed
        _logger.info("Trial %d failed: %s", frozen.number, frozen.fail_reason)
    else:
        _logger.warning("Trial %d failed: %s", frozen.number, frozen.fail_reason)


def _not_retried(study: Study, stopped: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Those of ``stopped`` that no trial retries (``retry_of``): whether the retry still
    waits or another process has claimed it already, it resumes from their state."""
    if not stopped:
        return []
    retried = {t.system_attrs.get("retry_of")
               for t in study.storage.get_all_trials(study.study_id)}
    return [t for t in stopped if t.number not in retried]


def _stop_reason(exc_type: type[BaseException], exc: object) -> str:
    """Why a run's running trials were stopped: Ctrl-C; another stop (a ``BaseException``
    that is not an ``Exception``, SIGTERM excepted: see ``sigterm_reason``), as the sequential
    loop words it; or an error elsewhere in the run (another trial's, the launcher's)."""
    if issubclass(exc_type, KeyboardInterrupt):
        return f"{INTERRUPTED_BY_USER} (KeyboardInterrupt)"
    if not issubclass(exc_type, Exception):
        return f"stopped by {exception_text(exc_type, exc)}"
    return f"stopped: the run ended with {exc_type.__name__}"


def fail_dead_workers(study: Study, run_id: str, wait: float = 3.0, *,
                      shared_pool: bool = False) -> list[FrozenTrial]:
    """Mark FAIL the RUNNING trials of ``run_id`` whose worker process on this host is gone.

    Waits up to ``wait`` seconds for the processes to be gone (a broken pool stops its other
    workers too, a moment after the first one died); trials whose worker is not certainly gone
    then (still alive, or not watchable from here) are left to their heartbeat.
    ``shared_pool``: the workers were one pool, which joblib stops whole when one of them dies,
    so a trial's reason says that its worker may have been stopped with the pool.
    """
    mine = [t for t in study.storage.get_all_trials(study.study_id, [TrialState.RUNNING])
            if t.system_attrs.get("run_id") == run_id]
    dead = _dead_here(mine, wait)  # a trial that ends meanwhile is skipped by _fail_each
    also = (", or was stopped with its pool when another worker of the pool died"
            if shared_pool else "")
    return _fail_each(study, dead, lambda t: f"its worker process (pid "
                                             f"{t.system_attrs['worker'].get('pid')}) died"
                                             f"{also}",
                      "lost their worker process and were marked FAIL.")


def fail_dead_here(study: Study) -> list[FrozenTrial]:
    """Mark FAIL, as lost, the RUNNING trials whose process ran on this host and is gone.

    A run killed with ``kill -9`` (or a notebook kernel that died) leaves its trial RUNNING; its
    heartbeat makes a later run fail it only once it is ``grace_period`` old (two minutes by
    default), so a re-run right after the crash would leave it, and with ``max_trials`` wait
    for it. Each trial run by a loop records its process (``system_attrs["worker"]``, see
    :mod:`hpo_plugins._process`); at the start of a run, those whose process is certainly gone
    (recorded in this PID namespace during this boot, and no process of that id and start time
    exists) are failed at once and re-queued when ``max_retries`` allows, as a stale one would
    be (also in a run without heartbeats, whose trials would otherwise stay RUNNING). Any
    other trial (another host or container, a record without those identifiers, a trial asked
    by hand) is left to its heartbeat.
    """
    dead = [t for t in study.storage.get_all_trials(study.study_id, [TrialState.RUNNING])
            if gone_here(t.system_attrs.get("worker"))]
    return _fail_each(study, dead, lambda t: f"its process (pid {t.system_attrs['worker']['pid']}"
                                             f") on this host was gone when a later run "
                                             f"started (killed before it could record an end)",
                      "lost their process on this host (found when this run started) and were "
                      "marked FAIL.", at_last_heartbeat=True)


def _dead_here(trials: Sequence[FrozenTrial], wait: float) -> list[FrozenTrial]:
    """Those of ``trials`` whose worker process is certainly gone (:func:`gone_here`), after
    waiting up to ``wait`` seconds for the others to end. One on another host, or in another
    container that shares this host's name, cannot be watched: it may still run."""
    _still_alive(trials, wait)
    return [t for t in trials if gone_here(t.system_attrs.get("worker"))]


def _still_alive(trials: Sequence[FrozenTrial], wait: float) -> set[int]:
    """The ids of ``trials`` whose worker process certainly still lives (:func:`alive_here`)
    after up to ``wait`` seconds; those that cannot be watched from here count as gone."""
    deadline = time.monotonic() + wait
    while True:
        alive = {t.trial_id for t in trials if alive_here(t.system_attrs.get("worker"))}
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def fail_orphans(study: Study, run_id: str, reason: str, *,
                 retry: bool = False) -> list[FrozenTrial]:
    """Mark FAIL the trials of ``run_id`` still RUNNING (their workers were stopped or lost).

    ``retry``: re-queue each one as a trial failed by its stale heartbeat would be (see
    :meth:`Study.requeue_lost`), the right thing for a trial that lost its worker. Off by
    default, for trials that the run itself stopped (Ctrl-C, an objective's error): those were
    not lost, and the user chose to stop them.
    """
    mine = [t for t in study.storage.get_all_trials(study.study_id, [TrialState.RUNNING])
            if t.system_attrs.get("run_id") == run_id]
    return _fail_each(study, mine, lambda _: reason,
                      f"were stopped and marked FAIL: {reason}.", retry=retry)


def _finish_failed(study: Study, trial: FrozenTrial, attrs: dict[str, Any],
                   ended: _dt.datetime | None) -> FrozenTrial:
    """``finish_trial`` as FAIL, ending at ``ended`` when given; a storage written before
    ``finish_trial`` took ``ended`` (a custom one) ends the trial now instead."""
    if ended is None:
        return study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None, attrs)
    try:
        return study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None, attrs,
                                          ended=ended)
    except TypeError as exc:
        if "ended" not in str(exc):
            raise
        return study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None, attrs)


def _fail_each(study: Study, trials: Sequence[FrozenTrial],
               reason: Callable[[FrozenTrial], str], what: str, *,
               retry: bool = True, at_last_heartbeat: bool = False) -> list[FrozenTrial]:
    """Mark each of ``trials`` FAIL with its ``reason``, skipping those finished meanwhile;
    log "Trials <numbers> <what>" once if any was failed. With ``retry``, each failed trial is
    re-queued when the study's ``max_retries`` allows (:meth:`Study.requeue_lost`).

    The study's observers hear of each failed trial, as they do of a told one (its worker,
    which would have told them, is gone): TensorBoard ends its session instead of showing it
    RUNNING for ever. ``notify`` logs and swallows an observer's error.

    ``at_last_heartbeat``: end each trial at its last heartbeat (when it has one), not now: its
    process died at an unknown time before (a killed run found by a later one), and the
    duration should be the time it ran, not the time until somebody noticed.
    """
    failed = []
    for trial in trials:
        attrs: dict[str, Any] = {"fail_reason": reason(trial)}
        if retry:
            attrs[LOST_ATTR] = True
        try:
            frozen = _finish_failed(study, trial, attrs,
                                    trial.last_heartbeat if at_last_heartbeat else None)
        except (TrialFinishedError, TrialNotFoundError):  # finished meanwhile by its worker
            continue
        except Exception as exc:  # the storage failed: the others may still be failed
            _logger.warning("Could not mark trial %d FAIL (%s: %s); it stays RUNNING (with "
                            "heartbeats, until its heartbeat is older than the grace period; "
                            "else until a later run on this host finds its process gone).",
                            trial.number, type(exc).__name__, exc)
            continue
        failed.append(frozen)
        notify(study, "trial_finished", frozen)
    if failed:
        _logger.warning("Trials %s %s", [t.number for t in failed], what)
    for frozen in failed if retry else ():
        study.requeue_lost(frozen)
    return failed
