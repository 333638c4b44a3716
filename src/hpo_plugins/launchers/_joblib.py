"""Parallel trials on one machine: joblib's loky workers, or a GPU pool of pinned processes."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import logging
import multiprocessing
import operator
import os
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import FrozenTrial
from hpo_plugins._interactive import interactive
from hpo_plugins._sigterm import STOPS_THE_RUN
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import ConfigurationError, WorkerStartError
from hpo_plugins.launchers._base import Launcher
from hpo_plugins.launchers._gpus import gpu_slots, needs_gpus, parse_gpus
from hpo_plugins.launchers._script import stop_worker_commands
from hpo_plugins.launchers._state import RunState, fail_dead_workers, fail_orphans
from hpo_plugins.launchers._worker import Job, pin_gpu, run_task

if TYPE_CHECKING:
    from hpo_plugins._run_settings import RunSettings
    from hpo_plugins.storages import Storage
    from hpo_plugins.study import Study

__all__ = ["JoblibLauncher"]

_logger = logging.getLogger(__name__)
_CUDA_ENV = "CUDA_VISIBLE_DEVICES"


class JoblibLauncher(Launcher):
    """Run trials in parallel worker processes that share the study's storage.

    Each worker runs ask → objective → tell against the storage, exactly like the sequential
    loop, so pruning, heartbeats and ``max_trials`` work across workers. Objectives defined in
    ``__main__``, lambdas and closures work (they travel with cloudpickle).

    Two modes:

    * **CPU, reused workers** (no ``gpus``, ``fresh_process=False``): joblib's loky pool of
      ``n_jobs`` processes; a worker pays its imports once and then runs trial after trial
      (loky gives each worker ``cores // n_jobs`` threads for torch and BLAS).
    * **Pinned slots** (``gpus`` given, or ``fresh_process=True``): one slot per concurrent trial
      (each GPU ``trials_per_gpu`` times). A slot's process sees exactly its GPU through
      ``CUDA_VISIBLE_DEVICES``, set before any framework starts CUDA, and the trial records the
      GPU it used (``system_attrs["gpu"]``). With ``fresh_process=True`` (the default when GPUs
      are used) every trial runs in a new process, so GPU and host memory go back to the system.

    The storage must be shared by processes: a SQLite file (the default) or a database server;
    an in-memory storage raises a :class:`ConfigurationError` that says so (``hpo.minimize``
    raises it through :meth:`check`, before it creates the study). The worker processes
    exit within half a second when the launcher dies (``kill -9``), mid-trial too; a slot
    process still importing the main module then exits once that import ends.

    Args:
        n_jobs: Worker processes (CPU mode; default 2); -1 for one per core. Not used when
            GPUs are found: the pool has one process per slot (each GPU ``trials_per_gpu``
            times), and a warning says so when ``n_jobs`` was given. Without any GPU found,
            the ``n_jobs`` CPU workers run the trials.
        gpus: ``"all"`` (from ``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi``, never by importing a
            framework), a list of GPU ids (``[0, 2]``; indices or ``GPU-``/``MIG-`` UUIDs), the
            same as a comma-separated string (``"0,2"``, the syntax of
            ``CUDA_VISIBLE_DEVICES``), or None. Checked here, not when the run starts. Without
            any GPU found, trials run on CPU after a one-line notice.
        trials_per_gpu: Trials that share one GPU at once; more than 1 needs ``gpus``.
        fresh_process: A new process per trial; default True with GPUs, else False.
        deterministic: Make the suggestions of a seeded study independent of timing: trial ``n``
            waits until trials below ``n - (workers - 1)`` are finished and sees newer ones as
            running (see ``Study.ask(lag=...)``). Default: True when the study has a seed.

    Example:
        >>> import hpo_plugins as hpo
        >>> from hpo_plugins.launchers import JoblibLauncher
        >>> study = hpo.minimize(lambda p: p["x"] ** 2, {"x": hpo.hp.uniform("x", -1, 1)},
        ...                      n_trials=8, launcher=JoblibLauncher(n_jobs=2),
        ...                      storage="sqlite:///doctest.db")  # doctest: +SKIP
    """

    def __init__(self, n_jobs: int | None = None, *,
                 gpus: str | Sequence[int | str] | None = None, trials_per_gpu: int = 1,
                 fresh_process: bool | None = None, deterministic: bool | None = None) -> None:
        self._n_jobs_given = n_jobs is not None  # a GPU run says that it does not use them
        count = _as_count(2 if n_jobs is None else n_jobs)
        if count is None or count == 0 or count < -1:
            raise ConfigurationError(
                f"Expected `n_jobs` to be an integer >= 1, or -1 for one per core. Received: "
                f"n_jobs={n_jobs!r}."
            )
        gpu_slots(None, trials_per_gpu)  # validates trials_per_gpu
        parse_gpus(gpus)  # validates gpus; "all" is detected when the run starts
        _check_trials_per_gpu(gpus, trials_per_gpu)
        for name, flag in (("fresh_process", fresh_process), ("deterministic", deterministic)):
            if flag is not None and not isinstance(flag, bool):
                raise ConfigurationError(
                    f"Expected `{name}` to be True, False or None (the default). Received: "
                    f"{name}={flag!r}."
                )
        self.n_jobs = count
        self.gpus = gpus
        self.trials_per_gpu = trials_per_gpu
        self.fresh_process = fresh_process
        self.deterministic = deterministic

    def __repr__(self) -> str:
        return (f"JoblibLauncher(n_jobs={self.n_jobs}, gpus={self.gpus!r}, "
                f"trials_per_gpu={self.trials_per_gpu}, fresh_process={self.fresh_process})")

    def check(self, storage: Storage) -> None:
        """Refuse a storage that worker processes cannot share (an in-memory one).

        The same rule as :meth:`run`, whatever the arguments: GPU slots and fresh processes
        always run trials in other processes. (Reused CPU workers with ``n_jobs=1`` run in this
        process, as joblib does, but are refused too, so that one launcher object works or
        fails the same way whatever its ``n_jobs``; ``n_jobs=1`` without a launcher is the
        sequential loop.)
        """
        _require_shared_storage(storage)

    def run(self, study: Study, objective: Callable[..., Any], settings: RunSettings) -> None:
        """Run trials in parallel until a limit in ``settings`` is reached."""
        _require_shared_storage(study.storage)
        slots = gpu_slots(self.gpus, self.trials_per_gpu, cpu_workers=self.n_jobs)
        if slots and self._n_jobs_given and self.n_jobs not in (1, len(slots)):
            _warn_n_jobs_unused(self.n_jobs, slots, self.trials_per_gpu)
        fresh = bool(slots) if self.fresh_process is None else self.fresh_process
        workers = len(slots) or _cpu_workers(self.n_jobs)
        deterministic = study.seed is not None if self.deterministic is None \
            else self.deterministic
        run = RunState(study, settings, Job.pack(
            study, objective, settings, uuid.uuid4().hex,
            None if settings.timeout is None else time.time() + settings.timeout,
            workers - 1 if deterministic and workers > 1 else None, launcher=os.getpid()))
        _logger.info("Running trials in %d worker processes%s.", workers,
                     f" on GPU slots {slots}" if slots else "")
        with run:
            while True:
                if slots or fresh:
                    pool: list[str | None] = list(slots) if slots else [None] * workers
                    _run_slots(run, pool, fresh)
                else:
                    _run_loky(run, workers)
                if not _replace_orphans(run):
                    break


def _warn_n_jobs_unused(n_jobs: int, slots: Sequence[str], trials_per_gpu: int) -> None:
    """Say that ``n_jobs`` does not set the parallelism of a GPU run, and what does."""
    gpus = sorted(set(slots), key=slots.index)
    hint = (f"for {n_jobs} trials at once on GPU {gpus[0]}, pass trials_per_gpu={n_jobs} "
            f"(--trials-per-gpu {n_jobs})" if len(gpus) == 1 and n_jobs > 1
            else "set trials_per_gpu (--trials-per-gpu) for more trials per GPU")
    warn_user(f"n_jobs={n_jobs} is not used: trials run on GPU slots, {len(slots)} at once "
              f"({len(gpus)} GPU(s) x trials_per_gpu={trials_per_gpu}); {hint}.")


def _require_shared_storage(storage: Storage) -> None:
    if not storage.multiprocess:
        raise ConfigurationError(
            f"Expected a storage that worker processes can share for a parallel run. "
            f"Received: {storage.describe()}. Use the default storage (storage=None, or "
            f"no --storage: the SQLite file hpo.db), 'sqlite:///path.db' or a PostgreSQL URL, "
            f"or run one trial at a time (n_jobs=1, --n-jobs 1)."
        )


def _cpu_workers(n_jobs: int) -> int:
    """``n_jobs``, with -1 the CPUs this process may use: joblib's count, which honours the
    CPU affinity (``taskset``, Slurm) and a container's CPU quota, where ``os.cpu_count()``
    gives the whole machine (128 workers in a job given 4 cores)."""
    if n_jobs != -1:
        return n_jobs
    from joblib import cpu_count

    return max(1, int(cpu_count()))


def _run_loky(run: RunState, workers: int) -> None:
    """joblib's reusable loky pool; a killed worker costs its trial, not the run."""
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    def tasks() -> Iterator[Any]:
        while run.take():
            yield delayed(run_task)(run.job)

    global _loky_runs
    with _loky_runs_lock:
        _loky_runs += 1
    try:
        with _commands_stopped_on_signals():
            while not run.exhausted():
                started = time.time()
                parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered",
                                    pre_dispatch="n_jobs", batch_size=1)  # one trial per task
                results = parallel(tasks())
                try:
                    for frozen in results:
                        run.finished(frozen)
                except TerminatedWorkerError as exc:
                    _logger.warning("A worker process died (%s); joblib stops the whole pool. Its "
                                    "trials are failed and run again in a new pool.", exc)
                    run.lost(run.in_flight(),
                             fail_dead_workers(run.study, run.job.run_id, shared_pool=True),
                             recover_since=started)
                finally:
                    _close_quietly(results)
    finally:
        with _loky_runs_lock:
            _loky_runs -= 1
            last = _loky_runs == 0
        if last and interactive():
            _stop_reused_workers()


