"""Whether a trial's recorded process is certainly gone (kill -9), never a live one's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, _process
from hpo_plugins._process import _start_time, alive_here, gone_here, process_record


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait(timeout=30)


def _record_of(child: subprocess.Popen[bytes]) -> dict[str, object]:
    return {**process_record(), "pid": child.pid, "started": _start_time(child.pid)}


def test_a_live_process_is_not_gone_a_killed_one_is(
        sleeper: subprocess.Popen[bytes]) -> None:
    record = _record_of(sleeper)
    assert not gone_here(record)
    sleeper.kill()
    time.sleep(0.2)
    assert gone_here(record)  # ended but not yet reaped (a zombie)
    sleeper.wait(timeout=30)
    assert gone_here(record)  # reaped: no such process


def test_a_reused_process_id_is_gone(sleeper: subprocess.Popen[bytes]) -> None:
    record = _record_of(sleeper)
    assert gone_here({**record, "started": int(record["started"]) - 1})  # type: ignore[call-overload]


@pytest.mark.parametrize("change", [
    {"host": "another-host"},
    {"pid_ns": 1},  # a container that shares the host name but numbers its processes apart
    {"boot": "another-boot"},
    {"pid_ns": None, "boot": None, "started": None},  # written without them
])
def test_a_process_of_another_namespace_boot_or_host_is_never_gone(
        sleeper: subprocess.Popen[bytes], change: dict[str, object]) -> None:
    record = {key: value for key, value in {**_record_of(sleeper), **change}.items()
              if value is not None}
    sleeper.kill()
    sleeper.wait(timeout=30)
    assert not gone_here(record)  # here it is dead, but the record may name another process


def test_this_process_is_never_gone() -> None:
    assert not gone_here(process_record())


def test_a_run_leaves_a_trial_whose_record_names_another_namespace(tmp_path: Path) -> None:
    """A worker in a container with the same host name: its pid means nothing here."""
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)},
                             storage=f"sqlite:///{tmp_path}/n.db", max_retries=1)
    elsewhere = {**process_record(), "pid": 4_000_000, "pid_ns": 1}
    study.ask(heartbeat=True, system_attrs={"worker": elsewhere})
    study.optimize(lambda p: p["x"], n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE]


def test_a_record_of_another_time_namespace_is_never_gone(
        sleeper: subprocess.Popen[bytes]) -> None:
    """/proc shows start times shifted by the reader's time namespace: not comparable."""
    record = {**_record_of(sleeper), "time_ns": 1}
    sleeper.kill()
    sleeper.wait(timeout=30)
    assert not gone_here(record)


def test_a_process_name_that_is_not_ascii_still_gives_its_start_time(tmp_path: Path) -> None:
    import shutil

    named = tmp_path / "wörk"
    shutil.copy(sys.executable, named)
    named.chmod(0o755)
    child = subprocess.Popen([str(named), "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        assert _start_time(child.pid) is not None
    finally:
        child.kill()
        child.wait(timeout=30)


def test_without_namespaces_the_host_and_process_id_decide(
        sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    # macOS and Windows have no /proc: neither this side nor the record knows a namespace
    monkeypatch.setattr(_process, "_boot_id", lambda: None)
    monkeypatch.setattr(_process, "_namespace", lambda kind: None)
    record = {"host": process_record()["host"], "pid": sleeper.pid}
    assert alive_here(record) and not gone_here(record)
    sleeper.kill()
    sleeper.wait(timeout=30)
    assert gone_here(record) and not alive_here(record)
    # a record written where namespaces exist is never judged without them
    assert not gone_here({**record, "pid_ns": 4026531836})


def test_a_killed_runs_trial_ends_at_its_last_heartbeat_not_when_found(tmp_path: Path) -> None:
    """Its duration is the time it ran: a re-run the next morning did not make it run all night."""
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)},
                             storage=f"sqlite:///{tmp_path}/h.db")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    killed = {**process_record(), "pid": int(ended.stdout), "started": None}
    study.ask(heartbeat=True, system_attrs={"worker": killed})
    time.sleep(0.6)
    study.optimize(lambda p: p["x"], n_trials=1)
    lost = study.trials[0]
    assert lost.state is TrialState.FAIL and "was gone when a later run started" in str(
        lost.fail_reason)
    assert lost.datetime_complete == lost.last_heartbeat
    assert lost.duration is not None and lost.duration.total_seconds() < 0.5


def test_a_storage_without_the_ended_argument_still_fails_a_killed_runs_trial(
        tmp_path: Path) -> None:
    """A custom storage written before finish_trial took ``ended``: the trial ends now."""
    from typing import Any

    from hpo_plugins.storages import SQLStorage

    class OldStorage(SQLStorage):
        def finish_trial(self, trial_id: int, state: TrialState,  # type: ignore[override]
                         value: float | None = None, system_attrs: Any = None) -> Any:
            return super().finish_trial(trial_id, state, value, system_attrs)

    storage = OldStorage(f"sqlite:///{tmp_path}/old.db")
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=storage)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    study.ask(heartbeat=True, system_attrs={
        "worker": {**process_record(), "pid": int(ended.stdout), "started": None}})
    study.optimize(lambda p: p["x"], n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    storage.close()


def test_on_windows_nothing_is_told_and_no_signal_is_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """os.kill(pid, 0) sends CTRL_C_EVENT on Windows: it must never be called there."""
    def no_probe(pid: int) -> None:
        raise AssertionError(f"probed pid {pid}")

    record = {"host": process_record()["host"], "pid": 4_000_000}
    monkeypatch.setattr(_process, "_boot_id", lambda: None)
    monkeypatch.setattr(_process, "_namespace", lambda kind: None)
    monkeypatch.setattr(_process, "_exists", no_probe)
    monkeypatch.setattr(_process.os, "name", "nt")
    verdicts = (gone_here(record), alive_here(record))
    monkeypatch.undo()
    assert verdicts == (False, False)


@pytest.mark.skipif(os.name == "nt", reason="no process is watched on Windows")
def test_this_process_id_in_another_namespace_is_not_known_alive() -> None:
    """A worker in another container may have this very pid: it cannot be watched from here."""
    assert alive_here(process_record())
    assert not alive_here({**process_record(), "pid_ns": -1})
    assert not gone_here({**process_record(), "pid_ns": -1})
