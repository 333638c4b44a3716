"""Trials on a Dask cluster: one study across machines, through an existing distributed engine."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from hpo_plugins.exceptions import ConfigurationError, missing_dependency
from hpo_plugins.launchers._base import Launcher
from hpo_plugins.launchers._state import RunState, fail_orphans
from hpo_plugins.launchers._worker import Job, run_task

if TYPE_CHECKING:
    from hpo_plugins._optimize import RunSettings
    from hpo_plugins.study import Study

__all__ = ["DaskLauncher"]

_logger = logging.getLogger(__name__)

#: The Dask worker resource that GPU trials ask for (``dask worker --resources "GPU=1"``).
GPU_RESOURCE = "GPU"
_LOST_REASON = "its Dask worker was lost before the trial finished (the task ran again elsewhere)"


class DaskLauncher(Launcher):
    """Send trials to the workers of a Dask cluster; they share the study's database.

    Each task runs one trial (ask → objective → tell) on whichever worker Dask picks, against the
    study's storage, so reports, pruning decisions and heartbeats cross machines through the
    database and no coordinator of ours is involved. Use a database server (PostgreSQL) that every
    machine reaches; a SQLite file only works when all workers share one machine's local disk.
    Each trial records the Dask worker that ran it (``system_attrs["worker"]``: host, pid,
    ``dask`` address and ``name``) and, when set there, the worker's ``CUDA_VISIBLE_DEVICES``
    (``system_attrs["gpu"]``). Workers need ``hpo_plugins`` (and whatever the objective imports)
    installed; the objective travels with cloudpickle.

    Args:
        client: A ``dask.distributed.Client``, or a scheduler address such as
            ``"tcp://scheduler:8786"`` (a client is then opened for each run and closed after).
        gpus_per_trial: GPUs each trial needs. Trials then go only to workers that advertise
            that resource (``dask worker --resources "GPU=1"``), at most one trial per advertised
            GPU at a time; start one worker per GPU with its ``CUDA_VISIBLE_DEVICES`` set (as
            ``dask_cuda.LocalCUDACluster`` does). The trial records the device it saw.
        n_concurrent: Trials in flight at once; default: every worker thread (or every
            advertised GPU / ``gpus_per_trial``), counted when the run starts.
        deterministic: As for :class:`~hpo_plugins.launchers.JoblibLauncher` (default: True
            when the study has a seed).

    A worker that dies loses its trial: Dask runs the task again elsewhere (a new trial), and the
    lost trial is failed once its heartbeat is stale (at the next ``ask``) or, at the latest,
    when the run's last task has returned; with ``max_trials`` the run then starts replacements,
    so the study reaches its total. Ctrl-C cancels the run's pending tasks and fails its running
    trials (a task already running finishes, but its result is refused).

    Example:
        >>> from dask.distributed import Client  # doctest: +SKIP
        >>> hpo.minimize(objective, space, n_trials=500, study_name="resnet",
        ...              launcher=DaskLauncher(Client("tcp://scheduler:8786"), gpus_per_trial=1),
        ...              storage="postgresql+psycopg://hpo@db-host/hpo")  # doctest: +SKIP
    """

    def __init__(self, client: Any, *, gpus_per_trial: float = 0,
                 n_concurrent: int | None = None, deterministic: bool | None = None) -> None:
        if not isinstance(gpus_per_trial, (int, float)) or gpus_per_trial < 0:
            raise ConfigurationError(
                f"Expected `gpus_per_trial` to be a number >= 0. Received: "
                f"gpus_per_trial={gpus_per_trial!r}."
            )
        if n_concurrent is not None and (not isinstance(n_concurrent, int) or n_concurrent < 1):
            raise ConfigurationError(
                f"Expected `n_concurrent` to be an integer >= 1 or None. Received: "
                f"n_concurrent={n_concurrent!r}."
            )
        self.client = client
        self.gpus_per_trial = gpus_per_trial
        self.n_concurrent = n_concurrent
        self.deterministic = deterministic

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
            capacity = self._capacity(client)  # also checks that GPU trials can run
            slots = self.n_concurrent or capacity
            deterministic = study.seed is not None if self.deterministic is None \
                else self.deterministic
            deadline = None if settings.timeout is None else time.time() + settings.timeout
            job = Job.pack(study, objective, settings, uuid.uuid4().hex, deadline,
                           slots - 1 if deterministic and slots > 1 else None)
            _logger.info("Running up to %d trials at once on the Dask cluster %s.", slots,
                         client.scheduler.address)
            with RunState(study, settings, job) as run:
                _drive(client, run, slots, self._resources())
                while _replace_lost(run):
                    _drive(client, run, slots, self._resources())

    @contextlib.contextmanager
    def _client(self) -> Iterator[Any]:
        """The client given, or one opened on the address given (closed after the run)."""
        try:
            from dask.distributed import Client
        except ImportError:
            raise missing_dependency("dask.distributed", "dask") from None
        if not isinstance(self.client, str):
            yield self.client
            return
        with Client(self.client) as client:
            yield client

    def _resources(self) -> dict[str, float] | None:
        return {GPU_RESOURCE: self.gpus_per_trial} if self.gpus_per_trial else None

    def _capacity(self, client: Any) -> int:
        """Trials the cluster can run at once: threads, or advertised GPUs per trial."""
        workers = client.scheduler_info()["workers"].values()
        if not self.gpus_per_trial:
            return max(1, sum(int(w.get("nthreads", 1)) for w in workers))
        gpus = sum(float(w.get("resources", {}).get(GPU_RESOURCE, 0)) for w in workers)
        if gpus < self.gpus_per_trial:
            raise ConfigurationError(
                f"Expected Dask workers that advertise {GPU_RESOURCE} resources for "
                f"gpus_per_trial={self.gpus_per_trial}. Received: {gpus:g} {GPU_RESOURCE} in the "
                f'cluster. Start workers with --resources "{GPU_RESOURCE}=1".'
            )
        return max(1, int(gpus // self.gpus_per_trial))


def _replace_lost(run: RunState) -> bool:
    """After the run's last task: fail its trials still RUNNING; True if replacements are due.

    Every task has returned, so such a trial has no worker any more (its worker died and Dask ran
    the task again elsewhere). Its stale heartbeat would fail it at a later ``ask``; failing it
    now keeps the study clean. A run bounded by ``max_trials`` that stopped because the study
    looked full (the lost trials counted as RUNNING) goes on, so the study reaches its total.
    """
    lost = fail_orphans(run.study, run.job.run_id, _LOST_REASON)
    run.orphaned(lost, counted=True)  # each was counted at its KilledWorker
    if not lost or run.settings.max_trials is None or not run.done.is_set():
        return False
    run.done.clear()
    return not run.exhausted()


def _drive(client: Any, run: RunState, slots: int, resources: dict[str, float] | None) -> None:
    """Keep ``slots`` trials in flight; collect results as they complete."""
    from dask.distributed import as_completed
    from distributed.scheduler import KilledWorker

    def submit() -> Any:
        return client.submit(_run_on_worker, run.job, pure=False, resources=resources,
                             key=f"hpo-trial-{uuid.uuid4().hex}")

    flying = [submit() for _ in range(slots) if run.take()]
    queue = as_completed(flying)
    try:
        for future in queue:
            try:
                run.finished(future.result())
            except KilledWorker as exc:
                _logger.warning("A Dask worker died with a trial (%s); it is failed once its "
                                "heartbeat is stale.", exc)
                run.lost(1, [])  # its trial is failed by _replace_lost or its heartbeat,
                run.failed += 1  # but counted now, so repeated losses stop the run in time
            if run.take():
                queue.add(submit())
    except BaseException:
        client.cancel(flying + list(queue.futures))
        raise


def _run_on_worker(job: Job) -> Any:
    """The task Dask runs: one trial, tagged with the Dask worker and the device it sees."""
    import os

    from distributed import get_worker

    worker = get_worker()
    return run_task(job, gpu=os.environ.get("CUDA_VISIBLE_DEVICES") or None,
                    worker={"dask": worker.address, "name": str(worker.name)})