#: Runs of this process on joblib's reusable loky pool now (runs from several threads share
#: it): the pool is stopped only after the last one (see :func:`_stop_reused_workers`).
_loky_runs = 0
_loky_runs_lock = threading.Lock()


def _stop_reused_workers() -> None:
    """Stop joblib's reusable loky workers after the last run at a prompt or in a notebook.

    They live on for 5 minutes to serve the next run, with every module they imported: an
    objective from a module the user edited and reloaded since (a notebook's helpers.py) ran
    its old code there, silently, while ``n_jobs=1`` ran the new one. A script runs once, so
    its workers are kept (the next ``optimize`` call of a loop reuses them).

    joblib's own executor is terminated (its temporary folders cleaned as joblib does), not
    through ``get_reusable_executor()``: that holds loky's lock while it shuts a pool down,
    and with other arguments than joblib's it built a new pool only to stop it. The next run
    finds the executor shut down and starts a fresh one.
    """
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)  # joblib's MemmappingExecutor
    if executor is None:
        return
    stop = getattr(executor, "terminate", None) or executor.shutdown
    stop()


@contextlib.contextmanager
def _commands_stopped_on_signals() -> Iterator[None]:
    """While joblib runs the trials: Ctrl-C and SIGTERM first give the workers' script-mode
    commands their SIGTERM grace (see :func:`stop_worker_commands`), then act as before.

    joblib catches the ``KeyboardInterrupt`` (or the CLI's SIGTERM exception) inside its own
    result loop and kills its workers' process trees at once, before any code of ours runs,
    so a command had no time to save a checkpoint, as it has in a sequential run. Only the
    handlers that Python code runs (the default Ctrl-C handler, the CLI's SIGTERM one) are
    wrapped, and only in the main thread, where signal handlers live.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[signal.Signals, Any] = {}
    for signum in _STOPPING_SIGNALS:
        handler = signal.getsignal(signum)
        if callable(handler) and (handler is signal.default_int_handler
                                  or getattr(handler, STOPS_THE_RUN, False)):
            previous[signum] = handler
            signal.signal(signum, functools.partial(_stop_commands_then, handler))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


#: The signals whose handlers :func:`_commands_stopped_on_signals` may wrap.
_STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                          if hasattr(signal, name))
_stopping = threading.Event()  # set while a wrapped handler gives the commands their grace


def _stop_commands_then(handler: Callable[[int, Any], Any], signum: int, frame: Any) -> Any:
    """Stop the workers' commands gracefully, then run ``handler`` (which raises). A second
    signal during the grace runs ``handler`` at once: its exception cuts the grace short
    (:func:`stop_worker_commands` then kills what is left), as in a sequential run."""
    if _stopping.is_set():
        return handler(signum, frame)
    _stopping.set()
    try:
        stop_worker_commands()
    finally:
        _stopping.clear()
    return handler(signum, frame)


def _close_quietly(results: Iterator[Any]) -> None:
    """Close joblib's result generator without its "tasks ... have been cancelled" warning.

    A run that stops early (Ctrl-C, a study callback or ``keras_tune`` stopping the study) leaves
    tasks in flight; their trials are failed by the run's clean-up (:class:`RunState`), so
    joblib's advice to shorten the task iterator is noise here (and an error under
    ``-W error``). A run that ended normally has nothing left, and closing changes nothing.
    """
    close = getattr(results, "close", None)
    if close is None:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tasks which were still being processed",
                                category=UserWarning)
        close()


def _run_slots(run: RunState, slots: list[str | None], fresh: bool) -> None:
    """One single-process executor per slot, pinned to its GPU from the process's start."""
    executors = [_slot_executor(gpu, fresh) for gpu in slots]
    pending: dict[cf.Future[FrozenTrial | None], int] = {}
    deaths = _StartDeaths(run, slots)
    try:
        _fill_idle(run, executors, slots, pending, deaths)
        while pending:
            finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                index = pending.pop(future)
                try:
                    run.finished(future.result())
                except cf.process.BrokenProcessPool:
                    deaths.note_pids(index, _pids(executors[index]))  # the dead one's too
                    if deaths.had_trial(index):
                        _logger.warning("The process of %s died; its trial is failed and run "
                                        "again.", _slot_name(index, slots[index]))
                        dead = fail_dead_workers(run.study, run.job.run_id, wait=0.0)
                        run.lost(1, dead)
                    else:
                        run.returned_untried()  # its place in the budget is free again
                        if deaths.died_at_start(index):  # raises when no slot can start
                            executors[index].shutdown(wait=False)  # left out of the run
                            _fill_idle(run, executors, slots, pending, deaths)
                            continue
                    executors[index] = _slot_executor(slots[index], fresh)
                _fill_idle(run, executors, slots, pending, deaths)
    finally:
        busy = set(pending.values())
        try:  # first, all at once: the script-mode commands of busy slots get their grace
            stop_worker_commands([pid for index in busy for pid in _pids(executors[index])])
        finally:  # also when a second Ctrl-C cuts the grace short
            managers = []
            for index, executor in enumerate(executors):
                if index in busy:  # kill first: shutdown() forgets the executor's processes
                    _kill(executor)
                    managers.append(getattr(executor, "_executor_manager_thread", None))
                # an idle slot is shut down in order (wait=True): without waiting, its manager
                # thread may still replace a process that just exited and find the pool gone
                executor.shutdown(wait=index not in busy, cancel_futures=True)
            _let_managers_close(managers)


