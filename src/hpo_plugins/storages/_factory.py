"""Turn what the user passed as ``storage=`` into a :class:`Storage`."""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.storages._base import Storage
from hpo_plugins.storages._memory import InMemoryStorage

if TYPE_CHECKING:
    pass

__all__ = ["DEFAULT_STORAGE_ENV", "default_storage_url", "get_storage", "missing_sqlite_file"]

_logger = logging.getLogger(__name__)

#: Environment variable that overrides the default storage URL.
DEFAULT_STORAGE_ENV = "HPO_PLUGINS_STORAGE"
_announced: set[str] = set()


def default_storage_url() -> str:
    """``$HPO_PLUGINS_STORAGE`` if set, else a SQLite file ``hpo.db`` in the working directory."""
    return os.environ.get(DEFAULT_STORAGE_ENV) or "sqlite:///hpo.db"


def get_storage(storage: Storage | str | None = None) -> Storage:
    """Return a storage for ``storage``.

    Args:
        storage: A :class:`Storage` (returned as is); ``None`` for the default persistent SQLite
            file (see :func:`default_storage_url`; its location is logged once per process);
            ``":memory:"`` for an :class:`InMemoryStorage`; or a SQLAlchemy URL such as
            ``"sqlite:///hpo.db"`` or ``"postgresql+psycopg://user@host/db"``.

    Raises:
        ConfigurationError: ``storage`` is none of these (a file path such as ``"hpo.db"`` or a
            ``pathlib.Path``: the message gives its ``sqlite:///`` URL), a URL with whitespace
            around it (SQLite would create a file whose name ends with it), or a URL that
            :class:`SQLStorage` refuses (for ``None``, the message names
            ``$HPO_PLUGINS_STORAGE``).
    """
    if isinstance(storage, Storage):
        return storage
    if storage in (":memory:", "memory", "inmemory"):
        return InMemoryStorage()
    if storage is not None:
        return _open(storage)
    url = default_storage_url()
    try:
        store = _open(url)
    except ConfigurationError as exc:  # say where the URL came from: not from the caller
        raise ConfigurationError(f"${DEFAULT_STORAGE_ENV} holds a bad storage URL. {exc}"
                                 ) from None
    _announce(url, store.describe())
    return store


def _open(storage: Any) -> Storage:
    """A :class:`SQLStorage` for the URL ``storage``, or a ConfigurationError that says what
    is wrong with it: whitespace around it, a file path instead of a URL, or anything else."""
    if isinstance(storage, str) and storage.strip() and storage != storage.strip():
        # SQLite would take 'sqlite:///hpo.db ' as the file 'hpo.db ', a new, empty study
        fix = (f"Pass storage={storage.strip()!r}." if "@" not in storage
               else "Strip it first: storage=url.strip().")
        raise ConfigurationError(
            f"Expected `storage` to be a database URL with no whitespace around it, such as "
            f"'sqlite:///hpo.db'. Received: {_shown(storage)}, which {_around(storage)}. {fix}")
    if isinstance(storage, str) and "://" in storage:
        from hpo_plugins.storages._sql import SQLStorage

        return SQLStorage(storage)
    url = _sqlite_url_of_path(storage)
    fix = (f", a file path, not a URL. For that SQLite file pass storage={url!r} (three slashes "
           f"before a relative path, 'sqlite:///runs/hpo.db', four before an absolute one, "
           f"'sqlite:////home/me/hpo.db')" if url is not None else "")
    raise ConfigurationError(
        f"Expected `storage` to be a Storage, None (a SQLite file), ':memory:' or a database URL "
        f"such as 'sqlite:///hpo.db'. Received: {_shown(storage)} (of type "
        f"{type(storage).__name__}){fix}."
    )


def _shown(storage: Any) -> str:
    """``storage=...`` for a message; a string with ``@`` is not echoed: a mistyped URL
    ("postgresql:/user:secret@host/db") may hold a password."""
    return ("a string with '@' (not shown, as it may contain a password)"
            if isinstance(storage, str) and "@" in storage else f"storage={storage!r}")


def _around(text: str) -> str:
    """Where ``text`` has whitespace: ``starts with ' '``, ``ends with '\\n'``, or both."""
    lead = text[:len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()):]
    where = []
    if lead:
        where.append(f"starts with {lead!r}")
    if trail:
        where.append(f"ends with {trail!r}")
    return " and ".join(where)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


def _sqlite_url_of_path(storage: Any) -> str | None:
    """The SQLite URL of the file ``storage`` seems to name (a ``pathlib.Path``, or a string
    such as ``"hpo.db"`` or ``"runs/hpo.db"`` that is no URL), else None.

    Example:
        >>> from pathlib import Path
        >>> _sqlite_url_of_path("hpo.db"), _sqlite_url_of_path(Path("/runs/hpo.db"))
        ('sqlite:///hpo.db', 'sqlite:////runs/hpo.db')
        >>> _sqlite_url_of_path("MEMORY"), _sqlite_url_of_path("sqlite:hpo.db")
        (None, None)
    """
    if isinstance(storage, os.PathLike):
        path = os.fspath(storage)
    elif (isinstance(storage, str) and "@" not in storage and not _SCHEME.match(storage)
          and (os.sep in storage or "/" in storage or os.path.splitext(storage)[1]
               or os.path.isfile(storage))):
        path = storage
    else:
        return None
    return f"sqlite:///{path}" if isinstance(path, str) and path else None


def _announce(url: str, description: str) -> None:
    """Log where the default storage lives, once per location and process.

    A SQLite file is shown as its absolute path; any other database as ``description``, the
    URL with its password hidden (``$HPO_PLUGINS_STORAGE`` may hold one).
    """
    sqlite = "sqlite:///"
    where = os.path.abspath(url[len(sqlite):]) if url.startswith(sqlite) else description
    if where not in _announced:
        _announced.add(where)
        _logger.info("Studies are stored in %s (pass storage= to choose).", where)


def missing_sqlite_file(storage: Any) -> str | None:
    """The absolute path of the SQLite file that ``storage`` (None: the default URL) names,
    if that file does not exist; else None (another database, an in-memory one, a Storage, or
    a URL that :func:`get_storage` will refuse with its own message).

    Code that needs an existing study (``load_study``, ``delete_study``, the read commands of
    the command line) refuses such a storage instead of opening it, which would create the
    file. Driver names (``sqlite+pysqlite://``) and SQLite's URI form (``file:...?uri=true``)
    are understood.
    """
    url_text = default_storage_url() if storage is None else storage
    if not isinstance(url_text, str) or "://" not in url_text:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from hpo_plugins.storages._sqlite_path import sqlite_file

    try:
        url = make_url(url_text)
    except (ArgumentError, ValueError, TypeError):  # get_storage explains it (no password)
        return None
    if url.get_backend_name() != "sqlite" or url.host:
        return None
    path = sqlite_file(url)
    if path is None or os.path.exists(path):
        return None
    return os.path.abspath(path)
