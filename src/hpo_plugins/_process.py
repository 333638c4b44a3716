"""Which process runs a trial, recorded so that a later run can tell that it is gone.

A trial run by the loop records ``system_attrs["worker"]``: the host name and process id, and,
where Linux exposes them, the boot id, the inodes of the PID and time namespaces and the
process's start time (which ``/proc`` shows shifted by the reader's time namespace). A
process id alone names a process only within one PID namespace of one boot: containers that
share a host name (``--network host``, two containers of one pod) number their processes
apart, and ids are reused. So a process counts as gone only when the record was made in these
very namespaces of this boot and no process with that id and start time exists now; in any
doubt it is not gone, and the trial is left to its heartbeat. Where the platform has no such
namespaces (macOS), the host name and process id alone decide; on Windows nothing is told from
here, and trials are left to their heartbeat.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from collections.abc import Mapping
from typing import Any

__all__ = ["alive_here", "gone_here", "importing_main_in_worker", "process_record",
           "refuse_in_importing_worker", "same_process"]


def process_record() -> dict[str, Any]:
    """This process's record: ``host`` and ``pid``, plus ``boot``, ``pid_ns``, ``time_ns``
    and ``started`` where they can be read (Linux)."""
    pid = os.getpid()
    record: dict[str, Any] = {"host": socket.gethostname(), "pid": pid}
    for key, value in (("boot", _boot_id()), ("pid_ns", _namespace("pid")),
                       ("time_ns", _namespace("time")), ("started", _start_time(pid))):
        if value is not None:
            record[key] = value
    return record


def same_process(record: Any) -> bool:
    """Whether ``record`` (:func:`process_record`) names this very process: its host, pid,
    boot and PID namespace (a worker elsewhere may have this pid)."""
    if not isinstance(record, Mapping):
        return False
    here = process_record()
    return all(record.get(key) == here.get(key) for key in ("host", "pid", "boot", "pid_ns"))


def gone_here(record: Any) -> bool:
    """Whether the process of ``record`` (:func:`process_record`, as a trial stored it) is
    certainly gone: it ran in this host's PID namespace during this boot, and no process with
    its id and start time exists. False in any doubt (no record, another host or namespace, a
    record without the identifiers, a process that cannot be read)."""
    return _verdict(record) is True


def alive_here(record: Any) -> bool:
    """Whether the process of ``record`` is certainly alive: it ran in this host's PID
    namespace during this boot and still runs. False when it is gone and when it cannot be
    watched from here (another host or container, a record without the identifiers)."""
    return _verdict(record) is False


def importing_main_in_worker() -> bool:
    """Whether this process is a new ``multiprocessing`` worker still importing the main script.

    A process started with the spawn method (every slot process of ``JoblibLauncher``) runs the
    main script's module-level code again, as ``__mp_main__``, before it takes any task; while
    it does, ``multiprocessing`` marks the process ``_inheriting`` (and refuses to start
    processes from it). A run started then comes from a script without an ``if __name__ ==
    "__main__":`` guard.
    """
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def refuse_in_importing_worker(what: str) -> None:
    """Raise a ``ConfigurationError`` naming the ``__main__`` guard when ``what`` (a run, an
    enqueue) is started by a script's module-level code that a new worker process runs again
    (:func:`importing_main_in_worker`): a run would start workers of its own, an enqueue
    would add one more copy of the trial per worker process."""
    if not importing_main_in_worker():
        return
    from hpo_plugins.exceptions import ConfigurationError

    raise ConfigurationError(
        f"Expected {what} to come from the main script, not from a new worker process that "
        f"imports it again. Received: {what} in the script's module-level code, which every "
        f"process started with multiprocessing's spawn method runs again as it starts "
        f"(JoblibLauncher's GPU slots and fresh processes, and others' workers). Put the code "
        f"that starts the run (and any enqueue) under `if __name__ == \"__main__\":` "
        f"(functions the workers need, such as the objective, stay at module level).")


def _verdict(record: Any) -> bool | None:
    """True: the process of ``record`` is gone; False: it is alive; None: it cannot be told
    from here.

    Where this platform has no PID namespaces (no ``/proc``: macOS, the BSDs) and the record was
    written without them too, the host name and process id decide: no such process means
    gone, and one that exists counts as alive (it may be a reused id: in doubt, alive). On
    Windows nothing is told (``os.kill(pid, 0)`` would send a Ctrl+C event, not probe).
    """
    if not isinstance(record, Mapping):
        return None
    pid = record.get("pid")
    if (not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0
            or record.get("host") != socket.gethostname()):
        return None
    boot, namespace = _boot_id(), _namespace("pid")
    if boot is None and namespace is None and "boot" not in record and "pid_ns" not in record:
        if os.name == "nt":  # os.kill(pid, 0) sends CTRL_C_EVENT there: no probe at all
            return None
        exists = True if pid == os.getpid() else _exists(pid)
        return None if exists is None else not exists
    if boot is None or namespace is None or record.get("boot") != boot \
            or record.get("pid_ns") != namespace:
        return None
    if record.get("time_ns") != _namespace("time"):  # start times read in another clock
        return None
    if pid == os.getpid():
        return False
    if _exists(pid) is False:
        return True
    stat = _stat(pid)
    if stat is None:
        return None  # it cannot be read: ask again later
    state, started = stat
    if state == "Z":
        return True  # it ended and waits to be reaped
    if record.get("started") is None:
        return False  # no start time recorded: a live process of that id counts as it
    return started != record["started"]  # another process took the id: gone


def _exists(pid: int) -> bool | None:
    """Whether a process ``pid`` exists in this PID namespace (None: it cannot be told)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return None
    return True


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _namespace(kind: str) -> int | None:
    """The inode of this process's ``kind`` namespace (``pid``, ``time``), or None."""
    try:
        return os.stat(f"/proc/self/ns/{kind}").st_ino
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot, or None."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time)`` of process ``pid`` from ``/proc/PID/stat`` (fields 3 and 22;
    the start time in clock ticks since boot), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:  # the name may be any bytes
            fields = handle.read().rsplit(b")", 1)[-1].split()  # and may hold spaces
        return fields[0].decode("ascii", "replace"), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
