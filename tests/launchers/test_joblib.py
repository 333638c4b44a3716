"""The joblib launcher with real worker processes: budgets, GPU slots, memory, reproducibility."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from joblib.externals.loky import get_reusable_executor

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._optimize import TIMED_OUT_WAITING
from hpo_plugins._process import alive_here, process_record
from hpo_plugins._run_settings import RunSettings
from hpo_plugins.exceptions import ConfigurationError, RemoteObjectiveError
from hpo_plugins.launchers import JoblibLauncher, detect_gpus, gpu_slots
from hpo_plugins.launchers._state import RunState
from hpo_plugins.launchers._worker import Job
from hpo_plugins.samplers import HyperoptTPESampler, RandomSampler
from hpo_plugins.storages import SQLStorage

pytestmark = pytest.mark.slow
SPACE = {"x": hp.uniform("x", -1, 1), "k": hp.choice("k", ["a", "b"])}


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/par.db"


def test_closures_and_lambdas_run_in_workers_with_exact_budget(tmp_path: Path) -> None:
    offset = 0.5  # captured by the closure below: it travels with cloudpickle

    def objective(params: dict[str, Any]) -> float:
        hpo.current_trial().set_user_attr("pid", os.getpid())
        return (params["x"] - offset) ** 2

    study = hpo.minimize(objective, SPACE, n_trials=6, n_jobs=2, storage=_url(tmp_path),
                         study_name="closure", sampler=RandomSampler(), seed=0)
    trials = study.trials
    assert len(trials) == 6 and all(t.state is TrialState.COMPLETE for t in trials)
    assert os.getpid() not in {t.user_attrs["pid"] for t in trials}
    assert all(t.system_attrs["run_id"] for t in trials)
    lam = hpo.minimize(lambda p: p["x"], SPACE, n_trials=3, n_jobs=2, storage=_url(tmp_path),
                       study_name="lambda", sampler=RandomSampler())
    assert len(lam.trials) == 3


def test_callbacks_and_max_trials_across_workers(tmp_path: Path) -> None:
    seen: list[int] = []
    study = hpo.create_study(space=SPACE, storage=_url(tmp_path), study_name="cap",
                             sampler=RandomSampler())
    study.optimize(lambda p: p["x"], max_trials=5, n_jobs=2,
                   callbacks=[lambda s, t: seen.append(t.number)])
    study.optimize(lambda p: p["x"], max_trials=7, n_trials=50, n_jobs=2)
    assert len(study.trials) == 7
    assert sorted(seen) == [0, 1, 2, 3, 4]


class _HoldsALock:
    """An object an objective may be a method of, which cannot be pickled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def fit(self, params: dict[str, Any]) -> float:
        return float(params["x"])


def test_an_objective_that_cannot_be_sent_to_workers_is_explained(tmp_path: Path) -> None:
    """It was a bare "TypeError: cannot pickle '_thread.lock' object" from the launcher."""
    with pytest.raises(ConfigurationError, match=r"can be sent to worker processes.*Received: "
                                                 r"the objective <bound method .*fit.*cannot "
                                                 r"pickle '_thread.lock' object.*inside the "
                                                 r"objective.*n_jobs=1"):
        hpo.minimize(_HoldsALock().fit, SPACE, n_trials=2, n_jobs=2, storage=_url(tmp_path),
                     study_name="lock")


class _LockedSQLite(SQLStorage):
    """A shared storage holding a client that cannot be pickled (a Redis or HTTP client)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()  # the mistake: SQLStorage's own drops what cannot travel


def test_a_storage_that_cannot_be_sent_to_workers_is_named(tmp_path: Path) -> None:
    """The message blamed "the study (its sampler or pruner) or the run's settings
    (catch=)", never the storage."""
    with pytest.raises(ConfigurationError, match=r"Received: the study's storage _LockedSQLite"
                                                 r".*cannot pickle '_thread.lock' object.*"
                                                 r"opens its own connections in the worker"):
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=2, n_jobs=2,
                     storage=_LockedSQLite(_url(tmp_path)), study_name="locked")


def test_in_memory_storage_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="storage that worker processes can share"):
        hpo.minimize(lambda p: 1.0, SPACE, n_trials=2, n_jobs=2, storage=":memory:")


