"""Turn what the user passed as ``storage=`` into a :class:`Storage`."""

from __future__ import annotations

import logging
import os
from typing import Any

from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.storages._base import Storage
from hpo_plugins.storages._memory import InMemoryStorage

__all__ = ["DEFAULT_STORAGE_ENV", "default_storage_url", "get_storage"]

_logger = logging.getLogger(__name__)

#: Environment variable that overrides the default storage URL.
DEFAULT_STORAGE_ENV = "HPO_PLUGINS_STORAGE"
_announced: set[str] = set()


def default_storage_url() -> str:
    """``$HPO_PLUGINS_STORAGE`` if set, else a SQLite file ``hpo.db`` in the working directory."""
    return os.environ.get(DEFAULT_STORAGE_ENV) or "sqlite:///hpo.db"


def get_storage(storage: Any = None) -> Storage:
    """Return a storage for ``storage``.

    Args:
        storage: A :class:`Storage` (returned as is); ``None`` for the default persistent SQLite
            file (see :func:`default_storage_url`; its location is logged once per process);
            ``":memory:"`` for an :class:`InMemoryStorage`; or a SQLAlchemy URL such as
            ``"sqlite:///hpo.db"`` or ``"postgresql+psycopg://user@host/db"``.

    Raises:
        ConfigurationError: ``storage`` is none of these, or a URL that :class:`SQLStorage`
            refuses (for ``None``, the message names ``$HPO_PLUGINS_STORAGE``).
    """
    if isinstance(storage, Storage):
        return storage
    if storage in (":memory:", "memory", "inmemory"):
        return InMemoryStorage()
    default = storage is None
    if default:
        storage = default_storage_url()
    if isinstance(storage, str) and "://" in storage:
        from hpo_plugins.storages._sql import SQLStorage

        if not default:
            return SQLStorage(storage)
        try:
            store = SQLStorage(storage)
        except ConfigurationError as exc:  # say where the URL came from: not from the caller
            raise ConfigurationError(f"${DEFAULT_STORAGE_ENV} holds a bad storage URL. {exc}"
                                     ) from None
        _announce(storage, store.describe())
        return store
    # A mistyped URL ("postgresql:/user:secret@host/db") may hold a password: not echoed.
    shown = ("a string with '@' (not shown, as it may contain a password)"
             if isinstance(storage, str) and "@" in storage else f"storage={storage!r}")
    raise ConfigurationError(
        f"Expected `storage` to be a Storage, None (a SQLite file), ':memory:' or a database URL "
        f"such as 'sqlite:///hpo.db'. Received: {shown} (of type {type(storage).__name__})."
    )


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
