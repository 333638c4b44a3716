"""ask/tell, enqueue, resume, heartbeats and results, on every storage."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import (
    ConfigurationError,
    DuplicateStudyError,
    SpaceError,
    StudyNotFoundError,
    TrialFinishedError,
)
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.storages import Storage


def _study(space: Any, storage: Storage, **kwargs: Any) -> hpo.Study:
    kwargs.setdefault("sampler", RandomSampler())
    return hpo.create_study(space=space, storage=storage, study_name="s", **kwargs)


def test_ask_tell_gives_natural_params_and_records_the_value(
        nested_space: dict[str, Any], storage: Storage) -> None:
    study = _study(nested_space, storage, seed=3)
    trial = study.ask()
    assert trial.number == 0
    params = trial.params
    assert params["net"]["kind"] in ("mlp", "cnn")
    assert 1e-4 <= params["lr"] <= 1e-1
    frozen = study.tell(trial, 0.25)
    assert frozen.state is TrialState.COMPLETE and frozen.value == 0.25
    assert study.best_value == 0.25 and study.best_params == params
    assert study.trials[0].natural == _jsonish(params)


def _jsonish(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def test_same_seed_gives_the_same_sequence(nested_space: dict[str, Any],
                                           storage: Storage) -> None:
    first = hpo.create_study(space=nested_space, storage=storage, study_name="a", seed=7,
                             sampler=RandomSampler())
    second = hpo.create_study(space=nested_space, storage=storage, study_name="b", seed=7,
                              sampler=RandomSampler())
    for study in (first, second):
        study.optimize(lambda p: p["lr"], n_trials=5)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]


def test_tell_validates_values_and_states(nested_space: dict[str, Any],
                                          storage: Storage) -> None:
    study = _study(nested_space, storage)
    trial = study.ask()
    with pytest.raises(ConfigurationError, match="finite number to complete"):
        study.tell(trial, [0.3])  # a NaN fails the trial instead: test_study_api_fixes.py
    with pytest.raises(ConfigurationError, match="finite number to complete"):
        study.tell(trial, "0.3")
    with pytest.raises(ConfigurationError, match="COMPLETE, PRUNED or FAIL"):
        study.tell(trial, 1.0, state="RUNNING")
    study.tell(trial, state="fail", fail_reason="boom")
    assert study.trials[0].fail_reason == "boom"
    with pytest.raises(TrialFinishedError, match="immutable. .*ask a new trial"):
        study.tell(trial, 1.0)


def test_pruned_tell_keeps_the_last_report(nested_space: dict[str, Any],
                                           storage: Storage) -> None:
    study = _study(nested_space, storage)
    trial = study.ask()
    trial.report(0.9, 0)
    trial.report(0.7, 1)
    frozen = study.tell(trial, state=TrialState.PRUNED)
    assert frozen.value == 0.7 and frozen.intermediate_values == {0: 0.9, 1: 0.7}


def test_tell_without_a_state_follows_the_trials_marks(nested_space: dict[str, Any],
                                                      storage: Storage) -> None:
    """An adapter marks a trial (HPOCallback(trial=...) in ask/tell); a plain tell(trial, value)
    must not store it COMPLETE. Marks reach a trial told by number too; an explicit state wins."""
    study = _study(nested_space, storage)
    pruned, failed, by_number, forced = (study.ask() for _ in range(4))
    pruned.report(0.9, 0)
    pruned.report(0.7, 1)
    pruned.mark_pruned()
    failed.mark_failed("the monitored metric 'val_loss' was never logged")
    by_number.mark_pruned()
    forced.mark_pruned()
    assert study.tell(pruned, 0.1).state is TrialState.PRUNED
    assert study.tell(failed, 0.2).state is TrialState.FAIL
    assert study.tell(by_number.number, 0.3).state is TrialState.PRUNED
    assert study.tell(forced, 0.4, state="complete").state is TrialState.COMPLETE
    trials = study.trials
    assert trials[0].value == 0.1  # the value told, as with an explicit PRUNED
    assert trials[1].fail_reason == "the monitored metric 'val_loss' was never logged"
    assert study.best_trial.number == forced.number


def test_report_rejects_bad_input_and_fails_on_nan(nested_space: dict[str, Any],
                                                   storage: Storage) -> None:
    study = _study(nested_space, storage)
    trial = study.ask()
    with pytest.raises(ConfigurationError, match="reported value to be a number"):
        trial.report("x", 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"\(of type dict\)\. Report the one metric "
                                                 r"the pruner judges, e\.g\. trial\.report\("
                                                 r"metrics\['val_loss'\], step\)"):
        trial.report({"val_loss": 0.5, "acc": 0.9}, 0)  # type: ignore[arg-type]  # Ray's habit
    with pytest.raises(ConfigurationError, match="integer from 0 to 2\\*\\*63 - 1"):
        trial.report(1.0, -1)
    with pytest.raises(ConfigurationError, match="step=1180591620717411303424"):
        trial.report(1.0, 2 ** 70)  # SQL's INTEGER would overflow
    with pytest.raises(ConfigurationError, match="an array of 2 elements"):
        trial.report(np.array([1.0, 2.0]), 0)
    trial.report(0.5, np.int64(1))  # numpy integers are steps too
    assert trial.intermediate_values == {1: 0.5}
    trial.report(math.nan, 3)
    assert trial.should_prune()
    assert trial.fail_reason == "reported a non-finite value (nan) at step 3"


def test_enqueue_runs_first_with_nested_natural_values(nested_space: dict[str, Any],
                                                       storage: Storage) -> None:
    study = _study(nested_space, storage)
    wanted = {"lr": 0.01, "net": {"kind": "cnn", "filters": 64}}
    study.enqueue(wanted)
    study.enqueue({"lr": 0.001, "net": {"kind": "mlp", "layers": 3.0, "dropout": 0.2}})
    seen = []
    study.optimize(lambda p: seen.append(p) or 0.0, n_trials=3)
    assert seen[0] == wanted
    assert seen[1]["net"] == {"kind": "mlp", "layers": 3.0, "dropout": 0.2}
    assert study.trials[0].system_attrs["enqueued"] is True


def test_enqueue_user_attrs_are_the_trials_user_attrs(nested_space: dict[str, Any],
                                                      storage: Storage) -> None:
    study = _study(nested_space, storage)
    study.enqueue({"lr": 0.01, "net": {"kind": "cnn", "filters": 64}},
                  user_attrs={"source": "paper"})
    assert study.trials[0].user_attrs == {"source": "paper"}  # already while it waits
    study.optimize(lambda p: hpo.current_trial().set_user_attr("seen", p["lr"]) or 0.0,
                   n_trials=1)
    (trial,) = study.trials
    assert trial.user_attrs == {"source": "paper", "seen": 0.01}
    assert "enqueued_user_attrs" not in trial.system_attrs
    with pytest.raises(ConfigurationError, match="user attrs to be a JSON value"):
        study.enqueue({"lr": 0.01, "net": {"kind": "cnn", "filters": 64}},
                      user_attrs={"bad": object()})
    with pytest.raises(ConfigurationError, match="key of a trial attribute to be a str"):
        study.enqueue({"lr": 0.01, "net": {"kind": "cnn", "filters": 64}}, user_attrs={3: "x"})
    assert len(study.trials) == 1  # neither bad call queued anything


def test_enqueue_rejects_params_outside_the_space(nested_space: dict[str, Any],
                                                  storage: Storage) -> None:
    study = _study(nested_space, storage)
    with pytest.raises(SpaceError, match="Could not match"):
        study.enqueue({"lr": 0.01, "net": {"kind": "rnn"}})


def test_user_attrs_round_trip_on_every_trial(nested_space: dict[str, Any],
                                              storage: Storage) -> None:
    study = _study(nested_space, storage)

    def objective(params: Any) -> float:
        hpo.current_trial().set_user_attr("note", {"lr": params["lr"], "tags": ["a"]})
        return 1.0

    study.optimize(objective, n_trials=2)
    assert all(t.user_attrs["note"]["tags"] == ["a"] for t in study.trials)
    with pytest.raises(ConfigurationError, match="JSON value"):
        trial = study.ask()
        trial.set_user_attr("bad", object())


def test_resume_by_name_keeps_trials_and_checks_direction_and_space(
        nested_space: dict[str, Any], storage: Storage) -> None:
    study = _study(nested_space, storage)
    study.optimize(lambda p: 1.0, n_trials=2)
    again = _study(nested_space, storage)
    assert len(again.trials) == 2
    with pytest.raises(ConfigurationError, match="direction='minimize'"):
        _study(nested_space, storage, direction="maximize")
    with pytest.raises(ConfigurationError, match="another search space"):
        _study({"x": hp.uniform("x", 0, 1)}, storage)
    with pytest.raises(DuplicateStudyError, match="load_if_exists=True"):
        _study(nested_space, storage, load_if_exists=False)


def test_a_space_given_on_resume_is_recorded_when_the_study_had_none(
        nested_space: dict[str, Any], storage: Storage) -> None:
    """Created without a space, resumed with one: readers without the space (the CLI, exports,
    plots, load_study) must then see the parameters."""
    hpo.create_study(storage=storage, study_name="s")
    study = _study(nested_space, storage)
    study.tell(study.ask(), 0.5)
    loaded = hpo.load_study("s", storage)
    assert any(column.startswith("params_lr") for column in loaded.trials_dataframe().columns)
    hpo.load_study("s", storage, space=nested_space)  # the same space: accepted
    with pytest.raises(ConfigurationError, match="another search space"):
        _study({"x": hp.uniform("x", 0, 1)}, storage)


def test_resuming_with_the_default_pruner_warns_of_nothing(
        nested_space: dict[str, Any], storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """NopPruner, a class without an __init__ of its own, is recorded as exactly rebuildable."""
    _study(nested_space, storage).optimize(lambda p: 1.0, n_trials=1)
    with caplog.at_level(logging.WARNING):
        again = _study(nested_space, storage, sampler=None)
    assert isinstance(again.pruner, hpo.pruners.NopPruner)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_load_study_reads_without_space_and_rebuilds_the_pruner(
        nested_space: dict[str, Any], storage: Storage) -> None:
    pruner = hpo.pruners.MedianPruner(n_startup_trials=2)
    study = _study(nested_space, storage, pruner=pruner)
    study.optimize(lambda p: p["lr"], n_trials=3)
    loaded = hpo.load_study("s", storage)
    assert loaded.best_value == study.best_value
    assert loaded.best_params == _jsonish(study.best_params)
    assert isinstance(loaded.pruner, hpo.pruners.MedianPruner)
    assert loaded.pruner.get_params() == pruner.get_params()
    with pytest.raises(ConfigurationError, match="has no search space"):
        loaded.ask()
    with pytest.raises(StudyNotFoundError, match="Existing studies: \\['s'\\]"):
        hpo.load_study("missing", storage)


def test_best_trial_follows_direction(nested_space: dict[str, Any], storage: Storage) -> None:
    study = _study(nested_space, storage, direction="maximize")
    for value in (0.2, 0.9, 0.5):
        study.tell(study.ask(), value)
    assert study.best_value == 0.9 and study.best_trial.number == 1


def test_best_trial_without_results_says_what_to_do(nested_space: dict[str, Any],
                                                    storage: Storage) -> None:
    with pytest.raises(ConfigurationError, match="no COMPLETE trial yet"):
        _ = _study(nested_space, storage).best_trial


def test_stale_running_trial_fails_and_is_retried(nested_space: dict[str, Any],
                                                  storage: Storage) -> None:
    study = _study(nested_space, storage, heartbeat_interval=0.05, grace_period=0.2,
                   max_retries=1)
    dead = study.ask(heartbeat=True)  # its worker "dies": no heartbeat ever again
    manual = study.ask()  # asked by hand: no heartbeat, never stale
    time.sleep(0.3)
    retry = study.ask()
    states = {t.number: t.state for t in study.trials}
    assert states[dead.number] is TrialState.FAIL and states[manual.number] is TrialState.RUNNING
    assert "no heartbeat" in (study.trials[dead.number].fail_reason or "")
    assert retry.flat_params == dead.flat_params
    assert retry.system_attrs["retry_of"] == dead.number


def test_heartbeat_keeps_a_long_trial_alive(nested_space: dict[str, Any],
                                            storage: Storage) -> None:
    # a grace period of 20 beats: a heartbeat thread that the busy machine delays a while does
    # not look dead; the trial lasts 1.5 grace periods, so without heartbeats it would be reaped
    study = _study(nested_space, storage, heartbeat_interval=0.05, grace_period=1.0)

    def slow(params: Any) -> float:
        time.sleep(1.5)
        study.ask()  # another worker asking meanwhile must not reap this live trial
        return 1.0

    study.optimize(slow, n_trials=1)
    assert study.trials[0].state is TrialState.COMPLETE


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"direction": "up"}, 'Expected `direction` to be "minimize" or "maximize"'),
    ({"sampler": "tpe"}, "Expected `sampler` to be an instance of Sampler"),
    ({"pruner": 3}, "Expected `pruner` to be an instance of Pruner"),
    ({"heartbeat_interval": 0}, "heartbeat_interval"),
    ({"heartbeat_interval": 10, "grace_period": 5}, "longer than `heartbeat_interval`"),
    ({"max_retries": -1}, "max_retries"),
])
def test_create_study_rejects_bad_arguments(nested_space: dict[str, Any], kwargs: dict[str, Any],
                                            message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        hpo.create_study(space=nested_space, storage=":memory:", **kwargs)


def test_trials_dataframe_has_stable_flat_columns(nested_space: dict[str, Any],
                                                  storage: Storage) -> None:
    study = _study(nested_space, storage)
    study.enqueue({"lr": 0.01, "net": {"kind": "cnn", "filters": 64}})
    study.optimize(lambda p: p["lr"], n_trials=3)
    frame = study.trials_dataframe()
    for column in ("number", "state", "value", "params_lr", "params_net", "params_cnn_filters",
                   "params_mlp_layers", "duration_s"):
        assert column in frame.columns
    first = frame.iloc[0]
    assert first["params_cnn_filters"] == 64
    assert first["params_mlp_layers"] is None or math.isnan(first["params_mlp_layers"])
    assert list(frame["state"]) == ["COMPLETE"] * 3


def test_default_storage_is_a_persistent_sqlite_file(nested_space: dict[str, Any],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import os

    caplog.set_level(logging.INFO, logger="hpo_plugins")
    study = hpo.minimize(lambda p: p["lr"], nested_space, n_trials=2, study_name="persist",
                         sampler=RandomSampler())
    assert os.path.exists("hpo.db")
    assert "hpo.db" in caplog.text
    again = hpo.minimize(lambda p: p["lr"], nested_space, max_trials=3, study_name="persist",
                         sampler=RandomSampler())
    assert len(again.trials) == 3 and len(study.trials) == 3


def test_a_trial_with_a_heartbeat_records_the_grace_period_of_its_process() -> None:
    """So that a launcher with a shorter grace period does not fail it while it runs."""
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=None,
                             grace_period=90.0)
    assert study.ask(heartbeat=True).system_attrs["grace_period"] == 90.0
    assert "grace_period" not in study.ask().system_attrs  # no heartbeat: never stale


@pytest.mark.parametrize("state", ["PRUNED", "COMPLETE"])
def test_a_trial_marked_failed_ends_fail_whatever_state_is_told(
        nested_space: dict[str, Any], storage: Storage, state: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """Optuna's idiom after should_prune() said True on a NaN report: tell(state="PRUNED")."""
    study = _study(nested_space, storage)
    trial = study.ask()
    trial.report(0.5, 0)
    trial.report(math.nan, 1)
    assert trial.should_prune()
    with caplog.at_level(logging.WARNING, logger="hpo_plugins.study"):
        frozen = study.tell(trial, 0.5, state=state)
    assert frozen.state is TrialState.FAIL
    assert frozen.fail_reason == "reported a non-finite value (nan) at step 1"
    assert frozen.system_attrs["diverged"] is True
    assert f"was marked failed (reported a non-finite value (nan) at step 1) before it was " \
           f"told {state}: stored FAIL" in caplog.text
