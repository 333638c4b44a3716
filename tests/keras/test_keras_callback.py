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


class BatchCounter(keras.callbacks.Callback):
    """Counts the training batches a fit runs."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.batches += 1


@pytest.mark.parametrize("decided", ["pruned", "failed"])
def test_a_fit_after_the_trial_was_decided_stops_and_reports_nothing(
        build_fn: Any, digits: Data, prune_at: Any, decided: str) -> None:
    """Fine-tuning after the decision (a second fit with initial_epoch) trained every epoch and
    stored its reports on the PRUNED (or FAIL) trial; a second fit from epoch 0 raised through
    Keras and stopped the study. Keras looks at stop_training only after a batch: one batch."""
    counter = BatchCounter()
    poison = [Poison("loss", 1)] if decided == "failed" else []

    def objective(params: Any) -> None:
        model = build_fn(PARAMS)
        model.fit(digits["x"], digits["y"], epochs=4, batch_size=64, verbose=0,
                  callbacks=[*poison, HPOCallback("loss")])
        for initial_epoch in (2, 0):  # fine-tuning on; a fit from scratch
            model.fit(digits["x"], digits["y"], initial_epoch=initial_epoch, epochs=6,
                      batch_size=64, verbose=0, callbacks=[counter, HPOCallback("loss")])

    study = run_study(objective, n_trials=1, pruner=prune_at(number=0, step=1))

    (trial,) = study.trials
    assert trial.state is (TrialState.PRUNED if decided == "pruned" else TrialState.FAIL)
    assert sorted(trial.intermediate_values) == ([0, 1] if decided == "pruned" else [0])
    assert counter.batches == 2  # one batch in each later fit


def test_interval_reports_every_nth_epoch_only(build_fn: Any, digits: Data) -> None:
    def objective(params: Any) -> None:
        fit(build_fn, digits, [HPOCallback("loss", interval=2)], epochs=4)

    study = run_study(objective, n_trials=1)

    assert sorted(study.trials[0].intermediate_values) == [1, 3]


def test_interval_follows_keras_validation_freq_also_after_initial_epoch(
        build_fn: Any, digits: Data) -> None:
    def objective(params: Any) -> None:  # Keras validates where epoch + 1 is even: 1 and 3
        build_fn(PARAMS).fit(digits["x"], digits["y"], epochs=5, initial_epoch=1,
                             validation_data=(digits["x_val"], digits["y_val"]),
                             validation_freq=2, batch_size=64, verbose=0,
                             callbacks=[HPOCallback(interval=2)])

    study = run_study(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [1, 3]


def test_a_second_fit_from_epoch_0_is_refused_with_the_initial_epoch_fix(
        build_fn: Any, digits: Data) -> None:
    trials: list[Any] = []

    def objective(params: Any) -> None:
        trials.append(hpo.current_trial())
        model = build_fn(PARAMS)
        first = model.fit(digits["x"], digits["y"], epochs=2, batch_size=64, verbose=0,
                          callbacks=[HPOCallback("loss")])
        model.fit(digits["x"], digits["y"], initial_epoch=len(first.epoch), epochs=4,
                  batch_size=64, verbose=0, callbacks=[HPOCallback("loss")])  # goes on: fine
        model.fit(digits["x"], digits["y"], epochs=2, batch_size=64, verbose=0,
                  callbacks=[HPOCallback("loss")])  # from epoch 0 again

    with pytest.raises(ConfigurationError,
                       match=r"the last at step 3\). Received: epoch=0, so a later model.fit in "
                             r"the same trial counts its epochs from 0 again. Pass "
                             r"initial_epoch=4"):
        run_study(objective, n_trials=1)

    assert sorted(trials[0].intermediate_values) == [0, 1, 2, 3]


def test_a_second_fit_from_epoch_0_after_a_one_epoch_fit_is_refused_too(
        build_fn: Any, digits: Data) -> None:
    """Step 0 again after a first fit of one epoch would silently overwrite it."""
    def objective(params: Any) -> None:
        model = build_fn(PARAMS)
        for _ in range(2):
            model.fit(digits["x"], digits["y"], epochs=1, batch_size=64, verbose=0,
                      callbacks=[HPOCallback("loss")])

    with pytest.raises(ConfigurationError, match=r"Received: epoch=0.*Pass initial_epoch=1"):
        run_study(objective, n_trials=1)


def test_the_default_val_loss_in_a_maximising_study_is_refused_when_fit_starts(
        build_fn: Any, digits: Data) -> None:
    epochs_run: list[int] = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            epochs_run.append(epoch)

    def objective(params: Any) -> None:
        fit(build_fn, digits, [HPOCallback(), Count()], epochs=2, validate=True)

    with pytest.raises(ConfigurationError,
                       match=r"HPOCallback: Expected a metric to maximize.*Received: the study's "
                             r"metric 'val_loss', monitored by default .*hpo.maximize\(\.\.\., "
                             r"metric='val_accuracy'\)"):  # what Keras logs
        hpo.maximize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                     n_trials=2, show_progress_bar=False)

    assert epochs_run == []  # refused before the first epoch


def test_another_name_against_the_study_direction_warns_and_runs(
        build_fn: Any, digits: Data) -> None:
    """The word rules can misread a name the user chose, so it only warns."""
    def objective(params: Any) -> None:
        fit(build_fn, digits, [HPOCallback("val_accuracy")], epochs=2, validate=True)

    with pytest.warns(UserWarning, match=r"Expected a metric to minimize.*Received: "
                                         r"monitor='val_accuracy', which reads as a metric to "
                                         r"maximize.*ignore this warning"):
        study = hpo.minimize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             n_trials=1, show_progress_bar=False)

    assert study.trials[0].state is TrialState.COMPLETE


@pytest.mark.parametrize(("direction", "key", "outcome"), [
    ("minimize", "val_accuracy", "warns"),
    ("maximize", "val_loss", "raises"),
    ("maximize", "val_mean_io_u", None),
    ("minimize", "val_true_positives", None),  # the name says no direction: the study decides
    ("maximize", "score", None),
    ("maximize", "val_neg_mse", None),  # scikit-learn's negated loss, maximised
    ("minimize", "val_1_minus_acc", None),
])
def test_the_direction_check_acts_only_on_names_that_say_the_opposite(
        direction: str, key: str, outcome: str | None) -> None:
    from hpo_plugins._callback_args import check_monitor_direction

    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             direction=direction)
    trial = study.ask()

    if outcome == "raises":
        with pytest.raises(ConfigurationError, match=f"Expected a metric to {direction}"):
            check_monitor_direction(key, trial, explicit=True)
    elif outcome == "warns":
        with pytest.warns(UserWarning, match=f"Expected a metric to {direction}"):
            check_monitor_direction(key, trial, explicit=True)
    else:
        check_monitor_direction(key, trial, explicit=True)  # neither (warnings are errors here)


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
    assert "did you mean" not in trial.system_attrs["fail_reason"]  # not 'loss': no validation
    assert epochs_run == [1]


def test_a_bare_callback_suggests_the_close_name_and_fails_only_its_trials(
        build_fn: Any, digits: Data) -> None:
    """In the user's own objective a never-logged monitor fails each trial (with a warning) and
    raises nothing: only keras_tune, which owns the whole trial, stops the study."""
    def objective(params: Any) -> None:
        fit(build_fn, digits, [HPOCallback("val_los")], epochs=2, validate=True)

    with pytest.warns(UserWarning, match=r"'val_los' was not logged.*\(logged: 'accuracy', "
                                         r"'loss', 'val_accuracy', 'val_loss'; did you mean "
                                         r"'val_loss'\?\)"):
        study = run_study(objective, n_trials=2)

    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert all("did you mean 'val_loss'?" in t.system_attrs["fail_reason"]
               for t in study.trials)


def test_a_metric_missing_after_it_was_reported_is_named_as_such(build_fn: Any,
                                                                 digits: Data) -> None:
    """A second fit of the trial without the validation data: the name is right, so no
    look-alike is suggested; the advice is to pass the validation data to every fit."""
    def objective(params: Any) -> None:
        model = build_fn(PARAMS)
        model.fit(digits["x"], digits["y"], validation_data=(digits["x_val"], digits["y_val"]),
                  epochs=1, batch_size=64, verbose=0, callbacks=[HPOCallback()])
        model.fit(digits["x"], digits["y"], initial_epoch=1, epochs=2, batch_size=64,
                  verbose=0, callbacks=[HPOCallback()])

    with pytest.warns(UserWarning, match=r"'val_loss' was reported up to step 0 but was not "
                                         r"logged by fit at the end of this epoch \(logged: "
                                         r"'accuracy', 'loss'\)\. Log it at every reporting "
                                         r"epoch") as caught:
        study = run_study(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL and sorted(trial.intermediate_values) == [0]
    assert not any("did you mean" in str(w.message) for w in caught)


def test_a_fit_that_reports_nothing_warns_at_its_end(build_fn: Any, digits: Data) -> None:
    """As the Lightning callback warns about a fit without a validation."""
    def objective(params: Any) -> None:
        fit(build_fn, digits, [HPOCallback("loss", interval=3)], epochs=2)

    with pytest.warns(UserWarning, match=r"HPOCallback: no epoch of this fit of trial 0 was a "
                                         r"reporting one \(fit epochs=2;.*interval=3\)") as caught:
        study = run_study(objective, n_trials=1)

    assert len([w for w in caught if "HPOCallback" in str(w.message)]) == 1
    assert study.trials[0].state is TrialState.FAIL  # no report, nothing returned


def test_a_metric_that_is_not_a_scalar_is_named_as_such(digits: Data) -> None:
    def objective(params: Any) -> None:
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, "softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy",
                      metrics=[keras.metrics.F1Score()], jit_compile=False)  # one per class
        model.fit(digits["x"], keras.utils.to_categorical(digits["y"], 10), epochs=2,
                  batch_size=64, verbose=0, callbacks=[HPOCallback("f1_score")])

    with pytest.warns(UserWarning, match=r"'f1_score' is logged but is not a scalar "
                                         r"\(shape \(10,\)\).*average='macro'"):
        study = hpo.maximize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             n_trials=1, show_progress_bar=False)

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "is logged but is not a scalar" in trial.system_attrs["fail_reason"]


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
    ({"interval": 1.0}, r"Received: interval=1.0"),
])
def test_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        HPOCallback(**kwargs)


def test_a_numpy_integer_interval_is_taken_as_an_int() -> None:
    callback = HPOCallback("loss", interval=np.int64(2))

    assert type(callback.interval) is int
    assert repr(callback) == "HPOCallback(monitor='loss', interval=2)"


def _build_with_auc(params: Any) -> Any:
    """A binary classifier with an AUC metric object of the default name."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy",
                  metrics=[keras.metrics.AUC()], jit_compile=False)
    return model


def test_a_numbered_metric_name_is_explained(digits: Data) -> None:
    """Keras names a second AUC object 'auc_1': the message says why and how to avoid it,
    instead of suggesting 'val_auc_1', a name a fresh process would not log."""
    keras.backend.clear_session()
    _build_with_auc({})  # an AUC object already exists: the next one is numbered

    def objective(params: Any) -> None:
        _build_with_auc(params).fit(digits["x"], digits["y"] == 0, epochs=1, verbose=0,
                                    validation_data=(digits["x_val"], digits["y_val"] == 0),
                                    callbacks=[HPOCallback("val_auc")])

    with pytest.warns(UserWarning, match=r"'val_auc' was not logged by fit at the end of the "
                                         r"epoch, but 'val_auc_1' was .*Keras numbers a "
                                         r"metric's default name.*clear_session\(\).*"
                                         r"keras.metrics.AUC\(name='auc'\)"):
        study = hpo.maximize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             show_progress_bar=False, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL
    keras.backend.clear_session()
