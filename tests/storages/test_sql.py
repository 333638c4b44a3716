"""The SQL storage against the conformance suite, plus schema, secrets, pickling and processes."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import json
import logging
import math
import multiprocessing
import os
import pickle
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.parse
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import (
    ConfigurationError,
    MissingDependencyError,
    StorageError,
    StudyNotFoundError,
)
from hpo_plugins.storages import SQLStorage, Storage, _sql, _sql_tables
from hpo_plugins.storages._sql import SCHEMA_VERSION
from hpo_plugins.testing import StorageConformance

OpenSQL = Callable[..., SQLStorage]
SECRET_URL = "postgresql+psycopg://alice:s3cret@127.0.0.1:1/studies"


class TestSQLStorage(StorageConformance):
    @pytest.fixture
    def storage(self, sqlite_url: str) -> Iterator[Storage]:
        store = SQLStorage(sqlite_url)
        yield store
        store.close()


def _sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _raw_sql(url: str, statement: str) -> list[tuple[object, ...]]:
    """Run one statement on the SQLite file with the plain sqlite3 module, and commit."""
    with contextlib.closing(sqlite3.connect(_sqlite_file(url))) as db, db:
        return db.execute(statement).fetchall()


# -- schema -------------------------------------------------------------------------------------


def test_new_file_gets_tables_version_and_wal(sqlite_url: str, open_sql: OpenSQL) -> None:
    open_sql(sqlite_url).create_study("s", Direction.MINIMIZE)
    assert _raw_sql(sqlite_url, "SELECT schema_version FROM hpo_schema_version") == [
        (SCHEMA_VERSION,)]
    assert _raw_sql(sqlite_url, "PRAGMA journal_mode") == [("wal",)]


@pytest.mark.parametrize(("found", "advice"), [
    (SCHEMA_VERSION + 1, "newer hpo_plugins: upgrade"),
    (0, "older hpo_plugins.*new database"),  # older than any migration
])
def test_other_schema_version_is_refused(sqlite_url: str, open_sql: OpenSQL, found: int,
                                         advice: str) -> None:
    open_sql(sqlite_url).create_study("s", Direction.MINIMIZE)
    _raw_sql(sqlite_url, f"UPDATE hpo_schema_version SET schema_version = {found}")
    later = open_sql(sqlite_url)
    expected = (f"holds hpo_plugins schema version {found}, but this hpo_plugins expects "
                f"schema version {SCHEMA_VERSION}. .*{advice}")
    with pytest.raises(StorageError, match=expected):
        later.get_study_id("s")


def test_version_1_database_is_upgraded_in_place(sqlite_url: str, open_sql: OpenSQL,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Version 1 had no ``next_number``: it is added, and numbering goes on after the last.
    The upgrade is a WARNING that says older processes must be gone (it was INFO, unseen)."""
    old = open_sql(sqlite_url)
    study_id = old.create_study("s", Direction.MINIMIZE)
    for _ in range(3):
        old.create_trial(study_id)
    empty_id = old.create_study("empty", Direction.MINIMIZE)
    old.close()
    _raw_sql(sqlite_url, "ALTER TABLE hpo_studies DROP COLUMN next_number")
    _raw_sql(sqlite_url, "UPDATE hpo_schema_version SET schema_version = 1")
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        later = open_sql(sqlite_url)
        created = later.create_trial(study_id)  # the first use opens, and upgrades, the file
    upgraded = [r for r in caplog.records if "from schema version 1 to" in r.getMessage()]
    assert [r.levelno for r in upgraded] == [logging.WARNING]
    assert "older hpo_plugins must not run on this database" in upgraded[0].getMessage()
    assert created is not None and created.number == 3
    first = later.create_trial(empty_id)
    assert first is not None and first.number == 0
    assert _raw_sql(sqlite_url, "SELECT schema_version FROM hpo_schema_version") == [
        (SCHEMA_VERSION,)]


def test_an_older_schema_that_cannot_be_written_here_says_to_upgrade_a_copy(
        sqlite_url: str, open_sql: OpenSQL) -> None:
    """The advice was to open it as the very immutable=1 URL that had just failed."""
    writer = open_sql(sqlite_url)
    writer.create_study("s", Direction.MINIMIZE)
    writer.close()
    _raw_sql(sqlite_url, "ALTER TABLE hpo_studies DROP COLUMN next_number")
    _raw_sql(sqlite_url, "UPDATE hpo_schema_version SET schema_version = 1")
    _raw_sql(sqlite_url, "PRAGMA wal_checkpoint(TRUNCATE)")  # all in the main file, as copied
    path = _sqlite_file(sqlite_url)
    with pytest.raises(StorageError, match=r"schema version 1, which this hpo_plugins .* "
                                           r"upgrades in place, once, by a write, and it cannot "
                                           r"be written here .*Copy the file to a folder you can "
                                           r"write to, open the copy once"):
        SQLStorage(f"sqlite:///file:{path}?immutable=1&uri=true").list_studies()
    assert _raw_sql(sqlite_url, "SELECT schema_version FROM hpo_schema_version") == [(1,)]


def test_create_false_reads_a_study_database_and_changes_nothing(sqlite_url: str,
                                                                  open_sql: OpenSQL) -> None:
    open_sql(sqlite_url).create_study("s", Direction.MINIMIZE)
    before = _sqlite_file(sqlite_url).read_bytes()
    reader = SQLStorage(sqlite_url, create=False)
    assert [s.name for s in reader.list_studies()] == ["s"]
    reader.close()
    assert pickle.loads(pickle.dumps(reader)).create is False  # workers open it the same way
    assert _sqlite_file(sqlite_url).read_bytes() == before


