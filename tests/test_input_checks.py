"""Bad arguments to the core API: refused early with the fix, and nothing left half-done."""

from __future__ import annotations

import argparse
import functools
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._api import default_study_name
from hpo_plugins.exceptions import ConfigurationError, SearchSpaceExhausted
from hpo_plugins.launchers import JoblibLauncher, ScriptObjective
from hpo_plugins.pruners import MedianPruner, NopPruner
from hpo_plugins.samplers import AnnealSampler, RandomSampler, Sampler
from hpo_plugins.storages import InMemoryStorage, Storage

SPACE = {"x": hp.uniform("x", 0, 1)}


def _study(storage: Any = ":memory:", name: str = "s", **kwargs: Any) -> hpo.Study:
    kwargs.setdefault("sampler", RandomSampler())
    return hpo.create_study(SPACE, storage=storage, study_name=name, **kwargs)


# -- trials of another study ----------------------------------------------------------------


def test_a_trial_told_to_another_study_is_refused_and_both_stay_intact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/two.db"
    a, b = _study(url, "a"), _study(url, "b")
    ta, tb = a.ask(), b.ask()
    with pytest.raises(ConfigurationError, match="Expected a trial of study 'b'. Received "
                                                 "trial 0 of study 'a'"):
        b.tell(ta, 5.0)
    assert [t.state for t in a.trials] == [TrialState.RUNNING]
    assert [t.state for t in b.trials] == [TrialState.RUNNING]
    with pytest.raises(ConfigurationError, match="another study"):
        b.trial(ta.trial_id)  # what a wrong hand-over to a child process does
    b.tell(tb, 1.0)
    a.tell(ta, 2.0)
    # the same study reopened elsewhere (a worker's copy) may tell it
    again = hpo.load_study("a", url, space=SPACE)
    tc = a.ask()
    assert again.tell(tc, 3.0).state is TrialState.COMPLETE


def test_ids_that_collide_across_in_memory_storages_are_told_apart() -> None:
    c, d = _study(InMemoryStorage()), _study(InMemoryStorage())
    tc, _ = c.ask(), d.ask()
    with pytest.raises(ConfigurationError, match="tell each trial to the study that asked it"):
        d.tell(tc, 7.0)
    assert [t.state for t in d.trials] == [TrialState.RUNNING]


@pytest.mark.parametrize(("trial", "message"), [
    ("0", "Received str '0'"),
    (1.0, "Received float '1.0'"),
])
def test_tell_wants_a_trial_or_a_number(trial: Any, message: str) -> None:
    study = _study()
    study.ask()
    with pytest.raises(ConfigurationError, match=f"Trial returned by ask\\(\\) or a trial "
                                                 f"number \\(an int\\). {message}"):
        study.tell(trial, 1.0)


def test_tell_refuses_odd_values_and_arguments() -> None:
    study = _study()
    trial = study.ask()
    with pytest.raises(ConfigurationError, match="finite number to prune trial 0 of study .* "
                                                 "The trial is still RUNNING"):
        study.tell(trial, "nan", state="PRUNED")  # a str: nan itself fails the trial
    with pytest.raises(ConfigurationError, match="an array of 2 elements"):
        study.tell(trial, np.array([1.0, 2.0]))
    with pytest.raises(ConfigurationError, match="an integer too large for a float"):
        study.tell(trial, 10 ** 400)
    with pytest.raises(ConfigurationError, match="`fail_reason` only with "
                                                 "state='FAIL'.*state='COMPLETE'"):
        study.tell(trial, 1.0, fail_reason="oops")
    with pytest.raises(ConfigurationError, match="`system_attrs` to be a dict"):
        study.tell(trial, 1.0, system_attrs=[1, 2])  # type: ignore[arg-type]
    assert study.trials[0].state is TrialState.RUNNING  # none of it finished the trial
    assert study.tell(trial, np.float32(0.5)).value == 0.5


def test_an_enqueued_trial_cannot_be_told_before_it_ran() -> None:
    study = _study()
    study.enqueue({"x": 0.5})
    with pytest.raises(ConfigurationError, match="Trial 0 .* is WAITING: it was enqueued"):
        study.tell(0, 1.0)
    assert study.trials[0].state is TrialState.WAITING


