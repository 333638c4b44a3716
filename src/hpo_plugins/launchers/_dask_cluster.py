"""What a Dask cluster can run, and whether its workers see a SQLite file: the checks of
:class:`~hpo_plugins.launchers.DaskLauncher` (and of ``hpo-plugins run --dask``) that read the
cluster, kept apart from the run itself (``_dask.py``)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins.storages import Storage

__all__ = ["GPU_RESOURCE", "LOOK_SECONDS", "WORKER_TIMEOUT", "SharedFile", "Slots",
           "check_workers_reach", "connect", "trial_capacity", "wait_for_capacity"]

_logger = logging.getLogger("hpo_plugins.launchers._dask")  # one logger for the launcher

#: Seconds each worker may take to open a database server before a run (check_workers_reach).
_PROBE_SECONDS = 30.0
#: The Dask worker resource that GPU trials ask for (``dask worker --resources "GPU=1"``).
GPU_RESOURCE = "GPU"
#: Seconds a run waits, by default, for the first Dask worker to join its scheduler.
WORKER_TIMEOUT = 60.0
LOOK_SECONDS = 2.0  # how often a run looks for workers that joined (more trials at once)
_FIRST_WORKER_POLL = 0.2


# -- reaching the scheduler ---------------------------------------------------------------------


def connect(target: Any, client_class: Any) -> Any:
    """A new ``client_class`` client of ``target`` (a scheduler address or a cluster); close
    it after use (``with connect(...) as client:``).

    A scheduler that cannot be reached is refused with its address and the fix, instead of
    Dask's bare ``OSError`` (after the ``distributed.comm.timeouts.connect`` wait, 30 s by
    default). The client never becomes the default client of this process.

    Raises:
        ConfigurationError: The scheduler at the address could not be reached.
    """
    try:
        return client_class(target, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a malformed address
        raise ConfigurationError(unreachable_scheduler(_address_of(target), exc)) from None


def unreachable_scheduler(address: str, reason: BaseException) -> str:
    """The message for a Dask scheduler that cannot be reached (the launcher's and the CLI's)."""
    import dask.config

    timeout = dask.config.get("distributed.comm.timeouts.connect", default="30s")
    return (f"Expected a Dask scheduler that this machine reaches; cannot connect to the Dask "
            f"scheduler at {address} ({reason}). Start one with `dask scheduler` and pass the "
            f"address it prints, check the host, port and firewall, or, on a slow network, "
            f"raise Dask's `distributed.comm.timeouts.connect` setting (now {timeout}).")


def _address_of(target: Any) -> str:
    """The scheduler address of an address or a cluster object, for messages."""
    return target if isinstance(target, str) else str(getattr(target, "scheduler_address",
                                                              target))


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
        left -= gpus_per_trial  # by subtraction, as the worker counts (10 trials of 0.1 fit)
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
                    "one.%s", address, timeout,
                    "" if cli else " To wait for all of them, call client.wait_for_workers(n) "
                                   "before the run.")
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


class Slots:
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
        self._look_at = time.monotonic() + LOOK_SECONDS

    def target(self) -> int:
        """The count now, after a look at the cluster every few seconds."""
        if not self._watching or time.monotonic() < self._look_at:
            return self.count
        self._look_at = time.monotonic() + LOOK_SECONDS
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
    path and fail with a bare "No study with id 1". Before the file exists (a new database,
    checked by :meth:`DaskLauncher.check` before the study is created) its folder stands in for
    it (``kind="folder"``): a worker that sees the launcher's folder sees the file made in it.
    """

    path: str
    device: int
    inode: int
    host: str
    kind: Literal["file", "folder"] = "file"  # "folder": of a SQLite file not made yet

    @classmethod
    def of(cls, storage: Storage) -> SharedFile | None:
        """The SQLite file of ``storage``; None for a database server, or a path not found."""
        path = _sqlite_path(storage)
        return None if path is None else cls._at(path, "file")

    @classmethod
    def witness(cls, storage: Storage) -> SharedFile | None:
        """What the workers must see for ``storage``: its SQLite file, or the folder the file
        will be made in while it does not exist yet; None for a database server, or when
        neither exists (the run's own check then comes after the file is made)."""
        path = _sqlite_path(storage)
        if path is None:
            return None
        return cls._at(path, "file") or cls._at(os.path.dirname(path), "folder")

    @classmethod
    def _at(cls, path: str, kind: Literal["file", "folder"]) -> SharedFile | None:
        try:
            stat = os.stat(path)
        except OSError:  # not there yet, or a URI form we do not read: the workers' errors must do
            return None
        return cls(path, stat.st_dev, stat.st_ino, socket.gethostname(), kind)

    def check(self, dask_worker: Any) -> None:
        """On a worker (``client.run`` passes ``dask_worker``): refuse another file or none."""
        try:
            stat = os.stat(self.path)
        except OSError:
            seen = f"no {self.kind} at that path"
        else:
            if (stat.st_dev, stat.st_ino) == (self.device, self.inode):
                return
            seen = f"another {self.kind} at that path"
        what = "SQLite file" if self.kind == "file" else "folder of the SQLite file"
        raise ConfigurationError(
            f"Expected every Dask worker to see the study's {what} {self.path}. Received: "
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


def check_workers_reach(client: Any, storage: Storage) -> None:
    """Refuse a database server that a Dask worker cannot open (before the study is created).

    Each worker connects to the database itself, with its own environment: a password given to
    the launcher through ``PGPASSWORD`` or ``~/.pgpass``, a host only the launcher's network
    reaches, or a driver installed only here, would otherwise fail every task with a bare
    driver error and leave an empty study behind.

    A SQLite file is not probed: :class:`SharedFile` checks that the workers see it.

    Raises:
        ConfigurationError: Which workers failed, why, and what to give them.
    """
    if _sqlite_path(storage) is not None:
        return
    answers = client.run(_open_here, storage, on_error="return")
    failed = {address: why for address, why in answers.items() if why is not None}
    if not failed:
        return
    names = {address: info.get("name") for address, info in
             client.scheduler_info().get("workers", {}).items()}
    listed = "; ".join(f"{address} (name {names.get(address)!r}): {_why(why)}"
                       for address, why in sorted(failed.items()))
    raise ConfigurationError(
        f"Expected every Dask worker to open the storage {storage.describe()}, as this process "
        f"does. {len(failed)} of {len(answers)} cannot: {listed}. Each worker connects to the "
        f"database itself, with its own environment: give the workers the password "
        f"(PGPASSWORD or ~/.pgpass where `dask worker` runs, or the whole URL in "
        f"$HPO_PLUGINS_STORAGE here, which travels to them), a network route to the server, "
        f"and the driver (pip install 'hpo_plugins[postgres]').")


def _why(answer: Any) -> str:
    """A worker's answer: the text :func:`_open_here` returned, or the error ``run`` caught."""
    if isinstance(answer, BaseException):
        return f"{type(answer).__name__}: {answer}"
    return " ".join(str(answer).split())


async def _open_here(storage: Storage) -> str | None:
    """On a worker: open ``storage`` once; None, or why it failed (one try, no waiting).

    A coroutine, so that ``client.run`` runs it on the worker's event loop without blocking
    it: the connection is made in a daemon thread, and a server that never answers (a
    firewall that drops packets) is given up after :data:`_PROBE_SECONDS` instead of holding
    the worker (the thread, stuck in the driver, then cannot keep the worker from exiting).
    """
    import asyncio
    import threading

    from hpo_plugins.storages import SQLStorage

    if isinstance(storage, SQLStorage):  # this worker's own copy: it may stop waiting
        storage.reconnect_timeout = 0  # a server away now is a refusal here, not an outage
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str | None] = loop.create_future()

    def settle(why: str | None) -> None:
        if not answer.done():  # not given up meanwhile
            answer.set_result(why)

    def probe() -> None:
        why = _open(storage)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, why)

    threading.Thread(target=probe, name="hpo-storage-probe", daemon=True).start()
    try:
        return await asyncio.wait_for(answer, _PROBE_SECONDS)
    except asyncio.TimeoutError:
        return f"no answer from the database within {_PROBE_SECONDS:g} s"


def _open(storage: Storage) -> str | None:
    try:
        storage.list_studies()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        storage.close()
    return None
