"""The SQL storage on a real PostgreSQL server: the conformance suite and what differs from SQLite.

The server is a throwaway cluster started once per session (``tests/conftest_postgres.py``);
these tests skip, saying why, where PostgreSQL's binaries are missing. Each conformance test gets
an empty database: one database, whose tables are dropped after every test (0.12 s a test here,
against 0.39 s for CREATE DATABASE and DROP DATABASE per test).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from hpo_plugins._frozen import Direction, TrialState
from hpo_plugins.exceptions import StorageError
from hpo_plugins.storages import SQLStorage, Storage
from hpo_plugins.storages._sql import SCHEMA_VERSION
from hpo_plugins.testing import StorageConformance

pytest_plugins = ["conftest_postgres"]


class TestPostgresStorage(StorageConformance):
    """Every clause of the storage contract, on PostgreSQL."""

    @pytest.fixture
    def storage(self, clean_postgres_url: str) -> Iterator[Storage]:
        store = SQLStorage(clean_postgres_url)
        yield store
        store.close()


def _in_threads(n: int, work: object) -> None:
    """Run ``work(i)`` in ``n`` threads released together; re-raise the first error."""
    barrier, errors = threading.Barrier(n), []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)  # type: ignore[operator]
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]


def test_storages_opening_an_empty_database_at_once_create_the_tables_once(
        clean_postgres_url: str) -> None:
    storages = [SQLStorage(clean_postgres_url) for _ in range(4)]
    try:
        _in_threads(4, lambda i: storages[i].create_study(f"s{i}", Direction.MINIMIZE))
        engine = storages[0]._get_engine()
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT schema_version FROM hpo_schema_version"))
            assert versions.all() == [(SCHEMA_VERSION,)]
        assert sorted(info.name for info in storages[0].list_studies()) == [
            "s0", "s1", "s2", "s3"]
    finally:
        for storage in storages:
            storage.close()


def test_separate_storages_share_numbers_and_the_limit(clean_postgres_url: str) -> None:
    """Like separate processes: each storage has its own engine and connections."""
    storages = [SQLStorage(clean_postgres_url) for _ in range(4)]
    try:
        study_id = storages[0].create_study("s", Direction.MINIMIZE)
        created: list[list[int]] = [[] for _ in storages]

        def work(i: int) -> None:
            while (trial := storages[i].create_trial(study_id, limit=40)) is not None:
                created[i].append(trial.number)
                if trial.number % 3 == 0:
                    storages[i].finish_trial(trial.trial_id, TrialState.FAIL)  # not counted

        _in_threads(4, work)
        numbers = sorted(n for mine in created for n in mine)
        assert numbers == list(range(len(numbers)))
        counted = storages[0].count_trials(study_id, [TrialState.RUNNING])
        assert counted == 40 and all(created)
    finally:
        for storage in storages:
            storage.close()


def test_timestamps_are_stored_with_their_time_zone(clean_postgres_url: str) -> None:
    storage = SQLStorage(clean_postgres_url)
    try:
        trial = storage.create_trial(storage.create_study("s", Direction.MINIMIZE),
                                     heartbeat=True)
        assert trial is not None
        with storage._get_engine().connect() as conn:
            conn.execute(sa.text("SET TIME ZONE 'Asia/Kolkata'"))
            kind = conn.scalar(sa.text(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'hpo_trials' AND column_name = 'datetime_start'"))
        assert kind == "timestamp with time zone"
        assert storage.get_trial(trial.trial_id).datetime_start == trial.datetime_start
    finally:
        storage.close()


@pytest.mark.parametrize("limit", [None, 5])
def test_number_after_waiting_for_the_study_lock_counts_the_holders_trial(
        clean_postgres_url: str, limit: int | None) -> None:
    """A writer that waited for the study's lock sees the trial its holder just committed.

    Under READ COMMITTED a statement reads the snapshot taken when it started, except for the
    row an UPDATE waited for, which it re-reads as committed. Another writer here takes number 0
    the way every writer does (raising the study's ``next_number``, which locks the study row),
    waits, and inserts trial 0; the create_trial that waited for the lock must take number 1.
    """
    storage = SQLStorage(clean_postgres_url)
    holder = sa.create_engine(clean_postgres_url)
    try:
        study_id = storage.create_study("s", Direction.MINIMIZE)
        result: dict[str, object] = {}
        with holder.connect() as conn, conn.begin():
            conn.execute(sa.text("UPDATE hpo_studies SET next_number = next_number + 1 "
                                 "WHERE study_id = :s"), {"s": study_id})
            waiting = threading.Thread(target=lambda: result.update(
                trial=_create_or_error(storage, study_id, limit)))
            waiting.start()
            waiting.join(1.0)  # it now waits for the lock held here
            conn.execute(sa.text(
                "INSERT INTO hpo_trials (study_id, number, state, params, user_attrs, "
                "system_attrs) VALUES (:s, 0, 'RUNNING', '{}', '{}', '{}')"), {"s": study_id})
        waiting.join(60)
        trial = result["trial"]
        assert getattr(trial, "number", trial) == 1
    finally:
        holder.dispose()
        storage.close()


def _create_or_error(storage: SQLStorage, study_id: int, limit: int | None) -> object:
    try:
        return storage.create_trial(study_id, limit=limit)
    except Exception as exc:
        return exc


def test_connections_closed_by_the_server_are_replaced(clean_postgres_url: str,
                                                        postgres_server: object) -> None:
    """No pre-ping round trip, yet a pooled connection the server closed is never used.

    Every backend of the storage is terminated between two calls (as a server restart or an
    idle timeout would); the next ask and tell open fresh connections and succeed.
    """
    storage = SQLStorage(clean_postgres_url)
    try:
        study_id = storage.create_study("s", Direction.MINIMIZE)
        for _ in range(3):
            started = storage.start_trial(study_id)
            assert started is not None
            storage.finish_trial(started[0].trial_id, TrialState.COMPLETE, 1.0)
        killed = _terminate_other_backends(clean_postgres_url)
        assert killed >= 1
        started = storage.start_trial(study_id)
        assert started is not None and started[0].number == 3
        storage.set_trial_params(started[0].trial_id, {"x": 1.0}, {"x": 1.0})
        done = storage.finish_trial(started[0].trial_id, TrialState.COMPLETE, 2.0)
        assert (done.number, done.params, done.value) == (3, {"x": 1.0}, 2.0)
    finally:
        storage.close()


def _terminate_other_backends(url: str) -> int:
    """Terminate every other connection to the database of ``url``; how many there were.

    Each call waits until its backend process has exited (PostgreSQL >= 14), so the client's
    socket already holds the FATAL message and is closed by the server when this returns.
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT count(*), coalesce(bool_and(pg_terminate_backend(pid, 30000)), true) "
                "FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).one()
    finally:
        engine.dispose()
    killed, all_gone = row
    assert all_gone, "a terminated backend did not exit within 30 s"
    return int(killed)


def test_version_1_database_is_upgraded_in_place(clean_postgres_url: str) -> None:
    storage = SQLStorage(clean_postgres_url)
    try:
        study_id = storage.create_study("s", Direction.MINIMIZE)
        for _ in range(3):
            storage.create_trial(study_id)
    finally:
        storage.close()
    engine = sa.create_engine(clean_postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE hpo_studies DROP COLUMN next_number"))
            conn.execute(sa.text("UPDATE hpo_schema_version SET schema_version = 1"))
    finally:
        engine.dispose()
    later = SQLStorage(clean_postgres_url)
    try:
        created = later.create_trial(study_id)
        assert created is not None and created.number == 3
    finally:
        later.close()


def test_create_false_reads_tables_and_refuses_a_database_without_them(
        clean_postgres_url: str) -> None:
    reader = SQLStorage(clean_postgres_url, create=False)
    try:
        with pytest.raises(StorageError, match="holds no hpo_plugins tables"):
            reader.list_studies()
    finally:
        reader.close()
    engine = sa.create_engine(clean_postgres_url)
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("hpo_studies")  # nothing created
    finally:
        engine.dispose()
    writer = SQLStorage(clean_postgres_url)
    try:
        writer.create_study("s", Direction.MINIMIZE)
    finally:
        writer.close()
    reader = SQLStorage(clean_postgres_url, create=False)
    try:
        assert [s.name for s in reader.list_studies()] == ["s"]
    finally:
        reader.close()


def test_a_failed_run_closes_the_storage_it_opened(fresh_postgres_url: str) -> None:
    """hpo.minimize opened the storage from the URL: when the run raises, nobody else holds
    it, so it closes its pooled connections instead of leaving them to the garbage collector
    (psycopg warns about those)."""
    import hpo_plugins as hpo

    def broken(params: object) -> float:
        raise ValueError("objective broke")

    with pytest.raises(ValueError, match="objective broke"):
        hpo.minimize(broken, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=1,
                     storage=fresh_postgres_url, heartbeat_interval=None)
    engine = sa.create_engine(fresh_postgres_url)
    try:
        with engine.connect() as conn:
            others = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    finally:
        engine.dispose()
    assert others == 0
