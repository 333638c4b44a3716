"""The schema version of a database: creating the tables, upgrading an older version,
refusing a newer one and another program's SQLite file."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from hpo_plugins.exceptions import (
    StorageError,
)
from hpo_plugins.storages._base import (
    names_for_message,
)
from hpo_plugins.storages._sql_tables import (
    schema_metadata,
    studies_table,
    trials_table,
    version_table,
)
from hpo_plugins.storages._sql_url import sqlite_read_uri
from hpo_plugins.storages._sqlite_path import (
    is_memory_sqlite,
)

__all__ = ["SCHEMA_VERSION", "check_version", "ensure_schema", "refuse_foreign_sqlite",
           "schema_version", "sqlite_schema_version"]

#: The SQL storage's logger, whose messages these helpers were part of.
_logger = logging.getLogger("hpo_plugins.storages._sql")

#: Version of the table layout below. Bump it with every change to the tables, and teach
#: :func:`_migrate` to bring older databases up to it. Version 2 added
#: ``hpo_studies.next_number``.
SCHEMA_VERSION = 2
_UPGRADABLE = frozenset({1})  # older schema versions that _migrate brings up to date


def _lock_schema(conn: Connection) -> None:
    """Serialize schema creation between processes (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7384112001)"))


def ensure_schema(engine: Engine, description: str) -> None:
    """Create missing tables, after upgrading a database of an older schema version in place
    (:func:`_migrate`, which refuses a newer one)."""
    with engine.begin() as conn:
        _lock_schema(conn)
        found = schema_version(conn)
        if found is not None and found != SCHEMA_VERSION:
            try:
                _migrate(conn, int(found), description)
            except sa.exc.OperationalError as exc:
                if "readonly" not in str(exc):
                    raise
                raise StorageError(
                    f"The database {description} holds hpo_plugins schema version {found}, "
                    f"which this hpo_plugins ({SCHEMA_VERSION}) upgrades in place, once, by a "
                    f"write, and it cannot be written here ({exc.orig}). Copy the file to a "
                    f"folder you can write to, open the copy once (python -c \"from "
                    f"hpo_plugins.storages import SQLStorage; SQLStorage('sqlite:///COPY.db')"
                    f".list_studies()\"), then read the copy.") from exc
        schema_metadata.create_all(conn)
        if conn.scalar(sa.select(version_table.c.schema_version)) is None:
            conn.execute(sa.insert(version_table).values(schema_version=SCHEMA_VERSION))
            _logger.info("Created hpo_plugins tables (schema version %d) in %s.",
                         SCHEMA_VERSION, description)


def schema_version(conn: Connection) -> int | None:
    """The schema version in the database of ``conn``; None if it has no hpo_plugins tables."""
    if not sa.inspect(conn).has_table(version_table.name):
        return None
    return conn.scalar(sa.select(version_table.c.schema_version))


def check_version(found: int | None, description: str) -> None:
    """Refuse (for ``create=False``) a database that does not hold this schema version."""
    if found is None:
        raise StorageError(
            f"The database {description} holds no hpo_plugins tables: it is empty or belongs to "
            f"another program. Expected a database that hpo_plugins has written studies to; "
            f"check the URL (a study run creates the tables).")
    if found == SCHEMA_VERSION:
        return
    if found in _UPGRADABLE:
        raise StorageError(
            f"The database {description} holds hpo_plugins schema version {found}, older than "
            f"this hpo_plugins' {SCHEMA_VERSION}, and it is opened without changes. Stop every "
            f"process of the older hpo_plugins on it, then open it once for writing, which "
            f"upgrades it in place: python -c \"from hpo_plugins.storages import SQLStorage; "
            f"SQLStorage('URL').list_studies()\" with its URL without mode=ro or immutable=1 (a "
            f"study run or hpo_plugins.load_study on it does the same); then read it here. A "
            f"file that may not be written (a read-only folder): copy it to a folder you can "
            f"write to and open the copy.")
    raise StorageError(_version_message(description, found))


def sqlite_schema_version(url: URL) -> int | None:
    """The schema version in the SQLite file of ``url``, read without changing it; None if the
    file has no hpo_plugins tables.

    Read through a SQLite URI with ``mode=ro`` added to the URL's own URI arguments (so an
    ``immutable=1`` URL, the way to read a study in a read-only folder, is read as such).
    ``mode=ro`` cannot open a WAL database without its -shm file where that file cannot be
    made (a read-only folder); the version is then read as ``immutable=1``, which is enough
    for a number that only an upgrade changes, and the storage's own connection gives the
    error and its advice if the file cannot be read at all.
    """
    import sqlite3

    uri = sqlite_read_uri(url)
    try:
        return _read_schema_version(sqlite3.connect(uri, uri=True))
    except sqlite3.Error as exc:
        first = exc
    try:
        return _read_schema_version(sqlite3.connect(f"{uri}&immutable=1", uri=True))
    except sqlite3.Error:
        pass
    raise StorageError(f"Could not read the SQLite file {url.database}: {first}. Expected a "
                       f"database that hpo_plugins has written studies to, in a file this "
                       f"user may read.") from None