# -- ask ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lag": -1}, "`lag` to be an integer >= 0"),  # used to wait forever
    ({"lag": "1"}, "`lag` to be an integer >= 0"),
    ({"limit": "3"}, "`limit` to be an integer >= 0"),
    ({"limit": 2.5}, "`limit` to be an integer >= 0"),
    ({"heartbeat": "no"}, "`heartbeat` to be True or False"),
    ({"system_attrs": [1]}, "`system_attrs` to be a dict"),
])
def test_ask_refuses_bad_arguments_before_starting_a_trial(kwargs: dict[str, Any],
                                                           message: str) -> None:
    study = _study()
    study.ask()  # a RUNNING trial, so that a negative lag would have had something to wait for
    with pytest.raises(ConfigurationError, match=message):
        study.ask(**kwargs)
    assert len(study.trials) == 1


class _Failing(Sampler):
    """Proposes two configurations, then raises: ``SearchSpaceExhausted`` (``error="done"``)
    or ``OverflowError`` (any other text, the message)."""

    def __init__(self, error: str) -> None:
        self.error = error

    def sample(self, space: Any, history: Any, rng: np.random.Generator) -> dict[str, Any]:
        if history.number >= 2:
            raise (SearchSpaceExhausted(self.error) if self.error == "done"
                   else OverflowError(self.error))
        return {"x": 0.1 * (history.number + 1)}


class _RunsOut(_Failing):
    """The same, marked ``finite`` and ``deduplicate``: it may run out, and never repeats."""

    finite = True
    deduplicate = True


def test_a_sampler_that_runs_out_leaves_no_running_trial(storage: Storage) -> None:
    study = _study(storage, sampler=_Failing("done"))
    study.optimize(lambda p: p["x"], max_trials=3)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[2].system_attrs["fail_reason"] == "the sampler had nothing new to propose"


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_finite_deduplicating_sampler_that_runs_out_leaves_no_trial_behind(tmp_path: Path,
                                                               n_jobs: int) -> None:
    """Trials of a deduplicating sampler are stored after sampling, so running out fails
    nothing (without ``deduplicate``: one FAIL trial serially, one per dispatched task in
    parallel, as the sampler's docstring says)."""
    study = _study(f"sqlite:///{tmp_path}/s.db", sampler=_RunsOut("done"))
    study.optimize(lambda p: p["x"], n_trials=8, n_jobs=n_jobs)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_a_sampler_that_raises_fails_its_trial_and_raises(storage: Storage) -> None:
    study = _study(storage, sampler=_Failing("math range error"))
    with pytest.raises(OverflowError):
        study.optimize(lambda p: p["x"], n_trials=3)
    last = study.trials[-1]
    assert last.state is TrialState.FAIL
    assert last.system_attrs["fail_reason"] == ("sampling its parameters raised OverflowError: "
                                                "math range error")


class _NoFinishStorage(InMemoryStorage):
    """A storage whose writes of a trial's end fail (a database that went away meanwhile)."""

    def finish_trial(self, *args: Any, **kwargs: Any) -> Any:
        raise hpo.exceptions.StorageError("the database went away")


def test_a_trial_the_storage_cannot_fail_after_sampling_is_a_warning_with_the_fix(
        caplog: pytest.LogCaptureFixture) -> None:
    """It stays RUNNING and counts toward max_trials (for ever without heartbeats): that was
    logged at DEBUG only, so nobody learnt of it."""
    study = _study(_NoFinishStorage(), sampler=_Failing("math range error"))
    study.ask(), study.ask()  # the two configurations the sampler proposes before it fails
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"), \
            pytest.raises(OverflowError):
        study.ask()
    (record,) = [r for r in caplog.records if "after its sampling failed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert ("Could not mark trial 2 FAIL after its sampling failed (StorageError: the "
            "database went away)") in record.getMessage()
    assert "study.tell(2, state='FAIL')" in record.getMessage()
    assert study.trials[2].state is TrialState.RUNNING


# -- what the objective returns -------------------------------------------------------------


@pytest.mark.parametrize(("result", "reason"), [
    (np.array([1.0, 2.0]), "an array of 2 elements (of type ndarray); expected a number"),
    (10 ** 400, "an integer too large for a float; expected a number"),
    ({"loss": np.array([1, 2])}, "an array of 2 elements"),
])
def test_odd_returns_fail_their_trial_and_the_study_goes_on(result: Any, reason: str) -> None:
    study = _study()
    study.optimize(lambda p: result, n_trials=2)  # no catch= needed: not an exception
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert reason in study.trials[0].system_attrs["fail_reason"]


# -- create_study, load_study, optimize, minimize -------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seed": -1}, "`seed` to be an integer >= 0"),
    ({"seed": "abc"}, "`seed` to be an integer >= 0"),
    ({"seed": 1.5}, "`seed` to be an integer >= 0"),
    ({"seed": True}, "`seed` to be an integer >= 0"),
    ({"heartbeat_interval": "5"}, "`heartbeat_interval` to be a finite number"),
    ({"heartbeat_interval": True}, "`heartbeat_interval` to be a finite number"),
    ({"grace_period": math.nan}, "`grace_period` to be a finite number.*nan"),
    ({"grace_period": -1, "heartbeat_interval": None}, "`grace_period` to be a finite"),
    ({"study_name": ["a"]}, "`study_name` to be a non-empty str"),
    ({"study_name": ""}, "`study_name` to be a non-empty str"),
    ({"metric": ""}, "`metric` to be the name of a logged metric"),
    ({"metric": 3}, "`metric` to be the name of a logged metric"),
    ({"load_if_exists": "no"}, "`load_if_exists` to be True or False"),
    ({"logdir": 5}, "`logdir` to be a directory path"),
])
def test_create_study_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError, match=message):
        hpo.create_study(SPACE, storage=storage, **kwargs)
    assert storage.list_studies() == []


