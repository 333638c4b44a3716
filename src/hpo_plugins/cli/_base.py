"""What every command shares: the command record, exit codes, output, storage and study access."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from hpo_plugins.exceptions import ConfigurationError, MissingDependencyError, StorageError
from hpo_plugins.storages import (
    DEFAULT_STORAGE_ENV,
    Storage,
    default_storage_url,
    missing_sqlite_file,
)

if TYPE_CHECKING:
    from hpo_plugins.study import Study

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CLIError",
    "Command",
    "Terminated",
    "caught_signals",
    "echo",
    "exit_status",
    "integer_at_least",
    "json_text",
    "not_a_storage_url",
    "open_storage",
    "open_study",
    "stop_signals_raise",
    "warn",
]

#: The command did what was asked.
EXIT_OK = 0
#: The command failed at run time (no completed trial, no logdir, a missing extra, ...).
EXIT_FAILURE = 1
#: The command line is wrong (argparse's own code).
EXIT_USAGE = 2
#: The storage cannot be opened, or it holds no study of that name.
EXIT_NOT_FOUND = 3
#: Stopped by Ctrl-C (SIGINT): 128 + 2, as a shell reports it.
EXIT_INTERRUPTED = 130
#: Stopped by SIGTERM (``kill``, ``timeout``, Slurm, ``docker stop``): 128 + 15.
EXIT_TERMINATED = 143


@dataclass(frozen=True)
class Command:
    """One subcommand of ``hpo-plugins``.

    Attributes:
        name: What the user types (``hpo-plugins <name>``).
        summary: One line for ``hpo-plugins --help``.
        description: The text of ``hpo-plugins <name> --help``.
        configure: Adds the command's own arguments to its parser (``--storage`` and
            ``--verbose`` are added for every command).
        run: Does the work and returns the exit code; raises :class:`CLIError` (or an
            ``HPOError``) for a failure the user can fix.
    """

    name: str
    summary: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class CLIError(Exception):
    """A failure reported as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class Terminated(BaseException):
    """Raised in the main thread when the command gets SIGTERM (see ``run``).

    A ``BaseException``, like ``KeyboardInterrupt``: no ``except Exception`` in the library or
    in a launcher swallows it, so the run stops the way Ctrl-C stops it (the running trials are
    marked FAIL, their commands and workers are stopped). It is not a ``KeyboardInterrupt``:
    SIGTERM is how a machine is taken away (preemption, Slurm, ``docker stop``), so those
    trials count as lost ("stopped by SIGTERM (Terminated(SIGTERM)): counted as lost"), and the
    study's ``max_retries`` re-queues them, where Ctrl-C's are "interrupted by the user". The
    core knows this class by name (``hpo_plugins._sigterm.stopped_by_sigterm``).
    """


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``; argparse names the option in its error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, received {value}")
        return value

    parse.__name__ = "integer"
    return parse


def caught_signals() -> list[signal.Signals]:
    """The signals that stop a long command (``run``, ``tensorboard``) as ``kill`` does:
    SIGTERM, and SIGHUP where it exists, except one this process ignores: under ``nohup`` a
    closed terminal must not stop the command, as it did not before it caught SIGHUP."""
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    return [signum for signum in wanted if signal.getsignal(signum) is not signal.SIG_IGN]


@contextlib.contextmanager
def stop_signals_raise(handler: Callable[[int, FrameType | None], Any]) -> Iterator[None]:
    """While the block runs, :func:`caught_signals` call ``handler`` (which raises
    :class:`Terminated`); the previous handlers are restored afterwards. Python runs signal
    handlers in the main thread only, so a ``main()`` called from another thread keeps the
    handlers it has."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in caught_signals()}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)


def exit_status(stopped: Terminated) -> int:
    """The exit status of a command that ``stopped`` ended: 128 + the signal's number, as a
    shell reports it (143 for SIGTERM, 129 for SIGHUP)."""
    name = str(stopped.args[0]) if stopped.args else "SIGTERM"
    return 128 + int(getattr(signal, name, signal.SIGTERM))


def echo(text: str = "") -> None:
    """Write one line of the command's output to stdout. A character that stdout's encoding
    cannot take (a latin-1 locale, ``PYTHONIOENCODING=ascii``, a redirected Windows console)
    is written as its escape rather than failing the command."""
    line = f"{text}\n"
    try:
        sys.stdout.write(line)
    except UnicodeEncodeError:
        encoding = sys.stdout.encoding or "ascii"
        sys.stdout.write(line.encode(encoding, "backslashreplace").decode(encoding))


def json_text(value: Any, stream: Any = None, **options: Any) -> str:
    """``json.dumps(value, **options)`` with the letters themselves (``"ü"``, ``"数据"``) where
    ``stream`` (default: stdout) can encode them, else with JSON's ``\\u`` escapes: both read
    back as the same JSON, and an escape beats a ``UnicodeEncodeError``."""
    text = json.dumps(value, ensure_ascii=False, **options)
    encoding = getattr(stream if stream is not None else sys.stdout, "encoding", None)
    try:
        text.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return json.dumps(value, ensure_ascii=True, **options)
    return text


def warn(text: str) -> None:
    """Write one line to stderr."""
    sys.stderr.write(f"{text}\n")


def add_study_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--study NAME`` option of the commands that read one study."""
    parser.add_argument("--study", required=True, metavar="NAME", help="the study's name")