def refuse_foreign_sqlite(url: URL, description: str) -> None:
    """Refuse an Optuna SQLite file, and warn before adding our tables to another program's.

    Opening a file adds our tables and switches it to WAL mode. An Optuna study (a likely mix-up
    of URLs for someone trying both libraries) must be left exactly as it was: ``load_study``
    on it would change the file and then report no such study. A file of other tables may be
    an application's database that the user chose to share, so it is opened, with a warning.
    Read-only, before any connection of the storage; a file that cannot be read here is left
    to the storage's own connection, which says why.

    Raises:
        StorageError: The file holds Optuna's tables and none of ours.
    """
    import sqlite3

    database = url.database or ""
    if is_memory_sqlite(url) or (
            not database.startswith("file:") and not os.path.isfile(database)):
        return
    try:
        with contextlib.closing(sqlite3.connect(sqlite_read_uri(url), uri=True)) as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    except sqlite3.Error:
        return
    if not tables or any(name.startswith("hpo_") for name in tables):
        return
    if {"studies", "trials", "trial_values", "version_info"} <= set(tables):
        raise StorageError(
            f"The SQLite file {description} is an Optuna database (tables "
            f"{names_for_message(tables)}), with no hpo_plugins tables. hpo_plugins leaves "
            f"it as it is (opening it would add its tables and switch the file to WAL mode) "
            f"and cannot read Optuna's studies. Expected a new file or one that hpo_plugins "
            f"created: give another path, such as sqlite:///hpo.db.")
    _logger.warning("The SQLite file %s holds another program's tables (%s): hpo_plugins adds "
                    "its own tables (hpo_*) beside them and switches the file to WAL mode. "
                    "Give another path if the file should stay as it is.", description,
                    names_for_message(tables))


def _read_schema_version(connection: Any) -> int | None:
    """The schema version through ``connection`` (closed after), None without the table."""
    with contextlib.closing(connection) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (version_table.name,)).fetchone() is None:
            return None
        row = conn.execute(f"SELECT schema_version FROM {version_table.name}").fetchone()
    return None if row is None else int(row[0])


def _migrate(conn: Connection, found: int, description: str) -> None:
    """Bring a database of an older schema version up to :data:`SCHEMA_VERSION`, in place.

    Runs inside the schema lock of :func:`ensure_schema`, so one process migrates and the
    others then find the new version. Processes of an older hpo_plugins still running on the
    database must be stopped first (a new one refuses to open it, see _version_message).

    Raises:
        StorageError: The version is newer than this hpo_plugins, or has no migration.
    """
    if found not in _UPGRADABLE:
        raise StorageError(_version_message(description, found))
    # 1 -> 2: each study's next trial number lives on its row (see "Numbers" above).
    conn.execute(sa.text("ALTER TABLE hpo_studies ADD COLUMN next_number INTEGER NOT NULL "
                         "DEFAULT 0"))
    top = (sa.select(sa.func.max(trials_table.c.number) + 1)
           .where(trials_table.c.study_id == studies_table.c.study_id).scalar_subquery())
    conn.execute(sa.update(studies_table).values(next_number=sa.func.coalesce(top, 0)))
    conn.execute(sa.update(version_table).values(schema_version=SCHEMA_VERSION))
    _logger.warning("Upgraded the hpo_plugins tables of %s from schema version %d to %d. "
                    "Processes of an older hpo_plugins must not run on this database any more "
                    "(every machine on one database must run the same version).",
                    description, found, SCHEMA_VERSION)


def _version_message(description: str, found: int) -> str:
    if found > SCHEMA_VERSION:
        advice = ("It was written by a newer hpo_plugins: upgrade hpo_plugins "
                  "(pip install -U hpo_plugins) to use it.")
    else:
        advice = ("It was written by an older hpo_plugins and there is no automatic migration: "
                  "read it with the hpo_plugins version that wrote it (export the studies with "
                  "`hpo-plugins export`), or point this study at a new database.")
    return (f"The database {description} holds hpo_plugins schema version {found}, but this "
            f"hpo_plugins expects schema version {SCHEMA_VERSION}. {advice}")
