"""Study API: enqueue(skip_if_exists=), tell of non-finite values and without a value, natural
params without a space, load_study/delete_study on a missing SQLite file, Study.stop()."""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import ConfigurationError, StudyNotFoundError
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.storages import SQLStorage, Storage

SPACE = {"x": hp.uniform("x", 0, 1), "k": hp.choice("k", ["a", "b"])}


def _study(storage: Any, space: Any = SPACE, name: str = "s") -> hpo.Study:
    return hpo.create_study(space=space, storage=storage, study_name=name,
                            sampler=RandomSampler(), seed=0)


# -- enqueue(skip_if_exists=) -----------------------------------------------------------------


def test_enqueue_returns_the_queued_trial(storage: Storage) -> None:
    study = _study(storage)
    queued = study.enqueue({"x": 0.5, "k": "b"})
    assert queued is not None and queued.state is TrialState.WAITING
    assert queued.number == 0 and queued.params == {"x": 0.5, "k": 1}
    assert queued == study.trials[0]


@pytest.mark.parametrize("state", ["WAITING", "RUNNING", "COMPLETE", "PRUNED"])
def test_enqueue_skip_if_exists_queues_nothing_for_a_live_or_finished_twin(
        storage: Storage, state: str, caplog: pytest.LogCaptureFixture) -> None:
    study = _study(storage)
    study.enqueue({"x": 0.3, "k": "a"})
    if state != "WAITING":
        trial = study.ask()
        if state != "RUNNING":
            study.tell(trial, 1.0, state=state)
    caplog.set_level(logging.INFO, logger="hpo_plugins")
    assert study.enqueue({"x": 0.1 * 3, "k": "a"}, skip_if_exists=True) is None  # 0.3 rounded
    assert len(study.trials) == 1
    assert f"trial 0 ({state}) already has the parameters" in caplog.text
    other = study.enqueue({"x": 0.3, "k": "b"}, skip_if_exists=True)  # another configuration
    assert other is not None and other.number == 1


def test_enqueue_skip_if_exists_runs_a_failed_configuration_again(storage: Storage) -> None:
    study = _study(storage)
    study.enqueue({"x": 0.3, "k": "a"})
    study.tell(study.ask(), state="FAIL", fail_reason="out of memory")
    again = study.enqueue({"x": 0.3, "k": "a"}, skip_if_exists=True)
    assert again is not None and again.state is TrialState.WAITING and again.number == 1


def _crashed_warm_start(storage: Storage) -> hpo.Study:
    """A study whose enqueued warm start was running when its process died: RUNNING, with a
    heartbeat that nobody refreshes (grace period 0.3 s)."""
    study = hpo.create_study(space=SPACE, storage=storage, study_name="warm",
                             sampler=RandomSampler(), seed=0, heartbeat_interval=0.1,
                             grace_period=0.3)
    study.enqueue({"x": 0.25, "k": "a"}, skip_if_exists=True)
    assert study.ask(heartbeat=True).params == {"x": 0.25, "k": "a"}  # then the crash
    return study


def test_enqueue_skip_if_exists_runs_a_warm_start_lost_in_a_crash_again(
        storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    study = _crashed_warm_start(storage)
    time.sleep(0.5)  # the re-run comes after the grace period
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        again = study.enqueue({"x": 0.25, "k": "a"}, skip_if_exists=True)
    assert again is not None and again.state is TrialState.WAITING
    assert study.trials[0].state is TrialState.FAIL  # failed as lost before the check
    assert "Trial 0 lost its worker" in caplog.text
    study.optimize(lambda p: p["x"], n_trials=1)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].params == {"x": 0.25, "k": 0}


