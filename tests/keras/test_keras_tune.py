"""keras_tune end to end with real Keras (TensorFlow backend) on CPU."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras import HPOCallback, keras_tune
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.storages import InMemoryStorage

pytestmark = pytest.mark.slow

Data = dict[str, np.ndarray]


def tune(build_fn: Callable[[Any], Any], space: Any, digits: Data, **kwargs: Any) -> Any:
    """keras_tune on the digits subsets with quick defaults that ``kwargs`` override."""
    options: dict[str, Any] = {
        "x": digits["x"], "y": digits["y"], "validation_data": (digits["x_val"],
                                                                 digits["y_val"]),
        "epochs": 2, "batch_size": 64, "objective": "val_accuracy", "n_trials": 2,
        "storage": ":memory:", "sampler": RandomSampler(), "seed": 0,
        "show_progress_bar": False,
    }
    options.update(kwargs)
    return keras_tune(build_fn, space, **options)


class EpochCounter(keras.callbacks.Callback):
    """Counts the epochs it sees; every instance appends its count to ``totals`` when fit ends."""

    totals: list[int] = []

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.count += 1

    def on_train_end(self, logs: Any = None) -> None:
        EpochCounter.totals.append(self.count)


@pytest.fixture(scope="module")
def pruned_run(build_fn: Any, space: Any, digits: Data, prune_at: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Three trials of three epochs; the pruner stops trial 1 after its epoch 1 (step 1)."""
    return tune(build_fn, space, digits, epochs=3, n_trials=3,
                pruner=prune_at(number=1, step=1), logdir=str(tmp_path_factory.mktemp("runs")))


def test_pruned_and_completed_trials_end_to_end(pruned_run: Any) -> None:
    trials = pruned_run.study.trials

    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED,
                                         TrialState.COMPLETE]
    assert sorted(trials[1].intermediate_values) == [0, 1]  # stopped after epoch 1 (step 1)
    assert all(sorted(trials[i].intermediate_values) == [0, 1, 2] for i in (0, 2))
    for trial in (trials[0], trials[2]):  # the value is the best epoch's val_accuracy
        assert trial.value == max(trial.intermediate_values.values())
    assert pruned_run.best_value == max(trials[0].value, trials[2].value)
    assert pruned_run.best_params == pruned_run.study.best_params
    assert pruned_run.study.metric == "val_accuracy"
    assert pruned_run.study.direction.value == "maximize"


def test_each_trial_keeps_its_best_weights_in_its_directory(pruned_run: Any) -> None:
    for trial in pruned_run.study.trials:
        path = trial.user_attrs["checkpoint"]
        assert path == os.path.join(trial.system_attrs["log_dir"], "best.weights.h5")
        assert os.path.isfile(path)
    assert pruned_run.best_checkpoint == pruned_run.best_trial.user_attrs["checkpoint"]


def test_best_model_scores_like_the_best_trial_without_training(pruned_run: Any,
                                                                 digits: Data) -> None:
    model = pruned_run.best_model()
    scores = model.evaluate(digits["x_val"], digits["y_val"], batch_size=64, verbose=0,
                            return_dict=True)

    assert scores["accuracy"] == pytest.approx(pruned_run.best_value, abs=1e-6)
    assert int(model.optimizer.iterations.numpy()) > 0  # the saved optimiser state, loaded


def test_best_trials_and_models_rank_the_complete_trials_best_first(pruned_run: Any,
                                                                   digits: Data) -> None:
    trials = pruned_run.study.trials
    ranked = pruned_run.best_trials(3)  # two completed: the pruned one is not ranked
    assert sorted(t.number for t in ranked) == [0, 2]
    assert ranked[0].number == pruned_run.best_trial.number
    assert ranked[0].value >= ranked[1].value  # val_accuracy: the highest first
    assert [t.number for t in pruned_run.best_trials()] == [ranked[0].number]
    for trial, model in zip(ranked, pruned_run.best_models(2), strict=True):
        scores = model.evaluate(digits["x_val"], digits["y_val"], batch_size=64, verbose=0,
                                return_dict=True)
        assert scores["accuracy"] == pytest.approx(trial.value, abs=1e-6)
    pruned = pruned_run.model_of(trials[1])  # its best epoch before it was stopped
    scores = pruned.evaluate(digits["x_val"], digits["y_val"], batch_size=64, verbose=0,
                             return_dict=True)
    assert scores["accuracy"] == pytest.approx(max(trials[1].intermediate_values.values()),
                                               abs=1e-6)
    assert pruned_run.checkpoint_of(trials[1]) == trials[1].user_attrs["checkpoint"]


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_best_trials_wants_a_count(pruned_run: Any, n: Any) -> None:
    with pytest.raises(ConfigurationError, match=rf"Expected `n` to be an integer >= 1.*"
                                                 rf"Received: n={re.escape(repr(n))}"):
        pruned_run.best_trials(n)


