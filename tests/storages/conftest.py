"""Fixtures for the storage tests: SQLite URLs and SQL storages that are always closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hpo_plugins.storages import SQLStorage


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in this test's directory (created on first use)."""
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture
def open_sql() -> Iterator[Callable[..., SQLStorage]]:
    """Open SQL storages on URLs; every one is closed when the test ends."""
    opened: list[SQLStorage] = []

    def open_storage(url: str, **options: Any) -> SQLStorage:
        storage = SQLStorage(url, **options)
        opened.append(storage)
        return storage

    yield open_storage
    for storage in opened:
        storage.close()