def test_enqueue_skip_if_exists_within_the_grace_period_says_when_to_enqueue_again(
        storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    """The documented limit: right after the crash the trial still looks alive."""
    study = _crashed_warm_start(storage)
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        assert study.enqueue({"x": 0.25, "k": "a"}, skip_if_exists=True) is None
    assert "trial 0 (RUNNING) already has the parameters" in caplog.text
    assert "failed once its heartbeat is 0.3 s old; enqueue again after that" in caplog.text


def test_a_re_run_script_trains_its_warm_start_once(tmp_path: Path) -> None:
    """The motivation: the script enqueues its warm start, runs, and is run again to resume."""
    url = f"sqlite:///{tmp_path}/hpo.db"
    seen: list[Any] = []
    for _ in range(3):
        study = hpo.create_study(space=SPACE, storage=url, study_name="script", seed=0)
        study.enqueue({"x": 0.25, "k": "a"}, skip_if_exists=True)
        study.optimize(lambda p: seen.append(p) or p["x"], n_trials=1)
        study.storage.close()
    assert seen.count({"x": 0.25, "k": "a"}) == 1 and len(seen) == 3


def test_enqueue_refuses_a_skip_if_exists_that_is_not_a_bool(storage: Storage) -> None:
    study = _study(storage)
    with pytest.raises(ConfigurationError, match="`skip_if_exists` to be True or False. "
                                                 "Received: skip_if_exists='yes'"):
        study.enqueue({"x": 0.3, "k": "a"}, skip_if_exists="yes")  # type: ignore[arg-type]
    assert study.trials == []


# -- tell: non-finite values, non-numbers, no value -------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32("nan")])
@pytest.mark.parametrize("state", [None, "COMPLETE", "PRUNED"])
def test_tell_of_a_non_finite_value_fails_the_trial(
        storage: Storage, value: Any, state: str | None,
        caplog: pytest.LogCaptureFixture) -> None:
    study = _study(storage)
    trial = study.ask()
    trial.report(0.5, 0)
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        frozen = study.tell(trial, value, state=state)
    reason = f"the value told was {float(value)!r}"
    assert frozen.state is TrialState.FAIL and frozen.value is None
    assert frozen.fail_reason == reason
    assert study.trials[0].state is TrialState.FAIL
    assert f"Trial 0 was told {state or 'COMPLETE'} with the value" in caplog.text
    assert reason in caplog.text


def test_tell_and_the_run_loop_both_fail_a_nan(storage: Storage) -> None:
    study = _study(storage)
    study.optimize(lambda p: math.nan, n_trials=1)
    told = study.tell(study.ask(), math.nan)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert study.trials[0].fail_reason == "the objective returned nan"
    assert told.fail_reason == "the value told was nan"


def test_tell_of_nan_to_a_trial_marked_pruned_fails_it(storage: Storage) -> None:
    study = _study(storage)
    trial = study.ask()
    trial.report(0.5, 0)
    trial.mark_pruned()
    assert study.tell(trial, math.inf).state is TrialState.FAIL


@pytest.mark.parametrize(("value", "what"), [
    ("0.3", "'0.3' \\(of type str\\)"),
    ([0.3], "\\[0.3\\] \\(of type list\\)"),
    (object(), "of type object"),
    (np.array([1.0, 2.0]), "an array of 2 elements"),
])
@pytest.mark.parametrize(("state", "verb"), [(None, "complete"), ("PRUNED", "prune")])
def test_tell_refuses_a_value_that_is_not_a_number(storage: Storage, value: Any, what: str,
                                                   state: str | None, verb: str) -> None:
    study = _study(storage)
    trial = study.ask()
    with pytest.raises(ConfigurationError,
                       match=f"finite number to {verb} trial 0 of study 's'. Received: .*{what}"
                             f".*still RUNNING: tell it again with a number, or with "
                             f"state='FAIL'"):
        study.tell(trial, value, state=state)
    assert study.trials[0].state is TrialState.RUNNING
    assert study.tell(trial, 0.25).value == 0.25


def test_tell_without_a_value_completes_with_the_last_report(storage: Storage) -> None:
    study = _study(storage)
    trial = study.ask()
    trial.report(0.9, 0)
    trial.report(0.4, 1)
    frozen = study.tell(trial)
    assert frozen.state is TrialState.COMPLETE and frozen.value == 0.4
    by_number = study.ask()
    by_number.report(0.7, 0)
    assert study.tell(by_number.number).value == 0.7  # reports reach a trial told by number


def test_tell_without_a_value_or_a_report_says_how_to_give_one(storage: Storage) -> None:
    study = _study(storage)
    trial = study.ask()
    with pytest.raises(ConfigurationError, match="Received: no value, and the trial reported "
                                                 "none. The trial is still RUNNING: pass "
                                                 "value=.*trial.report\\(value\\) first"):
        study.tell(trial)
    assert study.trials[0].state is TrialState.RUNNING
    assert study.tell(trial, state="FAIL").state is TrialState.FAIL


def test_tell_of_a_number_no_trial_has_names_the_numbers_there(storage: Storage) -> None:
    study = _study(storage)
    with pytest.raises(ConfigurationError, match=r"Expected the number of a trial of study "
                                                 r"'.*' \(it has no trials yet\)\. Received: 0"):
        study.tell(0, 1.0)
    study.ask(), study.ask()
    with pytest.raises(ConfigurationError, match=r"\(its trials are numbered 0 to 1\)\. "
                                                 r"Received: 7\. Pass a number from "
                                                 r"study.trials"):
        study.tell(7, 1.0)


# -- natural params without a space -----------------------------------------------------------


LIST_SPACE = {
    "layers": [hp.choice("width", [16, 32]), 8],
    "opt": hp.choice("opt", [
        {"name": "sgd", "betas": (hp.uniform("beta", 0, 1), [0.9, {"deep": [1, 2]}])},
        ["adam", [1, 2]],
    ]),
}


@pytest.mark.parametrize("opt", [0, 1])
def test_natural_params_without_a_space_match_the_space_build(storage: Storage,
                                                              opt: int) -> None:
    study = _study(storage, LIST_SPACE)
    flat = {"width": 1, "opt": opt, **({"beta": 0.5} if opt == 0 else {})}
    built = study.space.build(flat)  # type: ignore[union-attr]
    assert isinstance(built["layers"], tuple)  # Hyperopt builds a list of a space as a tuple
    study.enqueue(built)
    study.tell(study.ask(), 1.0)
    loaded = hpo.load_study("s", storage)
    assert isinstance(study.trials[0].natural["layers"], list)  # stored as JSON
    assert loaded.best_params == study.best_params == built
    assert loaded.natural_params(loaded.trials[0]) == built
    assert isinstance(loaded.best_params["layers"], tuple)
    assert isinstance(loaded.best_params["opt"], dict if opt == 0 else tuple)
    # a live trial of a study opened without its space (a script-mode child) agrees too
    running = study.ask()
    assert loaded.trial(running.trial_id).params == running.params


# -- load_study / delete_study on a missing SQLite file ---------------------------------------


def _missing_urls(tmp_path: Path) -> list[tuple[str, str]]:
    """(URL, the absolute path of the file it names), none of which exists."""
    return [
        (f"sqlite:///{tmp_path}/no/such/folder/hpo.db", f"{tmp_path}/no/such/folder/hpo.db"),
        ("sqlite:///missing.db", os.path.abspath("missing.db")),
        ("sqlite+pysqlite:///other.db", os.path.abspath("other.db")),
        ("sqlite:///file:uri.db?mode=rwc&uri=true", os.path.abspath("uri.db")),
    ]


@pytest.mark.parametrize("function", ["load_study", "delete_study"])
def test_a_missing_sqlite_file_is_refused_and_nothing_created(tmp_path: Path,
                                                             function: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    for url, path in _missing_urls(tmp_path):
        with pytest.raises(StudyNotFoundError,
                           match=f"No study named 'demo': the SQLite file {path} does not "
                                 f"exist, and nothing was created"):
            getattr(hpo, function)("demo", url)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_default_storage_is_refused_when_its_file_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StudyNotFoundError, match=f"{tmp_path / 'hpo.db'} \\(the default "
                                                 f"storage: \\$HPO_PLUGINS_STORAGE"):
        hpo.load_study("demo")
    monkeypatch.setenv("HPO_PLUGINS_STORAGE", "sqlite:///runs/env.db")
    with pytest.raises(StudyNotFoundError, match=f"{tmp_path / 'runs' / 'env.db'}"):
        hpo.delete_study("demo")
    assert list(tmp_path.iterdir()) == []


def test_existing_files_memory_and_storage_objects_are_opened_as_before(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hpo.db"
    _study(url, name="kept").storage.close()
    loaded = hpo.load_study("kept", url)
    assert loaded.study_name == "kept"
    loaded.storage.close()
    with pytest.raises(StudyNotFoundError, match="No study named 'other' in .*Existing "
                                                 "studies: \\['kept'\\]"):
        hpo.load_study("other", url)
    with pytest.raises(StudyNotFoundError, match="Existing studies: \\[\\]"):
        hpo.load_study("demo", ":memory:")
    store = SQLStorage(f"sqlite:///{tmp_path}/object.db")  # a Storage object is not checked
    with pytest.raises(StudyNotFoundError, match="Existing studies: \\[\\]"):
        hpo.load_study("demo", store)
    store.close()


# -- delete_study -----------------------------------------------------------------------------


def test_delete_study_removes_the_study_and_its_trials_only(storage: Storage) -> None:
    doomed, kept = _study(storage, name="doomed"), _study(storage, name="kept")
    doomed.optimize(lambda p: p["x"], n_trials=2)
    kept.optimize(lambda p: p["x"], n_trials=3)
    hpo.delete_study("doomed", storage)
    assert [info.name for info in storage.list_studies()] == ["kept"]
    assert len(hpo.load_study("kept", storage).trials) == 3
    with pytest.raises(StudyNotFoundError, match="Existing studies: \\['kept'\\]"):
        hpo.load_study("doomed", storage)
    with pytest.raises(StudyNotFoundError, match="No study named 'doomed'.*Existing studies: "
                                                 "\\['kept'\\]"):
        hpo.delete_study("doomed", storage)
    again = _study(storage, name="doomed")  # the name is free again
    assert again.trials == []


def test_delete_study_by_url(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path}/hpo.db"
    study = _study(url, name="old")
    study.optimize(lambda p: p["x"], n_trials=1)
    study.storage.close()
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        hpo.delete_study("old", storage=url)
    assert "Deleted study 'old' and its trials" in caplog.text
    with pytest.raises(StudyNotFoundError, match="Existing studies: \\[\\]"):
        hpo.delete_study("old", url)


def test_delete_study_is_public_and_checks_the_name() -> None:
    assert "delete_study" in hpo.__all__
    with pytest.raises(ConfigurationError, match="`study_name` to be the name of a study "
                                                 "\\(a str\\). Received: study_name=3"):
        hpo.delete_study(3, ":memory:")  # type: ignore[arg-type]


def test_delete_study_missing_ok_starts_afresh_on_the_first_run_too(tmp_path: Path) -> None:
    """Keras Tuner's overwrite=True ported as delete-then-create: the first run had no study
    (nor file) and delete_study raised StudyNotFoundError."""
    url = f"sqlite:///{tmp_path}/fresh.db"
    for _ in range(2):
        hpo.delete_study("fresh", url, missing_ok=True)
        study = hpo.minimize(lambda p: p["x"], SPACE, n_trials=2, storage=url,
                             study_name="fresh")
        assert len(study.trials) == 2  # a new study each time
    with pytest.raises(StudyNotFoundError):
        hpo.delete_study("other", url)
    with pytest.raises(ConfigurationError, match="Expected `missing_ok` to be True or False"):
        hpo.delete_study("fresh", url, missing_ok="yes")  # type: ignore[arg-type]


# -- stop() -----------------------------------------------------------------------------------


def test_stop_sets_a_flag_that_each_optimize_call_clears(storage: Storage) -> None:
    study = _study(storage)
    assert study.stop_requested is False
    study.stop()  # outside optimize: does not carry over into the next call
    assert study.stop_requested is True
    seen: list[bool] = []
    study.optimize(lambda p: seen.append(study.stop_requested) or 0.0, n_trials=1)
    assert seen == [False] and study.stop_requested is False
    with pytest.raises(AttributeError):
        study.stop_requested = True  # type: ignore[misc]


def test_a_stop_from_a_callback_stays_visible_after_the_call(storage: Storage) -> None:
    study = _study(storage)

    def stop_after_first(study: hpo.Study, frozen: hpo.FrozenTrial) -> None:
        study.stop()

    study.optimize(lambda p: p["x"], n_trials=1, callbacks=[stop_after_first])
    assert study.stop_requested is True


def test_a_pickled_copy_starts_without_a_stop_request(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path}/hpo.db")
    study.stop()
    copy = pickle.loads(pickle.dumps(study))
    assert copy.stop_requested is False and study.stop_requested is True
    assert study.__getstate__()["_stop_requested"] is False
    old_pickle = study.__getstate__()
    del old_pickle["_stop_requested"]  # a study pickled before the flag existed
    revived = hpo.Study.__new__(hpo.Study)
    revived.__setstate__(old_pickle)
    assert revived.stop_requested is False
    copy.storage.close()
    study.storage.close()


# -- a study resumed with another space ---------------------------------------------------


def test_another_space_error_says_what_changed_and_how_to_start_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/spaces.db"
    hpo.create_study({"lr": hp.loguniform("lr", -5, 0), "drop": hp.uniform("drop", 0, 0.5),
                      "opt": hp.choice("opt", ["adam", "sgd"])}, storage=url, study_name="s")
    changed = {"lr": hp.loguniform("lr", -6, 0), "opt": hp.choice("opt", ["adam", "sgd"]),
               "wd": hp.uniform("wd", 0, 1)}
    with pytest.raises(ConfigurationError) as raised:
        hpo.create_study(changed, storage=url, study_name="s")
    message = str(raised.value)
    assert "only in the stored space: drop" in message
    assert "only in this one: wd" in message
    assert "changed: lr (loguniform(low=-5, high=0) -> loguniform(low=-6, high=0))" in message
    assert "opt" not in message.split("changed:")[1]  # unchanged parameters are not named
    # the advice pastes as it is (it said `storage`, a NameError pasted into a notebook)
    advised = re.search(r"\((hpo\.delete_study\(.*?\)) or `(.*?)`", message)
    assert advised is not None
    assert advised.group(2) == f"hpo-plugins delete --study s --storage {url}"
    assert eval(advised.group(1), {"hpo": _Recorder(url)}) == "the advice ran"
    with pytest.raises(ConfigurationError, match="only in this one: wd"):
        hpo.load_study("s", url, space=changed)


class _Recorder:
    """Stands for ``hpo`` where the advised call is evaluated: checks its arguments."""

    def __init__(self, url: str) -> None:
        self.url = url

    def delete_study(self, name: str, storage: str) -> str:
        assert (name, storage) == ("s", self.url)
        return "the advice ran"


# -- a hand-run trial block that raises ---------------------------------------------------


def test_a_trial_block_that_raises_fails_its_trial() -> None:
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    with pytest.raises(ValueError, match="diverged"), study.ask() as trial:
        trial.report(0.5, 0)
        raise ValueError("diverged")
    frozen = study.trials[0]
    assert frozen.state is TrialState.FAIL
    assert frozen.fail_reason == "ValueError: diverged"


def test_a_trial_block_that_raises_trial_pruned_prunes_it() -> None:
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    with pytest.raises(hpo.TrialPruned), study.ask() as trial:
        trial.report(0.25, 3)
        raise hpo.TrialPruned()
    assert (study.trials[0].state, study.trials[0].value) == (TrialState.PRUNED, 0.25)


def test_a_trial_told_inside_its_block_is_not_told_again() -> None:
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    with pytest.raises(RuntimeError, match="after the tell"), study.ask() as trial:
        study.tell(trial, 0.5)
        raise RuntimeError("after the tell")
    assert (study.trials[0].state, study.trials[0].value) == (TrialState.COMPLETE, 0.5)
    with study.ask() as trial:  # no exception: the block leaves the trial to tell
        pass
    assert study.trials[1].state is TrialState.RUNNING


def test_a_block_inside_an_objective_leaves_the_trial_to_the_run_loop() -> None:
    """The run loop tells its own trials: a ``with hpo.current_trial():`` block in the objective
    that raises must not tell it first (``catch=`` then still applies)."""
    def objective(params: dict[str, Any]) -> float:
        with hpo.current_trial():
            raise ValueError("bad config")

    study = hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=3,
                         storage=":memory:", catch=ValueError)
    assert [t.fail_reason for t in study.trials] == ["ValueError: bad config"] * 3


def test_only_the_outermost_block_finishes_a_hand_asked_trial() -> None:
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    trial = study.ask()
    with pytest.raises(ValueError), trial:
        try:
            with trial:
                raise ValueError("inner")
        finally:
            assert study.trials[0].state is TrialState.RUNNING  # the inner exit told nothing
    assert study.trials[0].fail_reason == "ValueError: inner"
