"""A PostgreSQL server that goes away for a while (restart, failover): calls wait for it.

Each test runs its own throwaway server (``stoppable_postgres_server``), which it stops and
starts again on the same port, or whose backends it terminates in the middle of a statement.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._frozen import Direction, TrialState
from hpo_plugins.exceptions import (
    ConfigurationError,
    DatabaseUnreachableError,
    StorageError,
    TrialFinishedError,
)
from hpo_plugins.storages import SQLStorage
from hpo_plugins.storages._outage import lost_connection

if TYPE_CHECKING:
    from conftest_postgres import StoppableServer

pytest_plugins = ["conftest_postgres"]


@pytest.fixture
def server(stoppable_postgres_server: StoppableServer) -> StoppableServer:
    stoppable_postgres_server.execute("CREATE DATABASE outage")
    return stoppable_postgres_server


@pytest.fixture
def open_storage(server: StoppableServer) -> Iterator[Callable[..., SQLStorage]]:
    opened: list[SQLStorage] = []

    def open_(**options: Any) -> SQLStorage:
        storage = SQLStorage(server.url("outage"), **options)
        opened.append(storage)
        return storage

    yield open_
    for storage in opened:
        storage.close()


def _start_later(server: StoppableServer, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), server.start()))
    thread.start()
    return thread


def test_calls_wait_for_a_restarted_server_and_the_run_goes_on(
        server: StoppableServer, open_storage: Callable[..., SQLStorage],
        caplog: pytest.LogCaptureFixture) -> None:
    storage = open_storage()
    study_id = storage.create_study("s", Direction.MINIMIZE)
    started = storage.start_trial(study_id)
    assert started is not None
    trial = started[0]
    storage.set_intermediate_value(trial.trial_id, 0, 0.5)

    server.stop()  # every pooled connection is now dead, and new ones are refused
    restart = _start_later(server, 2.0)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        storage.set_intermediate_value(trial.trial_id, 1, 0.25)  # waits for the server
        waited = time.monotonic() - began
        storage.record_heartbeat(trial.trial_id)
        done = storage.finish_trial(trial.trial_id, TrialState.COMPLETE, 0.25)
        nxt = storage.start_trial(study_id)
    restart.join()

    assert waited >= 1.5
    assert done.intermediate_values == {0: 0.5, 1: 0.25} and done.value == 0.25
    assert nxt is not None and nxt[0].number == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Lost the connection to the database")
               and "Trying again for up to 60 s (the storage's reconnect_timeout)." in m
               for m in messages), messages
    assert any(m.startswith("Reached the database") and "again after" in m
               for m in messages), messages


def test_a_server_away_longer_than_reconnect_timeout_gives_a_clear_error(
        server: StoppableServer, open_storage: Callable[..., SQLStorage]) -> None:
    storage = open_storage(reconnect_timeout=1)
    study_id = storage.create_study("s", Direction.MINIMIZE)
    server.stop()
    began = time.monotonic()
    with pytest.raises(DatabaseUnreachableError,
                       match=r"(?s)Lost the connection to the database .*Connection refused"
                             r".*did not answer for 1 s \(the storage's reconnect_timeout\)"
                       ) as caught:
        storage.get_all_trials(study_id)
    assert 0.9 <= time.monotonic() - began < 10
    assert not caught.value.maybe_committed
    assert isinstance(caught.value, StorageError)  # what callers already catch

    server.start()
    assert storage.get_all_trials(study_id) == []  # the same storage works again


def test_a_copy_sent_to_a_worker_waits_for_the_server_at_its_first_use(
        server: StoppableServer, open_storage: Callable[..., SQLStorage]) -> None:
    """A worker's storage (unpickled) opens its database first during the outage: it waits."""
    storage = open_storage()
    study_id = storage.create_study("s", Direction.MINIMIZE)
    copy = pickle.loads(pickle.dumps(storage))
    try:
        server.stop()
        restart = _start_later(server, 1.5)
        assert copy.count_trials(study_id) == 0
        restart.join()
    finally:
        copy.close()


def test_a_child_process_handed_a_trial_waits_for_the_server_at_its_first_use(
        server: StoppableServer, open_storage: Callable[..., SQLStorage]) -> None:
    """Script mode: the command opens the storage from the hand-over note. Its parent reached
    the server, so a restart is waited for (with the parent's reconnect_timeout), not taken
    for a wrong address: that failed the trials of every command started during it."""
    import json
    import subprocess
    import sys

    from hpo_plugins.context import TRIAL_ENV, trial_env

    storage = open_storage(reconnect_timeout=45)
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=storage, study_name="s")
    trial = study.ask()
    env = {**os.environ, **trial_env(trial)}
    assert json.loads(env[TRIAL_ENV])["reconnect_timeout"] == 45
    server.stop()
    restart = _start_later(server, 2.0)
    child = subprocess.run(
        [sys.executable, "-c", "import hpo_plugins as h; t = h.current_trial(); t.report(0.5, 0); "
                               "print(t.number, t.study.storage.reconnect_timeout)"],
        env=env, capture_output=True, text=True, timeout=120)
    restart.join()
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [str(trial.number), "45.0"]
    assert study.storage.get_trial(trial.trial_id).intermediate_values == {0: 0.5}


