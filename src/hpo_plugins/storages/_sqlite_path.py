"""The file behind a SQLite URL, read one way for every module that needs the file itself.

SQLAlchemy hands a SQLite URL's path to the driver in one of two forms: a plain file name
(``sqlite:///runs/hpo.db``), or, with ``uri=true``, SQLite's URI form
(``sqlite:///file:runs/hpo.db?mode=ro&uri=true``), whose path is percent-encoded
(``file:/home/me/my%20runs/hpo.db``). Code that looks at the file (does it exist, is a -wal file
beside it, which URL reads it where nothing may be written) must decode the second form as
SQLite does, or it names another file: a working directory with a space in it made the
read-only advice point at a file that does not exist.
"""

from __future__ import annotations

import urllib.parse

from sqlalchemy.engine import URL
from sqlalchemy.util import asbool

__all__ = ["immutable_sqlite_url", "is_memory_sqlite", "is_sqlite_uri", "plain_sqlite_url",
           "sqlite_file"]


def is_sqlite_uri(url: URL) -> bool:
    """Whether the pysqlite driver hands the path to SQLite as a URI (``uri=true``)."""
    value = url.query.get("uri")
    return isinstance(value, str) and asbool(value)


def is_memory_sqlite(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database (no file: every connection has its own)."""
    database = url.database or ""
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or url.query.get("mode") == "memory" or "mode=memory" in database)


def sqlite_file(url: URL) -> str | None:
    """The file the SQLite URL ``url`` opens, as the operating system names it; None for an
    in-memory database, and for a URI path without ``file:`` (``SQLStorage`` refuses it).

    In the URI form the file is the URI's path, percent-decoded as SQLite does;
    ``file:hpo.db`` is relative to the working directory.
    """
    if is_memory_sqlite(url):
        return None
    database = url.database or ""
    if not is_sqlite_uri(url):
        return database
    if not database.startswith("file:"):
        return None
    return urllib.parse.unquote(urllib.parse.urlsplit(database).path) or None


def plain_sqlite_url(url: URL) -> str:
    """The SQLite URL of the file of ``url`` without URI arguments (read-write); its path
    escaped for SQLAlchemy, which decodes it once."""
    return f"sqlite:///{_escaped(sqlite_file(url) or 'hpo.db')}"


def immutable_sqlite_url(url: URL) -> str:
    """The URL that reads the SQLite file of ``url`` where nothing may be written
    (``immutable=1``: no -wal or -shm file is made); its path escaped twice, as SQLAlchemy
    decodes it and then SQLite decodes the URI."""
    path = _escaped(_escaped(sqlite_file(url) or "hpo.db"))
    return f"sqlite:///file:{path}?immutable=1&uri=true"


def _escaped(path: str) -> str:
    """``path`` with the characters a URL reads as its own escaped: ``%`` (an escape), ``?``
    (the query) and ``#`` (a fragment). Others, spaces included, stay as they are: both
    SQLAlchemy and SQLite's URI parser take them, and the URL stays readable."""
    return path.replace("%", "%25").replace("?", "%3F").replace("#", "%23")
