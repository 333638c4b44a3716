"""get_storage: what ``storage=`` accepts, and where the default storage is announced."""

from __future__ import annotations

import logging
import re
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


@pytest.mark.parametrize(("value", "match"), [
    ("sqlite://runs/hpo.db", r"'sqlite:///runs/hpo.db' for the file"),
    ("sqlite:///env.db\n", r"which ends with '\\n'"),
])
def test_a_bad_url_in_the_environment_is_named_and_makes_nothing(
        value: str, match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(_factory.DEFAULT_STORAGE_ENV, value)
    with pytest.raises(ConfigurationError, match=r"^\$HPO_PLUGINS_STORAGE holds a bad storage "
                                                 r"URL\. .*" + match):
        get_storage()
    assert list(tmp_path.iterdir()) == []  # no folder 'runs', no file 'env.db\n'


def test_a_sqlite_url_with_two_slashes_passed_in_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"^Expected a SQLite URL with three slashes.*"
                                                 r"'sqlite:////hpo.db' for the absolute path"):
        get_storage("sqlite://hpo.db")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("storage", "url"), [
    (Path("x.db"), "sqlite:///x.db"),
    ("x.db", "sqlite:///x.db"),
    ("runs/x.db", "sqlite:///runs/x.db"),
    (Path("/abs/path.db"), "sqlite:////abs/path.db"),
])
def test_a_file_path_is_refused_with_its_sqlite_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: object, url: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=rf"Received: storage={re.escape(repr(storage))} "
                                                 rf"\(of type \w+\), a file path, not a URL\. "
                                                 rf"For that SQLite file pass "
                                                 rf"storage='{re.escape(url)}' \(three slashes"):
        get_storage(storage)
    assert list(tmp_path.iterdir()) == []


def test_a_name_that_is_no_path_gets_no_sqlite_url() -> None:
    with pytest.raises(ConfigurationError, match=r"Received: storage='MEMORY' \(of type str\)\.$"):
        get_storage("MEMORY")


@pytest.mark.parametrize(("storage", "message"), [
    ("sqlite:///hpo6.db ", r"Received: storage='sqlite:///hpo6\.db ', which ends with ' '\. "
                           r"Pass storage='sqlite:///hpo6\.db'\.$"),
    (" sqlite:///hpo5.db", r"which starts with ' '\. Pass storage='sqlite:///hpo5\.db'"),
    ("\tx.db\n", r"which starts with '\\t' and ends with '\\n'\. Pass storage='x\.db'"),
    (SECRET_URL + "\n", r"Received: a string with '@' \(not shown, as it may contain a "
                        r"password\), which ends with '\\n'\. Strip it first"),
])
def test_whitespace_around_a_url_is_refused_and_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"^Expected `storage` to be a database URL "
                                                 r"with no whitespace around it.*" + message
                       ) as raised:
        get_storage(storage)
    assert "s3cret" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # no file 'hpo6.db '