def test_a_logdir_that_cannot_be_created_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigurationError, match="`logdir` to be a directory this process can "
                                                 "create"):
        _study(logdir=str(tmp_path / "afile" / "runs"))


def test_a_numpy_seed_is_an_integer() -> None:
    assert _study(seed=np.int64(3)).seed == 3


def test_load_study_checks_the_sampler_and_pruner(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.db"
    _study(url, "l")
    with pytest.raises(ConfigurationError, match="`sampler` to be an instance of Sampler"):
        hpo.load_study("l", url, space=SPACE, sampler="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`pruner` to be an instance of Pruner"):
        hpo.load_study("l", url, pruner="median")  # type: ignore[arg-type]


def test_get_trials_takes_one_state_or_names_in_any_case() -> None:
    study = _study()
    study.tell(study.ask(), 1.0)
    study.ask()
    assert [t.number for t in study.get_trials("complete")] == [0]
    assert [t.number for t in study.get_trials(["Running", TrialState.COMPLETE])] == [0, 1]
    with pytest.raises(ConfigurationError, match="Expected trial states among"):
        study.get_trials(["done"])


def test_optimize_refuses_a_bad_objective_or_catch_before_any_trial() -> None:
    study = _study()
    with pytest.raises(ConfigurationError, match="`objective` to be a function"):
        study.optimize(5, n_trials=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="exception class or a tuple of them"):
        study.optimize(lambda p: 1.0, n_trials=1, catch=ValueError())  # type: ignore[arg-type]
    assert study.trials == []
    study.optimize(lambda p: 1.0, n_trials=1, catch=None)  # type: ignore[arg-type]
    assert len(study.trials) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_jobs": 2, "launcher": JoblibLauncher(n_jobs=1)}, "either `n_jobs` or `launcher`"),
    ({"launcher": "joblib"}, "`launcher` to be a launcher object"),
    ({"launcher": JoblibLauncher}, "`launcher` to be a launcher object"),
    ({"n_jobs": "2"}, "`n_jobs` to be an int"),
])
def test_minimize_refuses_launcher_conflicts_before_creating_a_study(
        tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    with pytest.raises(ConfigurationError, match=message):
        hpo.minimize(lambda p: 1.0, SPACE, n_trials=1, storage=url, **kwargs)
    assert hpo.storages.get_storage(url).list_studies() == []


# -- derived names and resumes --------------------------------------------------------------


def _train(params: dict[str, Any], data: int = 0) -> float:
    return float(params["x"]) + data


class _Objective:
    def __init__(self, data: Any) -> None:
        self.data = data

    def __call__(self, params: dict[str, Any]) -> float:
        return _train(params, self.data)

    def method(self, params: dict[str, Any]) -> float:
        return _train(params, self.data)


def test_derived_names_tell_literal_partials_and_commands_apart() -> None:
    names = [default_study_name(f, "fp") for f in (
        functools.partial(_train, data=0), functools.partial(_train, data=100),
        ScriptObjective("python a.py"), ScriptObjective("python b.py"))]
    assert len(set(names)) == len(names)
    assert names[0].startswith("_train-") and names[2].startswith("ScriptObjective-")
    # the same arguments give the same name in every run
    assert default_study_name(functools.partial(_train, data=0), "fp") == names[0]
    assert default_study_name(_train, "fp") != names[0]


def test_derived_names_ignore_state_that_may_change_between_runs() -> None:
    """An objective holding e.g. its parsed argv (with --n-trials) must keep its study."""
    first = [default_study_name(f, "fp") for f in (
        _Objective(argparse.Namespace(n_trials=50)), _Objective(0).method,
        functools.partial(_train, data=argparse.Namespace(n_trials=50)))]
    again = [default_study_name(f, "fp") for f in (
        _Objective(argparse.Namespace(n_trials=100)), _Objective(1).method,
        functools.partial(_train, data=argparse.Namespace(n_trials=100)))]
    assert first == again


def test_a_resume_keeps_the_settings_it_is_not_given(tmp_path: Path) -> None:
    url, runs = f"sqlite:///{tmp_path}/r.db", tmp_path / "runs"
    first = hpo.create_study(SPACE, storage=url, study_name="r", seed=7, logdir=str(runs),
                             pruner=MedianPruner(n_startup_trials=2),
                             sampler=RandomSampler())
    assert first.logdir == str(runs)
    again = hpo.create_study(SPACE, storage=url, study_name="r")
    assert (again.seed, again.logdir) == (7, str(runs))
    assert isinstance(again.pruner, MedianPruner) and again.pruner.n_startup_trials == 2
    assert isinstance(again.sampler, RandomSampler)
    assert hpo.load_study("r", url).logdir == str(runs)  # what the CLI's tensorboard reads
    changed = hpo.create_study(SPACE, storage=url, study_name="r", seed=8, pruner=NopPruner())
    assert (changed.seed, changed.logdir) == (8, str(runs))
    assert isinstance(hpo.load_study("r", url).pruner, NopPruner)


def test_a_resume_without_metric_keeps_the_stored_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    assert hpo.create_study(SPACE, storage=url, study_name="m", metric="val_acc").metric == (
        "val_acc")
    with caplog.at_level(logging.INFO, logger="hpo_plugins.study"):
        again = hpo.create_study(SPACE, storage=url, study_name="m")
    assert again.metric == "val_acc"
    assert "keeps its stored metric" in caplog.text
    assert hpo.load_study("m", url).metric == "val_acc"  # nothing overwrote the record


def test_a_new_study_without_metric_gets_val_loss(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/n.db"
    study = hpo.create_study(SPACE, storage=url, study_name="n")
    assert study.metric == "val_loss"
    assert study.storage.get_study(study.study_id).attrs["metric"] == "val_loss"


def test_an_explicit_metric_on_resume_is_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/e.db"
    hpo.create_study(SPACE, storage=url, study_name="e", metric="val_acc")
    assert hpo.create_study(SPACE, storage=url, study_name="e", metric="f1").metric == "f1"
    assert hpo.load_study("e", url).metric == "f1"
    assert hpo.create_study(SPACE, storage=url, study_name="e").metric == "f1"


def test_minimize_without_metric_keeps_the_stored_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/z.db"
    first = hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="z",
                         metric="val_acc")
    assert first.metric == "val_acc"
    resumed = hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="z")
    assert resumed.metric == "val_acc" and len(resumed.trials) == 2
    assert hpo.load_study("z", url).metric == "val_acc"