def test_create_false_refuses_other_databases_without_touching_them(tmp_path: Path) -> None:
    missing = tmp_path / "no_dir" / "x.db"
    with pytest.raises(StorageError, match="Could not read the SQLite file"):
        SQLStorage(f"sqlite:///{missing}", create=False).list_studies()
    assert not missing.parent.exists()  # no folder made either
    theirs = tmp_path / "theirs.db"
    _raw_sql(f"sqlite:///{theirs}", "CREATE TABLE orders (id INTEGER)")
    before = theirs.read_bytes()
    with pytest.raises(StorageError, match="holds no hpo_plugins tables: it is empty or belongs"):
        SQLStorage(f"sqlite:///{theirs}", create=False).list_studies()
    assert theirs.read_bytes() == before
    assert _raw_sql(f"sqlite:///{theirs}", "PRAGMA journal_mode") == [("delete",)]


@pytest.mark.parametrize(("found", "advice"), [
    (1, "older than this hpo_plugins' .* opened without changes. Stop every process of the "
        "older hpo_plugins on it, then open it once for writing.*SQLStorage\\('URL'\\)"
        ".list_studies\\(\\).*without mode=ro or immutable=1.*copy it to a folder you can "
        "write to"),
    (SCHEMA_VERSION + 1, "newer hpo_plugins: upgrade"),
    (0, "no automatic migration"),
])
def test_create_false_refuses_other_versions_and_leaves_them(
        sqlite_url: str, open_sql: OpenSQL, found: int, advice: str) -> None:
    open_sql(sqlite_url).create_study("s", Direction.MINIMIZE)
    _raw_sql(sqlite_url, f"UPDATE hpo_schema_version SET schema_version = {found}")
    with pytest.raises(StorageError, match=f"schema version {found}.*{advice}"):
        SQLStorage(sqlite_url, create=False).list_studies()
    assert _raw_sql(sqlite_url, "SELECT schema_version FROM hpo_schema_version") == [(found,)]


def test_the_advised_command_upgrades_an_older_schema(sqlite_url: str, open_sql: OpenSQL) -> None:
    """The refusal advised SQLStorage('URL').close(), which opens nothing: the schema stayed."""
    writer = open_sql(sqlite_url)
    writer.create_study("s", Direction.MINIMIZE)
    writer.close()
    _raw_sql(sqlite_url, "ALTER TABLE hpo_studies DROP COLUMN next_number")
    _raw_sql(sqlite_url, "UPDATE hpo_schema_version SET schema_version = 1")
    with pytest.raises(StorageError) as refused:
        SQLStorage(sqlite_url, create=False).list_studies()
    advised = re.search(r'python -c "(.*?)"', str(refused.value))
    assert advised is not None
    exec(advised.group(1).replace("URL", sqlite_url), {})  # the command, as printed
    assert _raw_sql(sqlite_url, "SELECT schema_version FROM hpo_schema_version") == [
        (SCHEMA_VERSION,)]
    assert [s.name for s in SQLStorage(sqlite_url, create=False).list_studies()] == ["s"]


def test_an_unknown_url_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="scheme 'nosuch', which SQLAlchemy does not"):
        SQLStorage("nosuch://host/db").list_studies()


def test_parent_directories_are_created(tmp_path: Path, open_sql: OpenSQL) -> None:
    open_sql(f"sqlite:///{tmp_path}/a/b/studies.db").create_study("s", Direction.MINIMIZE)
    assert (tmp_path / "a" / "b" / "studies.db").is_file()


def test_relative_path_is_under_working_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  open_sql: OpenSQL) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_sql("sqlite:///runs/studies.db")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")  # the path was resolved when the storage was made
    storage.create_study("s", Direction.MINIMIZE)
    assert (tmp_path / "runs" / "studies.db").is_file()
    assert not (tmp_path / "other" / "runs").exists()
    assert storage.url == "sqlite:///runs/studies.db"
    assert storage.portable_url == f"sqlite:///{tmp_path / 'runs' / 'studies.db'}"


def test_relative_uri_path_is_under_working_directory(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative ``file:`` URI path is made absolute too (a Dask worker or a script-mode child
    started in another folder must open the same file), and keeps its URI arguments."""
    folder = tmp_path / "a b%"  # characters a URI path must percent-encode
    (folder / "runs").mkdir(parents=True)
    monkeypatch.chdir(folder)
    storage = SQLStorage("sqlite:///file:runs/studies.db?mode=rwc&uri=true")
    storage.create_study("s", Direction.MINIMIZE)
    storage.close()
    monkeypatch.chdir(tmp_path)
    elsewhere = SQLStorage(storage.portable_url, create=False)
    assert [study.name for study in elsewhere.list_studies()] == ["s"]
    elsewhere.close()
    assert (folder / "runs" / "studies.db").is_file()
    assert not (tmp_path / "runs").exists()


def test_file_prefix_without_uri_is_a_plain_relative_path(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``uri=true`` SQLite reads ``file:runs/hpo.db`` as a plain path (a folder named
    ``file:runs``): it is made absolute like any other relative path."""
    monkeypatch.chdir(tmp_path)
    storage = SQLStorage("sqlite:///file:runs/hpo.db")
    assert sa.make_url(storage.portable_url).database == str(tmp_path / "file:runs" / "hpo.db")


@pytest.mark.parametrize("url", ["sqlite:///file:/abs/hpo.db?uri=true",
                                 "sqlite:///file:///abs/hpo.db?uri=true"])
def test_absolute_uri_path_is_kept(url: str) -> None:
    assert SQLStorage(url).portable_url == url.replace("file:", "file%3A")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 "sqlite:///file::memory:?uri=true"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="storage=':memory:'"):
        SQLStorage(url)


