"""Event files that any number of processes can write side by side without TensorFlow.

Each process writes its own file in each run directory, named like TensorBoard's own
(``events.out.tfevents.<seconds>.<nanoseconds>.<host>.<pid>.<counter>.hpo``; the ``.hpo`` suffix
keeps it apart from the files of a framework logger in the same process), so no two writers ever
share a file. TensorBoard reads a run's files in name order; the creation time, to the
nanosecond and in fixed-width fields, comes first so that name order is creation order (with
whole seconds only, two files of one second would sort by host and pid as text).
A record is appended with one ``write`` on a file opened for that event and closed at once: the
data is on disk as soon as the call returns, and no file handle outlives it.

The experiment config is different: one per study, in the logdir root, under the fixed name
:data:`EXPERIMENT_FILE`. It is written to a temporary name and hard-linked into place, so it
appears complete or not at all, and the first process wins; a resumed study or a second worker
finds it there and writes nothing.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

__all__ = ["EXPERIMENT_FILE", "EventFiles", "holds_tag", "read_summary_values", "write_once"]

_logger = logging.getLogger(__name__)

#: Name of the study's experiment-config file in the logdir root.
EXPERIMENT_FILE = "events.out.tfevents.hpo-experiment"

_FILE_VERSION = "brain.Event:2"
_counter = itertools.count()


class EventFiles:
    """This process's event file in each run directory; appends summaries to them.

    Thread-safe: a lock serialises appends, so threads of one process never interleave records.
    """

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}
        self._lock = threading.Lock()

    def write(self, run_dir: str, summary: summary_pb2.Summary, step: int = 0) -> None:
        """Append ``summary`` at ``step`` to this process's file in ``run_dir``."""
        self.write_all(run_dir, [summary], step)

    def write_all(self, run_dir: str, summaries: Sequence[summary_pb2.Summary],
                  step: int = 0) -> None:
        """Append ``summaries`` at ``step`` in one write: a process killed meanwhile leaves
        all of them or none (a cut record at most, which readers skip)."""
        now = time.time()
        records = [event_pb2.Event(wall_time=now, step=step, summary=s) for s in summaries]
        with self._lock:
            path = self._paths.get(run_dir)
            if path is None:
                path = self._paths[run_dir] = _new_file_name(run_dir)
                records.insert(0, _version_event())
            _append(path, records)

    def forget(self, run_dir: str) -> None:
        """Stop tracking ``run_dir`` (its trial ended); a later write starts a new file."""
        with self._lock:
            self._paths.pop(run_dir, None)


def holds_tag(run_dir: str, tag: str) -> bool:
    """Whether any process's hpo_plugins event file in ``run_dir`` holds a summary ``tag``.

    Reads only the ``.hpo`` files (small: a trial's session, curve and end), never a framework
    logger's; a missing folder reads as absent, and a file ends at its first record that a
    killed writer cut short.
    """
    try:
        names = sorted(n for n in os.listdir(run_dir) if n.endswith(".hpo"))
    except OSError:
        return False
    for name in names:
        for record in _records(os.path.join(run_dir, name)):
            event = event_pb2.Event.FromString(record)
            if any(value.tag == tag for value in event.summary.value):
                return True
    return False


def read_summary_values(path: str, tag: str) -> list[summary_pb2.Summary.Value]:
    """Every summary value tagged ``tag`` in the event file ``path``, in order (none if the
    file cannot be read)."""
    try:
        records = list(_records(path))
    except OSError:
        return []
    return [value for record in records
            for value in event_pb2.Event.FromString(record).summary.value if value.tag == tag]


def _records(path: str) -> Iterator[bytes]:
    """The records of a TFRecord file (length, its checksum, data, the data's checksum), up
    to the first one cut short; checksums unchecked: the files are ours and whole or cut.
    Read with the struct module, so that no TensorFlow is imported into the launcher."""
    with open(path, "rb") as handle:
        data = handle.read()
    offset = 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        end = offset + 12 + length + 4
        if end > len(data):
            return
        yield data[offset + 12:offset + 12 + length]
        offset = end


def write_once(path: str, summary: summary_pb2.Summary) -> bool:
    """Create the event file ``path`` holding ``summary``, unless it exists; True if created.

    Atomic across processes: the file is complete before its name appears.
    """
    if os.path.exists(path):
        return False
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".hpo-{os.getpid()}-{uuid.uuid4().hex}.tmp")
    _append(tmp, [_version_event(), event_pb2.Event(wall_time=time.time(), summary=summary)])
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: exclusive create, then copy
        return _copy_exclusive(tmp, path)
    finally:
        os.unlink(tmp)
    return True


def _copy_exclusive(source: str, path: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
        dst.write(src.read())
    return True


def _new_file_name(run_dir: str) -> str:
    os.makedirs(run_dir, exist_ok=True)
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    name = (f"events.out.tfevents.{seconds:010d}.{nanoseconds:09d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_counter)}.hpo")
    _logger.debug("Writing TensorBoard events to %s", os.path.join(run_dir, name))
    return os.path.join(run_dir, name)


def _version_event() -> event_pb2.Event:
    return event_pb2.Event(wall_time=time.time(), file_version=_FILE_VERSION)


def _append(path: str, events: list[event_pb2.Event]) -> None:
    """Append ``events`` to ``path`` with one ``write`` of all their records."""
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    with open(path, "ab", buffering=0) as handle:
        handle.write(buffer.getvalue())
