"""The SQL storage's hot path, run on the database driver's own connection.

Every ``ask`` and ``tell`` runs a handful of short statements. Through SQLAlchemy's execution
layer (events, execution context, result objects) each costs five to ten times the driver's own
work: about 1.3 ms of client CPU per ask+tell on SQLite or PostgreSQL, against 0.1 ms (SQLite)
and 0.8 ms (PostgreSQL) for the same statements on the raw driver connection.

So the few hot statements are still *written* with SQLAlchemy Core (one definition, rendered
for each dialect by SQLAlchemy), but compiled once per dialect here and executed with the
driver's cursor. What SQLAlchemy did besides is done here, for these statements only:

* parameters: the statement's own literals are merged in, and for positional drivers (SQLite's
  ``?``) the values are put in the compiled order;
* types: timestamps are bound and read as timezone-aware UTC (:func:`bind_time` and
  :func:`trial_row`), the only type these statements need converted;
* transactions: on SQLite a ``BEGIN IMMEDIATE`` ... ``COMMIT`` around the statements (rolled back
  on error); on a server none, each statement commits by itself (autocommit connections);
* errors: a driver error becomes :class:`~hpo_plugins.exceptions.StorageError` (its subclass
  ``DatabaseUnreachableError`` for a server that is away, see :mod:`._outage`), and the pooled
  connection is discarded, as SQLAlchemy does for a lost connection.

Everything else in the storage (and the rare branches of these methods) goes through
SQLAlchemy as before.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import PoolProxiedConnection

from hpo_plugins.exceptions import StorageError
from hpo_plugins.storages._outage import lost_connection, unreachable

__all__ = ["DriverStatement", "HotPath"]

_UTC = _dt.timezone.utc
#: Positions of datetime_start, datetime_complete and last_heartbeat in a full trials row.
_TIME_COLUMNS = (10, 11, 12)


class DriverStatement:
    """A Core statement compiled once for a dialect, with its parameters in driver form.

    Args:
        statement: The statement; its bind parameters are given by name to :meth:`params`.
        dialect: The engine's dialect (SQLAlchemy renders the SQL, casts included).
    """

    def __init__(self, statement: sa.ClauseElement, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, sa.sql.compiler.SQLCompiler)
        self.sql = str(compiled)
        self._literals = dict(compiled.params)
        self._order = compiled.positiontup if dialect.positional else None

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """The statement's literals with ``values``, as the driver takes them."""
        merged = {**self._literals, **values}
        if self._order is None:
            return merged
        return [merged[name] for name in self._order]


class HotPath:
    """Runs :class:`DriverStatement` objects on pooled driver connections of one engine.

    Args:
        engine: The storage's engine; its pool lends the connections.
        description: The database, password hidden, for error messages.
        redact: Masks the password in a driver's error text.
    """

    def __init__(self, engine: Engine, description: str,
                 redact: Callable[[BaseException], str]) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._description = description
        self._redact = redact
        self._errors: type[Exception] = engine.dialect.loaded_dbapi.Error

    def compile(self, statement: sa.ClauseElement) -> DriverStatement:
        """``statement`` compiled for this engine's dialect."""
        return DriverStatement(statement, self.engine.dialect)

    @contextlib.contextmanager
    def cursor(self, *, write: bool = True) -> Iterator[Any]:
        """A driver cursor; on SQLite, to ``write``, inside a transaction that holds the lock.

        A read (``write=False``) runs its one statement without a transaction everywhere.

        Raises:
            StorageError: The driver failed (lock timeout, lost connection, full disk...).
        """
        transaction = self._sqlite and write
        raw = self._connect()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if transaction:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                if transaction:
                    cursor.execute("COMMIT")
            except BaseException:
                if self._sqlite and raw.driver_connection.in_transaction:  # type: ignore
                    cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        except self._errors as exc:
            if not self._sqlite:
                raw.invalidate(exc)  # the connection may be lost; the pool opens a new one
                if lost_connection(exc):  # a server write commits statement by statement
                    raise unreachable(self._description, self._redact(exc),
                                      maybe_committed=write) from exc
            raise StorageError(
                f"The database {self._description} failed: {self._redact(exc)}"
            ) from exc
        finally:
            raw.close()

    def _connect(self) -> PoolProxiedConnection:
        """A pooled connection (a fresh one where the server closed the pooled ones).

        ``raw_connection`` raises the driver's own error, unwrapped, when the pool replaces a
        connection the server closed and the new one fails too (a server shutting down).
        """
        try:
            return self.engine.raw_connection()
        except (sa.exc.DBAPIError, self._errors) as exc:
            if not self._sqlite and lost_connection(exc):
                raise unreachable(self._description, self._redact(exc),
                                  maybe_committed=False) from exc
            if isinstance(exc, sa.exc.DBAPIError) and not isinstance(
                    exc, sa.exc.OperationalError):
                raise
            raise StorageError(
                f"The database {self._description} failed: {self._redact(exc)}") from exc

    def execute(self, cursor: Any, statement: DriverStatement,
                values: Mapping[str, Any]) -> Any:
        """Run ``statement`` with ``values`` (timestamps already bound with bind_time)."""
        return cursor.execute(statement.sql, statement.params(values))

    def bind_time(self, moment: _dt.datetime | None) -> Any:
        """An aware datetime as this driver stores it (SQLite: UTC text, as _UTCDateTime)."""
        if moment is None or not self._sqlite:
            return moment
        return moment.astimezone(_UTC).isoformat(" ", "microseconds")[:26]

    def trial_row(self, row: Sequence[Any]) -> list[Any]:
        """A full trials row from the driver, with its timestamps as aware UTC datetimes."""
        out = list(row)
        for i in _TIME_COLUMNS:
            value = out[i]
            if value is None:
                continue
            if self._sqlite:
                out[i] = _dt.datetime.fromisoformat(value + "+00:00")
            else:
                out[i] = value.astimezone(_UTC)
        return out