def test_a_storage_that_never_reached_its_server_fails_at_once(
        server: StoppableServer) -> None:
    """A wrong host or port, or a server not started yet, is not an outage: no waiting."""
    server.stop()
    storage = SQLStorage(server.url("outage"), reconnect_timeout=30)
    began = time.monotonic()
    try:
        with pytest.raises(StorageError, match="Could not open the storage at .*refused"):
            storage.list_studies()
    finally:
        storage.close()
    assert time.monotonic() - began < 5


def test_reconnect_timeout_zero_fails_at_once(
        server: StoppableServer, open_storage: Callable[..., SQLStorage]) -> None:
    storage = open_storage(reconnect_timeout=0)
    study_id = storage.create_study("s", Direction.MINIMIZE)
    server.stop()
    began = time.monotonic()
    with pytest.raises(DatabaseUnreachableError, match="Connection refused"):
        storage.count_trials(study_id)
    assert time.monotonic() - began < 5


def test_the_hot_path_reports_a_lost_server_as_unreachable_too(
        server: StoppableServer, open_storage: Callable[..., SQLStorage]) -> None:
    """ask's hot path takes a raw pooled connection: when the pool replaces a dead one and
    the new one fails too, the driver's own error comes out unwrapped; it is an outage."""
    storage = open_storage(reconnect_timeout=0)
    study_id = storage.create_study("s", Direction.MINIMIZE)
    assert storage.start_trial(study_id) is not None  # a pooled connection now exists
    server.stop()
    with pytest.raises(DatabaseUnreachableError, match="Lost the connection to the database"):
        storage.start_trial(study_id)


@pytest.mark.parametrize("value", [-1, "60", True, float("nan")])
def test_reconnect_timeout_must_be_seconds(value: object) -> None:
    with pytest.raises(ConfigurationError,
                       match=r"reconnect_timeout must be a number of seconds >= 0 .*Received: "):
        SQLStorage("postgresql+psycopg://u@127.0.0.1:1/db", reconnect_timeout=value)  # type: ignore[arg-type]


def _terminate_when_waiting(server: StoppableServer, what: str) -> None:
    """Terminate the backend whose statement waits for a lock, once it does."""
    engine = sa.create_engine(server.url("outage"))
    try:
        for _ in range(200):
            with engine.connect() as conn:
                pids = conn.execute(sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = 'outage'")).scalars().all()
                if pids:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 30000)"),
                                 {"pid": pids[0]})
                    return
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"no {what} ever waited for the lock")


def _call_in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_a_new_trial_cut_off_in_its_statement_is_not_created_twice(
        server: StoppableServer, open_storage: Callable[..., SQLStorage]) -> None:
    """The server may have committed an autocommit INSERT it was cut off in: no second try."""
    storage = open_storage()
    study_id = storage.create_study("s", Direction.MINIMIZE)
    holder = sa.create_engine(server.url("outage"))
    try:
        with holder.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT * FROM hpo_studies WHERE study_id = :s FOR UPDATE"),
                         {"s": study_id})
            thread, out = _call_in_thread(lambda: storage.start_trial(study_id))
            _terminate_when_waiting(server, "start_trial")
            thread.join(30)
    finally:
        holder.dispose()
    [error] = out
    assert isinstance(error, DatabaseUnreachableError), error
    assert error.maybe_committed
    assert "it is not run again, so that it cannot be applied twice" in str(error)
    assert storage.count_trials(study_id) == 0


def test_a_finish_cut_off_in_its_statement_is_run_again(
        server: StoppableServer, open_storage: Callable[..., SQLStorage]) -> None:
    """A tell that lost its connection while waiting for a lock finishes the trial once."""
    storage = open_storage()
    study_id = storage.create_study("s", Direction.MINIMIZE)
    started = storage.start_trial(study_id)
    assert started is not None
    trial_id = started[0].trial_id
    holder = sa.create_engine(server.url("outage"))
    try:
        with holder.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT * FROM hpo_trials WHERE trial_id = :t FOR UPDATE"),
                         {"t": trial_id})
            thread, out = _call_in_thread(
                lambda: storage.finish_trial(trial_id, TrialState.COMPLETE, 3.0))
            _terminate_when_waiting(server, "finish_trial")
        thread.join(30)  # the lock is gone: the second try goes through
    finally:
        holder.dispose()
    [done] = out
    assert not isinstance(done, Exception), done
    assert storage.get_trial(trial_id).state is TrialState.COMPLETE
    assert storage.get_trial(trial_id).value == 3.0


