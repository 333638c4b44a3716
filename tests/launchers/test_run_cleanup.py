"""What a launcher's clean-up does to trials and connections: the retry policy of trials it
fails for a lost worker, and the storage of a job that a worker no longer runs."""

from __future__ import annotations

import gc
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._process import process_record
from hpo_plugins._run_settings import RunSettings
from hpo_plugins.launchers._state import fail_dead_workers
from hpo_plugins.launchers._worker import Job, _unpack, run_task
from hpo_plugins.samplers import RandomSampler

pytest_plugins = ["conftest_postgres"]

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


def _settings(study: hpo.Study) -> RunSettings:
    return RunSettings.build(study, n_trials=4, max_trials=None, timeout=None, catch=(),
                             callbacks=None, show_progress_bar=False)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_trial_whose_worker_process_died_is_requeued(tmp_path: Path) -> None:
    """joblib's path (``fail_dead_workers``) follows ``max_retries`` as a stale heartbeat does:
    a WAITING copy, which the next ``ask`` claims, and no copy once the retries are spent."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/dead.db",
                             sampler=RandomSampler(), max_retries=1)
    tags = {"run_id": "run", "worker": {**process_record(), "pid": _dead_pid(), "started": None}}
    lost = study.ask(system_attrs=tags)
    assert [t.number for t in fail_dead_workers(study, "run", wait=0.0)] == [0]
    again = study.ask(system_attrs=tags)
    assert again.params == lost.params
    assert (again.system_attrs["retry_of"], again.system_attrs["retries"]) == (0, 1)
    assert [t.number for t in fail_dead_workers(study, "run", wait=0.0)] == [1]
    states = [t.state for t in study.trials]
    study.storage.close()
    assert states == [TrialState.FAIL, TrialState.FAIL]  # the copy's loss was its last retry


def test_a_trial_left_running_after_the_last_task_is_requeued(tmp_path: Path) -> None:
    """joblib's end-of-run clean-up (``_replace_orphans``: the worker outlived the dead-worker
    wait) re-queues as ``max_retries`` allows, and the run goes on to run the copy."""
    from hpo_plugins.launchers._joblib import _replace_orphans
    from hpo_plugins.launchers._state import RunState

    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/orphan.db",
                             sampler=RandomSampler(), max_retries=1)
    lost = study.ask(system_attrs={"run_id": "run"})
    with RunState(study, _settings(study), Job(b"", "key", "run", None, None)) as run:
        assert _replace_orphans(run) is True
    trials = study.trials
    study.storage.close()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == lost.params and trials[1].system_attrs["retry_of"] == 0


_PROBE = "hpo-tests-connection-probe"


def _connections(url: str) -> int:
    """Connections that other sessions hold to the database of ``url`` (not counting this
    probe's own, nor an earlier probe's whose backend may still be exiting)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                         application_name=_PROBE) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid() "
                           "AND application_name IS DISTINCT FROM %s", (_PROBE,)).fetchone()
    assert row is not None
    return int(row[0])


def _settled_connections(url: str, at_most: int | None = None, timeout: float = 15.0) -> int:
    """:func:`_connections` once backends whose clients closed them have exited: the same
    count three reads in a row (and at most ``at_most``, if it comes down to that in time).

    A closed connection's backend leaves ``pg_stat_activity`` a moment after the client is
    done with it; a connection that is still open stays, so a leak still shows."""
    deadline = time.monotonic() + timeout
    seen = [_connections(url)]
    while time.monotonic() < deadline and not (
            len(seen) >= 3 and len(set(seen[-3:])) == 1
            and (at_most is None or seen[-1] <= at_most)):
        time.sleep(0.1)
        seen.append(_connections(url))
    return seen[-1]


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_cyclic_gc")
def test_a_new_job_closes_the_storage_of_the_job_it_replaces(fresh_postgres_url: str) -> None:
    """A long-lived worker thread that runs one study after another holds the connections of
    the current one only: the replaced study's storage is closed, not left to the garbage
    collector (which a reference held elsewhere, or a reference cycle, would delay)."""
    jobs = []
    for name in ("a", "b", "c"):
        study = hpo.create_study(SPACE, storage=fresh_postgres_url, study_name=name)
        jobs.append(Job.pack(study, lambda p: p["x"], _settings(study), name, None, None))
        study.storage.close()
    kept: list[Any] = []  # the replaced studies stay referenced

    def run_in_one_thread() -> list[int]:
        counts: list[int] = []
        for job in jobs:
            assert run_task(job) is not None
            kept.append(_unpack(job)[0])
            # the replaced storage's backends may still be exiting: wait (bounded) for them
            counts.append(_settled_connections(fresh_postgres_url,
                                               at_most=counts[0] if counts else None))
        kept[-1].storage.close()
        return counts

    with ThreadPoolExecutor(1) as pool:  # a fresh thread: nothing unpacked there yet
        counts = pool.submit(run_in_one_thread).result()
    assert counts[0] >= 1 and counts[2] <= counts[0], counts


def test_a_storage_that_fails_in_the_clean_up_does_not_hide_the_runs_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A database outage makes the run fail, and then the clean-up too: the run's own error
    (the first one) is the one raised, and the clean-up's is logged."""
    from hpo_plugins.exceptions import StorageError
    from hpo_plugins.launchers._state import RunState

    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/down.db",
                             sampler=RandomSampler())
    study.ask(system_attrs={"run_id": "run"})

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("The database failed: connection refused")

    with pytest.raises(ValueError, match="the run's own error"), \
            RunState(study, _settings(study), Job(b"", "key", "run", None, None)):
        study.storage.get_all_trials = down  # type: ignore[method-assign]
        raise ValueError("the run's own error")
    assert "Could not mark this run's running trials FAIL (StorageError" in caplog.text