#: How long a stopped run waits, in all, for the manager threads of its killed slots.
_MANAGERS_JOIN_S = 5.0


def _let_managers_close(managers: list[threading.Thread | None]) -> None:
    """Wait (briefly) for the manager threads of killed slots to notice and close their pipes.

    ``shutdown(wait=False)`` returns while such a thread still runs. Were the process to exit
    then (a Ctrl-C'd ``hpo-plugins run``), Python 3.11's exit hook could write to the thread's
    wake-up pipe as the thread closed it, and print "Exception ignored ... OSError: [Errno 9]
    Bad file descriptor" after the run's own last line (the pipe gained a lock in later
    Pythons, CPython gh-125451). Its processes are killed, so the thread ends within moments.
    """
    deadline = time.monotonic() + _MANAGERS_JOIN_S
    for manager in managers:
        if manager is not None:
            manager.join(max(0.0, deadline - time.monotonic()))


def _slot_name(index: int, gpu: str | None) -> str:
    """How messages name a slot: "slot 0 (GPU 3)", or "slot 0" for a CPU slot."""
    return f"slot {index}" if gpu is None else f"slot {index} (GPU {gpu})"


class _StartDeaths:
    """Which slot processes died before they started a trial, and what to do about it.

    A slot process that dies before it asks a trial (an import that crashes it, a broken GPU,
    most often a script without a ``__main__`` guard, whose module-level run is refused in the
    new process) is no trial's death: its place in the budget is given back, and it is started
    again once. A slot whose process died so twice is left out of the run (one broken GPU does
    not stop the others). :class:`WorkerStartError` ends the run when no slot is left, or when
    every slot's process died so before any trial of the run started.
    """

    def __init__(self, run: RunState, slots: Sequence[str | None]) -> None:
        self.run, self.slots = run, slots
        # the processes of each slot's current task: noted when it is given, and at its death
        self.pids: list[set[int]] = [set() for _ in slots]
        self.counts = [0] * len(slots)
        self.retired: set[int] = set()

    def task_given(self, index: int, pids: Sequence[int]) -> None:
        self.pids[index] = set(pids)

    def note_pids(self, index: int, pids: Sequence[int]) -> None:
        self.pids[index].update(pids)

    def had_trial(self, index: int) -> bool:
        """Whether a process of slot ``index``'s current task ran a trial of this run (its
        death is then a trial's, or came after its trial ended)."""
        run = self.run
        for trial in run.study.storage.get_all_trials(run.study.study_id):
            worker = trial.system_attrs.get("worker") or {}
            if (trial.system_attrs.get("run_id") == run.job.run_id
                    and worker.get("pid") in self.pids[index]):
                return True
        return False

    def died_at_start(self, index: int) -> bool:
        """Count a start death of slot ``index``; True when the slot is left out now.

        Raises:
            WorkerStartError: No slot is left, or every slot died so before any trial.
        """
        self.counts[index] += 1
        name = _slot_name(index, self.slots[index])
        none_started = not any(t.system_attrs.get("run_id") == self.run.job.run_id
                               for t in self.run.study.storage.get_all_trials(
                                   self.run.study.study_id))
        if none_started and all(self.counts):
            raise self._error(name, "every slot's process died before any trial of the run "
                                    "started")
        if self.counts[index] < 2:
            _logger.warning("The process of %s died before it started a trial; it is started "
                            "again.", name)
            return False
        self.retired.add(index)
        if len(self.retired) == len(self.slots):
            raise self._error(name, "the process of every slot died twice before it started "
                                    "a trial")
        _logger.warning("The process of %s died twice before it started a trial (see its error "
                        "above): the slot is left out of this run; the other slots go on.", name)
        return True

    @staticmethod
    def _error(name: str, what: str) -> WorkerStartError:
        return WorkerStartError(
            f"Expected the worker processes to start trials. Received: {what} (the last: "
            f"{name}; see the errors above). Most often the script starts the run at module "
            f"level: each new worker process runs the script's module-level code again. Put "
            f"that code under `if __name__ == \"__main__\":`. Otherwise the workers could not "
            f"start (an import that crashes them, a broken GPU, too little memory); try the "
            f"objective with n_jobs=1 first.")


