"""What runs inside a worker process: unpack the job once, then run one trial per task.

The parent serialises ``(study, objective, settings)`` once with cloudpickle (so objectives
defined in ``__main__``, lambdas and closures work); each task carries those bytes and a key, and
a reused worker unpacks them only on its first task. This is transient inter-process traffic:
nothing pickled is ever stored. Each thread of a worker unpacks its own copy (a Dask worker runs
several tasks at once in threads; samplers and observers are not shared between them), and the
payload never shows in a ``repr`` (it holds the storage URL, which may hold a password, and Dask
logs the ``repr`` of a failed task).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import cloudpickle

from hpo_plugins._process import process_record, same_process
from hpo_plugins.exceptions import ConfigurationError, RemoteObjectiveError

if TYPE_CHECKING:
    from hpo_plugins._frozen import FrozenTrial
    from hpo_plugins._run_settings import RunSettings
    from hpo_plugins.study import Study

__all__ = ["CANCELLED_REASON", "Job", "Transport", "exit_with_parent", "pin_gpu", "run_task",
           "sendable"]

#: How a launcher's executor sends a task's exception back: the standard library's pickle
#: (``concurrent.futures``), or cloudpickle (joblib's loky, Dask).
Transport = Literal["pickle", "cloudpickle"]

_logger = logging.getLogger(__name__)

#: Why a trial that started after its run was stopped is FAIL (its objective never ran).
CANCELLED_REASON = "not run: its launcher had stopped the run (Ctrl-C or an error)"

_local = threading.local()  # .unpacked: {job key: (study, objective, settings)}, per thread
_watch_lock = threading.Lock()
_watching_in: int | None = None  # the pid of the process whose parent watch runs


@dataclass(frozen=True)
class Job:
    """One ``optimize`` call as workers receive it."""

    payload: bytes = field(repr=False)
    key: str
    run_id: str
    deadline: float | None  # wall-clock time after which no trial starts
    lag: int | None
    #: The pid of the launcher when it starts the worker processes itself (joblib): they exit
    #: once it is gone. None where workers live on their own (Dask).
    launcher: int | None = None
    #: The launcher's process (:func:`~hpo_plugins._process.process_record`): a task that runs
    #: in any other process leaves the logging of its trial's end to the launcher.
    origin: Mapping[str, Any] | None = None

    @classmethod
    def pack(cls, study: Study, objective: Callable[..., Any], settings: RunSettings,
             run_id: str, deadline: float | None, lag: int | None, *,
             launcher: int | None = None) -> Job:
        """Serialise the study, objective and settings (callbacks stay in the parent)."""
        worker_settings = replace(settings, callbacks=(), show_progress_bar=False)
        try:
            payload = cloudpickle.dumps((study, objective, worker_settings))
        except Exception as exc:
            raise ConfigurationError(_unsendable(study, objective, worker_settings, exc)) from exc
        key = hashlib.sha256(payload).hexdigest()
        return cls(payload, key, run_id, deadline, lag, launcher, process_record())


def _unsendable(study: Study, objective: Callable[..., Any], settings: RunSettings,
                exc: Exception) -> str:
    """Why the run cannot be sent to worker processes, naming the part that cannot be pickled
    (tried one at a time), and the fixes."""
    parts: list[tuple[str, object]] = [
        (f"the objective {objective!r}", objective),
        (f"the study's storage {study.storage!r}", study.storage),
        (f"the study's sampler {study.sampler!r}", study.sampler),
        (f"the study's pruner {study.pruner!r}", study.pruner),
        (f"the run's catch={settings.catch!r}", settings.catch),
    ]
    what = "the study or the run's settings"
    for name, part in parts:
        try:
            cloudpickle.dumps(part)
        except Exception as error:
            what, exc = name, error
            break
    storage_fix = (" A storage that workers share must pickle into a handle that opens its "
                   "own connections in the worker (see SQLStorage.__getstate__)."
                   if what.startswith("the study's storage") else "")
    return (f"Expected an objective, storage, sampler, pruner and catch= that can be sent to "
            f"worker processes (pickled with cloudpickle, which takes lambdas, closures and "
            f"classes of the main script). Received: {what}, which cannot be pickled: "
            f"{type(exc).__name__}: {exc}. Make what cannot be pickled (a lock, an open "
            f"file, a database connection, a thread) inside the objective, or define "
            f"__getstate__ on the object that holds it, or run one trial at a time "
            f"(n_jobs=1).{storage_fix}")


def pin_gpu(gpu: str | None, launcher: int | None = None) -> None:
    """Process initializer: make exactly ``gpu`` visible before the objective runs.

    It also starts :func:`exit_with_parent` on ``launcher`` (the pid of the process that
    started this one), so a slot process does not outlive its launcher. The pid is passed in,
    not read here: the initializer runs only after the slot has re-imported the user's main
    module (spawn), which may take seconds (``import torch``); a launcher killed meanwhile has
    re-parented this process, and ``os.getppid()`` would name the new parent (init), which
    never goes. With the launcher's pid the watch sees it gone and exits at once. None (an
    older caller): the current parent.
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    exit_with_parent(launcher)