def test_model_of_wants_a_trial_of_the_study(pruned_run: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"Expected a trial of result.study .*"
                                                 r"Received: 1 \(of type int\)"):
        pruned_run.model_of(1)


def test_the_metric_that_fit_never_logs_fails_at_the_first_epoch(build_fn: Any, space: Any,
                                                                  digits: Data) -> None:
    EpochCounter.totals = []

    with pytest.raises(ConfigurationError,
                       match=r"'val_acc' was not logged.*'accuracy', 'loss', 'val_accuracy', "
                             r"'val_loss'"):
        tune(build_fn, space, digits, objective="val_acc", epochs=5,
             n_trials=10, study_name="missing", callbacks=[EpochCounter()])

    assert EpochCounter.totals == [1]  # one trial, stopped at the end of its first epoch


def test_a_misspelt_objective_stops_the_study_and_names_the_close_metric(
        build_fn: Any, space: Any, digits: Data) -> None:
    from hpo_plugins import load_study

    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError,
                       match=r"'val_acc' was not logged.*; did you mean 'val_accuracy'\?\)"
                             r".*The study was stopped"):
        tune(build_fn, space, digits, objective="val_acc", n_trials=4, storage=storage,
             study_name="typo")

    (trial,) = load_study("typo", storage).trials
    assert trial.state is TrialState.FAIL
    assert "did you mean 'val_accuracy'?" in trial.system_attrs["fail_reason"]


def test_a_model_built_before_the_study_does_not_rename_the_first_trials_metric(
        digits: Data) -> None:
    """keras_tune clears the Keras session before each build: an AUC object made earlier (a
    check of build_fn, best_model() of an earlier run) would otherwise make the first trial log
    'val_auc_1' and stop the study for a missing 'val_auc'."""
    def build(params: Any) -> Any:
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(4, activation="relu"),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(keras.optimizers.Adam(params["lr"]), "binary_crossentropy",
                      metrics=[keras.metrics.AUC()], jit_compile=False)
        return model

    build({"lr": 0.01})  # an AUC object named 'auc' exists now
    binary = {**digits, "y": digits["y"] == 0, "y_val": digits["y_val"] == 0}
    result = tune(build, {"lr": hp.uniform("lr", 0.005, 0.02)}, binary, objective="val_auc",
                  epochs=1)
    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 2


def test_the_users_dtype_policy_holds_in_every_trial(build_fn: Any, space: Any,
                                                     digits: Data) -> None:
    """Clearing the Keras session between trials keeps the global dtype policy the user set."""
    seen: list[str] = []

    def build(params: Any) -> Any:
        seen.append(keras.config.dtype_policy().name)
        return build_fn(params)

    keras.config.set_dtype_policy("float64")
    try:
        tune(build, space, digits, epochs=1, n_trials=2)
    finally:
        keras.backend.clear_session()  # Keras' own clear: back to no policy set at all
    assert seen == ["float64", "float64"]


def test_numpy_numbers_and_any_list_of_study_callbacks_are_taken(build_fn: Any, space: Any,
                                                                  digits: Data) -> None:
    seen: list[int] = []
    result = tune(build_fn, space, digits, epochs=1, n_trials=1, validation_data=None,
                  validation_split=np.float32(0.2),
                  study_callbacks=iter([lambda study, frozen: seen.append(frozen.number)]))
    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] and seen == [0]


