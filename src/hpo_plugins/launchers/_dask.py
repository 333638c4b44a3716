"""Trials on a Dask cluster: one study across machines, through an existing distributed engine."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hpo_plugins.exceptions import ConfigurationError, missing_dependency
from hpo_plugins.launchers._base import Launcher
from hpo_plugins.launchers._state import RunState
from hpo_plugins.launchers._worker import Job, run_task

if TYPE_CHECKING:
    from hpo_plugins._optimize import RunSettings
    from hpo_plugins.study import Study

__all__ = ["DaskLauncher"]

_logger = logging.getLogger(__name__)

#: The Dask worker resource that GPU trials ask for (``dask worker --resources "GPU=1"``).
GPU_RESOURCE = "GPU"


class DaskLauncher(Launcher):
    """Send trials to the workers of a Dask cluster; they share the study's database.

    Each task runs one trial (ask → objective → tell) on whichever worker Dask picks, against the
    study's storage, so reports, pruning decisions and heartbeats cross machines through the
    database and no coordinator of ours is involved. Use a database server (PostgreSQL) that every
    machine reaches; a SQLite file only works when all workers share one machine's local disk.

    Args:
        client: A ``dask.distributed.Client`` (or a scheduler address such as
            ``"tcp://scheduler:8786"``, connected on first use).
        gpus_per_trial: GPUs each trial needs. Trials then go only to workers that advertise
            that resource (``dask worker --resources "GPU=1"``), at most one trial per advertised
            GPU at a time; start one worker per GPU with its ``CUDA_VISIBLE_DEVICES`` set (as
            ``dask_cuda.LocalCUDACluster`` does). The trial records the device it saw.
        n_concurrent: Trials in flight at once; default: every worker thread (or every
            advertised GPU / ``gpus_per_trial``), counted when the run starts.
        deterministic: As for :class:`~hpo_plugins.launchers.JoblibLauncher` (default: True
            when the study has a seed).

    A worker that dies loses its trial: the trial is failed once its heartbeat is stale and the
    run goes on with the others. Ctrl-C cancels the run's tasks and fails its running trials.

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

    def run(self, study: Study, objective: Callable[..., Any], settings: RunSettings) -> None:
        """Run trials on the cluster until a limit in ``settings`` is reached."""
        client = self._client()
        slots = self.n_concurrent or self._capacity(client)
        deterministic = study.seed is not None if self.deterministic is None \
            else self.deterministic
        deadline = None if settings.timeout is None else time.time() + settings.timeout
        job = Job.pack(study, objective, settings, uuid.uuid4().hex, deadline,
                       slots - 1 if deterministic and slots > 1 else None)
        _logger.info("Running up to %d trials at once on the Dask cluster %s.", slots,
                     client.scheduler.address)
        with RunState(study, settings, job) as run:
            _drive(client, run, slots, self._resources())

    def _client(self) -> Any:
        try:
            from dask.distributed import Client
        except ImportError:
            raise missing_dependency("dask.distributed", "dask") from None
        if isinstance(self.client, str):
            self.client = Client(self.client)
        return self.client

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
                run.lost()
            if run.take():
                queue.add(submit())
    except BaseException:
        client.cancel(flying + list(queue.futures))
        raise


def _run_on_worker(job: Job) -> Any:
    """The task Dask runs: one trial, tagged with the device the worker sees."""
    import os

    return run_task(job, gpu=os.environ.get("CUDA_VISIBLE_DEVICES") or None)