class _OneProcessSQLite(SQLStorage):
    """A SQLite storage that declares itself for this process only, as a process-local cache in
    front of the file would: worker processes must not share it, on a real file."""

    multiprocess = False


@pytest.mark.parametrize("how", ["launcher", "n_jobs"])
def test_a_refused_run_leaves_no_study_in_the_sqlite_file(tmp_path: Path, how: str) -> None:
    """``hpo.minimize`` asks the launcher (also the one ``n_jobs=2`` builds) before it creates
    the study: the database keeps only the studies it held."""
    hpo.create_study(SPACE, study_name="earlier", storage=_url(tmp_path)).storage.close()
    parallel: dict[str, Any] = ({"launcher": JoblibLauncher(n_jobs=2)} if how == "launcher"
                                else {"n_jobs": 2})
    with pytest.raises(ConfigurationError, match="storage that worker processes can share"):
        hpo.minimize(lambda p: 1.0, SPACE, n_trials=2, study_name="refused",
                     storage=_OneProcessSQLite(_url(tmp_path)), **parallel)
    store = SQLStorage(_url(tmp_path))
    assert [info.name for info in store.list_studies()] == ["earlier"]
    store.close()


def test_check_refuses_what_run_refuses_and_stores_nothing(tmp_path: Path) -> None:
    for launcher in (JoblibLauncher(n_jobs=1), JoblibLauncher(gpus=[0]),
                     JoblibLauncher(fresh_process=True)):
        launcher.check(SQLStorage(_url(tmp_path)))
        with pytest.raises(ConfigurationError, match="storage that worker processes can share"):
            launcher.check(hpo.storages.InMemoryStorage())
    assert list(tmp_path.iterdir()) == []
    study = hpo.create_study(SPACE, storage=":memory:")  # an existing study: run checks too
    with pytest.raises(ConfigurationError, match="storage that worker processes can share"):
        study.optimize(lambda p: 1.0, n_trials=2, launcher=JoblibLauncher(n_jobs=2))
    assert study.trials == []


def test_an_uncaught_error_in_a_worker_fails_its_trial_and_stops(tmp_path: Path) -> None:
    def objective(params: dict[str, Any]) -> float:
        if hpo.current_trial().number == 1:
            raise RuntimeError("worker bug")
        time.sleep(0.2)
        return 1.0

    with pytest.raises(RuntimeError, match="worker bug"):
        hpo.minimize(objective, SPACE, n_trials=20, n_jobs=2, storage=_url(tmp_path),
                     study_name="bug", sampler=RandomSampler())
    trials = hpo.load_study("bug", _url(tmp_path)).trials
    assert trials[1].state is TrialState.FAIL and "worker bug" in (trials[1].fail_reason or "")
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    assert len(trials) < 20


