"""Trials on a Dask cluster: one study across machines, through an existing distributed engine."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import numbers
import os
import queue
import reprlib
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import TrialState
from hpo_plugins.exceptions import ConfigurationError, missing_dependency
from hpo_plugins.launchers._base import Launcher
from hpo_plugins.launchers._state import RunState, fail_orphans
from hpo_plugins.launchers._worker import Job, run_task

if TYPE_CHECKING:
    from hpo_plugins._frozen import FrozenTrial
    from hpo_plugins._optimize import RunSettings
    from hpo_plugins.storages import Storage
    from hpo_plugins.study import Study

__all__ = ["DaskLauncher"]

_logger = logging.getLogger(__name__)

#: The Dask worker resource that GPU trials ask for (``dask worker --resources "GPU=1"``).
GPU_RESOURCE = "GPU"
#: Seconds a run waits, by default, for the first Dask worker to join its scheduler.
WORKER_TIMEOUT = 60.0
_LOST_REASON = "its Dask worker was lost before the trial finished (the task ran again elsewhere)"
_LOOK_SECONDS = 2.0  # how often a run looks for workers that joined (more trials at once)
_FIRST_WORKER_POLL = 0.2


class DaskLauncher(Launcher):
    """Send trials to the workers of a Dask cluster; they share the study's database.

    Each task runs one trial (ask → objective → tell) on whichever worker Dask picks, against the
    study's storage, so reports, pruning decisions and heartbeats cross machines through the
    database and no coordinator of ours is involved. Use a database server (PostgreSQL) that every
    machine reaches; a SQLite file only works when all workers share one machine's local disk
    (the run checks that every worker sees the launcher's file, and refuses otherwise).
    Each trial records the Dask worker that ran it (``system_attrs["worker"]``: host, pid,
    ``dask`` address and ``name``) and, when set there, the worker's ``CUDA_VISIBLE_DEVICES``
    (``system_attrs["gpu"]``). Workers need ``hpo_plugins`` (and whatever the objective imports)
    installed; the objective travels with cloudpickle.

    Args:
        client: A ``dask.distributed.Client``; a Dask cluster object (``LocalCluster``,
            ``SLURMCluster``...), or a scheduler address such as ``"tcp://scheduler:8786"``:
            a client is then opened for each run and closed after (the cluster stays up).
        gpus_per_trial: GPUs each trial needs. Trials then go only to workers that advertise
            that resource (``dask worker --resources "GPU=1"``), and all of a trial's GPUs must
            be on one worker. Start one worker per GPU with its ``CUDA_VISIBLE_DEVICES`` set (as
            ``dask_cuda.LocalCUDACluster`` does); with a fraction (0.5: two trials per GPU),
            give each worker as many threads (``--nthreads 2``), since a Dask worker runs no
            more tasks at once than it has threads. The trial records the device it saw.
        n_concurrent: Trials in flight at once. Default: what the workers can run at once
            (per worker, its threads, and with ``gpus_per_trial`` at most its GPUs divided by
            ``gpus_per_trial``), counted when the run starts and again as workers join, unless
            the run is deterministic (then fixed at the start).
        deterministic: As for :class:`~hpo_plugins.launchers.JoblibLauncher` (default: True
            when the study has a seed).
        worker_timeout: Seconds a run waits for the first worker when none has joined the
            scheduler yet (SLURM jobs still queued, a cluster just scaled, an adaptive cluster
            at zero workers, which a task waiting meanwhile makes start one); then it is
            refused with what to do.

    A worker that dies loses its trial: Dask runs the task again elsewhere (a new trial), and the
    lost trial is failed once its heartbeat is stale (at the next ``ask``) or, at the latest,
    when the run's last task has returned; either way it is re-queued with the same parameters
    when the study's ``max_retries`` allows, and the run goes on to run it (and, with
    ``max_trials``, to reach the study's total). Ctrl-C cancels the run's pending tasks, fails
    its running trials and tells the workers that the run is over: a task already on a worker
    starts no trial after that (a running objective finishes, but its result is refused).

    Example:
        >>> from dask.distributed import Client  # doctest: +SKIP
        >>> hpo.minimize(objective, space, n_trials=500, study_name="resnet",
        ...              launcher=DaskLauncher(Client("tcp://scheduler:8786"), gpus_per_trial=1),
        ...              storage="postgresql+psycopg://hpo@db-host/hpo")  # doctest: +SKIP
    """

    def __init__(self, client: Any, *, gpus_per_trial: float = 0,
                 n_concurrent: int | None = None, deterministic: bool | None = None,
                 worker_timeout: float = WORKER_TIMEOUT) -> None:
        self.client = _check_client(client)
        self.gpus_per_trial = _check_gpus_per_trial(gpus_per_trial)
        self.n_concurrent = _check_n_concurrent(n_concurrent)
        if deterministic is not None and not isinstance(deterministic, bool):
            raise ConfigurationError(
                f"Expected `deterministic` to be True, False or None (the default: True when "
                f"the study has a seed). Received: deterministic={deterministic!r}."
            )
        self.deterministic = deterministic
        self.worker_timeout = _check_worker_timeout(worker_timeout)

    def __repr__(self) -> str:
        client = self.client if isinstance(self.client, str) else type(self.client).__name__
        return (f"DaskLauncher({client!r}, gpus_per_trial={self.gpus_per_trial}, "
                f"n_concurrent={self.n_concurrent})")

    def run(self, study: Study, objective: Callable[..., Any], settings: RunSettings) -> None:
        """Run trials on the cluster until a limit in ``settings`` is reached."""
        if not study.storage.multiprocess:
            raise ConfigurationError(
                f"Expected a storage that every Dask worker reaches. Received: "
                f"{study.storage.describe()}. Use a PostgreSQL URL (or, with every worker on "
                f"this machine, a SQLite file such as 'sqlite:///hpo.db')."
            )
        with self._client() as client:
            capacity = wait_for_capacity(client, self.gpus_per_trial,
                                         timeout=self.worker_timeout)
            shared = SharedFile.of(study.storage)
            if shared is not None:
                client.run(shared.check)  # before any task: a worker elsewhere is refused
            deterministic = study.seed is not None if self.deterministic is None \
                else self.deterministic
            slots = _Slots(client, self.gpus_per_trial, self.n_concurrent or capacity,
                           fixed=self.n_concurrent is not None, deterministic=deterministic)
            deadline = None if settings.timeout is None else time.time() + settings.timeout
            job = Job.pack(study, objective, settings, uuid.uuid4().hex, deadline,
                           slots.count - 1 if deterministic and slots.count > 1 else None)
            _logger.info("Running up to %d trials at once on the Dask cluster %s.", slots.count,
                         client.scheduler.address)
            task = _Task(job, self._resources(), shared)
            with RunState(study, settings, job) as run:
                _drive(client, run, slots, task)
                while _replace_lost(run):
                    _drive(client, run, slots, task)

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        """The client given, or one opened on the address or cluster given (closed after the
        run; a cluster it was opened on stays up). An opened client never becomes the default
        client of this process."""
        if not isinstance(self.client, str) and not _is_cluster(self.client):
            yield self.client
            return
        with _client_class()(self.client, set_as_default=False) as client:
            yield client

    def _resources(self) -> dict[str, float] | None:
        return {GPU_RESOURCE: self.gpus_per_trial} if self.gpus_per_trial else None


# -- arguments ----------------------------------------------------------------------------------


def _client_class() -> Any:
    """``dask.distributed.Client``, or the error that names the extra to install."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise missing_dependency("dask.distributed", "dask") from None
    return Client


def _is_cluster(obj: Any) -> bool:
    """Whether ``obj`` is a Dask cluster object (``LocalCluster``, ``SLURMCluster``...)."""
    return isinstance(getattr(obj, "scheduler_address", None), str)


def _check_client(client: Any) -> Any:
    """``client`` if a launcher can use it: a Client, a cluster, or a scheduler address."""
    Client = _client_class()
    if isinstance(client, str):
        _check_address(client)
        return client
    if isinstance(client, Client) or _is_cluster(client):
        return client
    raise ConfigurationError(
        f"Expected `client` to be a dask.distributed.Client, a Dask cluster (LocalCluster, "
        f"SLURMCluster...) or a scheduler address such as 'tcp://scheduler:8786'. Received: "
        f"client={reprlib.repr(client)} (of type {type(client).__name__})."
    )


def _check_address(address: str) -> None:
    """Refuse a scheduler address Dask could not connect to, with the form it needs."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        scheme, location = parse_address(address, strict=False)  # no scheme: tcp
        if scheme not in backends:
            raise ValueError(f"unknown protocol {scheme!r}; Dask knows {sorted(backends)}")
        if scheme != "inproc" and not parse_host_port(location)[0]:
            raise ValueError("no host")
    except ValueError as exc:
        raise ConfigurationError(
            f"Expected `client` to be a Dask scheduler address such as "
            f"'tcp://scheduler:8786' (protocol://host:port), a Client or a cluster. Received: "
            f"client={address!r} ({exc}). Pass the address that `dask scheduler` prints."
        ) from None


def _check_gpus_per_trial(value: Any) -> float:
    """``value`` as a number of GPUs >= 0 (an int stays an int, for a clean record)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value)) or value < 0):
        raise ConfigurationError(
            f"Expected `gpus_per_trial` to be a finite number >= 0 (0: CPU trials, 0.5: two "
            f"trials per GPU). Received: gpus_per_trial={value!r} (of type "
            f"{type(value).__name__})."
        )
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _check_n_concurrent(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigurationError(
            f"Expected `n_concurrent` to be an integer >= 1, or None for what the workers can "
            f"run at once. Received: n_concurrent={value!r} (of type {type(value).__name__})."
        )
    return int(value)


def _check_worker_timeout(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(float(value)) or value <= 0):
        raise ConfigurationError(
            f"Expected `worker_timeout` to be a finite number of seconds > 0. Received: "
            f"worker_timeout={value!r} (of type {type(value).__name__})."
        )
    return float(value)


# -- what the cluster can run -------------------------------------------------------------------


def trial_capacity(workers: Iterable[Mapping[str, Any]], gpus_per_trial: float) -> int:
    """Trials these Dask workers can run at once (``scheduler_info()["workers"].values()``).

    Per worker: at most its ``nthreads`` (a Dask worker runs no more tasks at once than it has
    threads, whatever resources it has left), and with ``gpus_per_trial`` at most as many as its
    own ``GPU`` resource holds: a task's resources must all be on one worker, so two workers
    with one GPU each cannot run one trial that needs two. ``hpo-plugins run --dask`` checks
    its options with the same rule.
    """
    return sum(_worker_capacity(worker, gpus_per_trial) for worker in workers)


def _worker_capacity(worker: Mapping[str, Any], gpus_per_trial: float) -> int:
    threads = int(worker.get("nthreads", 1))
    if not gpus_per_trial:
        return threads
    left, fits = _gpus(worker), 0
    while fits < threads and left >= gpus_per_trial:
        left -= gpus_per_trial  # as the worker counts: 1 - 0.1 * 9 < 0.1, so 9 trials of 0.1
        fits += 1
    return fits


def _gpus(worker: Mapping[str, Any]) -> float:
    return float((worker.get("resources") or {}).get(GPU_RESOURCE, 0))


def _workers(client: Any) -> dict[str, Mapping[str, Any]]:
    """The scheduler's workers now (all of them: some Dask versions list five by default)."""
    return dict(client.scheduler_info(n_workers=-1).get("workers", {}))


def wait_for_capacity(client: Any, gpus_per_trial: float, *, timeout: float = WORKER_TIMEOUT,
                      option: str = "gpus_per_trial") -> int:
    """Trials the cluster can run at once (:func:`trial_capacity`), or a clear refusal.

    A scheduler that no worker has joined yet (SLURM jobs still queued, a cluster just scaled
    or adaptive from zero) is waited for, up to ``timeout`` seconds, with a log line that says
    so. Workers that cannot hold one trial are refused at once (no wait): they are up, and
    misconfigured. ``option`` names ``gpus_per_trial`` in messages (``hpo-plugins run`` passes
    its flag).

    Raises:
        ConfigurationError: No worker joined in time, or no single worker can hold a trial.
    """
    workers = _workers(client) or _first_workers(client, timeout, gpus_per_trial,
                                                 cli=option.startswith("-"))
    capacity = trial_capacity(workers.values(), gpus_per_trial)
    if not capacity:
        raise ConfigurationError(_no_room(client, workers, gpus_per_trial, option))
    return capacity


def _first_workers(client: Any, timeout: float, gpus_per_trial: float, *, cli: bool = False
                   ) -> dict[str, Mapping[str, Any]]:
    """Wait up to ``timeout`` s for the first worker to join the scheduler; its workers then.

    Meanwhile one task that does nothing waits on the scheduler: an adaptive cluster
    (``cluster.adapt(minimum=0)``) starts workers only for tasks it sees waiting. ``cli``: the
    fix in the message is for ``hpo-plugins run`` (no Python to call).
    """
    address = client.scheduler.address
    _logger.warning("No Dask worker has joined the scheduler at %s yet: waiting up to %g s for "
                    "one. To wait for all of them, call client.wait_for_workers(n) before the "
                    "run.", address, timeout)
    resources = {GPU_RESOURCE: gpus_per_trial} if gpus_per_trial else None
    probe = client.submit(_nothing, pure=False, resources=resources,
                          key=f"hpo-wait-for-workers-{uuid.uuid4().hex}")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(_FIRST_WORKER_POLL)
            workers = _workers(client)
            if workers:
                return workers
    finally:
        client.cancel([probe])
    wait = ("run again once they have joined" if cli else
            "call client.wait_for_workers(n) before the run, or pass a longer worker_timeout")
    raise ConfigurationError(
        f"Expected Dask workers at the scheduler {address}. Received: none joined within "
        f"{timeout:g} s. Start workers (`dask worker {address}`); if they are on their way "
        f"(queued SLURM jobs, pods starting), {wait}."
    )


def _nothing() -> None:
    """The task that asks an adaptive cluster for a first worker."""


def _no_room(client: Any, workers: Mapping[str, Mapping[str, Any]], gpus_per_trial: float,
             option: str) -> str:
    """Why no worker can hold a trial of ``gpus_per_trial`` GPUs, and what to do."""
    named = f"{option} {gpus_per_trial:g}" if option.startswith("-") \
        else f"{option}={gpus_per_trial:g}"
    where = f"the {len(workers)} Dask workers at {client.scheduler.address}"
    largest = max((_gpus(w) for w in workers.values()), default=0.0)
    if not largest:
        return (f"Expected Dask workers that advertise a {GPU_RESOURCE} resource for {named}. "
                f"Received: none of {where} advertises one. Start each GPU worker with "
                f'--resources "{GPU_RESOURCE}=1" (one worker per GPU).')
    return (f"Expected a Dask worker that advertises at least {gpus_per_trial:g} "
            f"{GPU_RESOURCE} for {named}: all of a trial's GPUs must be on one worker. "
            f"Received: no single one of {where} does; the largest advertises {largest:g}. "
            f'Start a worker with --resources "{GPU_RESOURCE}={math.ceil(gpus_per_trial)}" '
            f"and that many GPUs visible to it, or lower {option}.")


class _Slots:
    """How many trials a run keeps in flight: fixed, or growing as workers join the cluster.

    ``n_concurrent`` fixes the count. So does a deterministic run (its suggestions depend on
    the count, see ``Job.lag``), which logs once when more trials could run. Otherwise the
    count follows the cluster up, never down (a queued task waits for a worker).
    """

    def __init__(self, client: Any, gpus_per_trial: float, count: int, *, fixed: bool,
                 deterministic: bool) -> None:
        self.count = count
        self._client, self._gpus_per_trial = client, gpus_per_trial
        self._grow = not (fixed or deterministic)
        self._watching = not fixed
        self._look_at = time.monotonic() + _LOOK_SECONDS

    def target(self) -> int:
        """The count now, after a look at the cluster every few seconds."""
        if not self._watching or time.monotonic() < self._look_at:
            return self.count
        self._look_at = time.monotonic() + _LOOK_SECONDS
        capacity = trial_capacity(_workers(self._client).values(), self._gpus_per_trial)
        if capacity > self.count and self._grow:
            _logger.info("More Dask workers joined: now up to %d trials at once.", capacity)
            self.count = capacity
        elif capacity > self.count:
            self._watching = False
            _logger.info("The Dask cluster can now run %d trials at once, but this "
                         "deterministic run keeps the %d it started with. Call "
                         "client.wait_for_workers(n) before the run, or pass "
                         "deterministic=False.", capacity, self.count)
        return self.count


# -- SQLite: every worker must see the launcher's file ------------------------------------------


@dataclass(frozen=True)
class SharedFile:
    """The study's SQLite file as the launcher sees it; each Dask worker must see that file.

    A worker on another machine would otherwise create an empty database of its own at the same
    path and fail with a bare "No study with id 1".
    """

    path: str
    device: int
    inode: int
    host: str

    @classmethod
    def of(cls, storage: Storage) -> SharedFile | None:
        """The SQLite file of ``storage``; None for a database server, or a path not found."""
        path = _sqlite_path(storage)
        if path is None:
            return None
        try:
            stat = os.stat(path)
        except OSError:  # a URI form we do not read: the workers' own errors must do
            return None
        return cls(path, stat.st_dev, stat.st_ino, socket.gethostname())

    def check(self, dask_worker: Any) -> None:
        """On a worker (``client.run`` passes ``dask_worker``): refuse another file or none."""
        try:
            stat = os.stat(self.path)
        except OSError:
            seen = "no file at that path"
        else:
            if (stat.st_dev, stat.st_ino) == (self.device, self.inode):
                return
            seen = "another file at that path"
        raise ConfigurationError(
            f"Expected every Dask worker to see the study's SQLite file {self.path}. Received: "
            f"the worker {dask_worker.address} on host {socket.gethostname()} sees {seen}. "
            f"SQLite works only when every worker runs on this machine ({self.host}): use "
            f"PostgreSQL for workers on other machines (storage='postgresql+psycopg://"
            f"user@db-host/hpo', see docs/distributed.md)."
        )


def _sqlite_path(storage: Storage) -> str | None:
    """The file of a SQLite storage (its absolute path), else None."""
    url = getattr(storage, "portable_url", None)
    if not isinstance(url, str) or not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    if database.startswith("file:"):  # the URI form (uri=true)
        database = urllib.parse.unquote(urllib.parse.urlsplit(database).path)
    return database or None


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """What each of the run's tasks needs besides the job."""

    job: Job
    resources: dict[str, float] | None
    shared: SharedFile | None


def _drive(client: Any, run: RunState, slots: _Slots, task: _Task) -> None:
    """Keep ``slots`` trials in flight (more as workers join); collect results as they come."""
    done: queue.SimpleQueue[Any] = queue.SimpleQueue()
    flying: set[Any] = set()

    def fill() -> None:
        while len(flying) < slots.target() and run.take():
            future = client.submit(_run_on_worker, task.job, task.shared, pure=False,
                                   resources=task.resources,
                                   key=f"hpo-trial-{uuid.uuid4().hex}")
            future.add_done_callback(done.put)
            flying.add(future)

    try:
        fill()
        while flying:
            try:
                future = done.get(timeout=_LOOK_SECONDS)
            except queue.Empty:  # nothing finished: look for workers that joined
                fill()
                continue
            flying.discard(future)
            _collect(run, future)
            fill()
    except BaseException:
        _stop(client, task.job.run_id, flying)
        raise


def _collect(run: RunState, future: Any) -> None:
    """One task's result into the run; a task whose worker kept dying counts as lost."""
    from distributed.scheduler import KilledWorker

    try:
        run.finished(future.result())
    except KilledWorker as exc:
        _logger.warning("A Dask worker died with a trial (%s); it is failed once its heartbeat "
                        "is stale.", exc)
        run.lost(1, [])  # its trial is failed by _replace_lost or its heartbeat,
        run.failed += 1  # but counted now, so repeated losses stop the run in time


def _stop(client: Any, run_id: str, futures: Iterable[Any]) -> None:
    """The run stopped (Ctrl-C, an error): tell the workers, then cancel the run's tasks.

    ``client.cancel`` cannot stop a task whose thread already runs: one still unpacking the job,
    or waiting for room in a full study, would start a trial later for nobody. Each task asks
    the run's cancel event before it starts a trial (:func:`_run_on_worker`). A set event stays
    on the scheduler (a few bytes per stopped run).
    """
    from distributed import Event

    try:
        if client.status != "running":
            raise ConnectionError(f"the client is {client.status}")
        Event(cancel_event(run_id), client=client).set()
    except Exception as exc:
        _logger.warning("Could not tell the Dask workers that the run stopped (%s): a task "
                        "already on a worker may still start a trial.", exc)
    client.cancel(list(futures))


def cancel_event(run_id: str) -> str:
    """The name of the Dask event that the launcher of ``run_id`` sets when the run stops."""
    return f"hpo-cancel-{run_id}"


def _replace_lost(run: RunState) -> bool:
    """After the run's last task: fail its trials still RUNNING; True if the run must go on.

    Every task has returned, so such a trial has no worker any more (its worker died and Dask ran
    the task again elsewhere). Its stale heartbeat would fail it at a later ``ask``; failing it
    now keeps the study clean, and re-queues it as the heartbeat would (``max_retries``). A run
    that stopped because the study looked full (the lost trials counted as RUNNING, under
    ``max_trials``) or had nothing left to propose (a grid) goes on while it may: it then runs
    the freed places and the re-queued trials.
    """
    lost = fail_orphans(run.study, run.job.run_id, _LOST_REASON)
    run.orphaned(lost, counted=True)  # each was counted at its KilledWorker
    if not lost or not run.done.is_set():
        return False
    if run.settings.max_trials is None and not run.study.storage.count_trials(
            run.study.study_id, [TrialState.WAITING]):
        return False
    run.done.clear()
    return not run.exhausted()


def _run_on_worker(job: Job, shared: SharedFile | None) -> FrozenTrial | None:
    """The task Dask runs: one trial, tagged with the Dask worker and the device it sees.

    It first checks that this worker sees the study's SQLite file (a worker that joined after
    the run's own check), and starts no trial once the launcher has stopped the run.
    """
    from distributed import Event, get_worker

    worker = get_worker()
    if shared is not None:
        shared.check(worker)
    return run_task(job, gpu=os.environ.get("CUDA_VISIBLE_DEVICES") or None,
                    worker={"dask": worker.address, "name": str(worker.name)},
                    cancelled=functools.partial(_is_set, Event(cancel_event(job.run_id))))


def _is_set(event: Any) -> bool:
    """Whether the run's cancel event is set; True when the scheduler cannot say (a task that
    cannot reach it could not hand a result back either)."""
    try:
        return bool(event.is_set())
    except Exception as exc:
        _logger.warning("Could not ask the Dask scheduler whether this run goes on (%s): "
                        "starting no trial.", exc)
        return True