def test_a_missing_metric_stops_the_study_even_when_caught(build_fn: Any, space: Any,
                                                           digits: Data) -> None:
    from hpo_plugins import load_study

    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError, match="'val_loss' was not logged"):
        tune(build_fn, space, digits, objective="val_loss", validation_data=None, n_trials=5,
             catch=(Exception,), storage=storage, study_name="no-validation")

    trials = load_study("no-validation", storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert "'val_loss' was not logged" in trials[0].system_attrs["fail_reason"]


def test_a_missing_metric_stops_a_parallel_study_even_when_caught(
        space: Any, digits: Data, tmp_path: Any) -> None:
    from joblib.externals.loky import get_reusable_executor

    from hpo_plugins import load_study

    def build(params: Any) -> Any:  # defined here: cloudpickle sends it to the workers by value
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, "softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      jit_compile=False)
        return model

    storage = f"sqlite:///{tmp_path}/parallel.db"
    try:
        with pytest.raises(ConfigurationError,
                           match=r"'val_loss' was not logged.*The study was stopped"):
            tune(build, space, digits, objective="val_loss", validation_data=None, epochs=1,
                 n_trials=6, n_jobs=2, catch=(Exception,), storage=storage,
                 study_name="parallel")
    finally:
        get_reusable_executor().shutdown(wait=True)  # the workers hold TensorFlow

    trials = load_study("parallel", storage).trials
    assert 1 <= len(trials) <= 3  # those in flight when the first one came back, not 6
    assert all(t.state is TrialState.FAIL for t in trials)


def test_a_non_scalar_objective_is_named_as_such_and_stops_the_study(
        space: Any, digits: Data) -> None:
    def build(params: Any) -> Any:
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, "softmax")])
        model.compile(optimizer="adam", loss="categorical_crossentropy",
                      metrics=[keras.metrics.F1Score()], jit_compile=False)  # one per class
        return model

    one_hot = {"y": keras.utils.to_categorical(digits["y"], 10),
               "validation_data": (digits["x_val"],
                                   keras.utils.to_categorical(digits["y_val"], 10))}
    with pytest.raises(ConfigurationError,
                       match=r"'val_f1_score' is logged but is not a scalar \(shape \(10,\)\); "
                             r"monitor a scalar metric.*F1Score\(average='macro'\)"):
        tune(build, space, digits, objective="val_f1_score", n_trials=3, catch=(Exception,),
             **one_hot)


@pytest.mark.parametrize(("objective", "epochs", "fit_kwargs", "steps"), [
    ("val_accuracy", 5, {"validation_freq": 2, "initial_epoch": 1}, [1, 3]),
    ("val_accuracy", 3, {"validation_freq": [2, 3]}, [1, 2]),
    ("loss", 4, {"validation_freq": 2}, [0, 1, 2, 3]),  # logged every epoch: reported so
])
def test_reports_land_on_the_epochs_that_log_the_objective(
        build_fn: Any, space: Any, digits: Data, objective: str, epochs: int,
        fit_kwargs: dict[str, Any], steps: list[int]) -> None:
    result = tune(build_fn, space, digits, objective=objective, epochs=epochs, n_trials=1,
                  fit_kwargs=fit_kwargs)

    (trial,) = result.study.trials
    assert trial.state is TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == steps


class StopAtOnce(keras.callbacks.Callback):
    """Stops the training at the end of its first epoch."""

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.model.stop_training = True


def test_a_fit_that_ends_before_it_validates_fails_with_its_own_reason(
        build_fn: Any, space: Any, digits: Data) -> None:
    result = tune(build_fn, space, digits, epochs=4, n_trials=1, callbacks=[StopAtOnce()],
                  fit_kwargs={"validation_freq": 2})

    (trial,) = result.study.trials
    assert trial.state is TrialState.FAIL
    assert trial.fail_reason.startswith(
        "keras_tune(objective='val_accuracy'): fit ended without logging 'val_accuracy' at any "
        "epoch (epochs=4, initial_epoch=0, validation_freq=2)")


def test_numpy_integers_are_taken_as_ints(build_fn: Any, space: Any, digits: Data) -> None:
    result = tune(build_fn, space, digits, epochs=np.int64(2), batch_size=np.int32(64),
                  seed=np.int64(0), n_trials=1, fit_kwargs={"validation_freq": np.int64(1)})

    (trial,) = result.study.trials
    assert trial.state is TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [0, 1]


