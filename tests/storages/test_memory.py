"""The in-memory storage against the conformance suite, plus what is special about it."""

from __future__ import annotations

import pickle

import pytest

from hpo_plugins.exceptions import StorageError
from hpo_plugins.storages import InMemoryStorage, Storage
from hpo_plugins.testing import StorageConformance


class TestInMemoryStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Storage:
        return InMemoryStorage()


class _WithoutImport(InMemoryStorage):
    """A storage that leaves out the optional ``import_study`` (it keeps the default)."""

    import_study = Storage.import_study


class TestStorageWithoutImport(StorageConformance):
    """The suite skips what an optional method would be tested for (it failed 5 tests)."""

    @pytest.fixture
    def storage(self) -> Storage:
        return _WithoutImport()


def test_cannot_be_sent_to_another_process() -> None:
    with pytest.raises(StorageError, match="cannot be sent to another process"):
        pickle.dumps(InMemoryStorage())


def test_is_not_multiprocess() -> None:
    assert InMemoryStorage.multiprocess is False