def exit_with_parent(parent: int | None = None, poll_seconds: float = 0.5) -> None:
    """Exit this process as soon as its parent ``parent`` is gone (a daemon thread).

    A slot process waits for its next task on a pipe from the launcher, and a reused loky worker
    goes on with its trial and then waits for more; after ``kill -9`` of the launcher nobody
    sends work again, and the process would run and wait on its own. A trial it was running is
    then failed by its stale heartbeat, as for any lost worker; a script-mode command dies with
    it (``PR_SET_PDEATHSIG``).

    ``parent`` defaults to the current parent; if this process already has another parent
    (``parent`` died and it was re-parented), it exits at once, in this call, so that nothing
    after it (a trial) starts. Calls after the first in a process do nothing: one watch per
    process.
    """
    global _watching_in
    parent = os.getppid() if parent is None else parent
    with _watch_lock:
        if _watching_in == os.getpid():  # already watching (not a forked copy's flag)
            return
        _watching_in = os.getpid()
    if os.getppid() != parent:  # the parent is gone already
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="hpo-exit-with-parent", daemon=True).start()


def run_task(job: Job, gpu: str | None = None, worker: Mapping[str, Any] | None = None, *,
             cancelled: Callable[[], bool] | None = None,
             transport: Transport = "cloudpickle") -> FrozenTrial | None:
    """Run one trial of ``job`` in this process; None when there is nothing left to run.

    ``worker`` adds entries to the trial's ``system_attrs["worker"]`` (host and pid by default).
    ``cancelled`` says whether the launcher has stopped the run (Ctrl-C, an error): a task that
    its launcher could not take back (Dask cannot stop a task whose thread already runs) then
    starts no trial. It is asked before each ``ask`` (so also while the task waits for room in
    a full study, see :func:`hpo_plugins._optimize.run_one`) and again just before the
    objective starts: a trial started in between is marked FAIL with
    :data:`CANCELLED_REASON`, and its objective never runs.

    ``transport`` is how the launcher's executor sends an exception back (``"pickle"``, the
    standard library's executors; ``"cloudpickle"``, joblib's loky and Dask): an exception of
    the objective that would not arrive as itself is raised as a
    :class:`~hpo_plugins.exceptions.RemoteObjectiveError` instead (see :func:`sendable`).
    """
    from hpo_plugins._optimize import run_one
    from hpo_plugins._outcome import ENDS_LOGGED_BY_LAUNCHER

    # a worker the launcher started must not outlive it (joblib runs n_jobs=1 in the launcher)
    if job.launcher is not None and job.launcher != os.getpid():
        exit_with_parent(job.launcher)
        _ignore_hangup()
    if job.deadline is not None and time.time() >= job.deadline:
        return None
    study, objective, settings = _unpack(job)
    if cancelled is not None:
        objective = _unless_cancelled(objective, cancelled)
    tags: dict[str, Any] = {"worker": {**process_record(), **(worker or {})},
                            "run_id": job.run_id}
    if gpu is not None:
        tags["gpu"] = gpu
    # the launcher logs this task's trial end, unless this is the launcher's own process
    elsewhere = ENDS_LOGGED_BY_LAUNCHER.set(not same_process(job.origin))
    try:
        return run_one(study, objective, settings, system_attrs=tags, lag=job.lag,
                       deadline=job.deadline, stop=cancelled)
    except Exception as exc:
        substitute = sendable(exc, transport)
        if substitute is exc:
            raise
        raise substitute from None
    finally:
        ENDS_LOGGED_BY_LAUNCHER.reset(elsewhere)


