"""Riding out a short loss of the database server (a restart, a failover, a network cut).

A run on PostgreSQL should not end because the server went away for a few seconds: every
worker would fail its trial at its next report. :class:`Reconnector` runs a storage call again,
with growing pauses, until the server answers or ``timeout`` seconds have passed, but only
where running it again is safe:

* the call never reached the server (no connection could be opened), or it failed inside a
  write transaction before its ``COMMIT`` (the server rolls such a transaction back); or
* the call is idempotent (a read, a heartbeat, an intermediate value written by key): running
  it twice leaves what running it once leaves.

A write cut off while it may have committed (an autocommit statement, or the ``COMMIT``
itself) is not repeated: the caller gets
:class:`~hpo_plugins.exceptions.DatabaseUnreachableError` with ``maybe_committed=True``.

Which errors count as "the server is away" (see :func:`lost_connection`): an error that
SQLAlchemy marks as a lost connection, an SQLSTATE of class 08 (connection exception) or
57P01-57P03 (the server shut down or is starting), or a failed connection attempt that was not
refused for a reason that waiting cannot fix (authentication, a missing database or role).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from hpo_plugins.exceptions import DatabaseUnreachableError

__all__ = ["Reconnector", "lost_connection", "unreachable"]

_logger = logging.getLogger("hpo_plugins.storages")
_T = TypeVar("_T")

#: SQLSTATEs of a server that is shutting down, crashed, or still starting.
_AWAY_STATES = ("57P01", "57P02", "57P03")
#: Texts of a refused connection that waiting will not fix.
_REFUSALS = ("authentication failed", "no password supplied", "does not exist",
             "permission denied", "pg_hba.conf", "password is required",
             "does not support ssl", "ssl was required", "certificate verify failed",
             "is not permitted to log in")
_FIRST_PAUSE_S = 0.25
_MAX_PAUSE_S = 5.0
_calling = threading.local()  # set while a call retries: calls made inside it do not retry


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` (SQLAlchemy's or the driver's) says the server is away or cut us off."""
    if isinstance(exc, sa.exc.DisconnectionError):
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state:
        return state.startswith("08") or state in _AWAY_STATES
    if not (isinstance(exc, sa.exc.OperationalError)
            or type(orig).__name__ == "OperationalError"):
        return False
    text = str(orig).lower()
    return not any(refusal in text for refusal in _REFUSALS)


def unreachable(description: str, reason: str, *,
                maybe_committed: bool) -> DatabaseUnreachableError:
    """The error for a call that lost the server ``description``, for the reason given."""
    reason = " ".join(reason.split())  # the driver's text may span lines
    stop = "" if reason.endswith((".", "?", "!")) else "."
    return DatabaseUnreachableError(
        f"Lost the connection to the database {description}: {reason}{stop}",
        maybe_committed=maybe_committed)


class Reconnector:
    """Runs storage calls again while the database server is away, for up to ``timeout`` s.

    Args:
        description: The database, password hidden, for the log and the final error.
        timeout: Seconds to keep trying after the first failure of a call; 0 never retries.
    """

    def __init__(self, description: str, timeout: float) -> None:
        self.description = description
        self.timeout = timeout
        self._lock = threading.Lock()
        self._away_since: float | None = None

    def call(self, run: Callable[[], _T], *, idempotent: bool) -> _T:
        """``run()``, run again after a :class:`DatabaseUnreachableError` where that is safe.

        Raises:
            DatabaseUnreachableError: The server stayed away for ``timeout`` seconds, or a
                non-idempotent call broke off when it may have been committed.
        """
        if self.timeout <= 0 or getattr(_calling, "active", False):
            return run()
        _calling.active = True
        try:
            return self._retrying(run, idempotent)
        finally:
            _calling.active = False

    def _retrying(self, run: Callable[[], _T], idempotent: bool) -> _T:
        deadline: float | None = None
        pause = _FIRST_PAUSE_S
        while True:
            try:
                result = run()
            except DatabaseUnreachableError as exc:
                if exc.maybe_committed and not idempotent:
                    self._gave_up()
                    raise DatabaseUnreachableError(
                        f"{exc} The call was cut off while the database may have applied it; "
                        f"it is not run again, so that it cannot be applied twice.",
                        maybe_committed=True) from exc
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                    self._went_away(exc)
                if now >= deadline:
                    self._gave_up()
                    raise DatabaseUnreachableError(
                        f"{exc} The server did not answer for {self.timeout:g} s (the "
                        f"storage's reconnect_timeout): check that it runs and can be reached "
                        f"from this machine; raise reconnect_timeout to ride out longer "
                        f"outages.", maybe_committed=exc.maybe_committed) from exc
                time.sleep(min(pause, max(deadline - now, 0.0)))
                pause = min(2 * pause, _MAX_PAUSE_S)
                continue
            if deadline is not None:
                self._came_back()
            return result

    def _went_away(self, exc: DatabaseUnreachableError) -> None:
        with self._lock:
            if self._away_since is not None:
                return
            self._away_since = time.monotonic()
        _logger.warning("%s Trying again for up to %g s (the storage's reconnect_timeout).",
                        exc, self.timeout)

    def _gave_up(self) -> None:
        """A call failed for good: the next loss is a new outage, logged again."""
        with self._lock:
            self._away_since = None

    def _came_back(self) -> None:
        with self._lock:
            since, self._away_since = self._away_since, None
        if since is not None:
            _logger.warning("Reached the database %s again after %.1f s.", self.description,
                            time.monotonic() - since)
