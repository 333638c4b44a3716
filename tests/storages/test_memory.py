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


def test_cannot_be_sent_to_another_process() -> None:
    with pytest.raises(StorageError, match="cannot be sent to another process"):
        pickle.dumps(InMemoryStorage())


def test_is_not_multiprocess() -> None:
    assert InMemoryStorage.multiprocess is False