@pytest.mark.parametrize("state", ["COMPLETE", "PRUNED", "RUNNING"])
def test_another_metric_is_refused_once_trials_hold_values_of_the_stored_one(
        tmp_path: Path, state: str) -> None:
    """Values of val_loss and of loss ranked together would make best_trial meaningless."""
    url = f"sqlite:///{tmp_path}/s.db"
    study = hpo.create_study(SPACE, storage=url, study_name="s", metric="val_loss")
    trial = study.ask()
    if state == "COMPLETE":
        study.tell(trial, 0.5)
    elif state == "PRUNED":
        trial.report(0.7, 0)
        study.tell(trial, state="PRUNED")
    else:
        trial.report(0.7, 0)  # a RUNNING trial counts once it reported
    with pytest.raises(ConfigurationError, match=(
            r"Study 's' exists with metric='val_loss', and 1 of its trials hold 'val_loss' "
            r"values; this call asked for metric='loss'.*Pass metric='val_loss' \(or leave it "
            r"out\)")):
        hpo.create_study(SPACE, storage=url, study_name="s", metric="loss")
    with pytest.raises(ConfigurationError, match="exists with metric='val_loss'"):
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="s",
                     metric="loss")
    stored = hpo.load_study("s", url)
    assert stored.metric == "val_loss" and len(stored.trials) == 1  # nothing recorded or run
    assert hpo.create_study(SPACE, storage=url, study_name="s", metric="val_loss").metric == (
        "val_loss")  # the same metric, given again, resumes


