"""HPOCallback with real Keras training on CPU: reports, pruning, failures, no-op outside."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras import HPOCallback

pytestmark = pytest.mark.slow

Data = dict[str, np.ndarray]
PARAMS = {"units": 4, "lr": 0.01}


def fit(build_fn: Callable[[Any], Any], digits: Data, callbacks: list[Any], epochs: int,
        validate: bool = False) -> Any:
    """Fit the tiny network on the digits subsets; return the History."""
    validation = (digits["x_val"], digits["y_val"]) if validate else None
    return build_fn(PARAMS).fit(digits["x"], digits["y"], validation_data=validation,
                                epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)


def run_study(objective: Callable[[Any], Any], **kwargs: Any) -> hpo.Study:
    return hpo.minimize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                        show_progress_bar=False, **kwargs)


class Poison(keras.callbacks.Callback):
    """Writes NaN into the epoch logs at ``epoch``, as a diverged training would log."""

    def __init__(self, key: str, epoch: int) -> None:
        super().__init__()
        self.key, self.epoch = key, epoch

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.epoch:
            logs[self.key] = math.nan


def test_outside_a_study_it_does_nothing_and_says_so_once(
        build_fn: Any, digits: Data, caplog: pytest.LogCaptureFixture) -> None:
    callback = HPOCallback()
    with caplog.at_level(logging.INFO, logger="hpo_plugins.keras"):
        first = fit(build_fn, digits, [callback], epochs=2)
        second = fit(build_fn, digits, [callback], epochs=1)

    assert len(first.epoch) == 2 and len(second.epoch) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "hpo_plugins.keras"]
    assert len(messages) == 1
    assert "no trial is active" in messages[0]


def test_reports_the_study_metric_every_epoch_inside_a_study(build_fn: Any,
                                                             digits: Data) -> None:
    epochs_run: list[int] = []

    def objective(params: Any) -> None:
        epochs_run.append(len(fit(build_fn, digits, [HPOCallback()], epochs=3).epoch))

    study = run_study(objective, n_trials=1, metric="loss")

    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [0, 1, 2]  # step = epoch
    assert trial.value == trial.intermediate_values[2]  # None returned: the last report
    assert epochs_run == [3]


def test_prunes_through_stop_training_and_the_loop_records_pruned(
        build_fn: Any, digits: Data, prune_at: Any) -> None:
    epochs_run: list[int] = []

    def objective(params: Any) -> None:
        epochs_run.append(len(fit(build_fn, digits, [HPOCallback("loss")], epochs=4).epoch))

    study = run_study(objective, n_trials=2, pruner=prune_at(number=0, step=1))

    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert epochs_run == [2, 4]
    assert sorted(study.trials[0].intermediate_values) == [0, 1]


def test_interval_reports_every_nth_epoch_only(build_fn: Any, digits: Data) -> None:
    def objective(params: Any) -> None:
        fit(build_fn, digits, [HPOCallback("loss", interval=2)], epochs=4)

    study = run_study(objective, n_trials=1)

    assert sorted(study.trials[0].intermediate_values) == [1, 3]


def test_an_explicit_trial_outside_the_run_loop(build_fn: Any, digits: Data) -> None:
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             direction="maximize", metric="val_accuracy")
    trial = study.ask()

    fit(build_fn, digits, [HPOCallback(trial=trial)], epochs=2, validate=True)
    study.tell(trial, trial.last_value)

    assert sorted(study.trials[0].intermediate_values) == [0, 1]
    assert study.best_value == study.trials[0].intermediate_values[1]


def test_a_missing_metric_warns_fails_the_trial_and_stops(build_fn: Any,
                                                          digits: Data) -> None:
    epochs_run: list[int] = []

    def objective(params: Any) -> None:
        epochs_run.append(len(fit(build_fn, digits, [HPOCallback()], epochs=3).epoch))

    with pytest.warns(UserWarning, match=r"'val_loss' was not logged.*'accuracy', 'loss'"):
        study = run_study(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "'val_loss' was not logged" in trial.system_attrs["fail_reason"]
    assert epochs_run == [1]


def test_a_non_finite_value_stops_and_fails_the_trial(build_fn: Any, digits: Data) -> None:
    epochs_run: list[int] = []

    def objective(params: Any) -> None:
        callbacks = [Poison("loss", epoch=1), HPOCallback("loss")]
        epochs_run.append(len(fit(build_fn, digits, callbacks, epochs=4).epoch))

    study = run_study(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "non-finite" in trial.system_attrs["fail_reason"]
    assert epochs_run == [2]


def test_a_deep_copy_shares_the_trial_and_the_options() -> None:
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:")
    callback = HPOCallback("val_auc", trial=study.ask(), interval=3)

    clone = copy.deepcopy(callback)

    assert clone is not callback and clone.trial is callback.trial
    assert (clone.monitor, clone.interval) == ("val_auc", 3)
    assert repr(clone) == "HPOCallback(monitor='val_auc', interval=3)"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"monitor": ""}, r"Expected `monitor` to be a metric name or None. Received: monitor=''"),
    ({"monitor": 3}, r"Received: monitor=3"),
    ({"trial": "t"}, r"Expected `trial` to be a Trial or None. Received: trial='t'"),
    ({"interval": 0}, r"Expected `interval` to be an integer >= 1. Received: interval=0"),
    ({"interval": True}, r"Received: interval=True"),
])
def test_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HPOCallback(**kwargs)
