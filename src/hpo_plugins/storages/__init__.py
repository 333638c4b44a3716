"""Where studies live: in memory, or in a SQL database shared by processes and machines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo_plugins.storages._base import LIMIT_STATES, Storage, StudyInfo
from hpo_plugins.storages._factory import (
    DEFAULT_STORAGE_ENV,
    default_storage_url,
    get_storage,
    missing_sqlite_file,
)
from hpo_plugins.storages._memory import InMemoryStorage

if TYPE_CHECKING:  # at run time __getattr__ below imports it on first use
    from hpo_plugins.storages._sql import SQLStorage

__all__ = [
    "DEFAULT_STORAGE_ENV",
    "LIMIT_STATES",
    "InMemoryStorage",
    "SQLStorage",
    "Storage",
    "StudyInfo",
    "default_storage_url",
    "get_storage",
    "missing_sqlite_file",
]


def __getattr__(name: str) -> object:
    # SQLStorage imports SQLAlchemy; keep `import hpo_plugins.storages` cheap until it is used.
    if name == "SQLStorage":
        from hpo_plugins.storages._sql import SQLStorage

        return SQLStorage
    raise AttributeError(name)