def test_a_study_whose_metric_is_only_the_default_may_name_one(tmp_path: Path) -> None:
    """hpo.maximize(objective) whose HPOCallback("val_acc") reports accuracies stored the
    default 'val_loss'; naming metric="val_acc" later is the documented fix, not a switch."""
    url = f"sqlite:///{tmp_path}/d.db"
    hpo.maximize(lambda p: p["x"], SPACE, n_trials=2, storage=url, study_name="d")
    assert hpo.load_study("d", url).metric == "val_loss"
    named = hpo.maximize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="d",
                         metric="val_acc")
    assert named.metric == "val_acc" and len(named.trials) == 3
    with pytest.raises(ConfigurationError, match="exists with metric='val_acc', and 3 of its"):
        hpo.maximize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="d",
                     metric="val_f1")  # now a call named it: another one is a switch


def test_a_running_trial_whose_process_died_before_reporting_does_not_hold_the_metric(
        tmp_path: Path) -> None:
    """The first trial of a typo run killed before it reported; a live one does hold it."""
    import subprocess
    import sys

    from hpo_plugins._process import _start_time, process_record

    url = f"sqlite:///{tmp_path}/k.db"
    study = hpo.create_study(SPACE, storage=url, study_name="k", metric="val_los")
    live = study.ask(system_attrs={"worker": process_record()})  # this process: alive
    with pytest.raises(ConfigurationError, match="exists with metric='val_los', and 1 of its"):
        hpo.create_study(SPACE, storage=url, study_name="k", metric="val_loss")
    study.tell(live, state="FAIL")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = {**process_record(), "pid": child.pid, "started": _start_time(child.pid)}
    child.kill()
    child.wait(timeout=30)
    study.ask(system_attrs={"worker": dead})  # killed before its first report
    assert hpo.create_study(SPACE, storage=url, study_name="k", metric="val_loss").metric == (
        "val_loss")


def test_a_study_whose_trials_all_failed_may_switch_its_metric(tmp_path: Path) -> None:
    """A typo in the first run's metric fails its trials; the corrected run takes over."""
    url = f"sqlite:///{tmp_path}/t.db"
    study = hpo.create_study(SPACE, storage=url, study_name="t", metric="val_los")
    study.tell(study.ask(), state="FAIL")
    assert hpo.create_study(SPACE, storage=url, study_name="t", metric="val_loss").metric == (
        "val_loss")
    assert hpo.load_study("t", url).metric == "val_loss"


def test_a_lagged_ask_keeps_its_own_heartbeat_while_it_waits(tmp_path: Path) -> None:
    """Deterministic mode: trial 2 waits for trial 0, which runs longer than the grace period;
    the waiting trial must not be reaped as stale by its own wait."""
    study = _study(f"sqlite:///{tmp_path}/lag.db", seed=0, heartbeat_interval=0.2,
                   grace_period=0.6)
    slow = study.ask(heartbeat=True, lag=1)
    study.tell(study.ask(heartbeat=True, lag=1), 0.5)
    stop = threading.Event()

    def keep_alive_then_finish() -> None:  # the slow trial's own worker
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and not stop.is_set():
            study.storage.record_heartbeat(slow.trial_id)
            time.sleep(0.1)
        study.tell(slow, 1.0)

    worker = threading.Thread(target=keep_alive_then_finish)
    worker.start()
    try:
        waited = study.ask(heartbeat=True, lag=1)  # waits about 1.5 s for trial 0
    finally:
        stop.set()
        worker.join()
    assert waited.number == 2
    assert study.tell(waited, 0.1).state is TrialState.COMPLETE


def _ask_guarded(study: hpo.Study, blockers: list[hpo.Trial], seconds: float = 10.0,
                 **kwargs: Any) -> tuple[Any, int]:
    """``study.ask(**kwargs)``, with a guard that tells the next of ``blockers`` FAIL every
    ``seconds`` so that a wait that would never end ends anyway; returns the trial and how
    many blockers the guard had to tell."""
    done, told = threading.Event(), []

    def guard() -> None:
        for blocker in blockers:
            if done.wait(seconds):
                return
            study.tell(blocker, state="FAIL")
            told.append(blocker.number)

    thread = threading.Thread(target=guard, daemon=True)
    thread.start()
    try:
        return study.ask(**kwargs), len(told)
    finally:
        done.set()
        thread.join()


def test_a_lagged_ask_does_not_wait_for_a_trial_without_heartbeat(tmp_path: Path) -> None:
    """A hand-asked trial left RUNNING (its ask/tell script died before tell) is never failed
    as stale; a seeded parallel run's wait for it never ended."""
    study = _study(f"sqlite:///{tmp_path}/silent.db", seed=0, heartbeat_interval=0.2)
    silent = study.ask()  # no heartbeat
    for _ in range(3):  # trial 3 needs trials below 2 finished, trial 0 among them
        trial, told = _ask_guarded(study, [silent], heartbeat=True, lag=1)
        assert not told, "the lagged ask waited for the trial without heartbeat"
        study.tell(trial, 0.5)
    assert study.trials[0].state is TrialState.RUNNING  # left alone, seen as running