# -- URLs that would fail late or do something else -----------------------------------------


def test_postgres_spelling_gets_the_psycopg_url() -> None:
    """Heroku's ``postgres://``: the message shows the URL to use, its password hidden."""
    with pytest.raises(ConfigurationError, match=r"scheme 'postgres', .*spells PostgreSQL "
                                                 r"'postgresql'.*'postgresql\+psycopg://"
                                                 r"alice:\*\*\*@host/db'") as info:
        SQLStorage("postgres://alice:s3cret@host/db").list_studies()
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@h/db", "postgresql://u@h/db"])
def test_postgresql_without_psycopg_3_says_to_use_it(url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``postgresql://`` means psycopg2 before SQLAlchemy 2.1; the extra installs psycopg 3."""
    if importlib.util.find_spec("psycopg2") is not None:
        pytest.skip("psycopg2 is installed")
    from sqlalchemy.dialects.postgresql import base, psycopg2

    monkeypatch.setattr(base, "dialect", psycopg2.dialect)  # SQLAlchemy 2.0's default driver
    with pytest.raises(MissingDependencyError, match=r"'psycopg2'.*installs psycopg 3, not "
                                                     r"psycopg2: use a URL starting with "
                                                     r"'postgresql\+psycopg://'"):
        SQLStorage(url).list_studies()


def test_missing_psycopg_3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.dialects.postgresql import psycopg

    def missing() -> None:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(psycopg.dialect, "import_dbapi", missing)
    with pytest.raises(MissingDependencyError, match=r"'psycopg'.*Install it with: pip install "
                                                     r"'hpo_plugins\[postgres\]'"):
        SQLStorage("postgresql+psycopg://u@h/db").list_studies()


def test_other_missing_drivers_do_not_point_to_the_postgres_extra() -> None:
    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("MySQLdb is installed")
    with pytest.raises(MissingDependencyError, match=r"'mysql://'.*module 'MySQLdb'.*tested "
                                                     r"with SQLite and with PostgreSQL through "
                                                     r"psycopg") as info:
        SQLStorage("mysql://u@h/db").list_studies()
    assert "hpo_plugins[postgres]" not in str(info.value)


@pytest.mark.parametrize(("url", "path"), [("sqlite://runs/dir/x.db", "runs/dir/x.db"),
                                           ("sqlite://hpo.db", "hpo.db")])
def test_sqlite_url_with_two_slashes_is_refused_at_once(
        url: str, path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two slashes make the path's first part a host: refused before any folder is made."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=f"two slashes.*'sqlite:///{path}' for the file "
                                                 f"relative.*'sqlite:////{path}' for the abs"):
        SQLStorage(url)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("below", ["x.db", "sub/x.db"])
def test_a_folder_that_cannot_be_made_is_a_storage_error(below: str, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    storage = SQLStorage(f"sqlite:///{tmp_path}/afile/{below}")
    with pytest.raises(StorageError, match=r"Could not create the folder .*afile.* for the "
                                           r"SQLite file .*check the path \(no part of it may "
                                           r"be a file\)"):
        storage.create_study("s", Direction.MINIMIZE)


def test_a_file_that_cannot_be_opened_says_what_to_check(tmp_path: Path) -> None:
    storage = SQLStorage(f"sqlite:///{tmp_path}")  # a folder, not a file
    with pytest.raises(StorageError, match=r"unable to open database file. Check the path "
                                           r".*: it must name a file"):
        storage.create_study("s", Direction.MINIMIZE)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root may write into read-only folders")
def test_a_read_only_folder_is_a_storage_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(StorageError, match="unable to open database file. Check the path"):
        SQLStorage(f"sqlite:///{folder}/x.db").create_study("s", Direction.MINIMIZE)
    with pytest.raises(StorageError, match="Could not create the folder .*Permission denied"):
        SQLStorage(f"sqlite:///{folder}/sub/x.db").create_study("s", Direction.MINIMIZE)


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite:///x.db?mode=ro", r"Received \['mode'\] without 'uri=true'.*add '&uri=true'"),
    ("sqlite:///x.db?mode=ro&uri=true", r"Received the path 'x.db'.*write 'file:'"),
])
def test_sqlite_uri_arguments_outside_the_uri_form_are_refused(url: str, message: str) -> None:
    """The driver would drop them: ``mode=ro`` would open the file read-write."""
    with pytest.raises(ConfigurationError,
                       match=r"'sqlite:///file:x.db\?mode=ro&uri=true'.*" + message):
        SQLStorage(url)


@pytest.mark.parametrize(("url", "message"), [
    ("sqlite:///x.db?timeout=soon", "'timeout' of a SQLite URL to be a number of seconds. "
                                    "Received timeout='soon'"),
    ("sqlite:///file:x.db?mode=ro&uri=maybe", "'uri' .* to be true or false. Received "
                                              "uri='maybe'"),
])
def test_driver_arguments_it_cannot_read_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SQLStorage(url)


def test_sqlite_uri_arguments_in_the_uri_form_are_honoured(sqlite_url: str,
                                                           open_sql: OpenSQL) -> None:
    open_sql(sqlite_url).create_study("s", Direction.MINIMIZE)
    read_only = open_sql(f"sqlite:///file:{_sqlite_file(sqlite_url)}?mode=ro&uri=true")
    assert [study.name for study in read_only.list_studies()] == ["s"]
    with pytest.raises(StorageError, match="readonly database"):
        read_only.create_study("t", Direction.MINIMIZE)
    assert open_sql(f"sqlite:///{_sqlite_file(sqlite_url)}?timeout=5").list_studies()