def sendable(exc: Exception, transport: Transport) -> Exception:
    """``exc`` if it comes back from a pickle made by ``transport`` as an exception of its
    type, else a :class:`~hpo_plugins.exceptions.RemoteObjectiveError` with its type, message
    and traceback as text.

    Checked here, in the worker, because the launcher cannot recover from the failure: a
    pickle that fails here makes the executor send a ``PicklingError`` instead, and one that
    does not load in the launcher breaks its process pool, which looks like a dead worker.
    """
    dumps = pickle.dumps if transport == "pickle" else cloudpickle.dumps
    try:
        copy = pickle.loads(dumps(exc))
        if type(copy).__qualname__ == type(exc).__qualname__:
            return exc
        why = f"it came back as {type(copy).__qualname__}"
    except Exception as error:
        why = f"{type(error).__name__}: {error}"
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    text = "".join(traceback.format_exception(exc))
    _logger.debug("Sending %s back as a RemoteObjectiveError (%s).", name, why)
    return RemoteObjectiveError(
        f"The objective raised {name}: {exc} (in the worker process {os.getpid()} on "
        f"{socket.gethostname()}). It could not be sent back as itself ({why}), so it "
        f"arrives as this error; its traceback there:\n{text}", name, text)


def _ignore_hangup() -> None:
    """In a worker process the launcher started: ignore SIGHUP. A closed terminal sends it to
    the whole job, workers included, whose default action ended them at once (and, with them,
    their script-mode commands, without the grace the launcher gives them when it stops the
    run on the same SIGHUP). A worker exits with its launcher anyway (:func:`exit_with_parent`).
    A handler that does nothing, not ``SIG_IGN``: a command the worker starts gets the default
    action back at ``exec``, where an ignored signal would stay ignored.
    """
    if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, _hung_up)


def _hung_up(signum: int, frame: Any) -> None:
    """SIGHUP in a worker: nothing to do (see :func:`_ignore_hangup`)."""


def _unless_cancelled(objective: Callable[..., Any],
                      cancelled: Callable[[], bool]) -> Callable[..., Any]:
    """``objective``, unless the run was cancelled by the time its trial starts.

    The trial is then marked failed (the run loop tells it FAIL with that reason) rather than
    run: its launcher is gone, and nobody would take its result.
    """
    def guarded(params: Any) -> Any:
        if not cancelled():
            return objective(params)
        from hpo_plugins.context import current_trial

        trial = current_trial()
        trial.mark_failed(CANCELLED_REASON)
        _logger.warning("Trial %d %s.", trial.number, CANCELLED_REASON)
        return None

    return guarded


def _unpack(job: Job) -> tuple[Study, Callable[..., Any], RunSettings]:
    """This thread's copy of ``job`` (unpacked on first use).

    A new job replaces the previous one, whose storage is closed: its pooled connections
    would otherwise stay open until the garbage collector found the study, so a long-lived
    worker that runs one study after another would hold the connections of them all.
    """
    unpacked: dict[str, tuple[Study, Callable[..., Any], RunSettings]] = getattr(
        _local, "unpacked", {})
    if job.key not in unpacked:
        for study, _, _ in unpacked.values():
            _close(study)
        unpacked = {job.key: cloudpickle.loads(job.payload)}
        _local.unpacked = unpacked
    return unpacked[job.key]


def _close(study: Study) -> None:
    """Close the storage of a study this thread no longer runs (a failure only logs)."""
    try:
        study.storage.close()
    except Exception as exc:  # the database may be gone; the worker goes on with its new job
        _logger.debug("Closing the storage of study %r failed: %s", study.study_name, exc)