def test_a_build_fn_that_returns_no_compiled_model_stops_the_study_even_when_caught(
        space: Any, digits: Data) -> None:
    from hpo_plugins import load_study

    def uncompiled(params: Any) -> Any:
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])

    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError, match=r"not compiled.*The study was stopped"):
        tune(uncompiled, space, digits, n_trials=4, catch=(Exception,), storage=storage,
             study_name="uncompiled")

    assert [t.state for t in load_study("uncompiled", storage).trials] == [TrialState.FAIL]


@pytest.mark.parametrize(("made", "message"), [
    (lambda: [HPOCallback()], "keras_tune adds its own HPOCallback"),
    (lambda: keras.callbacks.History(), "a list"),
], ids=["an-HPOCallback", "not-a-list"])
def test_a_callbacks_factory_that_returns_the_wrong_thing_stops_the_study_even_when_caught(
        build_fn: Any, space: Any, digits: Data, made: Any, message: str) -> None:
    """Every trial would repeat it: with catch= all trials failed, one by one."""
    from hpo_plugins import load_study

    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError, match=rf"{message}.*The study was stopped"):
        tune(build_fn, space, digits, n_trials=4, catch=(Exception,), storage=storage,
             study_name="factory", callbacks=lambda trial: made())

    assert [t.state for t in load_study("factory", storage).trials] == [TrialState.FAIL]


def test_validation_split_passes_through(build_fn: Any, space: Any, digits: Data) -> None:
    result = tune(build_fn, space, digits, validation_data=None, validation_split=0.25,
                  objective="val_loss", n_trials=1)

    (trial,) = result.study.trials
    assert trial.state is TrialState.COMPLETE
    assert result.study.direction.value == "minimize"
    assert trial.value == min(trial.intermediate_values.values())


def test_tf_data_datasets_pass_through(build_fn: Any, space: Any, digits: Data) -> None:
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((digits["x"], digits["y"])).batch(64)
    val = tf.data.Dataset.from_tensor_slices((digits["x_val"], digits["y_val"])).batch(64)

    result = tune(build_fn, space, digits, x=train, y=None, validation_data=val,
                  batch_size=None, n_trials=2, fit_kwargs={"shuffle": False})

    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 2


def test_class_weight_passes_through_fit_kwargs(build_fn: Any, space: Any,
                                                digits: Data) -> None:
    zero = {label: 0.0 for label in range(10)}  # every sample weighs nothing: the loss is 0

    result = tune(build_fn, space, digits, objective="loss", n_trials=1,
                  fit_kwargs={"class_weight": zero})

    (trial,) = result.study.trials
    assert list(trial.intermediate_values.values()) == [0.0, 0.0]


def test_callbacks_are_copied_for_each_trial(build_fn: Any, space: Any, digits: Data) -> None:
    EpochCounter.totals = []
    original = EpochCounter()

    tune(build_fn, space, digits, epochs=2, n_trials=2, callbacks=[original])

    assert EpochCounter.totals == [2, 2]  # one instance for both trials would count 2, 4
    assert original.count == 0


def test_a_callback_factory_is_called_with_each_trial(build_fn: Any, space: Any,
                                                      digits: Data) -> None:
    seen: list[tuple[int, str]] = []

    def factory(trial: Any) -> list[Any]:
        seen.append((trial.number, os.path.basename(trial.log_dir)))
        return [keras.callbacks.CSVLogger(os.path.join(trial.log_dir, "epochs.csv"))]

    result = tune(build_fn, space, digits, callbacks=factory)

    assert seen == [(0, "trial_0000"), (1, "trial_0001")]
    for trial in result.study.trials:
        path = os.path.join(os.path.dirname(trial.user_attrs["checkpoint"]), "epochs.csv")
        with open(path) as lines:
            assert len(lines.read().splitlines()) == 3  # header + 2 epochs


