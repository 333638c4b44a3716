"""Database URLs: reading, checking and rewriting them (SQLite's forms above all) and
showing them without their passwords; no connection is made here."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import (
    ConfigurationError,
)
from hpo_plugins.storages._sqlite_path import (
    is_memory_sqlite,
    is_sqlite_uri,
    plain_sqlite_url,
    sqlite_file,
)

__all__ = ["absolute_sqlite", "check_sqlite_url", "masked_url", "missing_driver_message",
           "parse_url", "redact", "sqlite_read_only", "sqlite_read_uri", "unknown_scheme_message",
           "url_secrets", "warn_unseen_wal"]
#: The query arguments of a SQLite URL that the pysqlite driver takes itself, with how it reads
#: each and what that expects; any other one reaches SQLite only in a URI (``uri=true``, see
#: :func:`_check_sqlite_query`).
_SQLITE_DRIVER_ARGS: dict[str, tuple[Callable[[Any], object], str]] = {
    "uri": (sa.util.asbool, "true or false"), "timeout": (float, "a number of seconds"),
    "isolation_level": (str, "a text"), "detect_types": (int, "a whole number"),
    "check_same_thread": (sa.util.asbool, "true or false"),
    "cached_statements": (int, "a whole number"),
}


def sqlite_read_only(url: URL) -> bool:
    """Whether the SQLite URL ``url`` opens its file read-only: a URI (``uri=true``) with
    ``mode=ro`` or ``immutable=1`` (SQLite reads the booleans 1, true, yes and on)."""
    return (is_sqlite_uri(url) and url.query.get("mode") == "ro") or _sqlite_immutable(url)


def _sqlite_immutable(url: URL) -> bool:
    """Whether the SQLite URL ``url`` is a URI with ``immutable=1`` (see sqlite_read_only)."""
    immutable = url.query.get("immutable")
    return (is_sqlite_uri(url) and isinstance(immutable, str)
            and immutable.lower() in ("1", "true", "yes", "on"))


def warn_unseen_wal(url: URL) -> None:
    """Warn when an ``immutable=1`` URL opens a file whose -wal file holds commits: SQLite then
    reads the main file alone, so the trials in the -wal file (a writer still running, or
    killed before its checkpoint) are silently missing from what is read."""
    if not _sqlite_immutable(url):
        return
    wal = f"{sqlite_file(url) or 'hpo.db'}-wal"
    try:
        size = os.path.getsize(wal)
    except OSError:
        return
    if size > 0:
        warn_user(
            f"The SQLite file {url.database} is opened with immutable=1, but {wal} beside it "
            f"is not empty ({size} bytes): it may hold changes that immutable=1 does not read "
            f"(a writer still running, or killed before SQLite folded them into the file), "
            f"so recent trials may be missing or out of date. Read it with "
            f"{plain_sqlite_url(url)} from a user who may write to its folder (SQLite then folds "
            f"the changes in), or copy the folder, with its -wal file, to a writable place "
            f"and read the copy."
        )


def check_sqlite_url(url: URL) -> None:
    """Refuse at construction the SQLite URLs that would fail late or do something else."""
    _check_sqlite_host(url)
    _check_sqlite_file(url)
    _check_sqlite_driver_args(url)
    _check_sqlite_query(url)


def _check_sqlite_host(url: URL) -> None:
    """Refuse ``sqlite://path`` (two slashes): SQLAlchemy reads the path's first part as a host.

    SQLAlchemy would refuse it only on first use, after the folder had been made from the rest.
    """
    if not (url.host or url.port or url.username or url.password):
        return
    path = "/".join(part for part in (url.host, url.database) if part)
    raise ConfigurationError(
        f"Expected a SQLite URL with three slashes before a relative path "
        f"('sqlite:///runs/hpo.db') or four before an absolute one "
        f"('sqlite:////home/me/hpo.db'). Received a URL with two slashes, so {url.host!r} was "
        f"read as a host, and a SQLite URL has none: write 'sqlite:///{path}' for the file "
        f"relative to the working directory, or 'sqlite:////{path}' for the absolute path."
    )


def _check_sqlite_file(url: URL) -> None:
    """Refuse in-memory SQLite: every pooled connection would see its own, empty database."""
    if is_memory_sqlite(url):
        raise ConfigurationError(
            "Expected a SQLite URL naming a file, such as 'sqlite:///hpo.db'. Received an "
            "in-memory SQLite URL, which processes cannot share; use storage=':memory:' for a "
            "storage that lives in this process only."
        )


def _check_sqlite_driver_args(url: URL) -> None:
    """Refuse a driver argument that the driver could not read (a raw ValueError on first use)."""
    for key, (read, expected) in _SQLITE_DRIVER_ARGS.items():
        value = url.query.get(key)
        try:
            if value is not None:
                read(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"Expected the argument {key!r} of a SQLite URL to be {expected}. Received "
                f"{key}={value!r}: correct it in the URL's query string."
            ) from None


def _check_sqlite_query(url: URL) -> None:
    """Refuse SQLite URI arguments that SQLite would never see (see :class:`SQLStorage`).

    Without ``uri=true`` the driver drops them (``mode=ro`` would open the file read-write);
    with it, a path not starting with ``file:`` is a plain file name, query string included.
    """
    database = url.database or ""
    if is_sqlite_uri(url):
        if not database.startswith("file:"):
            raise ConfigurationError(
                f"Expected the path of a SQLite URL with 'uri=true' to start with 'file:', "
                f"such as {_as_sqlite_uri(url)!r}. Received the path {database!r}, which "
                f"SQLite would take as a plain file name, query string included: write "
                f"'file:' before the path.")
        return
    ignored = sorted(set(url.query) - set(_SQLITE_DRIVER_ARGS))
    if ignored:
        raise ConfigurationError(
            f"Expected SQLite URI arguments such as {ignored[0]!r} to come with 'uri=true' "
            f"and a path starting with 'file:', such as {_as_sqlite_uri(url)!r}. Received "
            f"{ignored} without 'uri=true', which SQLite would never see (so mode=ro, for "
            f"one, would open the file read-write): add '&uri=true' and write 'file:' before "
            f"the path.")


def _as_sqlite_uri(url: URL) -> str:
    """The URI form of the SQLite URL ``url``, for messages (a SQLite URL holds no password)."""
    database = url.database or "hpo.db"
    path = database if database.startswith("file:") else f"file:{database}"
    query = [f"{key}={value}" for key, values in url.query.items() if key != "uri"
             for value in ((values,) if isinstance(values, str) else values)]
    return f"sqlite:///{path}?{'&'.join([*query, 'uri=true'])}"


def url_secrets(url: URL) -> tuple[str, ...]:
    """The passwords a database URL holds: after the user name, or as a ``password=`` query
    argument (libpq reads both, so both must stay out of messages and logs)."""
    found = [] if url.password is None else [str(url.password)]
    value = url.query.get("password")
    found += [value] if isinstance(value, str) else list(value or ())
    return tuple(secret for secret in found if secret)


def masked_url(url: URL) -> str:
    """``url`` as text with every password (see :func:`url_secrets`) shown as ``***``.

    Example:
        >>> masked_url(make_url("postgresql+psycopg://me:pw@db/hpo?password=pw2"))
        'postgresql+psycopg://me:***@db/hpo?password=***'
    """
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    # the query's *** comes back percent-encoded; readers should see the same mark twice
    return url.render_as_string(hide_password=True).replace("password=%2A%2A%2A",
                                                            "password=***")


def redact(exc: BaseException, *, secrets: tuple[str, ...]) -> str:
    """The error text of ``exc`` with ``secrets`` masked.

    A plain function bound with ``functools.partial``, not a method: the storage's hot path
    keeps it, and a bound method would tie the storage into a reference cycle that only the
    cyclic garbage collector frees (its pooled connections stayed open until then).
    """
    text = str(getattr(exc, "orig", None) or exc)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def absolute_sqlite(url: URL) -> URL:
    """``url`` with its SQLite file path made absolute, so that a process started in another
    folder (a Dask worker, a script-mode child) opens the same file.

    A URI path (``file:runs/hpo.db`` with ``uri=true``) keeps its URI form: only a relative
    one gains the working directory, percent-encoded as a URI path must be. ``file:/abs``,
    ``file:///abs`` and ``file://host/abs`` are already absolute.
    """
    database = url.database or ""
    if is_sqlite_uri(url):  # _check_sqlite_query made sure the path starts with "file:"
        path = database[len("file:"):]
        if path.startswith("/"):
            return url
        folder = urllib.parse.quote(os.getcwd(), safe="/")
        return url.set(database=f"file:{folder.rstrip('/')}/{path}")
    if os.path.isabs(database):
        return url
    # without uri=true, "file:runs/hpo.db" is a plain path (a folder named "file:runs")
    return url.set(database=os.path.abspath(database))


def parse_url(url: str) -> URL:
    """Parse ``url`` without ever echoing it (it may hold a password)."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise ConfigurationError(
            "Expected `url` to be a SQLAlchemy database URL such as 'sqlite:///hpo.db' or "
            "'postgresql+psycopg://user@host/db'. Received a value that is not one (not shown, "
            "as it may contain a password)."
        ) from None