def storage_help() -> str:
    """Help text of ``--storage`` (names the default and the environment variable)."""
    return (f"storage URL, e.g. sqlite:///hpo.db or postgresql+psycopg://user@host/db "
            f"(default: ${DEFAULT_STORAGE_ENV}, else sqlite:///hpo.db)")


@contextlib.contextmanager
def open_storage(url: str | None) -> Iterator[Storage]:
    """The storage at ``url`` (default: the default storage URL), closed on exit.

    Unlike the library, the commands that read never create or change a database: a missing
    SQLite file is an error, and so is a database without hpo_plugins tables (pointed at
    another program's database by mistake, the CLI must not write its tables into it).

    Raises:
        CLIError: The URL is malformed, the file is missing, the database holds no hpo_plugins
            tables, its driver is not installed or it cannot be opened (code
            :data:`EXIT_NOT_FOUND`).
    """
    url = url or default_storage_url()
    _check_sqlite_exists(url)
    try:
        store = _read_only_storage(url)
        store.list_studies()  # opens it now, so that a bad storage fails here
    except (ConfigurationError, StorageError, MissingDependencyError) as exc:
        raise CLIError(f"cannot open the storage: {exc}", EXIT_NOT_FOUND) from None
    try:
        yield store
    finally:
        store.close()


def _read_only_storage(url: str) -> Storage:
    """The storage at ``url``; a SQL one opened with ``create=False`` (see :func:`open_storage`)."""
    if "://" in url:
        from hpo_plugins.storages import SQLStorage

        return SQLStorage(url, create=False)
    raise CLIError(f"cannot open the storage: {not_a_storage_url(url)}", EXIT_NOT_FOUND)


def not_a_storage_url(value: str) -> str:
    """Why ``--storage`` ``value`` (no URL) is refused, naming the flag and the variable; a
    value with ``@`` is not echoed (it may hold a password).

    ``:memory:`` is not suggested: no command can use it (``run``'s trial commands run in other
    processes, and a reading command would find a new, empty storage)."""
    return (f"expected --storage (or ${DEFAULT_STORAGE_ENV}) to be a database URL such as "
            f"sqlite:///hpo.db or postgresql+psycopg://user@host/db. Received "
            f"{shown_url(value)}.")


def shown_url(value: str) -> str:
    """``value`` for an error message, unless it has ``@`` (then it may hold a password)."""
    return "a value with '@' (not shown, it may hold a password)" if "@" in value \
        else repr(value)


def _check_sqlite_exists(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (opening it would create it)."""
    path = missing_sqlite_file(url)
    if path is not None:
        raise CLIError(
            f"no storage at {path}: the SQLite file does not exist. Pass --storage, or set "
            f"${DEFAULT_STORAGE_ENV}.", EXIT_NOT_FOUND)


def open_study(store: Storage, name: str) -> Study:
    """The study ``name``, opened read-only: no sampler, no observers, nothing written.

    Raises:
        StudyNotFoundError: No such study (the message lists the studies there).
    """
    from hpo_plugins.pruners import NopPruner
    from hpo_plugins.study import Study

    study_id = store.get_study_id(name)
    info = store.get_study(study_id)
    return Study(study_name=name, storage=store, study_id=study_id, direction=info.direction,
                 space=None, sampler=None, pruner=NopPruner(), seed=info.attrs.get("seed"),
                 metric=info.attrs.get("metric") or "val_loss", logdir=None,
                 heartbeat_interval=None, grace_period=None, max_retries=0)