def test_a_direction_against_the_objectives_words_warns_once_and_runs(
        build_fn: Any, space: Any, digits: Data) -> None:
    """Not once more per trial from keras_tune's own reporter, whose advice (hpo.maximize,
    HPOCallback(monitor=...)) a keras_tune user could not follow."""
    with pytest.warns(UserWarning) as caught:
        result = tune(build_fn, space, digits, objective="val_accuracy", direction="minimize",
                      n_trials=2)
    direction = [w for w in caught if "val_accuracy" in str(w.message)]
    assert len(direction) == 1
    assert "direction='minimize' was given" in str(direction[0].message)
    assert result.study.direction.value == "minimize" and len(result.study.trials) == 2


class TestArgumentErrors:
    """Bad arguments are refused before the first trial, with the fix in the message."""

    def test_direction_contradicting_the_objective(self, build_fn: Any, space: Any,
                                                   digits: Data) -> None:
        with pytest.raises(ConfigurationError,
                           match=r"'val_loss' is a metric to minimize, but "
                                 r"direction='maximize'"):
            tune(build_fn, space, digits, objective="val_loss", direction="maximize")

    def test_ambiguous_objective_without_direction(self, build_fn: Any, space: Any,
                                                   digits: Data) -> None:
        with pytest.raises(ConfigurationError, match="Pass direction='minimize' or"):
            tune(build_fn, space, digits, objective="val_true_positives")

    def test_unknown_fit_argument(self, build_fn: Any, space: Any, digits: Data) -> None:
        with pytest.raises(ConfigurationError, match=r"Received unknown: \['class_weights'\]"):
            tune(build_fn, space, digits, fit_kwargs={"class_weights": {}})

    def test_keras_tune_argument_in_fit_kwargs(self, build_fn: Any, space: Any,
                                               digits: Data) -> None:
        with pytest.raises(ConfigurationError, match=r"\['epochs'\] as keras_tune arguments"):
            tune(build_fn, space, digits, fit_kwargs={"epochs": 3})

    def test_callbacks_that_cannot_be_copied(self, build_fn: Any, space: Any,
                                             digits: Data) -> None:
        class Locked(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.lock = threading.Lock()

        with pytest.raises(ConfigurationError, match="Pass a factory instead"):
            tune(build_fn, space, digits, callbacks=[Locked()])

    def test_an_hpo_callback_among_the_callbacks(self, build_fn: Any, space: Any,
                                                 digits: Data) -> None:
        with pytest.raises(ConfigurationError, match="adds its own HPOCallback"):
            tune(build_fn, space, digits, callbacks=[HPOCallback()])

    def test_a_callbacks_factory_without_the_trial_argument(self, build_fn: Any, space: Any,
                                                            digits: Data) -> None:
        """Every trial failed with a TypeError (with catch=, one by one)."""
        with pytest.raises(ConfigurationError, match=r"Expected `callbacks` to be a function "
                                                     r"of one argument, the trial.*"
                                                     r"def make_callbacks\(trial\)"):
            tune(build_fn, space, digits, callbacks=lambda: [keras.callbacks.History()])

    def test_fit_kwargs_that_is_not_a_dict(self, build_fn: Any, space: Any,
                                           digits: Data) -> None:
        with pytest.raises(ConfigurationError,
                           match=r"Expected `fit_kwargs` to be a dict of model.fit arguments, "
                                 r"e.g. fit_kwargs=\{'shuffle': False\}. Received: "
                                 r"fit_kwargs=\['shuffle'\] \(of type list\)"):
            tune(build_fn, space, digits, fit_kwargs=["shuffle"])

    @pytest.mark.parametrize(("epochs", "fit_kwargs", "message"), [
        (1, {"validation_freq": 2}, r"epochs=1, validation_freq=2: Keras validates after epoch "
                                    r"n \(counted from 1\) only when n is a multiple.*Raise "
                                    r"epochs to at least 2, or lower validation_freq\.$"),
        (3, {"validation_freq": 3, "initial_epoch": 3}, r"epochs=3, initial_epoch=3.*Raise "
                                                        r"epochs to at least 6"),
        (4, {"validation_freq": [5, 6]}, r"epochs=4, validation_freq=\[5, 6\].*Raise epochs "
                                         r"to at least 5, or list an epoch from 1 to 4 in "
                                         r"validation_freq\.$"),
    ])
    def test_no_epoch_that_validates(self, build_fn: Any, space: Any, digits: Data,
                                     epochs: int, fit_kwargs: dict[str, Any],
                                     message: str) -> None:
        with pytest.raises(ConfigurationError,
                           match=r"Expected at least one epoch that validates, so that "
                                 r"objective='val_accuracy' is logged. Received: " + message):
            tune(build_fn, space, digits, epochs=epochs, fit_kwargs=fit_kwargs)

    @pytest.mark.parametrize(("arguments", "message"), [
        ({"batch_size": 0}, r"`batch_size` to be None or an integer >= 1. Received: "
                            r"batch_size=0\.$"),
        ({"batch_size": "32"}, r"`batch_size` to be None or an integer.*batch_size='32'"),
        ({"validation_split": 1.5}, r"`validation_split` to be a fraction from 0 \(no split\) "
                                    r"up to, not including, 1.*validation_split=1.5\.$"),
        ({"validation_split": -0.1}, r"`validation_split` to be a fraction.*=-0.1"),
        ({"fit_kwargs": {"validation_freq": 0}}, r"`validation_freq` to be an integer >= 1 "
                                                 r"\(validate every n epochs\) or a list.*=0\.$"),
        ({"fit_kwargs": {"validation_freq": []}}, r"`validation_freq` to be.*=\[\]"),
        ({"study_callbacks": print}, r"`study_callbacks` to be a list of functions "
                                     r"callback\(study, frozen_trial\).*Wrap a single one"),
        ({"objective": "val_acuracy"}, r"Cannot tell whether objective='val_acuracy' should be "
                                       r"minimised or maximised. Is it a misspelling of "
                                       r"'val_accuracy'\? Pass direction="),
    ])
    def test_fit_values_refused_before_any_trial(self, build_fn: Any, space: Any,
                                                 digits: Data, arguments: dict[str, Any],
                                                 message: str) -> None:
        storage = InMemoryStorage()
        with pytest.raises(ConfigurationError, match=message):
            tune(build_fn, space, digits, storage=storage, **arguments)
        assert storage.list_studies() == []  # refused before the study was made

    @pytest.mark.parametrize("bad", [lambda: None, lambda params, extra: None],
                             ids=["no-argument", "two-arguments"])
    def test_build_fn_that_takes_not_one_argument(self, space: Any, digits: Data,
                                                  bad: Any) -> None:
        with pytest.raises(ConfigurationError,
                           match=r"Expected build_fn\(params\), a function of one argument"):
            tune(bad, space, digits)

    def test_build_fn_written_for_keras_tuner(self, build_fn: Any, space: Any,
                                              digits: Data) -> None:
        def build(hp: Any) -> Any:  # Keras Tuner's HyperParameters API
            return build_fn({"units": hp.Int("units", 4, 8), "lr": 0.01})

        with pytest.raises(ConfigurationError,
                           match=r"AttributeError: 'dict' object has no attribute 'Int'.*not a "
                                 r"keras_tuner HyperParameters.*hpo_plugins.hp"):
            tune(build, space, digits, catch=(Exception,))

    def test_missing_training_data(self, build_fn: Any, space: Any, digits: Data) -> None:
        with pytest.raises(ConfigurationError, match="Expected training data"):
            tune(build_fn, space, digits, x=None)

    def test_build_fn_returning_an_uncompiled_model(self, space: Any, digits: Data) -> None:
        def uncompiled(params: Any) -> Any:
            return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])

        with pytest.raises(ConfigurationError, match="not compiled"):
            tune(uncompiled, space, digits, n_trials=1)


def test_with_a_logdir_keras_curves_land_in_the_trial_run(build_fn: Any, space: Any,
                                                          digits: Data, tmp_path: Any) -> None:
    result = tune(build_fn, space, digits, n_trials=1, logdir=str(tmp_path / "runs"))
    run = result.study.trials[0].log_dir
    found = [name for _, _, names in os.walk(run) for name in names]
    assert any(n.startswith("events.out.tfevents") and not n.endswith(".hpo") for n in found)
    assert any(n.endswith(".hpo") for n in found)  # the trial's HParams session, same run