def test_a_finish_whose_answer_was_lost_returns_the_finished_trial(
        open_storage: Callable[..., SQLStorage], monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit went through, the answer did not: the retry finds the trial finished as asked.

    The lost answer is injected (a network cut at exactly that moment cannot be arranged
    here): the real finish runs, then the call fails as a broken connection would.
    """
    storage = open_storage()
    study_id = storage.create_study("s", Direction.MINIMIZE)
    started = storage.start_trial(study_id)
    assert started is not None
    trial_id = started[0].trial_id
    real = storage._finish_trial
    calls: list[int] = []

    def finish_then_lose_the_answer(*args: Any) -> object:
        calls.append(1)
        real(*args)
        raise DatabaseUnreachableError("the connection broke", maybe_committed=True)

    monkeypatch.setattr(storage, "_finish_trial", finish_then_lose_the_answer)
    done = storage.finish_trial(trial_id, TrialState.COMPLETE, 3.0)
    assert (done.state, done.value, len(calls)) == (TrialState.COMPLETE, 3.0, 1)

    other = storage.start_trial(study_id)
    assert other is not None
    storage.finish_trial(other[0].trial_id, TrialState.COMPLETE, 1.0)
    with pytest.raises(TrialFinishedError):  # finished otherwise before: still an error
        monkeypatch.undo()
        storage.finish_trial(other[0].trial_id, TrialState.COMPLETE, 2.0)


def test_refusals_that_waiting_cannot_fix_are_not_retried(server: StoppableServer) -> None:
    """A missing database fails at once, without waiting for the reconnect timeout."""
    storage = SQLStorage(server.url("no_such_db"), reconnect_timeout=30)
    began = time.monotonic()
    try:
        with pytest.raises(StorageError, match='database "no_such_db" does not exist'):
            storage.list_studies()
    finally:
        storage.close()
    assert time.monotonic() - began < 5


def test_which_errors_mean_the_server_is_away(server: StoppableServer) -> None:
    def error_of(url: str) -> BaseException:
        engine = sa.create_engine(url)
        try:
            with pytest.raises(sa.exc.OperationalError) as caught:
                engine.connect()
            return caught.value
        finally:
            engine.dispose()

    assert not lost_connection(error_of(server.url("no_such_db")))
    assert not lost_connection(error_of(server.url(user="no_such_role")))
    server.stop()
    assert lost_connection(error_of(server.url("outage")))
    assert not lost_connection(ValueError("connection refused"))


def _reporting_objective(params: dict[str, float]) -> float:
    trial = hpo.current_trial()
    for step in range(4):
        time.sleep(0.1)
        trial.report(params["x"] + step, step)
    return params["x"]


def test_a_parallel_run_rides_out_a_server_restart(server: StoppableServer) -> None:
    """Two worker processes report and tell through a 2 s outage; every trial completes."""
    url = server.url("outage")
    restart = threading.Thread(target=lambda: (time.sleep(1.5), server.stop(),
                                               time.sleep(2.0), server.start()))
    restart.start()
    try:
        study = hpo.minimize(_reporting_objective, {"x": hp.uniform("x", 0, 1)}, n_trials=14,
                             n_jobs=2, storage=url, study_name="restarted", seed=0,
                             show_progress_bar=False)
    finally:
        restart.join()
    try:
        states = [t.state for t in study.trials]
        assert states == [TrialState.COMPLETE] * 14, [(t.number, t.state, t.system_attrs)
                                                      for t in study.trials]
        assert all(len(t.intermediate_values) == 4 for t in study.trials)
    finally:
        study.storage.close()


@pytest.mark.parametrize(("text", "lost"), [
    ("SSL error: unexpected eof while reading", True),
    ("SSL SYSCALL error: EOF detected", True),
    ('connection to server at "ssl-db.example" (10.0.0.5), port 5432 failed: Connection refused',
     True),
    ("server does not support SSL, but SSL was required", False),
    ("connection failed: FATAL:  password authentication failed for user \"hpo\"", False),
])
def test_a_dropped_ssl_connection_is_an_outage_a_refused_one_is_not(text: str,
                                                                     lost: bool) -> None:
    import psycopg

    assert lost_connection(psycopg.OperationalError(text)) is lost


def test_each_outage_is_logged_even_after_one_that_timed_out(
        server: StoppableServer, open_storage: Callable[..., SQLStorage],
        caplog: pytest.LogCaptureFixture) -> None:
    storage = open_storage(reconnect_timeout=0.5)
    study_id = storage.create_study("s", Direction.MINIMIZE)
    server.stop()
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        for _ in range(2):
            with pytest.raises(DatabaseUnreachableError):
                storage.count_trials(study_id)
    lost = [r for r in caplog.records if r.getMessage().startswith("Lost the connection")]
    assert len(lost) == 2
    assert all("not run again" not in r.getMessage() for r in lost)  # these calls were retried