class DiskFull(Exception):
    """An exception whose pickle does not rebuild it (its ``__init__`` takes other arguments
    than its ``args``), as botocore's ``ClientError``."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code={code}: {detail}")


def _raises_disk_full(params: dict[str, Any]) -> float:
    if hpo.current_trial().number == 1:
        raise DiskFull(28, "no space left")
    time.sleep(0.2)
    return 1.0


@pytest.mark.parametrize("launcher", [
    lambda: JoblibLauncher(n_jobs=2),
    lambda: JoblibLauncher(n_jobs=2, fresh_process=True),
    lambda: JoblibLauncher(gpus=["0", "1"], fresh_process=False),
], ids=["loky", "fresh-processes", "gpu-slots"])
def test_an_exception_that_cannot_travel_back_is_raised_as_text_not_lost(
        tmp_path: Path, launcher: Any) -> None:
    """Its failed pickle broke the executor: the run took it for a dead worker, ran another
    trial and returned normally (the error was lost), or raised a PicklingError."""
    with pytest.raises(RemoteObjectiveError, match=r"raised .*DiskFull: code=28: no space "
                                                   r"left.*could not be sent back as "
                                                   r"itself") as raised:
        hpo.minimize(_raises_disk_full, SPACE, n_trials=20, launcher=launcher(),
                     storage=_url(tmp_path), study_name="full", sampler=RandomSampler())
    assert raised.value.type_name.endswith("DiskFull")
    assert "_raises_disk_full" in raised.value.remote_traceback
    trials = hpo.load_study("full", _url(tmp_path)).trials
    assert trials[1].fail_reason == "DiskFull: code=28: no space left"
    assert len(trials) < 20 and not [t for t in trials if t.state is TrialState.RUNNING]


def _slow_first(params: dict[str, Any]) -> float:
    trial = hpo.current_trial()
    trial.set_user_attr("objective_started", time.time())
    time.sleep(12.0 if trial.number == 0 else 0.5)
    return float(params["x"])


def test_a_seeded_run_starts_no_objective_after_its_timeout(tmp_path: Path) -> None:
    """A seeded parallel run samples trial n once trial n - 2 is done: trial 2's ask waited
    for trial 0 (12 s), then ran its objective long after the 6 s timeout.

    The timeout counts from inside ``minimize``, after this test's clock started, and an
    objective may start just before it ends: the bound leaves 4 s for that, well short of
    trial 0's end, when a late start would come (on a loaded machine one came at 3.93 s of a
    4 s timeout counted from here)."""
    started = time.time()
    study = hpo.minimize(_slow_first, SPACE, timeout=6, seed=0, n_jobs=2,
                         storage=_url(tmp_path), study_name="late", sampler=RandomSampler())
    ran = {t.number: t.user_attrs["objective_started"] - started
           for t in study.trials if "objective_started" in t.user_attrs}
    assert ran and max(ran.values()) < 10.0, ran
    waited = [t for t in study.trials if t.number not in ran]
    assert waited and all(t.state is TrialState.FAIL and t.fail_reason == TIMED_OUT_WAITING
                          for t in waited)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux only")
def test_n_jobs_minus_one_counts_the_cpus_this_process_may_use() -> None:
    """It counted the machine's CPUs: a Slurm job or a container given few cores of a big
    machine started a worker per core of the machine."""
    script = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from hpo_plugins.launchers._joblib import _cpu_workers; print(_cpu_workers(-1))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "1"


def test_an_error_in_fresh_process_mode_kills_the_other_workers(tmp_path: Path) -> None:
    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        trial.set_user_attr("pid", os.getpid())
        if trial.number == 0:
            deadline = time.monotonic() + 120  # until the other slot's trial is running
            while time.monotonic() < deadline and not any(
                    "pid" in t.user_attrs for t in trial.study.trials if t.number == 1):
                time.sleep(0.1)
            raise RuntimeError("worker bug")
        time.sleep(60.0)
        return 1.0

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="worker bug"):
        hpo.minimize(objective, SPACE, n_trials=2, storage=_url(tmp_path), study_name="kill",
                     launcher=JoblibLauncher(n_jobs=2, fresh_process=True),
                     sampler=RandomSampler())
    assert time.monotonic() - started < 55  # not the other trial's minute
    trials = hpo.load_study("kill", _url(tmp_path)).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    other = {**process_record(), "pid": int(trials[1].user_attrs["pid"]), "started": None}
    deadline = time.monotonic() + 5
    while alive_here(other) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive_here(other)  # killed, not left to sleep out its minute


def test_lost_tasks_keep_the_budget_and_the_count_in_flight_right(tmp_path: Path) -> None:
    study = hpo.create_study(space=SPACE, storage=_url(tmp_path), sampler=RandomSampler())
    settings = RunSettings.build(study, n_trials=10, max_trials=None, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=False)
    run = RunState(study, settings, Job.pack(study, lambda p: 1.0, settings, "r", None, None))
    for _ in range(4):
        assert run.take()
    done = study.tell(study.ask(), 1.0)
    run.finished(done)
    run.finished(done)
    run.lost(run.in_flight(), [])  # a pool broke with 2 tasks out
    assert (run.in_flight(), run.started) == (0, 2)
    for _ in range(2):
        assert run.take()
    run.lost(run.in_flight(), [])  # and again
    assert (run.in_flight(), run.started, run.replaced) == (0, 2, 4)


def test_a_worker_killed_every_time_is_replaced_a_budget_of_times_and_reported(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def objective(params: dict[str, Any]) -> float:
        os.kill(os.getpid(), signal.SIGKILL)
        return 0.0

    seen: list[TrialState] = []
    study = hpo.minimize(objective, SPACE, n_trials=2, launcher=JoblibLauncher(n_jobs=2),
                         storage=_url(tmp_path), study_name="oom", sampler=RandomSampler(),
                         callbacks=[lambda s, t: seen.append(t.state)], show_progress_bar=True)
    trials = study.trials
    assert 2 <= len(trials) <= 4  # each lost one replaced once at most (the budget is 2)
    assert all(t.state is TrialState.FAIL for t in trials)
    assert seen == [TrialState.FAIL] * len(trials)  # the callbacks heard of every one
    # the bar's total grew with the replacements: it ends full, never past its total
    counts = re.findall(r"(\d+)/(\d+) \[", capsys.readouterr().err)
    assert counts[-1] == (str(len(trials)),) * 2
    assert all(int(n) <= int(total) for n, total in counts)


def test_the_progress_total_follows_lost_and_replaced_trials(tmp_path: Path) -> None:
    study = hpo.create_study(space=SPACE, storage=_url(tmp_path), sampler=RandomSampler())
    settings = RunSettings.build(study, n_trials=3, max_trials=None, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=True)
    run = RunState(study, settings, Job.pack(study, lambda p: 1.0, settings, "r", None, None))
    bar = run._bar._bar  # type: ignore[union-attr]
    for _ in range(3):
        assert run.take()
    lost = study.tell(study.ask(), state=TrialState.FAIL)
    run.lost(2, [lost])  # one lost task had a trial (reported), one had none
    assert (bar.n, bar.total) == (1, 4)  # 3 to come: 1 running, 2 replacements
    for _ in range(3):
        run.lost(1, [])  # lost again, without trials; 1 more replacement left in the budget
    assert bar.total == 2  # the trial reported, and the last replacement
    with run:
        pass


GPU_OBJECTIVE_SLEEP = 0.4


def _gpu_objective(params: dict[str, Any]) -> float:
    trial = hpo.current_trial()
    trial.set_user_attr("seen_gpu", os.environ.get("CUDA_VISIBLE_DEVICES"))
    trial.set_user_attr("start", time.time())
    time.sleep(GPU_OBJECTIVE_SLEEP)
    trial.set_user_attr("end", time.time())
    return params["x"]


def test_gpu_slots_pin_each_trial_and_never_overfill(tmp_path: Path) -> None:
    launcher = JoblibLauncher(gpus=["3", "7"], trials_per_gpu=2, fresh_process=False)
    study = hpo.minimize(_gpu_objective, SPACE, n_trials=12, launcher=launcher,
                         storage=_url(tmp_path), study_name="gpus", sampler=RandomSampler())
    trials = study.trials
    assert all(t.state is TrialState.COMPLETE for t in trials)
    for t in trials:  # the process saw exactly the GPU the trial records
        assert t.user_attrs["seen_gpu"] == t.system_attrs["gpu"]
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for t in trials:
        by_gpu.setdefault(t.system_attrs["gpu"], []).append(
            (t.user_attrs["start"], t.user_attrs["end"]))
    assert set(by_gpu) == {"3", "7"}
    for spans in by_gpu.values():
        assert _max_overlap(spans) <= 2
    pids = {(t.system_attrs["gpu"], t.system_attrs["worker"]["pid"]) for t in trials}
    assert len(pids) == 4  # four reused slot processes, all used


PIN_SCRIPT = """
import os, sys
AT_IMPORT = os.environ.get("CUDA_VISIBLE_DEVICES")  # module level: before any initializer

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.launchers import JoblibLauncher

