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
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import TrialState
from hpo_plugins._numbers import is_integer
from hpo_plugins.exceptions import ClusterLostError, ConfigurationError, missing_dependency
from hpo_plugins.launchers._base import Launcher
from hpo_plugins.launchers._dask_cluster import (
    GPU_RESOURCE,
    LOOK_SECONDS,
    WORKER_TIMEOUT,
    SharedFile,
    Slots,
    check_workers_reach,
    connect,
    wait_for_capacity,
)
from hpo_plugins.launchers._state import RunState, fail_orphans
from hpo_plugins.launchers._worker import Job, run_task

if TYPE_CHECKING:
    from hpo_plugins._frozen import FrozenTrial
    from hpo_plugins._run_settings import RunSettings
    from hpo_plugins.storages import Storage
    from hpo_plugins.study import Study

__all__ = ["DaskLauncher", "check_address"]

_logger = logging.getLogger(__name__)

_EVENT_RETRY_SECONDS = 0.5  # pause before a second look at the cancel event
#: Dask's reason for a future cancelled because its client lost the scheduler.
_SCHEDULER_LOST = "scheduler-connection-lost"
_LOST_REASON = "its Dask worker was lost before the trial finished (the task ran again elsewhere)"


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
            a client is then opened for each run and closed after (the cluster stays up). A
            scheduler that cannot be reached within Dask's ``distributed.comm.timeouts.connect``
            (30 s by default) is a :class:`~hpo_plugins.exceptions.ConfigurationError`.
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

    ``hpo.minimize`` calls :meth:`check` before it creates the study, so a storage the workers
    cannot reach, a cluster with no worker able to hold a trial and a SQLite file (or, for a new
    one, its folder) that a worker does not see are refused before anything is stored.

    A worker that dies loses its trial: Dask runs the task again elsewhere (a new trial), and the
    lost trial is failed once its heartbeat is stale (at the next ``ask``) or, at the latest,
    when the run's last task has returned; either way it is re-queued with the same parameters
    when the study's ``max_retries`` allows. The run goes on to run the copy while its
    ``n_trials`` are not spent (and, with ``max_trials``, to reach the study's total); otherwise
    the copy waits for the next run. Ctrl-C cancels the run's pending tasks, fails
    its running trials and tells the workers that the run is over: a task already on a worker
    starts no trial after that (a running objective finishes, but its result is refused).
    Losing the scheduler ends the run with :class:`~hpo_plugins.exceptions.ClusterLostError`;
    the trials then running are left to their workers (failed by the launcher instead when the
    study sends no heartbeats).

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

    def check(self, storage: Storage) -> None:
        """Refuse, before the study exists, a run on ``storage`` that :meth:`run` would refuse.

        Makes every check of :meth:`run`: a storage that only this process sees; a cluster with
        no worker that can hold a trial (waiting up to ``worker_timeout`` for a first worker);
        a SQLite file that a worker does not see (or, when the file is not made yet, its
        folder); a database server that a worker cannot open (no password, no route, no
        driver, no answer within 30 s). Opens a client for that when the launcher was given an
        address or a cluster, and closes it: :meth:`run` then opens its own. One more
        connection to the scheduler is cheap next to a run, and it keeps a refused
        ``hpo.minimize`` from leaving an empty study in the database.

        Raises:
            ConfigurationError: What the run needs, what it got and the fix.
        """
        _require_reachable(storage)
        with self._client() as client:
            self._check_cluster(client, storage)

    def run(self, study: Study, objective: Callable[..., Any], settings: RunSettings) -> None:
        """Run trials on the cluster until a limit in ``settings`` is reached."""
        _require_reachable(study.storage)
        with self._client() as client:
            capacity = self._check_cluster(client, study.storage)
            shared = SharedFile.of(study.storage)  # each task checks it too (late joiners)
            deterministic = study.seed is not None if self.deterministic is None \
                else self.deterministic
            slots = Slots(client, self.gpus_per_trial, self.n_concurrent or capacity,
                           fixed=self.n_concurrent is not None, deterministic=deterministic)
            deadline = None if settings.timeout is None else time.time() + settings.timeout
            job = Job.pack(study, objective, settings, uuid.uuid4().hex, deadline,
                           slots.count - 1 if deterministic and slots.count > 1 else None)
            _logger.info("Running up to %d trials at once on the Dask cluster %s.", slots.count,
                         client.scheduler.address)
            task = _Task(job, self._resources(), shared)
            _announce_earlier_trials(study, settings)
            with RunState(study, settings, job) as run:
                _drive(client, run, slots, task)
                while _replace_lost(run):
                    _drive(client, run, slots, task)

    def _check_cluster(self, client: Any, storage: Storage) -> int:
        """Trials the cluster can run at once, after refusing a cluster that cannot hold one and
        a SQLite file (or its folder) that a worker does not see."""
        capacity = wait_for_capacity(client, self.gpus_per_trial, timeout=self.worker_timeout)
        witness = SharedFile.witness(storage)
        if witness is not None:
            client.run(witness.check)  # before any task: a worker elsewhere is refused
        else:
            # this process first: a database it cannot open itself gets its own error (as
            # without Dask), not advice to give the workers credentials or a route
            storage.list_studies()
            check_workers_reach(client, storage)  # a database server: credentials, routes
        return capacity

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        """The client given, or one opened on the address or cluster given (closed after the
        run; a cluster it was opened on stays up). An opened client never becomes the default
        client of this process; a scheduler it cannot reach is a ConfigurationError."""
        if not isinstance(self.client, str) and not _is_cluster(self.client):
            yield self.client
            return
        with connect(self.client, _client_class()) as client:
            yield client

    def _resources(self) -> dict[str, float] | None:
        return {GPU_RESOURCE: self.gpus_per_trial} if self.gpus_per_trial else None


# -- arguments ----------------------------------------------------------------------------------


def _require_reachable(storage: Storage) -> None:
    """Refuse a storage that only this process sees (the workers could not reach it)."""
    if not storage.multiprocess:
        raise ConfigurationError(
            f"Expected a storage that every Dask worker reaches. Received: "
            f"{storage.describe()}. Use a PostgreSQL URL (or, with every worker on "
            f"this machine, a SQLite file such as 'sqlite:///hpo.db')."
        )


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
        check_address(client)
        return client
    if isinstance(client, Client) or _is_cluster(client):
        return client
    raise ConfigurationError(
        f"Expected `client` to be a dask.distributed.Client, a Dask cluster (LocalCluster, "
        f"SLURMCluster...) or a scheduler address such as 'tcp://scheduler:8786'. Received: "
        f"client={reprlib.repr(client)} (of type {type(client).__name__})."
    )


def check_address(address: str) -> None:
    """Refuse a scheduler address Dask could not connect to, with the form it needs."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address, strict=False)  # no scheme: tcp
        get_backend(scheme)  # also a backend registered by a package (ucx): its ValueError
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
    if not is_integer(value) or value < 1:
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


# -- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    """What each of the run's tasks needs besides the job."""

    job: Job
    resources: dict[str, float] | None
    shared: SharedFile | None


def _drive(client: Any, run: RunState, slots: Slots, task: _Task) -> None:
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
                future = done.get(timeout=LOOK_SECONDS)
            except queue.Empty:  # nothing finished: look for workers that joined
                fill()
                continue
            flying.discard(future)
            _collect(run, future)
            # Let go of the result: while a future of it is held, Dask keeps it wanted and,
            # should its worker die, runs the task again elsewhere: a whole extra trial.
            future.release()
            fill()
    except BaseException:
        _stop(client, task.job.run_id, flying)
        raise


def _collect(run: RunState, future: Any) -> None:
    """One task's result into the run; a task whose worker kept dying counts as lost.

    A task cancelled because the client lost its scheduler ends the run with
    :class:`ClusterLostError` (the trials on the workers are left to them, see RunState).
    """
    from distributed.scheduler import KilledWorker

    try:
        run.finished(future.result())
    except KilledWorker as exc:
        _logger.warning("A Dask worker died with a trial (%s); it is failed once its heartbeat "
                        "is stale.", exc)
        run.lost_unseen()  # its trial is failed by _replace_lost or its heartbeat
    except CancelledError as exc:
        if _SCHEDULER_LOST not in str(exc) and future.client.status == "running":
            raise
        left = ("Trials running on workers go on there: one that finishes keeps its result; "
                "one whose worker dies is failed as lost once its heartbeat is older than the "
                "study's grace_period, and re-queued under max_retries"
                if run.study.heartbeat_interval is not None else
                "The trials that were running are marked FAIL (the study sends no heartbeats "
                "by which a lost one could be told later)")
        raise ClusterLostError(
            f"The run lost its Dask scheduler at {future.client.scheduler.address} and "
            f"stopped ({' '.join(str(exc).split())}). {left}. Start the scheduler and the "
            f"workers again, then run the same command: with max_trials it completes the "
            f"study.") from None


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


def _announce_earlier_trials(study: Study, settings: RunSettings) -> None:
    """Say here what the tasks would say on the workers only: the study is resumed with
    trials still RUNNING from an earlier run (a crashed launcher), which a run with
    ``max_trials`` may have to wait for, up to the grace period, before it runs their places.
    """
    if settings.max_trials is None or study.grace_period is None:
        return
    running = [t.number for t in study.storage.get_all_trials(study.study_id,
                                                              (TrialState.RUNNING,))
               if t.last_heartbeat is not None]
    if running:
        _logger.warning(
            "The study has %s RUNNING from an earlier run (%s). If their workers are gone (a "
            "crashed run), they are failed once their heartbeat is %g s old, and only then do "
            "their places run again: the run may wait that long for them.",
            f"{len(running)} trial{'s' if len(running) > 1 else ''}",
            ", ".join(str(n) for n in running[:10]), study.grace_period)


def _replace_lost(run: RunState) -> bool:
    """After the run's last task: fail its trials still RUNNING; True if the run must go on.

    Every task has returned, so such a trial has no worker any more: its worker died and Dask
    ran the task again elsewhere. (A Dask worker that loses its scheduler shuts down rather than
    reconnect, so no trial of a worker the scheduler dropped is still running.) Its stale
    heartbeat would fail it at a later ``ask``; failing it now keeps the study clean, and
    re-queues it as the heartbeat would (``max_retries``). A run that stopped because the study
    looked full (the lost trials counted as RUNNING, under ``max_trials``) or had nothing left
    to propose (a grid) goes on while it may: it then runs the freed places and the re-queued
    trials.
    """
    lost = fail_orphans(run.study, run.job.run_id, _LOST_REASON, retry=True)
    run.orphaned(lost)  # those counted at their KilledWorker are not counted twice
    # every task has returned: a KilledWorker loss not matched now had no trial left here (it
    # died before asking one, or a heartbeat failed it), so it must not absorb a later loss
    run.uncounted_losses = 0
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
    """Whether the run's cancel event is set; False when the scheduler cannot say.

    A failed look is tried once more, then taken as "the run goes on": answering "cancelled"
    would make this task return "nothing left to run", which ends the whole run without an error
    after one transient hiccup. The trial's result goes to the study's database, not through
    the scheduler; if the launcher is really gone, its clean-up or the trial's heartbeat
    deals with the trial.
    """
    for attempt in range(2):
        try:
            return bool(event.is_set())
        except Exception as exc:
            if attempt:
                _logger.warning("Could not ask the Dask scheduler whether this run was stopped "
                                "(%s): going on.", exc)
            else:
                time.sleep(_EVENT_RETRY_SECONDS)
    return False
