"""A configured SQLAlchemy engine per dialect: SQLite in WAL mode with a long busy timeout,
servers with pre-ping and reconnects; and the checks of engine arguments."""

from __future__ import annotations

import select
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import NoSuchModuleError

from hpo_plugins.exceptions import (
    ConfigurationError,
    StorageError,
)
from hpo_plugins.storages._sql_url import sqlite_read_only
from hpo_plugins.storages._sqlite_path import (
    is_sqlite_uri,
)

__all__ = ["AUTOCOMMIT", "READ_ONLY", "bad_engine_argument", "check_engine_kwargs",
           "check_reconnect_timeout", "server_engine", "sqlite_engine", "try_engine_kwargs"]

#: How long a SQLite connection waits for another process's write lock before failing.
_SQLITE_BUSY_TIMEOUT_S = 120.0
#: Execution option that marks a transaction as read-only (a plain, deferred BEGIN on SQLite;
#: no BEGIN at all on PostgreSQL, whose reads run in autocommit).
READ_ONLY = "hpo_read_only"
#: Execution option for a connection whose statements each commit by themselves (PostgreSQL).
AUTOCOMMIT = "hpo_autocommit"


# -- dialect-specific bits --------------------------------------------------------------------


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any, *,
                       wal: bool = True) -> None:
    """Let SQLAlchemy emit BEGIN itself; WAL so that readers never block the writer.

    ``synchronous=NORMAL`` is the setting SQLite recommends with WAL: a crash of the process
    loses nothing, a power cut may lose the last commits but never corrupts the file.
    ``wal=False`` for a read-only connection (see :func:`sqlite_read_only`): switching the
    journal mode writes to the file, so it would make every read fail with "attempt to write
    a readonly database" on a database not already in WAL mode.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """Take the write lock when a write transaction starts, so two writers never deadlock.

    A deferred BEGIN that later writes can fail at once with "database is locked" (SQLite will
    not wait when waiting could deadlock); ``BEGIN IMMEDIATE`` waits for the busy timeout instead.
    """
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _server_on_begin(conn: Connection) -> None:
    """Open a transaction for writes only; reads and single statements run in autocommit.

    The engine's driver connections are in autocommit mode, so a transaction exists only where
    this sends ``BEGIN`` (the driver's commit and rollback then end it). Under READ COMMITTED a
    read gains nothing from a transaction (each statement reads its own snapshot anyway), and
    one statement is atomic by itself: both save the ``BEGIN`` and ``COMMIT`` round trips.
    """
    options = conn.get_execution_options()
    if not (options.get(READ_ONLY) or options.get(AUTOCOMMIT)):
        conn.exec_driver_sql("BEGIN")


def _drop_dead_connection(dbapi_connection: Any, connection_record: Any,
                          connection_proxy: Any) -> None:
    """Refuse a pooled connection that the server has closed, without a round trip.

    An idle connection has nothing to read unless the server closed it (it sends a FATAL
    message, or the socket reaches end of file) or sent an unsolicited message. A readable
    socket is therefore treated as dead: the pool drops it and opens a fresh one. This catches
    a restarted server or a killed backend at the price of a ``select`` call, where SQLAlchemy's
    ``pool_pre_ping`` costs a ``SELECT 1`` round trip at every checkout.
    """
    fileno = getattr(dbapi_connection, "fileno", None)
    if fileno is None:
        return
    try:
        readable = select.select([fileno()], [], [], 0)[0]
    except Exception as exc:  # closed by the driver already, or not a socket
        raise sa.exc.DisconnectionError(f"connection unusable: {exc}") from exc
    if readable:
        raise sa.exc.DisconnectionError("the server closed the connection")


def server_engine(url: URL, kwargs: dict[str, Any]) -> Engine:
    """An engine on a database server, in autocommit (see :func:`_server_on_begin`).

    Connections are checked by :func:`_drop_dead_connection` instead of ``pool_pre_ping``
    (still honoured when passed in ``engine_kwargs``).
    """
    engine = sa.create_engine(url, **_server_arguments(kwargs))
    sa.event.listen(engine, "begin", _server_on_begin)
    if not kwargs.get("pool_pre_ping"):
        sa.event.listen(engine, "checkout", _drop_dead_connection)
    return engine


def sqlite_engine(url: URL, kwargs: dict[str, Any], *, create: bool = True) -> Engine:
    """An engine on a SQLite file, with WAL, a long busy timeout and BEGIN IMMEDIATE.

    The switch to WAL (a write to the file, which stays in WAL mode) is left out for a
    read-only URL and for ``create=False``, which promises to change nothing in a database
    that another program may own; a database that hpo_plugins made is in WAL mode already.
    """
    if not is_sqlite_uri(url):
        _make_parent_folder(url.database or "")
    engine = sa.create_engine(url, **_sqlite_arguments(kwargs))
    wal = create and not sqlite_read_only(url)

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        _sqlite_on_connect(dbapi_connection, connection_record, wal=wal)

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _server_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of ``create_engine`` on a database server: the user's, in autocommit."""
    return {**kwargs, "isolation_level": "AUTOCOMMIT"}


def _sqlite_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of ``create_engine`` on SQLite: the user's, with a long busy timeout
    unless their ``connect_args`` set another."""
    connect_args = {"timeout": _SQLITE_BUSY_TIMEOUT_S, **kwargs.get("connect_args", {})}
    return {**kwargs, "connect_args": connect_args}


def check_reconnect_timeout(value: Any) -> float:
    """``reconnect_timeout`` as a float, or ConfigurationError for anything but seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(
            f"reconnect_timeout must be a number of seconds >= 0 (how long to keep trying to "
            f"reach a database server that went away; 0 never retries). Received: "
            f"{value!r}.")
    return float(value)


def check_engine_kwargs(engine_kwargs: Any) -> dict[str, Any] | None:
    """``engine_kwargs`` as a dict, after refusing what ``create_engine`` could not take: not
    a mapping, a key that is no argument name, ``connect_args`` that is not a mapping. Values
    are not shown in messages (``connect_args`` may hold a password)."""
    if engine_kwargs is None:
        return None
    if not isinstance(engine_kwargs, Mapping):
        raise ConfigurationError(
            f"Expected `engine_kwargs` to be a dict of keyword arguments for "
            f"sqlalchemy.create_engine, such as {{'pool_size': 10}}, or None. Received: a value "
            f"of type {type(engine_kwargs).__name__}. Pass a dict."
        )
    for key, value in engine_kwargs.items():
        if not isinstance(key, str):
            raise ConfigurationError(
                f"Expected the keys of `engine_kwargs` to be argument names of "
                f"sqlalchemy.create_engine (str). Received: the key {key!r} (of type "
                f"{type(key).__name__}). Use the argument's name, e.g. 'pool_size'."
            )
        if key == "connect_args" and not isinstance(value, Mapping):
            raise ConfigurationError(
                f"Expected engine_kwargs['connect_args'] to be a dict of the database "
                f"driver's connect arguments, such as {{'connect_timeout': 10}}. Received: a "
                f"value of type {type(value).__name__}. Pass a dict."
            )
    return dict(engine_kwargs)


def try_engine_kwargs(url: URL, kwargs: Mapping[str, Any], sqlite: bool) -> None:
    """Create and drop an engine with ``kwargs`` (SQLAlchemy connects only on first use), so
    that an argument ``create_engine`` refuses fails with the storage, not at its first use.

    A missing driver or an unknown scheme is left to the first use, which names the fix.
    """
    arguments = _sqlite_arguments(kwargs) if sqlite else _server_arguments(kwargs)
    try:
        sa.create_engine(url, **arguments).dispose()
    except (NoSuchModuleError, ImportError):
        return
    except TypeError as exc:
        raise ConfigurationError(bad_engine_argument(kwargs, exc)) from None


def bad_engine_argument(kwargs: Mapping[str, Any], exc: TypeError) -> str:
    """The message for an argument that ``create_engine`` refused with a TypeError."""
    named = [key for key in kwargs if f"'{key}'" in str(exc)]
    culprit = (f"the argument{'s' if len(named) > 1 else ''} {', '.join(map(repr, named))}"
               if named else "an argument")
    return (f"Expected `engine_kwargs` to hold arguments of sqlalchemy.create_engine that fit "
            f"this database's dialect and pool. Received: {culprit} that SQLAlchemy refused "
            f"({exc}). Check the spelling against the arguments of sqlalchemy.create_engine "
            f"(https://docs.sqlalchemy.org/en/20/core/engines.html#sqlalchemy.create_engine), "
            f"or remove {'it' if len(named) <= 1 else 'them'}.")


def _make_parent_folder(database: str) -> None:
    """Create the folder of the SQLite file ``database``, or say why that is impossible."""
    parent = Path(database).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Could not create the folder {parent} for the SQLite file {database}: "
            f"{exc.strerror or exc} ({exc.filename}). Expected a path whose every part above the "
            f"file is a folder or can be made one: check the path (no part of it may be a "
            f"file) and that this user may create folders there."
        ) from None