def objective(params):
    main = sys.modules.get("__mp_main__") or sys.modules["__main__"]
    hpo.current_trial().set_user_attr("at_import", main.AT_IMPORT)
    return params["x"]

if __name__ == "__main__":
    hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=4, study_name="pin",
                 storage=sys.argv[1], launcher=JoblibLauncher(gpus=["3", "7"],
                                                              fresh_process=sys.argv[2] == "1"))
"""


@pytest.mark.parametrize("fresh", [True, False])
def test_the_pin_is_set_before_the_main_module_is_imported_in_a_slot(tmp_path: Path,
                                                                      fresh: bool) -> None:
    script = tmp_path / "pin.py"
    script.write_text(PIN_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    subprocess.run([sys.executable, str(script), _url(tmp_path), str(int(fresh))], env=env,
                   check=True, capture_output=True, timeout=300)
    trials = hpo.load_study("pin", _url(tmp_path)).trials
    assert len(trials) == 4
    for t in trials:  # spawn re-imports the main module first: the pin was already there
        assert t.user_attrs["at_import"] == t.system_attrs["gpu"]


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_no_gpu_found_runs_on_cpu_with_a_notice(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == []
    with pytest.warns(RuntimeWarning, match="No GPU found: trials run on CPU."):
        assert gpu_slots("all", 1) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,2")  # CUDA stops at the first bad id
    assert detect_gpus() == ["0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.warns(RuntimeWarning, match=r"No GPU found: trials run on CPU, 2 at a time "
                                            r"\(n_jobs=2, --n-jobs; trials_per_gpu applies to "
                                            r"GPUs only\)\."):
        study = hpo.minimize(lambda p: p["x"], SPACE, n_trials=2,
                             launcher=JoblibLauncher(n_jobs=2, gpus="all", trials_per_gpu=2),
                             storage=_url(tmp_path), study_name="cpu", sampler=RandomSampler())
    assert all("gpu" not in t.system_attrs for t in study.trials)


def test_n_jobs_given_with_gpus_says_it_is_not_used_and_what_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray user's --n-jobs 4 --gpus 0 means four trials on GPU 0: here trials_per_gpu does."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.warns(UserWarning, match=r"n_jobs=4 is not used: trials run on GPU slots, 1 at "
                                         r"once \(1 GPU\(s\) x trials_per_gpu=1\); for 4 trials "
                                         r"at once on GPU 0, pass trials_per_gpu=4"):
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=_url(tmp_path),
                     launcher=JoblibLauncher(n_jobs=4, gpus=[0], fresh_process=False),
                     study_name="gpu", sampler=RandomSampler())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # n_jobs left out: nothing to say
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=_url(tmp_path),
                     launcher=JoblibLauncher(gpus=[0], fresh_process=False),
                     study_name="gpu", sampler=RandomSampler())


def test_listed_gpu_ids_the_machine_lacks_get_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    caplog.set_level(logging.WARNING, logger="hpo_plugins")
    assert gpu_slots([1, 0], 2) == ["1", "1", "0", "0"]
    assert caplog.text == ""
    assert gpu_slots([0, 5], 1) == ["0", "5"]
    assert ("GPU ids ['5'] are not among the GPUs this process may use, ['0', '1'] "
            "(CUDA_VISIBLE_DEVICES=0,1): a trial pinned to one gets CUDA_VISIBLE_DEVICES set to "
            "it, which names the machine's GPU of that id, outside that set") in caplog.text
    # (it said such trials "see no GPU": with CUDA_VISIBLE_DEVICES=2,3 and gpus=[0, 1] they
    # ran on the machine's GPUs 0 and 1, another user's on a shared machine)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_jobs": 0}, "Expected `n_jobs` to be an integer >= 1"),
    ({"trials_per_gpu": 0}, "Expected `trials_per_gpu` to be an integer >= 1"),
    ({"gpus": "all", "trials_per_gpu": 0.25},
     r"Ray Tune's resources_per_trial=\{'gpu': 0.25\}\) is written here as trials per GPU: "
     r"trials_per_gpu=4\."),
    ({"fresh_process": "no"}, "Expected `fresh_process` to be True, False or None"),
    ({"deterministic": 1}, "Expected `deterministic` to be True, False or None"),
])
def test_launcher_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        JoblibLauncher(**kwargs)


def test_bad_gpu_list_is_explained() -> None:
    with pytest.raises(ConfigurationError, match="Expected `gpus` to be \"all\".*'first' is not"):
        gpu_slots("first", 1)


@pytest.mark.parametrize(("gpus", "message"), [
    (0, r"gpus=0 \(of type int\); a bare integer is ambiguous.*pass gpus=\[0\] for GPU 0"),
    (2, "a bare integer is ambiguous"),
    ("ALL", r'gpus=\'ALL\'.*for every GPU pass gpus="all" \(lower case, alone\)'),
    (["all"], 'for every GPU pass gpus="all"'),
    ("0,-1", "'-1' is not a GPU id: ids are non-negative integers"),
    ([-1], "-1 is not a GPU id"),
    ([True], "True is not a GPU id"),
    ([0.0], "0.0 is not a GPU id"),
    (["0,1"], "'0,1' is not a GPU id"),  # one slot must see exactly one GPU
    ("", "'' is not a GPU id"),
    (["GPU-"], "'GPU-' is not a GPU id"),
    ({0, 1}, r"of type set\); pass a list of ids such as gpus=\[0, 1\]"),
])
def test_bad_gpus_are_refused_by_the_constructor(gpus: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        JoblibLauncher(gpus=gpus)  # not first in run(), after the study was opened


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_jobs": 2, "trials_per_gpu": 3},
     r"Expected `gpus` with trials_per_gpu=3: trials_per_gpu needs gpus \(the GPUs whose "
     r"slots it fills\)\. Received: gpus=None"),
    ({"gpus": [0, 0]}, r"gpus=\[0, 0\].*GPU 0 is listed twice.*trials_per_gpu=2"),
    ({"gpus": "1,0,1"}, r"GPU 1 is listed twice"),
    ({"gpus": [0, "0"]}, r"GPU 0 is listed twice"),
    ({"gpus": []}, r"gpus=\[\].*an empty list names no GPU: pass gpus=None for CPU workers"),
    ({"gpus": ()}, r"an empty list names no GPU"),
])
def test_contradictory_gpu_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        JoblibLauncher(**kwargs)


def test_trials_per_gpu_of_one_needs_no_gpus() -> None:
    assert JoblibLauncher(2, trials_per_gpu=1).trials_per_gpu == 1  # the default, said aloud


def test_trials_per_gpu_takes_numpy_integers_but_not_bools() -> None:
    assert gpu_slots(["3", "7"], np.int64(2)) == ["3", "3", "7", "7"]
    assert JoblibLauncher(gpus=[0], trials_per_gpu=np.int64(2)).trials_per_gpu == 2
    for bad in (True, 2.0, np.float64(2.0)):
        with pytest.raises(ConfigurationError, match=r"Expected `trials_per_gpu` to be an "
                                                     r"integer >= 1\. Received: trials_per_gpu="):
            JoblibLauncher(gpus=[0], trials_per_gpu=bad)


@pytest.mark.parametrize(("gpus", "ids"), [
    ([0, 2], ["0", "2"]), (("1",), ["1"]), ("0,1", ["0", "1"]), (" 1 , 3", ["1", "3"]),
    ("2", ["2"]), (["GPU-8f1c2e7a-aaaa", "MIG-GPU-8f1c/1/0"], ["GPU-8f1c2e7a-aaaa",
                                                              "MIG-GPU-8f1c/1/0"]),
])
def test_gpu_ids_as_a_list_or_a_comma_separated_string(
        gpus: Any, ids: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no detected GPUs: no unknown-id warning
    launcher = JoblibLauncher(gpus=gpus)
    assert launcher.gpus == gpus  # stored as given
    assert gpu_slots(gpus, 2) == [gpu for gpu in ids for _ in range(2)]


LEAK: list[bytes] = []


def _leaky_objective(params: dict[str, Any]) -> float:
    LEAK.append(b"x" * 30_000_000)  # 30 MB that this process never frees
    hpo.current_trial().set_user_attr("pid", os.getpid())
    hpo.current_trial().set_user_attr("rss_mb", _rss_mb())  # the worker's, after its leak
    return params["x"]


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        line = next(x for x in handle if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_fresh_processes_return_leaked_memory(tmp_path: Path) -> None:
    before = _rss_mb()
    study = hpo.minimize(_leaky_objective, SPACE, n_trials=20,
                         launcher=JoblibLauncher(n_jobs=2, fresh_process=True),
                         storage=_url(tmp_path), study_name="leak", sampler=RandomSampler())
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["pid"] for t in study.trials}) == 20  # one process per trial
    assert _rss_mb() - before < 100  # 20 x 30 MB leaked in children, none kept here
    fresh = [t.user_attrs["rss_mb"] for t in study.trials]
    assert max(fresh) - min(fresh) < 30  # every trial's process held one leak, no more
    # the contrast: reused workers pile the leaks up (kept under loky's own 300 MB guard,
    # which restarts a worker that grew more, with a warning)
    reused = hpo.minimize(_leaky_objective, SPACE, n_trials=8,
                          launcher=JoblibLauncher(n_jobs=2, fresh_process=False),
                          storage=_url(tmp_path), study_name="kept", sampler=RandomSampler())
    get_reusable_executor().shutdown(wait=True)  # give the leaked memory back
    grown = [t.user_attrs["rss_mb"] for t in reused.trials]
    assert max(grown) - min(grown) > 60


def test_same_seed_and_jobs_give_the_same_configurations(tmp_path: Path) -> None:
    def run(name: str) -> set[tuple[Any, ...]]:
        study = hpo.minimize(lambda p: (p["x"] - 0.2) ** 2, SPACE, n_trials=10, n_jobs=2,
                             storage=_url(tmp_path), study_name=name, seed=11,
                             sampler=HyperoptTPESampler(n_startup_trials=3))
        return {tuple(sorted(t.params.items())) for t in study.trials}

    assert run("first") == run("second")


SEEDED_SCRIPT = """
import sys
import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.launchers import JoblibLauncher