def test_a_read_only_uri_reads_a_database_not_in_wal_mode(sqlite_url: str,
                                                          open_sql: OpenSQL) -> None:
    """The connection hook switched every connection to WAL, a write: a mode=ro connection to
    a file in another journal mode (a copy, a file set to DELETE mode) failed to read."""
    writer = open_sql(sqlite_url)
    writer.create_study("s", Direction.MINIMIZE)
    writer.close()
    assert _raw_sql(sqlite_url, "PRAGMA journal_mode=DELETE") == [("delete",)]
    path = _sqlite_file(sqlite_url)
    for query in ("mode=ro", "immutable=1"):
        reader = open_sql(f"sqlite:///file:{path}?{query}&uri=true")
        assert [study.name for study in reader.list_studies()] == ["s"]
    assert _raw_sql(sqlite_url, "PRAGMA journal_mode") == [("delete",)]  # left as it was


def test_create_false_leaves_the_journal_mode_and_the_file_unchanged(
        sqlite_url: str, open_sql: OpenSQL) -> None:
    """``create=False`` (the command line, ``copy_study``'s source) promises to change nothing:
    it switched a database in another journal mode to WAL, a write to the file."""
    writer = open_sql(sqlite_url)
    study_id = writer.create_study("s", Direction.MINIMIZE)
    writer.finish_trial(writer.create_trial(study_id).trial_id, TrialState.COMPLETE, 1.0)
    writer.close()
    assert _raw_sql(sqlite_url, "PRAGMA journal_mode=DELETE") == [("delete",)]
    before = _sqlite_file(sqlite_url).read_bytes()
    reader = open_sql(sqlite_url, create=False)
    assert [t.value for t in reader.get_all_trials(study_id)] == [1.0]
    reader.close()
    assert _raw_sql(sqlite_url, "PRAGMA journal_mode") == [("delete",)]
    assert _sqlite_file(sqlite_url).read_bytes() == before


def test_immutable_warns_when_a_wal_file_holds_changes_it_does_not_read(
        sqlite_url: str, open_sql: OpenSQL) -> None:
    """``immutable=1`` reads the main file alone: the commits still in the -wal file (a writer
    running, or killed before its checkpoint) are missing from what it reads, silently."""
    first = open_sql(sqlite_url)
    study_id = first.create_study("s", Direction.MINIMIZE)
    first.close()  # the last connection checkpoints: the study is in the main file
    writer = open_sql(sqlite_url)
    writer.finish_trial(writer.create_trial(study_id).trial_id, TrialState.COMPLETE, 1.0)
    path = _sqlite_file(sqlite_url)
    assert Path(f"{path}-wal").stat().st_size > 0  # the writer's connection is still open
    with pytest.warns(UserWarning, match=rf"{path}-wal beside it is not empty \(\d+ bytes\): "
                                         rf"it may hold changes that immutable=1 does not "
                                         rf"read") as caught:
        stale = open_sql(f"sqlite:///file:{path}?immutable=1&uri=true")
        assert stale.get_all_trials(study_id) == []  # the trial is in the -wal file only
    assert caught[0].filename == __file__  # the user's line, not the storage's
    writer.close()  # the last connection checkpoints and removes the -wal file
    reader = open_sql(f"sqlite:///file:{path}?immutable=1&uri=true")  # no warning now
    assert [t.value for t in reader.get_all_trials(study_id)] == [1.0]