def test_a_run_without_heartbeats_still_waits_for_its_own_trials(tmp_path: Path) -> None:
    """Reproducibility: where no trial beats, a lagged ask still waits for a RUNNING trial of
    its own run (its run id), but not for one asked elsewhere."""
    study = _study(f"sqlite:///{tmp_path}/quiet.db", seed=0, heartbeat_interval=None)
    mine = {"run_id": "r1"}
    outsider = study.ask()  # trial 0: no run id
    own = study.ask(system_attrs=mine, lag=1)  # trial 1 of the run, still running
    second, told = _ask_guarded(study, [outsider], system_attrs=mine, lag=1)  # waits for 0
    assert not told, "the lagged ask waited for a trial of no run"
    study.tell(second, 0.1)
    # trial 3 waits for trial 1 until the guard tells it
    trial, told = _ask_guarded(study, [own, outsider], 1.0, system_attrs=mine, lag=1)
    assert told == 1 and trial.number == 3
    assert study.trials[0].state is TrialState.RUNNING  # the outsider never blocked it
    study.tell(trial, 0.2)
    study.tell(outsider, state="FAIL")


def test_a_long_lagged_wait_says_once_what_it_waits_for(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hpo_plugins.study._LAG_WAIT_WARN_SECONDS", 0.2)
    study = _study(f"sqlite:///{tmp_path}/long.db", seed=0, heartbeat_interval=0.2)

    def finish_later(slow: hpo.Trial) -> None:  # the slow trial's worker, beating meanwhile
        for _ in range(6):
            study.storage.record_heartbeat(slow.trial_id)
            time.sleep(0.1)
        study.tell(slow, 1.0)

    for _ in range(2):  # two long waits: trial 2 for trial 0, trial 5 for trial 3
        slow = study.ask(heartbeat=True, lag=1)
        study.tell(study.ask(heartbeat=True, lag=1), 0.5)
        worker = threading.Thread(target=finish_later, args=(slow,))
        worker.start()
        try:
            waited = study.ask(heartbeat=True, lag=1)  # waits about 0.6 s
        finally:
            worker.join()
        study.tell(waited, 0.1)
    warnings = [r for r in caplog.records if "has waited more than" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "trial 2 has waited more than 0.2 s for trials 0 (RUNNING)" in warnings[0].getMessage()
    assert "deterministic=False" in warnings[0].getMessage()


class _Forgetful(RandomSampler):
    """A user sampler that does not keep its argument under the same name."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self._k = k


class _KeywordTPE(AnnealSampler):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)


@pytest.mark.parametrize(("make", "why"), [
    (lambda: _Forgetful(k=10), "argument.s. k not kept as attributes of the same name"),
    (lambda: _KeywordTPE(shrink_coef=0.3), "its constructor takes .args or ..kwargs"),
])
def test_a_resume_that_cannot_rebuild_the_sampler_exactly_says_so_and_records_the_default(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, make: Callable[[], Sampler],
        why: str) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    # said at creation, where the author can still fix the class (before: at the resume only)
    with pytest.warns(UserWarning, match=f"cannot be rebuilt from the study's record \\({why}"
                                         f".*Keep each constructor argument as an attribute"):
        hpo.create_study(SPACE, storage=url, study_name="k", sampler=make())
    again = hpo.create_study(SPACE, storage=url, study_name="k")
    assert type(again.sampler).__name__ == "TPESampler"
    assert "cannot be rebuilt here (its record is not exact" in caplog.text
    stored = hpo.storages.get_storage(url).get_study(again.study_id).attrs["sampler"]
    assert stored["class"].endswith("TPESampler")  # the record says what runs


def test_a_kept_logdir_that_cannot_be_made_here_is_named(tmp_path: Path) -> None:
    url, runs = f"sqlite:///{tmp_path}/g.db", tmp_path / "runs"
    hpo.create_study(SPACE, storage=url, study_name="g", logdir=str(runs))
    shutil.rmtree(runs)
    runs.write_text("now a file")  # e.g. another machine, where that path is not a folder
    with pytest.raises(ConfigurationError, match="the logdir stored with study 'g' .*pass "
                                                 "logdir= to use another one"):
        hpo.create_study(SPACE, storage=url, study_name="g")


def test_a_resume_into_another_logdir_warns_that_tensorboard_splits_the_study(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """hpo-plugins tensorboard then served the new folder only, with half the trials, and
    nothing above INFO said so."""
    url = f"sqlite:///{tmp_path}/moved.db"
    first, second = tmp_path / "runs_a", tmp_path / "runs_b"
    hpo.minimize(lambda p: p["x"], SPACE, n_trials=2, storage=url, study_name="m",
                 logdir=str(first))
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="m",
                     logdir=str(first))  # the same folder: nothing to say
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="m")  # kept
        assert not [r for r in caplog.records if "earlier trial" in r.getMessage()]
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=url, study_name="m",
                     logdir=str(second))
    (record,) = [r for r in caplog.records if "earlier trial" in r.getMessage()]
    assert (f"Study 'm': its 4 earlier trial(s) wrote their TensorBoard runs to {first}, and "
            f"this run writes to {second}, so TensorBoard on either folder shows only part of "
            f"the study") in record.getMessage()


def test_a_resume_with_another_seed_warns_that_the_earlier_trials_lose_theirs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``for seed in (0, 1, 2): hpo.minimize(..., seed=seed)`` under one derived name made
    one study whose recorded seed was the last, and said nothing: the replicates were one
    run, and its first trials could not be reproduced from the recorded seed."""
    url = f"sqlite:///{tmp_path}/seeds.db"

    def objective(p: dict[str, float]) -> float:
        return p["x"]

    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        hpo.minimize(objective, SPACE, n_trials=2, storage=url, seed=0)
        hpo.minimize(objective, SPACE, n_trials=1, storage=url, seed=0)  # the same seed
        study = hpo.minimize(objective, SPACE, n_trials=1, storage=url)  # seed kept
        assert not [r for r in caplog.records if "were drawn with seed" in r.getMessage()]
        assert study.seed == 0
        study = hpo.minimize(objective, SPACE, n_trials=1, storage=url, seed=1)
    (record,) = [r for r in caplog.records if "were drawn with seed" in r.getMessage()]
    assert (f"Study {study.study_name!r}: its 4 earlier trial(s) were drawn with seed=0, and "
            f"this run uses seed=1") in record.getMessage()
    assert f"study_name='{study.study_name}-seed1'" in record.getMessage()
    assert study.seed == 1  # as documented: a resume records what it passes


def test_minimize_checks_its_run_options_before_storing_anything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    for bad in ({"n_trials": "10"}, {"n_trials": 1, "catch": ValueError()},
                {"sampler": RandomSampler()}):  # the last: no limit
        with pytest.raises(ConfigurationError):
            hpo.minimize(lambda p: 1.0, SPACE, storage=url, logdir=str(tmp_path / "runs"),
                         **bad)
    assert not (tmp_path / "o.db").exists() and not (tmp_path / "runs").exists()


def test_numpy_numbers_are_accepted_where_python_ones_are(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path}/n.db", heartbeat_interval=np.float32(5),
                   max_retries=np.int64(1))
    assert study.heartbeat_interval == 5.0
    study.optimize(lambda p: 1.0, n_trials=np.int64(2), n_jobs=np.int64(1))
    trial = study.ask(limit=np.int64(10))
    study.tell(trial, 1.0)
    assert len(study.trials) == 3


def test_a_failure_reason_that_is_not_text_is_stored_as_text() -> None:
    study = _study()

    def objective(params: dict[str, Any]) -> float:
        hpo.current_trial().mark_failed(42)  # type: ignore[arg-type]
        return 1.0

    study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL
    assert study.trials[0].system_attrs["fail_reason"] == "42"


def test_a_record_from_before_exact_flags_still_resumes_its_sampler(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    first = hpo.create_study(SPACE, storage=url, study_name="o",
                             sampler=AnnealSampler(shrink_coef=0.3),
                             pruner=MedianPruner(n_startup_trials=2))
    store = hpo.storages.get_storage(url)
    for key in ("sampler", "pruner"):  # what older versions wrote: no "exact"
        record = dict(store.get_study(first.study_id).attrs[key])
        del record["exact"]
        store.set_study_attr(first.study_id, key, record)
    again = hpo.create_study(SPACE, storage=url, study_name="o")
    assert isinstance(again.sampler, AnnealSampler) and again.sampler.shrink_coef == 0.3
    assert isinstance(again.pruner, MedianPruner) and again.pruner.n_startup_trials == 2


def test_minimize_reads_one_shot_catch_and_callbacks_once(tmp_path: Path) -> None:
    seen: list[int] = []

    def objective(params: dict[str, Any]) -> float:
        raise ValueError("caught")

    study = hpo.minimize(objective, SPACE, n_trials=2, storage=f"sqlite:///{tmp_path}/g.db",
                         catch=(e for e in [ValueError]),
                         callbacks=iter([lambda s, t: seen.append(t.number)]))
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert seen == [0, 1]


def test_minimize_resumes_a_grid_without_a_limit(tmp_path: Path) -> None:
    from hpo_plugins.samplers import GridSampler

    url, grid = f"sqlite:///{tmp_path}/grid.db", {"k": hp.choice("k", [1, 2, 3])}
    hpo.minimize(lambda p: p["k"], grid, n_trials=1, storage=url, study_name="g",
                 sampler=GridSampler())
    study = hpo.minimize(lambda p: p["k"], grid, storage=url, study_name="g")
    assert len(study.trials) == 3  # the stored grid ran to its end


def test_a_failure_reason_given_as_an_exception_is_stored_as_text() -> None:
    study = _study()

    def objective(params: dict[str, Any]) -> float:
        hpo.current_trial().mark_failed(ValueError("diverged"))  # type: ignore[arg-type]
        return 1.0

    study.optimize(objective, n_trials=1)
    assert study.trials[0].system_attrs["fail_reason"] == "diverged"


def test_script_objectives_take_paths_and_name_their_study(tmp_path: Path) -> None:
    import sys

    objective = ScriptObjective([Path(sys.executable), Path("train.py")])
    assert objective.command == [sys.executable, "train.py"]
    assert default_study_name(objective, "fp").startswith("ScriptObjective-")


def test_a_partial_with_a_big_argument_still_tells_literal_ones_apart() -> None:
    data = np.zeros(3)
    a = default_study_name(functools.partial(_train, data=data, lr=0.1), "fp")
    b = default_study_name(functools.partial(_train, data=data, lr=0.01), "fp")
    assert a != b


def test_pruners_and_the_launcher_take_numpy_integers_and_keep_python_ones() -> None:
    from hpo_plugins.pruners import HyperbandPruner, SuccessiveHalvingPruner
    from hpo_plugins.samplers._base import describe_object

    pruners = [MedianPruner(n_startup_trials=np.int64(2), n_warmup_steps=np.int64(1)),
               SuccessiveHalvingPruner(min_resource=np.int64(2), reduction_factor=np.int64(3)),
               HyperbandPruner(min_resource=np.int64(1), max_resource=np.int64(9))]
    for pruner in pruners:
        described = describe_object(pruner)
        assert described["exact"], described  # plain ints: a resume rebuilds it as it was
        assert all(type(v) is not np.int64 for v in described["params"].values())
    launcher = JoblibLauncher(n_jobs=np.int64(2))
    assert launcher.n_jobs == 2 and type(launcher.n_jobs) is int
    with pytest.raises(ConfigurationError, match="`n_jobs` to be an integer >= 1"):
        JoblibLauncher(n_jobs=True)


# -- trial ids and stored trials --------------------------------------------------------------


@pytest.mark.parametrize("storage", [":memory:", "sqlite"])
@pytest.mark.parametrize(("bad", "message"), [
    ("1", r"trial_id='1' \(of type str\)\. Convert it first: study.trial\(int\('1'\)\)"),
    (True, r"trial_id=True \(of type bool\)"),
    (1.0, r"trial_id=1.0 \(of type float\)"),
    (None, r"trial_id=None"),
])
def test_a_trial_id_of_another_type_is_refused(tmp_path: Path, storage: str, bad: Any,
                                               message: str) -> None:
    """Not "no trial with id 1" nor "a trial of another study": the type is what is wrong."""
    study = _study(f"sqlite:///{tmp_path}/ids.db" if storage == "sqlite" else storage)
    trial = study.ask()
    with pytest.raises(ConfigurationError, match=r"Expected `trial_id` to be an int, the "
                                                 r"storage id of a trial.*" + message):
        study.trial(bad)
    assert study.trial(np.int64(trial.trial_id)).number == trial.number  # numpy ints are ints


@pytest.mark.parametrize("method", ["natural_params", "requeue_lost"])
def test_methods_reading_a_stored_trial_refuse_a_number(method: str) -> None:
    study = _study()
    study.optimize(lambda p: p["x"], n_trials=1)
    with pytest.raises(ConfigurationError, match=r"to be a FrozenTrial.*Received: \w+=0 \(of "
                                                 rf"type int\)\..*study\.{method}\(study\."
                                                 r"trials\[n\]\)"):
        getattr(study, method)(0)
    assert study.natural_params(study.trials[0]) == study.trials[0].natural
