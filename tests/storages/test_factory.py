"""get_storage: what ``storage=`` accepts, and where the default storage is announced."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.storages import InMemoryStorage, SQLStorage, _factory, get_storage

SECRET_URL = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/studies"


@pytest.fixture(autouse=True)
def _fresh_announcements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_factory, "_announced", set())


def test_storage_objects_and_memory() -> None:
    memory = InMemoryStorage()
    assert get_storage(memory) is memory
    assert isinstance(get_storage(":memory:"), InMemoryStorage)


def test_default_is_announced_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(_factory.DEFAULT_STORAGE_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger=_factory.__name__):
        first, second = get_storage(), get_storage()
    assert isinstance(first, SQLStorage) and first.url == "sqlite:///hpo.db"
    second.close()
    first.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"Studies are stored in {tmp_path / 'hpo.db'} (pass storage= to choose)."]


def test_password_from_the_environment_is_not_announced(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(_factory.DEFAULT_STORAGE_ENV, SECRET_URL)
    with caplog.at_level(logging.INFO, logger=_factory.__name__):
        storage = get_storage()  # connects on first use, so no server is needed here
    assert isinstance(storage, SQLStorage) and storage.url == SECRET_URL
    assert "alice:***@127.0.0.1:1/studies" in caplog.text
    assert "s3cret" not in caplog.text


def test_anything_else_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"Expected `storage`.*Received: storage=3 "
                                                 r"\(of type int\)"):
        get_storage(3)


def test_a_bad_url_in_the_environment_is_named_and_makes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(_factory.DEFAULT_STORAGE_ENV, "sqlite://runs/hpo.db")
    with pytest.raises(ConfigurationError, match=r"\$HPO_PLUGINS_STORAGE holds a bad storage "
                                                 r"URL. .*'sqlite:///runs/hpo.db' for the file"):
        get_storage()
    assert list(tmp_path.iterdir()) == []  # no folder 'runs' made


def test_a_sqlite_url_with_two_slashes_passed_in_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"^Expected a SQLite URL with three slashes.*"
                                                 r"'sqlite:////hpo.db' for the absolute path"):
        get_storage("sqlite://hpo.db")
    assert list(tmp_path.iterdir()) == []