def test_a_write_through_a_read_only_uri_says_how_to_read_and_how_to_write(
        sqlite_url: str, open_sql: OpenSQL) -> None:
    open_sql(sqlite_url).create_study("s", Direction.MINIMIZE)
    path = _sqlite_file(sqlite_url)
    read_only = open_sql(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(StorageError) as raised:
        read_only.create_study("t", Direction.MINIMIZE)
    message = str(raised.value)
    assert "attempt to write a readonly database. This storage was opened read-only" in message
    assert f"use a URL without them, such as sqlite:///{path}." in message
    assert f"open it as sqlite:///file:{path}?immutable=1&uri=true" in message


@pytest.mark.parametrize("name", ["my runs", "a%41b", "q?x#y"])
def test_a_uri_path_with_escaped_characters_is_read_as_its_file(
        name: str, tmp_path: Path, open_sql: OpenSQL, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's URI form percent-encodes its path: a relative ``file:hpo.db`` run from a folder
    named ``my runs`` is made absolute as ``file:/.../my%20runs/hpo.db``. The -wal check and
    the read-only advice took that text as the file name, which does not exist, so the warning
    was never given and the advice pointed at a new, empty file. The advised URLs must name
    the file through both decodings (SQLAlchemy's, then SQLite's for a URI)."""
    folder = tmp_path / name
    folder.mkdir()
    escaped = str(folder).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    first = open_sql(f"sqlite:///{escaped}/hpo.db")
    study_id = first.create_study("s", Direction.MINIMIZE)
    first.close()
    assert (folder / "hpo.db").is_file()
    writer = open_sql(f"sqlite:///{escaped}/hpo.db")
    writer.finish_trial(writer.create_trial(study_id).trial_id, TrialState.COMPLETE, 1.0)
    monkeypatch.chdir(folder)
    given = urllib.parse.quote(urllib.parse.quote(str(folder), safe="/"), safe="/") + "/hpo.db"
    for path in (given, "hpo.db"):  # given encoded; relative, made absolute and encoded
        with pytest.warns(UserWarning, match=rf"{re.escape(str(folder))}/hpo.db-wal beside it "
                                             rf"is not empty"):
            open_sql(f"sqlite:///file:{path}?immutable=1&uri=true").list_studies()
        with pytest.raises(StorageError) as raised:
            open_sql(f"sqlite:///file:{path}?mode=ro&uri=true").create_study(
                "t", Direction.MINIMIZE)
        message = str(raised.value)
        assert f"use a URL without them, such as sqlite:///{escaped}/hpo.db." in message, message
        offered = re.search(r"open it as (sqlite:///file:.+?\?immutable=1&uri=true)", message)
        assert offered is not None, message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the -wal warning, checked above
            assert [s.name for s in open_sql(offered.group(1)).list_studies()] == ["s"]
    writer.close()
    assert sorted(p.name for p in tmp_path.rglob("*.db")) == ["hpo.db"]  # no file made


_READ_ONLY_MOUNT = """
set -e
mount --bind "$1" "$1"
mount -o remount,ro,bind "$1"
touch "$1/probe" 2>/dev/null && exit 3
shift
exec "$@"
"""


@pytest.mark.skipif(sys.platform != "linux", reason="a read-only bind mount is Linux only")
def test_a_study_in_a_read_only_folder_is_read_with_immutable(tmp_path: Path) -> None:
    """A read-only location (here a read-only bind mount in a private mount namespace, which
    binds root too): mode=ro cannot read a WAL database there (SQLite needs its -shm file),
    and the error says to use immutable=1, which reads it."""
    folder = tmp_path / "ro"
    folder.mkdir()
    url = f"sqlite:///{folder}/hpo.db"
    writer = SQLStorage(url)
    writer.create_study("s", Direction.MINIMIZE)
    writer.close()
    script = textwrap.dedent(f"""
        from hpo_plugins.exceptions import StorageError
        from hpo_plugins.storages import SQLStorage
        for query in ("mode=ro", "immutable=1"):
            for create in (True, False):  # False: the command line, copy_study's source
                try:
                    names = [s.name for s in SQLStorage(
                        "sqlite:///file:{folder}/hpo.db?" + query + "&uri=true",
                        create=create).list_studies()]
                    print(query, create, "read", names)
                except StorageError as exc:
                    print(query, create, "failed", exc)
    """)
    try:
        done = subprocess.run(["unshare", "--mount", "sh", "-c", _READ_ONLY_MOUNT, "sh",
                               str(folder), sys.executable, "-c", script],
                              capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("unshare is not installed")
    if done.returncode != 0:
        pytest.skip(f"no read-only bind mount here (needs root): {done.stderr.strip()[-200:]}")
    assert "immutable=1 True read ['s']" in done.stdout
    assert "immutable=1 False read ['s']" in done.stdout, done.stdout
    assert ("mode=ro True failed" in done.stdout and "mode=ro False failed" in done.stdout
            and f"open it as sqlite:///file:{folder}/hpo.db?immutable=1&uri=true"
            in done.stdout), done.stdout


# -- secrets ------------------------------------------------------------------------------------


def test_password_is_hidden_in_describe_and_repr() -> None:
    storage = SQLStorage(SECRET_URL)  # connects on first use, so no server is needed here
    assert storage.describe() == "postgresql+psycopg://alice:***@127.0.0.1:1/studies"
    assert "s3cret" not in repr(storage)
    assert storage.url == SECRET_URL


def test_password_is_hidden_in_connection_errors() -> None:
    storage = SQLStorage(SECRET_URL)
    with pytest.raises(StorageError, match=r"Could not open .*alice:\*\*\*@") as info:
        storage.create_study("s", Direction.MINIMIZE)
    assert "s3cret" not in str(info.value)
    storage.close()


def test_password_given_as_a_query_argument_is_hidden_too(
        caplog: pytest.LogCaptureFixture) -> None:
    """libpq also reads ``?password=``: describe, repr, errors and logs must not show it."""
    storage = SQLStorage("postgresql+psycopg://alice@127.0.0.1:1/studies?password=s3cret"
                         "&connect_timeout=1")
    assert storage.describe() == ("postgresql+psycopg://alice@127.0.0.1:1/studies"
                                  "?connect_timeout=1&password=***")
    with caplog.at_level(logging.DEBUG), pytest.raises(StorageError) as info:
        storage.create_study("s", Direction.MINIMIZE)
    storage.close()
    shown = [repr(storage), str(info.value), caplog.text]
    assert all("s3cret" not in text for text in shown), shown
    # a driver error that quotes the password (the refused connection above does not)
    assert storage._redact(RuntimeError("password 's3cret' refused")) == "password '***' refused"
    assert "s3cret" in storage.portable_url  # what workers need to connect


def test_a_dropped_storage_is_freed_without_the_cyclic_collector(sqlite_url: str) -> None:
    """Nothing of the storage refers back to it: dropped, its pooled connections close at once
    (a bound method kept by its hot path held them until a gc.collect())."""
    storage = SQLStorage(sqlite_url)
    storage.create_study("s", Direction.MINIMIZE)
    storage.start_trial(storage.get_study_id("s"))  # through the hot path
    alive = weakref.ref(storage)
    gc.disable()
    try:
        del storage
        assert alive() is None
    finally:
        gc.enable()


def test_unparsable_url_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError, match="not shown") as info:
        SQLStorage("postgresql+psycopg://alice:s3cret@host:notaport/db")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(("engine_kwargs", "message"), [
    ([1], r"`engine_kwargs` to be a dict of keyword arguments.*Received: a value of type list"),
    ({1: 2}, r"keys of `engine_kwargs` to be argument names.*the key 1 \(of type int\)"),
    ({"connect_args": 5}, r"engine_kwargs\['connect_args'\] to be a dict.*of type int"),
    ({"pool_siz": 5}, r"Received: the argument 'pool_siz' that SQLAlchemy refused.*"
                      r"sqlalchemy.create_engine"),
])
def test_bad_engine_kwargs_are_refused_by_the_constructor(tmp_path: Path, engine_kwargs: object,
                                                          message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SQLStorage(f"sqlite:///{tmp_path}/sub/a.db", engine_kwargs=engine_kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "sub").exists()  # checked without connecting or making folders


def test_engine_kwargs_are_checked_without_connecting(tmp_path: Path) -> None:
    """A server that does not answer: the constructor still refuses a misspelled argument
    (only a driver that is installed can say), and accepts a right one without connecting."""
    pytest.importorskip("psycopg")
    with pytest.raises(ConfigurationError, match="'pool_siz'"):
        SQLStorage(SECRET_URL, engine_kwargs={"pool_siz": 5})
    assert SQLStorage(SECRET_URL, engine_kwargs={"pool_size": 5}).engine_kwargs == {"pool_size": 5}
    storage = SQLStorage(f"sqlite:///{tmp_path}/b.db", engine_kwargs={"pool_size": 2})
    assert not (tmp_path / "b.db").exists()
    assert storage.list_studies() == []  # the engine made on first use takes them


# -- pickling, fork, several instances ----------------------------------------------------------


def test_pickle_round_trip_keeps_the_url_and_options(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage = open_sql(sqlite_url, reconnect_timeout=5)
    study_id = storage.create_study("s", Direction.MINIMIZE)
    clone = pickle.loads(pickle.dumps(storage))
    try:
        assert clone.__getstate__() == {"url": sqlite_url, "engine_kwargs": None, "create": True,
                                        "reconnect_timeout": 5.0, "reached": True}
        trial = clone.create_trial(study_id)
        assert trial is not None and trial.number == 0
        assert storage.get_trial(trial.trial_id) == trial
    finally:
        clone.close()


def test_writes_are_seen_by_other_instances_at_once(sqlite_url: str,
                                                    open_sql: OpenSQL) -> None:
    writer, reader = open_sql(sqlite_url), open_sql(sqlite_url)
    study_id = writer.create_study("s", Direction.MINIMIZE)
    assert reader.get_all_trials(study_id) == []
    trial = writer.create_trial(study_id)
    assert trial is not None
    writer.set_intermediate_value(trial.trial_id, 3, 0.5)
    assert reader.get_all_trials(study_id) == [writer.get_trial(trial.trial_id)]


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the Linux default")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12+, threads
def test_forked_child_opens_its_own_connections(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage = open_sql(sqlite_url)
    study_id = storage.create_study("s", Direction.MINIMIZE)

    def child() -> None:
        storage.create_trial(study_id)
        storage.close()

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    storage.create_trial(study_id)  # the parent's pooled connection still works
    assert [t.number for t in storage.get_all_trials(study_id)] == [0, 1]


# -- the cache of finished trials ---------------------------------------------------------------


def _study_with_trials(storage: SQLStorage) -> tuple[int, FrozenTrial, FrozenTrial]:
    """A study holding a COMPLETE trial (value 1.0) and a RUNNING one."""
    study_id = storage.create_study("s", Direction.MINIMIZE)
    done = storage.create_trial(study_id, params={"x": 1})
    running = storage.create_trial(study_id)
    assert done is not None and running is not None
    return study_id, storage.finish_trial(done.trial_id, TrialState.COMPLETE, 1.0), running


def test_finished_trials_are_read_once(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage = open_sql(sqlite_url)
    study_id, done, _ = _study_with_trials(storage)
    first = storage.get_all_trials(study_id)
    # Nothing may change a finished trial; here we do, behind the storage's back, to show
    # which trials are read again: the running one and get_trial, not the cached one.
    _raw_sql(sqlite_url, "UPDATE hpo_trials SET value = 7.0")
    again = storage.get_all_trials(study_id)
    assert again[0] is first[0] and again[0].value == 1.0
    assert again[1] is not first[1] and again[1].value == 7.0
    assert storage.get_trial(done.trial_id).value == 7.0
    assert len(storage._finished) == 1


def test_cached_trials_are_read_only(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage = open_sql(sqlite_url)
    study_id, done, _ = _study_with_trials(storage)
    cached = storage.get_all_trials(study_id)[0]
    with pytest.raises(TypeError, match=r"read-only. Copy it first, e.g. dict\(trial.params\)"):
        cached.params["x"] = 2  # type: ignore[index]
    assert cached == done and pickle.loads(pickle.dumps(cached)) == done
    assert type(pickle.loads(pickle.dumps(cached)).params) is dict


def test_deleting_a_study_drops_its_cached_trials(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage, other = open_sql(sqlite_url), open_sql(sqlite_url)
    study_id, _, _ = _study_with_trials(storage)
    storage.get_all_trials(study_id)
    storage.delete_study(study_id)
    assert len(storage._finished) == 0
    study_id, _, _ = _study_with_trials(storage)
    storage.get_all_trials(study_id)
    other.delete_study(study_id)
    with pytest.raises(StudyNotFoundError):
        storage.get_all_trials(study_id)
    assert len(storage._finished) == 0


def test_copies_start_with_an_empty_cache(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage = open_sql(sqlite_url)
    study_id, _, _ = _study_with_trials(storage)
    storage.get_all_trials(study_id)
    clone = pickle.loads(pickle.dumps(storage))
    try:
        assert len(clone._finished) == 0
        assert clone.get_all_trials(study_id) == storage.get_all_trials(study_id)
    finally:
        clone.close()


@pytest.mark.skipif(sys.platform != "linux", reason="fork is the Linux default")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12+, threads
def test_forked_child_drops_the_cache(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage = open_sql(sqlite_url)
    study_id, _, _ = _study_with_trials(storage)
    storage.get_all_trials(study_id)

    def child() -> None:
        _raw_sql(sqlite_url, "UPDATE hpo_trials SET value = 7.0")
        values = [t.value for t in storage.get_all_trials(study_id)]
        storage.close()
        sys.exit(0 if values == [7.0, 7.0] else 1)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert [t.value for t in storage.get_all_trials(study_id)] == [1.0, 7.0]


def test_many_trials_to_read_are_read_by_study(sqlite_url: str, open_sql: OpenSQL,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sql, "_MAX_IDS_PER_QUERY", 2)
    storage = open_sql(sqlite_url)
    study_id = storage.create_study("s", Direction.MINIMIZE)
    for i in range(5):
        trial = storage.create_trial(study_id)
        assert trial is not None
        storage.set_intermediate_value(trial.trial_id, 0, float(i))
        if i % 2:
            storage.finish_trial(trial.trial_id, TrialState.PRUNED, float(i))
    fresh = open_sql(sqlite_url)
    assert fresh.get_all_trials(study_id) == storage.get_all_trials(study_id)
    assert [t.number for t in fresh.get_all_trials(study_id, [TrialState.RUNNING])] == [0, 2, 4]
    assert [t.intermediate_values for t in fresh.get_all_trials(study_id)] == [
        {0: float(i)} for i in range(5)]


# -- SQL-specific details -----------------------------------------------------------------------


def test_nan_intermediate_value_round_trips(sqlite_url: str, open_sql: OpenSQL) -> None:
    storage = open_sql(sqlite_url)
    trial = storage.create_trial(storage.create_study("s", Direction.MINIMIZE))
    assert trial is not None
    storage.set_intermediate_value(trial.trial_id, 0, float("nan"))
    assert math.isnan(storage.get_trial(trial.trial_id).intermediate_values[0])


def test_frozen_trial_fields_are_in_the_order_rows_are_read() -> None:
    # _to_trial passes FrozenTrial's fields by position, for speed.
    assert [f.name for f in dataclasses.fields(FrozenTrial)] == [
        "trial_id", "number", "state", "value", "params", "natural", "intermediate_values",
        "user_attrs", "system_attrs", "datetime_start", "datetime_complete", "last_heartbeat"]


def test_schema_and_statements_compile_for_postgresql() -> None:
    """The PostgreSQL path is not run here, but every table and prebuilt statement renders."""
    dialect = postgresql.psycopg.dialect()
    for table in _sql_tables.schema_metadata.sorted_tables:
        assert "CREATE TABLE" in str(sa.schema.CreateTable(table).compile(dialect=dialect))
    statements = [v for v in vars(_sql).values()
                  if isinstance(v, sa.sql.Executable) and isinstance(v, sa.sql.ClauseElement)]
    assert len(statements) > 10
    for statement in statements:
        assert str(statement.compile(dialect=dialect))
    locking = str(_sql._LOCK_STUDY.compile(dialect=dialect))
    assert locking.endswith("FOR UPDATE")
    create = str(_sql._CREATE_UNLESS_WAITING.compile(dialect=dialect))
    assert create.startswith("WITH taken AS") and "INSERT INTO hpo_trials" in create


# -- several processes on one SQLite file -------------------------------------------------------

N_WORKERS, N_TRIALS, N_WAITING = 4, 100, 100

# Each worker runs N_TRIALS full trials in study "numbers" and, between them, claims WAITING
# trials of study "queue", so creating and claiming contend for the file lock together.
_WORKER = """
import json, sys, time
from pathlib import Path
from hpo_plugins._frozen import TrialState
from hpo_plugins.storages import SQLStorage

url, n_trials, ready, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
storage = SQLStorage(url)
numbers_id, queue_id = storage.get_study_id("numbers"), storage.get_study_id("queue")
ready.touch()
while not go.exists():
    time.sleep(0.01)
created, claimed = [], []
for i in range(n_trials):
    trial = storage.create_trial(numbers_id, heartbeat=True)
    storage.set_trial_params(trial.trial_id, {"i": i}, {"i": i})
    storage.set_intermediate_value(trial.trial_id, 0, float(i))
    storage.finish_trial(trial.trial_id, TrialState.COMPLETE, float(i))
    created.append(trial.number)
    if (waiting := storage.claim_waiting_trial(queue_id)) is not None:
        claimed.append(waiting.trial_id)
while (waiting := storage.claim_waiting_trial(queue_id)) is not None:
    claimed.append(waiting.trial_id)
storage.close()
print(json.dumps({"created": created, "claimed": claimed}))
"""


def _run_workers(url: str, workdir: Path) -> list[dict[str, list[int]]]:
    """Start the workers, release them together once all are ready, return their reports."""
    ready = [workdir / f"ready-{i}" for i in range(N_WORKERS)]
    go = workdir / "go"
    processes = [subprocess.Popen([sys.executable, "-c", _WORKER, url, str(N_TRIALS), str(r),
                                   str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
                 for r in ready]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in processes):
            break
        time.sleep(0.02)
    go.touch()
    outputs = [p.communicate(timeout=180) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    return [json.loads(out) for out, _ in outputs]


@dataclasses.dataclass
class _SharedRun:
    storage: SQLStorage
    numbers_id: int
    queue_id: int
    waiting_ids: list[int]
    reports: list[dict[str, list[int]]]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SharedRun]:
    """One run of N_WORKERS processes on one SQLite file (started once: Python starts slowly)."""
    workdir = tmp_path_factory.mktemp("processes")
    url = f"sqlite:///{workdir / 'shared.db'}"
    storage = SQLStorage(url)
    numbers_id = storage.create_study("numbers", Direction.MINIMIZE)
    queue_id = storage.create_study("queue", Direction.MINIMIZE)
    waiting = [storage.create_trial(queue_id, state=TrialState.WAITING)
               for _ in range(N_WAITING)]
    waiting_ids = [t.trial_id for t in waiting if t is not None]
    yield _SharedRun(storage, numbers_id, queue_id, waiting_ids, _run_workers(url, workdir))
    storage.close()


@pytest.mark.slow
def test_processes_get_unique_gapless_numbers(shared_run: _SharedRun) -> None:
    created = sorted(n for report in shared_run.reports for n in report["created"])
    assert created == list(range(N_WORKERS * N_TRIALS))
    trials = shared_run.storage.get_all_trials(shared_run.numbers_id)
    assert [t.number for t in trials] == created
    assert all(t.state is TrialState.COMPLETE and t.intermediate_values == {0: t.value}
               for t in trials)


@pytest.mark.slow
def test_processes_claim_each_waiting_trial_once(shared_run: _SharedRun) -> None:
    claimed = [trial_id for report in shared_run.reports for trial_id in report["claimed"]]
    assert sorted(claimed) == sorted(shared_run.waiting_ids)
    running = shared_run.storage.get_all_trials(shared_run.queue_id, [TrialState.RUNNING])
    assert len(running) == N_WAITING


def test_a_snapshot_reads_only_the_new_points_of_running_curves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """should_prune takes a snapshot at every report: it read every point of every running
    trial again (100,000 rows for 50 trials of 2,000 reports); now only the points from each
    curve's last known step on, and the curves are still whole."""
    storage = SQLStorage(f"sqlite:///{tmp_path / 'tail.db'}")
    study_id = storage.create_study("s", Direction.MINIMIZE)
    trials = [storage.create_trial(study_id) for _ in range(3)]
    for trial in trials:
        assert trial is not None
        for step in range(200):
            storage.set_intermediate_value(trial.trial_id, step, 1.0 / (step + 1))
    grouped: list[int] = []
    group = _sql._group_values

    def counted(rows: object) -> dict[int, dict[int, float]]:
        curves = group(rows)  # type: ignore[arg-type]
        grouped.append(sum(len(c) for c in curves.values()))
        return curves

    monkeypatch.setattr(_sql, "_group_values", counted)
    assert all(len(t.intermediate_values) == 200 for t in storage.get_all_trials(study_id))
    assert sum(grouped) == 600  # the first read is whole
    grouped.clear()
    storage.set_intermediate_value(trials[0].trial_id, 200, 0.001)  # type: ignore[union-attr]
    snapshot = storage.get_all_trials(study_id)
    assert [len(t.intermediate_values) for t in snapshot] == [201, 200, 200]
    assert snapshot[0].intermediate_values[200] == 0.001
    assert snapshot[1].intermediate_values == {s: 1.0 / (s + 1) for s in range(200)}
    assert sum(grouped) == 4  # each curve's last point, and the new one
    storage.close()


def test_a_finished_trial_s_curve_kept_late_by_another_thread_is_dropped(
        tmp_path: Path) -> None:
    """A thread that read the trial RUNNING may keep its curve after another thread saw it
    finish and dropped it: the next snapshot, which finds it among the finished trials, drops
    it again (it was held until the memory bound)."""
    storage = SQLStorage(f"sqlite:///{tmp_path / 'late.db'}")
    study_id = storage.create_study("s", Direction.MINIMIZE)
    trial = storage.create_trial(study_id)
    assert trial is not None
    storage.set_intermediate_value(trial.trial_id, 0, 1.0)
    storage.finish_trial(trial.trial_id, TrialState.COMPLETE, 1.0)
    storage.get_all_trials(study_id)  # now among the cached finished trials
    storage._unfinished.keep({trial.trial_id: {0: 1.0}})  # the late thread
    storage.get_all_trials(study_id)
    assert storage._unfinished._curves == {}
    storage.close()


def test_an_optuna_database_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    """load_study, delete_study and create_study would add our tables and switch it to WAL."""
    import hashlib

    import optuna

    import hpo_plugins as hpo

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = tmp_path / "optuna.db"
    url = f"sqlite:///{path}"
    optuna.create_study(study_name="o", storage=url).optimize(
        lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    before = hashlib.md5(path.read_bytes()).hexdigest()
    calls = [lambda: hpo.load_study("o", url), lambda: hpo.delete_study("o", url),
             lambda: hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=url,
                                      study_name="o")]
    for call in calls:
        with pytest.raises(StorageError, match=r"is an Optuna database \(tables .*'studies'"
                                               r".*\), with no hpo_plugins tables.*cannot read "
                                               r"Optuna's studies.*give another path"):
            call()
    assert hashlib.md5(path.read_bytes()).hexdigest() == before
    assert not (tmp_path / "optuna.db-wal").exists()
    assert len(optuna.load_study(study_name="o", storage=url).trials) == 2


def test_a_file_of_another_program_is_shared_with_a_warning_an_empty_one_quietly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An application's database the user chose to share: taken, with a warning."""
    import hpo_plugins as hpo

    other = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
        conn.commit()
    with caplog.at_level(logging.WARNING, logger="hpo_plugins.storages"):
        hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=f"sqlite:///{other}",
                         study_name="shared").storage.close()
    assert "holds another program's tables (['users']): hpo_plugins adds its own tables" in (
        caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hpo_plugins.storages"):
        storage = SQLStorage(f"sqlite:///{other}")  # ours are there now: no warning
        assert [s.name for s in storage.list_studies()] == ["shared"]
        storage.close()
        empty = tmp_path / "empty.db"
        empty.touch()
        storage = SQLStorage(f"sqlite:///{empty}")
        assert storage.list_studies() == []
        storage.close()
    assert caplog.text == ""