def _replace_orphans(run: RunState) -> bool:
    """After every task returned: fail the run's trials still RUNNING; True to run more.

    Such a trial lost its worker (its task was counted lost, see :meth:`RunState.lost`) but the
    process outlived :func:`fail_dead_workers`' wait; no worker of this run can hold it now.
    Failing it frees its place under ``max_trials``, and the run goes on if it may.
    """
    lost = fail_orphans(run.study, run.job.run_id, "its worker process was lost",
                        retry=True)
    if not lost:
        return False
    run.orphaned(lost)
    run.done.clear()  # a run that found the study full may find room now
    return not run.exhausted()


def _slot_executor(gpu: str | None, fresh: bool) -> cf.ProcessPoolExecutor:
    """A one-process executor for a slot; its processes are pinned to ``gpu`` and exit when
    this process (the launcher, whose pid they get: see :func:`pin_gpu`) is gone."""
    return _SlotExecutor(max_workers=1, mp_context=_SlotContext(gpu),
                         initializer=pin_gpu, initargs=(gpu, os.getpid()),
                         max_tasks_per_child=1 if fresh else None)


class _SlotExecutor(cf.ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` whose manager thread does not crash after a shutdown without
    waiting.

    With ``max_tasks_per_child`` (fresh processes), a worker that exits after its task makes
    the manager thread replace it; when ``shutdown(wait=False)`` (a busy slot stopped by Ctrl-C)
    has already cleared the pool's process table, Python up to 3.13 fails there with
    "TypeError: object of type 'NoneType' has no len()" and prints that thread's traceback,
    which reads as a crash of the run (CPython gh-119592). A pool being shut down needs no
    replacement, so none is made.
    """

    def _adjust_process_count(self) -> None:
        # the manager thread calls this holding the shutdown lock, under which shutdown() sets
        # _shutdown_thread (it clears _processes only after releasing it)
        if getattr(self, "_shutdown_thread", False) or getattr(self, "_processes", None) is None:
            return  # shut down: nothing to replace
        super()._adjust_process_count()


_ENVIRON_LOCK = threading.Lock()  # slot processes start one at a time while the pin is set


class _PinnedProcess(multiprocessing.context.SpawnProcess):
    """A spawned slot process whose environment holds its GPU pin from its first instruction.

    With the spawn start method a new process re-imports the user's main module before any
    initializer runs; a module-level ``torch.cuda.is_available()`` there would start CUDA with
    every GPU visible. So the parent sets ``CUDA_VISIBLE_DEVICES`` in its own environment just
    for the moment the process is started (the new interpreter inherits it), then restores it.

    A limit of this: with ``fresh_process=True`` the executor's own thread starts replacement
    processes while the launcher's main thread runs callbacks, so a callback that starts a
    process or reads ``CUDA_VISIBLE_DEVICES`` in that moment may see one slot's GPU. Keep
    callbacks to bookkeeping (they get the finished trial); do GPU work in the objective.
    """

    gpu: str | None = None

    def start(self) -> None:
        if self.gpu is None:
            super().start()
            return
        with _ENVIRON_LOCK:
            before = os.environ.get(_CUDA_ENV)
            os.environ[_CUDA_ENV] = self.gpu
            try:
                super().start()
            finally:
                if before is None:
                    del os.environ[_CUDA_ENV]
                else:
                    os.environ[_CUDA_ENV] = before


class _SlotContext(multiprocessing.context.SpawnContext):
    """The spawn context of one slot: its processes are :class:`_PinnedProcess` for ``gpu``."""

    def __init__(self, gpu: str | None) -> None:
        super().__init__()
        self.gpu = gpu

    def Process(  # type: ignore[override]  # a factory where the base has the class
            self, *args: Any, **kwargs: Any) -> _PinnedProcess:
        process = _PinnedProcess(*args, **kwargs)
        process.gpu = self.gpu
        return process


def _fill_idle(run: RunState, executors: list[cf.ProcessPoolExecutor], slots: list[str | None],
               pending: dict[cf.Future[FrozenTrial | None], int], deaths: _StartDeaths) -> None:
    """Give a task to every slot that has none and is not left out, while the budget lasts (a
    place given back by a slot that died at start goes to whichever slot is free)."""
    busy = set(pending.values())
    for index in range(len(slots)):
        if index not in busy and index not in deaths.retired:
            _submit(run, executors, slots, index, pending, deaths)


def _submit(run: RunState, executors: list[cf.ProcessPoolExecutor], slots: list[str | None],
            index: int, pending: dict[cf.Future[FrozenTrial | None], int],
            deaths: _StartDeaths) -> None:
    if run.take():
        pending[executors[index].submit(run_task, run.job, slots[index],
                                        transport="pickle")] = index
        deaths.task_given(index, _pids(executors[index]))


def _pids(executor: cf.ProcessPoolExecutor) -> list[int]:
    """The pids of a slot executor's processes."""
    processes = (getattr(executor, "_processes", None) or {}).values()
    return [process.pid for process in processes if process.pid is not None]


def _kill(executor: cf.ProcessPoolExecutor) -> None:
    """Stop a slot's process at once (Ctrl-C or a failing trial elsewhere), after
    :func:`stop_worker_commands` stopped the script-mode command it ran (the command leads a
    process group of its own, which the slot's SIGKILL does not reach)."""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.kill()


def _as_count(value: object) -> int | None:
    """``value`` as an int if it is an integer (Python or numpy, not bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _check_trials_per_gpu(gpus: object, trials_per_gpu: int) -> None:
    """Refuse ``trials_per_gpu`` above 1 without ``gpus``: there are no GPU slots to fill, and
    the run would silently use ``n_jobs`` CPU workers (the CLI refuses the same options)."""
    if gpus is None and trials_per_gpu != 1:
        raise ConfigurationError(
            f"Expected `gpus` with trials_per_gpu={trials_per_gpu}: "
            f"{needs_gpus('trials_per_gpu', 'gpus')}. Received: gpus=None. Pass gpus=[0, 1] "
            f'or gpus="all", or leave trials_per_gpu out to run n_jobs CPU workers.'
        )
