"""Slot processes that die as they start (a script without a ``__main__`` guard: the run says why
instead of replacing them again and again), and a slot pool shut down without waiting."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hpo_plugins as hpo

pytestmark = pytest.mark.slow

UNGUARDED = textwrap.dedent("""
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.launchers import JoblibLauncher

    def objective(params):
        return params["x"] ** 2

    study = hpo.minimize(objective, {"x": hp.uniform("x", -1, 1)}, n_trials=4,
                         launcher=JoblibLauncher(n_jobs=2, fresh_process=True),
                         storage="sqlite:///unguarded.db", study_name="unguarded")
    print("returned with", len(study.trials), "trials")
""")


def test_a_run_started_at_module_level_stops_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "unguarded.py").write_text(UNGUARDED)
    done = subprocess.run([sys.executable, "unguarded.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "returned with" not in done.stdout
    # the launcher's error, and each worker's own, name the guard
    assert "WorkerStartError: Expected the worker processes to start trials. Received: every " \
           "slot's process died before any trial of the run started" in done.stderr
    assert "ConfigurationError: Expected the run to come from the main script" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
    assert "its trial is failed and run again" not in done.stderr  # there was none
    storage = hpo.storages.get_storage(f"sqlite:///{tmp_path}/unguarded.db")
    try:  # the workers stopped before they could add a study or a trial of their own
        assert [s.name for s in storage.list_studies()] == ["unguarded"]
        assert hpo.load_study("unguarded", storage).trials == []
    finally:
        storage.close()


UNGUARDED_ENQUEUE = textwrap.dedent("""
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.launchers import JoblibLauncher

    study = hpo.create_study({"x": hp.uniform("x", -1, 1)}, storage="sqlite:///e.db",
                             study_name="e")
    study.enqueue({"x": 0.5})
    study.optimize(lambda p: p["x"], n_trials=2,
                   launcher=JoblibLauncher(n_jobs=2, fresh_process=True))
""")


def test_a_module_level_enqueue_is_not_repeated_by_each_worker(tmp_path: Path) -> None:
    """Each new worker ran the script's enqueue again before its run was refused: one enqueue
    left a WAITING copy per worker process."""
    (tmp_path / "e.py").write_text(UNGUARDED_ENQUEUE)
    done = subprocess.run([sys.executable, "e.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1 and "WorkerStartError" in done.stderr, done.stderr
    assert "Expected study.enqueue to come from the main script" in done.stderr
    study = hpo.load_study("e", f"sqlite:///{tmp_path}/e.db")
    assert [t.state for t in study.trials] == [hpo.TrialState.WAITING]
    study.storage.close()


BROKEN_SLOT = textwrap.dedent("""
    import multiprocessing
    import os
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.launchers import JoblibLauncher

    if (multiprocessing.current_process().name != "MainProcess"
            and os.environ.get("CUDA_VISIBLE_DEVICES") == "1"):
        os._exit(3)  # the process pinned to GPU 1 dies as it starts: a broken GPU, say

    def objective(params):
        return params["x"]

    if __name__ == "__main__":
        study = hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=4,
                             launcher=JoblibLauncher(gpus=[0, 1], fresh_process=False),
                             storage="sqlite:///b.db", study_name="b")
        print(sorted((t.state.name, t.system_attrs.get("gpu")) for t in study.trials))
""")


def test_a_slot_that_dies_at_start_is_left_out_and_the_others_finish(tmp_path: Path) -> None:
    """It was replaced for ever (each death claiming a trial that never was), and the run
    ended short of n_trials."""
    (tmp_path / "b.py").write_text(BROKEN_SLOT)
    done = subprocess.run([sys.executable, "b.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([("COMPLETE", "0")] * 4)
    assert done.stderr.count("The process of slot 1 (GPU 1) died before it started a trial; "
                             "it is started again.") == 1
    assert done.stderr.count("The process of slot 1 (GPU 1) died twice before it started a "
                             "trial (see its error above): the slot is left out") == 1
    assert "its trial is failed" not in done.stderr


def test_a_slot_pool_shut_down_without_waiting_prints_no_thread_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython gh-119592: with max_tasks_per_child, a worker that exits after its task while
    shutdown(wait=False) clears the pool crashed the pool's manager thread (a traceback that
    read as a crash of the run, after Ctrl-C)."""
    import threading
    import time

    from hpo_plugins.launchers._joblib import _slot_executor

    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))
    for _ in range(3):
        executor = _slot_executor(None, fresh=True)
        assert executor.submit(int, "not a number").exception(timeout=120) is not None
        executor.shutdown(wait=False)
        time.sleep(0.5)  # the manager thread handles the worker's exit meanwhile
    assert crashed == []