if __name__ == "__main__":
    study = hpo.create_study({"x": hp.uniform("x", -5, 5)}, study_name="seeded",
                             storage=sys.argv[1], seed=0)
    study.optimize(lambda p: p["x"] ** 2, n_trials=4, launcher=JoblibLauncher(n_jobs=2))
"""


def test_a_seeded_parallel_run_does_not_wait_for_a_hand_asked_trial(tmp_path: Path) -> None:
    """An ask/tell script killed between ask and tell left a RUNNING trial without a
    heartbeat; a seeded parallel run (deterministic mode) on the study waited for it forever.
    It must finish, and still give the same suggestions run after run."""
    script = tmp_path / "seeded.py"
    script.write_text(SEEDED_SCRIPT)
    suggestions = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path}/{name}.db"
        study = hpo.create_study({"x": hp.uniform("x", -5, 5)}, study_name="seeded",
                                 storage=url, seed=0)
        study.ask()  # what the killed script left: RUNNING, no heartbeat
        study.storage.close()
        launcher = subprocess.Popen([sys.executable, str(script), url],
                                    start_new_session=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        try:
            _, err = launcher.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
            pytest.fail("the seeded parallel run waited for the hand-asked trial")
        assert launcher.returncode == 0, err.decode()[-2000:]
        trials = hpo.load_study("seeded", url).trials
        assert [t.state for t in trials] == [TrialState.RUNNING] + [TrialState.COMPLETE] * 4
        suggestions.append([t.params for t in trials])
    assert suggestions[0] == suggestions[1]


@pytest.mark.timeout(60)
def test_a_killed_slot_s_manager_thread_has_closed_before_a_stopped_run_returns() -> None:
    """After ``shutdown(wait=False)`` the manager thread of a killed slot still ran; a process
    exiting then (a Ctrl-C'd ``hpo-plugins run``) could race it in Python 3.11's exit hook and
    print "Exception ignored ... Bad file descriptor" (about 1 run in 30)."""
    from hpo_plugins.launchers import _joblib

    executor = _joblib._slot_executor(None, False)
    executor.submit(time.sleep, 30)
    deadline = time.monotonic() + 30
    while not _joblib._pids(executor) and time.monotonic() < deadline:
        time.sleep(0.05)
    manager = executor._executor_manager_thread  # type: ignore[attr-defined]
    assert manager is not None and manager.is_alive()
    _joblib._kill(executor)
    executor.shutdown(wait=False, cancel_futures=True)
    _joblib._let_managers_close([manager, None])
    assert not manager.is_alive()


def test_the_wait_for_manager_threads_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_plugins.launchers import _joblib

    monkeypatch.setattr(_joblib, "_MANAGERS_JOIN_S", 0.3)
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, daemon=True)
    stuck.start()
    started = time.monotonic()
    _joblib._let_managers_close([stuck, stuck])  # the deadline is shared, not per thread
    assert 0.25 <= time.monotonic() - started < 1.0
    release.set()
    stuck.join()