def unknown_scheme_message(url: URL) -> str:
    """Why SQLAlchemy knows no dialect for ``url``'s scheme (its password is never shown)."""
    message = (
        f"Expected a database URL whose scheme names a SQLAlchemy dialect, such as "
        f"'sqlite:///hpo.db' or 'postgresql+psycopg://user@host/db'. Received the scheme "
        f"{url.drivername!r}, which SQLAlchemy does not know")
    if url.get_backend_name() != "postgres":
        return f"{message}: check its spelling."
    fixed = masked_url(url.set(drivername="postgresql+psycopg"))
    return (f"{message}: SQLAlchemy spells PostgreSQL 'postgresql', not 'postgres' (the spelling "
            f"of Heroku and libpq). Use {fixed!r}, with psycopg 3 as the driver (pip install "
            f"'hpo_plugins[postgres]').")


def missing_driver_message(url: URL, exc: ImportError) -> str:
    """Which driver module ``url`` needs and how to get one that hpo_plugins is tested with."""
    driver = url.get_driver_name()  # the dialect's default driver when the URL names none
    module = exc.name or driver
    message = (f"The database driver for URLs starting with '{url.drivername}://' is not "
               f"installed: SQLAlchemy uses the Python module {module!r} for them ({exc}).")
    if url.get_backend_name() != "postgresql":
        return (f"{message} Install that module yourself; hpo_plugins is tested with SQLite and "
                f"with PostgreSQL through psycopg 3 ('postgresql+psycopg://...').")
    if driver == "psycopg":
        return f"{message} Install it with: pip install 'hpo_plugins[postgres]'"
    return (f"{message} The extra hpo_plugins[postgres] installs psycopg 3, not {driver}: use "
            f"a URL starting with 'postgresql+psycopg://' (pip install 'hpo_plugins[postgres]').")


def sqlite_read_uri(url: URL) -> str:
    """The SQLite URI (``file:...``) of ``url``'s file with its URI arguments (``uri`` aside)
    and ``mode=ro``."""
    database = url.database or ""
    if database.startswith("file:"):  # already a URI (``?uri=true`` URLs)
        base, _, inline = database.partition("?")
    else:
        base, inline = Path(database).absolute().as_uri(), ""
    query = [inline] if inline else []
    for key, value in url.query.items():
        if key in ("uri", "mode"):
            continue
        for item in (value,) if isinstance(value, str) else value:
            query.append(f"{key}={item}")
    query.append("mode=ro")
    return f"{base}?{'&'.join(query)}"
