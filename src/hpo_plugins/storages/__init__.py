"""Where studies live: in memory, or in a SQL database shared by processes and machines.

A storage of your own subclasses :class:`Storage` (its module states the contract) and passes
``hpo_plugins.testing.StorageConformance``. The helpers exported here (``trial_finished``,
``study_not_found``, ``json_copy``, ``stale_after``...) raise the errors, with the messages,
that the suite and the rest of the library expect: use them rather than writing your own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo_plugins.storages._base import (
    LIMIT_STATES,
    Storage,
    StudyInfo,
    check_attr_key,
    check_heartbeat_state,
    duplicate_study,
    finished_state,
    import_keys,
    json_copy,
    no_study_named,
    params_key,
    stale_after,
    stale_reason,
    study_not_found,
    trial_finished,
    trial_not_found,
)
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
    "check_attr_key",
    "check_heartbeat_state",
    "default_storage_url",
    "duplicate_study",
    "finished_state",
    "get_storage",
    "import_keys",
    "json_copy",
    "missing_sqlite_file",
    "no_study_named",
    "params_key",
    "stale_after",
    "stale_reason",
    "study_not_found",
    "trial_finished",
    "trial_not_found",
]


def __getattr__(name: str) -> object:
    # SQLStorage imports SQLAlchemy; keep `import hpo_plugins.storages` cheap until it is used.
    if name == "SQLStorage":
        from hpo_plugins.storages._sql import SQLStorage

        return SQLStorage
    raise AttributeError(name)
