"""Crash safety with real processes and signals: kill -9 of a worker or of the launcher, Ctrl-C."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins.launchers import JoblibLauncher
from hpo_plugins.samplers import RandomSampler

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.launchers import JoblibLauncher
    from hpo_plugins.samplers import RandomSampler

    def objective(params):
        trial = hpo.current_trial()
        trial.set_user_attr("pid", os.getpid())
        time.sleep(float(os.environ.get("TRIAL_SECONDS", "0.3")))
        return params["x"]

    if __name__ == "__main__":
        url, fresh = sys.argv[1], sys.argv[2] == "fresh"
        limit = {"n_trials" if sys.argv[4:] == ["n"] else "max_trials": int(sys.argv[3])}
        hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, **limit,
                     storage=url, study_name="crash", sampler=RandomSampler(),
                     launcher=JoblibLauncher(n_jobs=int(os.environ.get("JOBS", "2")),
                                             fresh_process=fresh),
                     heartbeat_interval=0.2, grace_period=1.5)
""")


def _start(tmp_path: Path, mode: str, total: int, seconds: float,
           limit: str = "max", jobs: int = 2) -> subprocess.Popen[bytes]:
    script = tmp_path / "launch.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TRIAL_SECONDS": str(seconds), "JOBS": str(jobs)}
    return subprocess.Popen([sys.executable, str(script), f"sqlite:///{tmp_path}/c.db", mode,
                             str(total), limit], env=env, start_new_session=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """Give the launcher a terminal's Ctrl-C handling even when the tests run in background.

    A shell without job control starts background commands with SIGINT ignored, and Python
    keeps an ignored SIGINT ignored: Ctrl-C would then be a no-op for the launcher (what the
    Ctrl-C test checks is our handling, not the shell's).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(predicate: object, timeout: float = 90.0) -> Any:
    """Poll ``predicate`` until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _trials(tmp_path: Path) -> list[hpo.FrozenTrial]:
    try:
        return hpo.load_study("crash", f"sqlite:///{tmp_path}/c.db").trials
    except Exception:  # the launcher has not created the study yet
        return []


def _running_pid(tmp_path: Path) -> int | None:
    running = _running_trial(tmp_path)
    return None if running is None else running[1]


def _running_trial(tmp_path: Path) -> tuple[int, int] | None:
    """A RUNNING trial whose objective has started: its number and pid, read together (a
    reused worker runs one trial after another)."""
    for trial in _trials(tmp_path):
        if trial.state is TrialState.RUNNING and "pid" in trial.user_attrs:
            return trial.number, int(trial.user_attrs["pid"])
    return None


@pytest.mark.parametrize(("mode", "limit"), [("reuse", "max"), ("fresh", "max"),
                                             ("reuse", "n"), ("fresh", "n")])
def test_killing_a_worker_fails_its_trial_and_the_study_completes(tmp_path: Path, mode: str,
                                                                  limit: str) -> None:
    # 2 s a trial: the trial read below is still running when its worker is killed
    launcher = _start(tmp_path, mode, total=8, seconds=2.0, limit=limit)
    # one read gives the trial and its pid: a reused worker ran earlier trials with that pid
    number, victim = _wait_for(lambda: _running_trial(tmp_path))
    assert victim != launcher.pid
    os.kill(victim, signal.SIGKILL)
    assert launcher.wait(timeout=180) == 0
    trials = _trials(tmp_path)
    (killed,) = [t for t in trials if t.number == number]
    assert killed.user_attrs.get("pid") == victim and killed.state is TrialState.FAIL
    # failed by the launcher when it saw the process die, or by its stale heartbeat
    assert "worker" in (killed.fail_reason or "")
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 8  # n_trials too: replaced
    assert not [t for t in trials if t.state is TrialState.RUNNING]


def _kill_first_trial(params: dict[str, float]) -> float:
    if hpo.current_trial().number == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of a trial
    return params["x"]


def test_trials_the_launcher_fails_end_their_tensorboard_session(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import api_pb2

    from hpo_plugins.tensorboard import STATE_CODES, TENSORBOARD_STATUS

    study = hpo.minimize(_kill_first_trial, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=2,
                         launcher=JoblibLauncher(n_jobs=2), storage=f"sqlite:///{tmp_path}/t.db",
                         logdir=str(tmp_path / "runs"), sampler=RandomSampler())
    trials = study.trials
    assert trials[0].state is TrialState.FAIL and "died" in (trials[0].fail_reason or "")
    # joblib stops the whole pool: the reason does not accuse a worker that was only stopped
    assert "or was stopped with its pool when another worker of the pool died" in (
        trials[0].fail_reason or "")
    for trial in trials:  # the killed one, and any other the broken pool took with it
        # a trial killed inside ask, before its run was named, ends in the default run folder
        run = trial.log_dir or str(tmp_path / "runs" / f"trial_{trial.number:04d}")
        ends, states = _session(run)
        assert [e.status for e in ends] == [api_pb2.Status.Value(TENSORBOARD_STATUS[trial.state])]
        assert STATE_CODES[trial.state] in states  # written by the process that failed it


def _end_then_die(params: dict[str, float]) -> float:
    """Trial 1 is recorded COMPLETE, then its worker dies before its observers or the parent
    hear of it: what a pool broken by a sibling's death does to a trial that just ended."""
    trial = hpo.current_trial()
    if trial.number == 1:
        trial.study.storage.finish_trial(trial.trial_id, TrialState.COMPLETE, 0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    return params["x"]


@pytest.mark.parametrize("fresh", [False, True])
def test_a_trial_that_ended_before_its_worker_died_is_reported_not_replaced(
        tmp_path: Path, fresh: bool) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.plugins.hparams import api_pb2

    from hpo_plugins.tensorboard import STATE_CODES

    seen: list[tuple[int, TrialState]] = []
    study = hpo.minimize(_end_then_die, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=2,
                         launcher=JoblibLauncher(n_jobs=2, fresh_process=fresh),
                         storage=f"sqlite:///{tmp_path}/t.db",
                         logdir=str(tmp_path / "runs"), sampler=RandomSampler(),
                         callbacks=[lambda _, t: seen.append((t.number, t.state))])
    trials = study.trials
    ended = trials[1]
    assert ended.state is TrialState.COMPLETE and ended.value == 0.5
    # it used its place in n_trials: a trial the pool took with it is replaced, it is not. A
    # fresh process per trial dies alone, while the other slot may still return its result:
    # its task is replaced, and the trial is reported when the run ends (one over n_trials)
    assert sum(t.state is TrialState.COMPLETE for t in trials) == (3 if fresh else 2)
    assert sorted(seen) == sorted((t.number, t.state) for t in trials)  # each announced once
    ends, states = _session(ended.log_dir or "")
    assert [e.status for e in ends] == [api_pb2.Status.Value("STATUS_SUCCESS")]
    assert states == [STATE_CODES[TrialState.COMPLETE]]


def _session(run_dir: str) -> tuple[list[Any], list[float]]:
    """The session ends and the ``hpo/state`` values in a trial's run, over its event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    from hpo_plugins.tensorboard import STATE_TAG

    ends, states = [], []
    for path in sorted(glob.glob(os.path.join(run_dir, "*tfevents*"))):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                content = value.metadata.plugin_data.content
                if value.tag == metadata.SESSION_END_INFO_TAG:
                    ends.append(metadata.parse_session_end_info_plugin_data(content))
                elif value.tag == STATE_TAG:
                    states.append(float(tensor_util.make_ndarray(value.tensor).item()))
    return ends, states


def test_killing_the_launcher_then_rerunning_completes_without_rerunning(tmp_path: Path) -> None:
    first = _start(tmp_path, "reuse", total=10, seconds=0.5)
    _wait_for(lambda: sum(t.state is TrialState.COMPLETE for t in _trials(tmp_path)) >= 3)
    os.killpg(first.pid, signal.SIGKILL)  # the launcher and its workers die at once
    first.wait(timeout=30)
    done_before = {t.number: t.params for t in _trials(tmp_path)
                   if t.state is TrialState.COMPLETE}
    second = _start(tmp_path, "reuse", total=10, seconds=0.5)
    assert second.wait(timeout=180) == 0
    trials = _trials(tmp_path)
    complete = {t.number: t.params for t in trials if t.state is TrialState.COMPLETE}
    assert len(complete) == 10
    assert all(complete[n] == p for n, p in done_before.items())  # nothing lost or re-run
    assert not [t for t in trials if t.state is TrialState.RUNNING]


@pytest.mark.parametrize("mode", ["fresh", "reuse"])
def test_workers_exit_when_the_launcher_is_killed(tmp_path: Path, mode: str) -> None:
    launcher = _start(tmp_path, mode, total=6, seconds=60.0)
    try:
        _wait_for(lambda: _running_pid(tmp_path) is not None)
        worker = _running_pid(tmp_path)
        assert worker is not None and worker != launcher.pid
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher alone, not its process group
        launcher.wait(timeout=30)
        # mid-trial, well before its minute is over: neither waiting on a dead pipe (slots)
        # nor running trial after trial for nobody (reused loky workers)
        _wait_for(lambda: not _alive(worker), timeout=10)
    finally:
        _kill_group(launcher.pid)


SLOW_IMPORT = textwrap.dedent("""
    import os, sys, time
    if __name__ != "__main__":
        time.sleep(3)  # a slot process re-imports this module: a slow `import torch`
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.launchers import JoblibLauncher

    def objective(params):
        time.sleep(60)
        return params["x"]

    if __name__ == "__main__":
        hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, max_trials=4,
                     storage=sys.argv[1], study_name="crash", heartbeat_interval=0.2,
                     grace_period=1.5, launcher=JoblibLauncher(n_jobs=2, fresh_process=True))
""")


def _slot_processes(parent: int) -> list[int]:
    """The spawned slot processes whose parent is ``parent`` (read from /proc)."""
    found = []
    for entry in glob.glob("/proc/[0-9]*"):
        try:
            with open(f"{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"{entry}/cmdline", "rb") as handle:
                command = handle.read()
        except (OSError, IndexError, ValueError):  # gone in between
            continue
        if ppid == parent and b"spawn_main" in command:
            found.append(int(os.path.basename(entry)))
    return found


def test_slot_processes_still_starting_exit_when_the_launcher_is_killed(
        tmp_path: Path) -> None:
    """kill -9 of the launcher while its fresh slot processes still import the main module:
    their parent watch starts after the launcher is gone, and must still see it gone (it used
    to watch the new parent, init, and the slot ran its minute-long trial for nobody)."""
    script = tmp_path / "slow_import.py"
    script.write_text(SLOW_IMPORT)
    launcher = subprocess.Popen([sys.executable, str(script), f"sqlite:///{tmp_path}/c.db"],
                                start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        slots = _wait_for(lambda: (found := _slot_processes(launcher.pid)) and len(found) >= 2
                          and found, timeout=60)
        os.kill(launcher.pid, signal.SIGKILL)  # the launcher alone, not its process group
        launcher.wait(timeout=30)
        # their import ends 3 s after they started; then they must exit at once
        _wait_for(lambda: not [pid for pid in slots if _alive(pid)], timeout=8)
    finally:
        _kill_group(launcher.pid)


def test_one_job_runs_in_the_launcher_itself_and_completes(tmp_path: Path) -> None:
    launcher = _start(tmp_path, "reuse", total=3, seconds=0.6, jobs=1)  # joblib: in-process
    assert launcher.wait(timeout=120) == 0  # the parent watch is for workers, not for it
    trials = _trials(tmp_path)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert {t.user_attrs["pid"] for t in trials} == {launcher.pid}


SCRIPT_SPACE = "from hpo_plugins import hp\nSPACE = {'x': hp.uniform('x', 0, 1)}\n"
SCRIPT_CHILD = textwrap.dedent("""
    import os, time
    import hpo_plugins as hpo

    trial = hpo.current_trial()
    trial.set_user_attr("worker", os.getppid())
    trial.set_user_attr("pid", os.getpid())
    time.sleep(60)
    trial.report(1.0, 0)
""")


def test_script_commands_exit_when_the_cli_launcher_is_killed(tmp_path: Path) -> None:
    (tmp_path / "space.py").write_text(SCRIPT_SPACE)
    (tmp_path / "child.py").write_text(SCRIPT_CHILD)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "hpo_plugins.cli", "run", "--space",
         f"{tmp_path}/space.py:SPACE", "--n-trials", "4", "--n-jobs", "2", "--sampler", "random",
         "--study", "crash", "--storage", f"sqlite:///{tmp_path}/c.db", "--",
         sys.executable, str(tmp_path / "child.py")],
        cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _running_pid(tmp_path) is not None)
        trial = next(t for t in _trials(tmp_path) if "pid" in t.user_attrs)
        command, worker = int(trial.user_attrs["pid"]), int(trial.user_attrs["worker"])
        assert worker != launcher.pid  # a reused loky worker runs the command
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
        _wait_for(lambda: not _alive(worker) and not _alive(command), timeout=10)
    finally:
        _kill_group(launcher.pid)


def _kill_group(pid: int) -> None:
    """Clean up whatever a test's launcher left behind (its session's process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


SERIAL = textwrap.dedent("""
    import logging, os, signal, sys
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.samplers import RandomSampler

    def objective(params):
        if os.environ.get("CRASH_AT") == str(hpo.current_trial().number):
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of a trial
        return params["x"]

    logging.basicConfig(level=logging.INFO)
    hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, max_trials=5, storage=sys.argv[1],
                 study_name="serial", sampler=RandomSampler(), heartbeat_interval=0.2,
                 grace_period=15.0)
""")


def test_rerun_right_after_a_crash_fails_the_lost_trial_at_once_and_completes(
        tmp_path: Path) -> None:
    """The crashed run's trial names its process on this host: the re-run sees it gone and
    fails it at once, without waiting for its heartbeat to grow stale (a trial of another
    host is waited for: test_optimize's test_a_re_run_that_waits_for_a_dead_run_s_trial)."""
    script, url = tmp_path / "serial.py", f"sqlite:///{tmp_path}/s.db"
    script.write_text(SERIAL)
    crashed = subprocess.run([sys.executable, str(script), url], capture_output=True,
                             env={**os.environ, "CRASH_AT": "2"}, timeout=120)
    assert crashed.returncode == -signal.SIGKILL
    # at once, well inside the 15 s grace period: trial 2 still looks RUNNING
    started = time.monotonic()
    rerun = subprocess.run([sys.executable, str(script), url], check=True, capture_output=True,
                           text=True, timeout=120)
    assert time.monotonic() - started < 15  # no wait for the grace period
    assert "Trials [2] lost their process on this host" in rerun.stderr
    assert "Waiting" not in rerun.stderr
    trials = hpo.load_study("serial", url).trials
    assert trials[2].state is TrialState.FAIL
    assert "on this host was gone" in (trials[2].fail_reason or "")
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 5
    assert not [t for t in trials if t.state is TrialState.RUNNING]


def test_ctrl_c_stops_every_worker_and_fails_running_trials(tmp_path: Path) -> None:
    launcher = _start(tmp_path, "reuse", total=50, seconds=3.0)
    _wait_for(lambda: _running_pid(tmp_path) is not None)
    os.killpg(launcher.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    launcher.wait(timeout=60)
    trials = _trials(tmp_path)
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    assert any("interrupted" in (t.fail_reason or "") for t in trials)
    pids = {int(t.user_attrs["pid"]) for t in trials if "pid" in t.user_attrs}
    # a worker the launcher left behind sees it gone at its next poll (every 0.5 s) and exits
    _wait_for(lambda: not [p for p in pids if _alive(p)], timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/status") as handle:  # a zombie is dead too
            return "zombie" not in handle.read()
    except (ProcessLookupError, FileNotFoundError):  # gone, or gone in between
        return False


SEQUENTIAL = textwrap.dedent("""
    import os, sys, time
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.samplers import RandomSampler

    def objective(params):
        hpo.current_trial().set_user_attr("pid", os.getpid())
        time.sleep(60)

    hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=1, storage=sys.argv[1],
                 study_name="crash", sampler=RandomSampler(), max_retries=1)
""")


def test_a_rerun_on_the_same_host_fails_and_retries_a_killed_runs_trial_at_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """kill -9 of a sequential run: the next run does not wait two minutes of grace period."""
    script = tmp_path / "sequential.py"
    script.write_text(SEQUENTIAL)
    url = f"sqlite:///{tmp_path}/c.db"
    first = subprocess.Popen([sys.executable, str(script), url])
    number, pid = _wait_for(lambda: _running_trial(tmp_path))
    os.kill(pid, signal.SIGKILL)
    first.wait(timeout=30)
    (killed,) = _trials(tmp_path)
    assert killed.state is TrialState.RUNNING  # what the killed run left behind
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="hpo_plugins"):
        study = hpo.minimize(lambda p: p["x"], {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=1,
                             storage=url, study_name="crash", sampler=RandomSampler(),
                             max_retries=1)
    assert time.monotonic() - started < 30  # not the default grace period of 120 s
    lost, retry = study.trials
    assert lost.state is TrialState.FAIL
    assert f"its process (pid {pid}) on this host was gone" in (lost.fail_reason or "")
    assert retry.state is TrialState.COMPLETE and retry.params == lost.params
    assert retry.system_attrs["retry_of"] == number
    assert "lost their process on this host" in caplog.text


def test_a_running_trial_of_a_live_process_on_this_host_is_left_alone(tmp_path: Path) -> None:
    script = tmp_path / "sequential.py"
    script.write_text(SEQUENTIAL)
    url = f"sqlite:///{tmp_path}/c.db"
    first = subprocess.Popen([sys.executable, str(script), url])
    try:
        _wait_for(lambda: _running_trial(tmp_path))
        study = hpo.minimize(lambda p: p["x"], {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=1,
                             storage=url, study_name="crash", sampler=RandomSampler(),
                             max_retries=1)
        assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE]
    finally:
        first.kill()
        first.wait(timeout=30)
