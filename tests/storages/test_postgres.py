"""The SQL storage on PostgreSQL: the conformance suite, processes, and secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hpo_plugins.storages import SQLStorage, Storage
from hpo_plugins.testing import StorageConformance

pytest_plugins = ["conftest_postgres"]


class TestPostgresStorage(StorageConformance):
    """Every clause of the storage contract, each test in a database of its own."""

    @pytest.fixture
    def storage(self, fresh_postgres_url: str) -> Iterator[Storage]:
        store = SQLStorage(fresh_postgres_url)
        yield store
        store.close()
