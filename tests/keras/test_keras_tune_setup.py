"""keras_tune fixes of review 13: the resume warning under a derived name, the user's Keras
settings in worker processes, data that cannot reach the workers, the missing-metric advice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import pytest

from hpo_plugins import TrialState
from hpo_plugins._api import default_study_name
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras import keras_tune
from hpo_plugins.keras._memory import KerasSettings
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.space import as_space
from hpo_plugins.storages import InMemoryStorage, get_storage

pytestmark = pytest.mark.slow

Data = dict[str, np.ndarray]


def tune(build_fn: Callable[[Any], Any], space: Any, digits: Data, **kwargs: Any) -> Any:
    """keras_tune on the digits subsets: one trial of one epoch unless ``kwargs`` say more."""
    options: dict[str, Any] = {
        "x": digits["x"], "y": digits["y"],
        "validation_data": (digits["x_val"], digits["y_val"]), "epochs": 1, "batch_size": 64,
        "objective": "val_accuracy", "n_trials": 1, "storage": ":memory:",
        "sampler": RandomSampler(), "seed": 0, "show_progress_bar": False,
    }
    options.update(kwargs)
    return keras_tune(build_fn, space, **options)


@pytest.fixture
def keras_defaults() -> Iterator[None]:
    """Put Keras' global settings back to its defaults after the test."""
    floatx = keras.config.floatx()
    yield
    keras.config.set_floatx(floatx)
    keras.backend.clear_session()  # Keras' own clear: back to no dtype policy set


def _derived_name_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if "a name derived from build_fn" in r.getMessage()]


def test_a_rerun_under_the_derived_name_warns_that_it_resumed(
        build_fn: Any, space: Any, digits: Data, caplog: pytest.LogCaptureFixture) -> None:
    """A re-run after an edit of build_fn's body resumes the old study: it must say so."""
    storage = InMemoryStorage()
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        first = tune(build_fn, space, digits, storage=storage)
        second = tune(build_fn, space, digits, storage=storage)
        tune(build_fn, space, digits, storage=storage, study_name=first.study.study_name)

    name = first.study.study_name  # as before the fix: existing studies keep resuming
    assert name == default_study_name(build_fn, f"{as_space(space).fingerprint}:val_accuracy")
    assert second.study.study_name == name and len(second.study.trials) == 3
    assert _derived_name_records(caplog) == [  # nothing for the run that named its study
        (logging.INFO, f"Study {name!r}: a name derived from build_fn, the space and the "
                       f"objective, new. Pass study_name= to choose one."),
        (logging.WARNING, f"Study {name!r}: a name derived from build_fn, the space and the "
                          f"objective, resumed with its 1 earlier trials. Pass study_name= "
                          f"to choose one."),
    ]


def test_the_captured_settings_are_made_again(keras_defaults: None) -> None:
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("mixed_float16")
    settings = KerasSettings.capture()
    keras.config.set_floatx("float32")
    keras.backend.clear_session()  # no dtype policy set: it follows floatx

    settings.apply()
    assert keras.config.floatx() == "float64"
    assert keras.config.dtype_policy().name == "mixed_float16"


def test_worker_processes_train_with_the_callers_dtype_policy(
        space: Any, digits: Data, tmp_path: Any, keras_defaults: None) -> None:
    """A policy set in the main block holds in the workers' trials, and best_model() loads the
    trial's optimiser state (a float32 trial's would be skipped with a UserWarning)."""
    from joblib.externals.loky import get_reusable_executor

    def build(params: Any) -> Any:
        """Defined whole here: cloudpickle sends it by value (a worker may not import the
        module of a conftest helper under the name it has here)."""
        import keras

        from hpo_plugins.context import current_trial_or_none

        trial = current_trial_or_none()  # None in best_model()
        if trial is not None:
            trial.set_user_attr("policy", keras.config.dtype_policy().name)
        model = keras.Sequential([keras.Input((64,)),
                                  keras.layers.Dense(int(params["units"]), activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(params["lr"]),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=False)
        return model

    keras.config.set_dtype_policy("mixed_float16")
    try:
        result = tune(build, space, digits, n_trials=2, n_jobs=2,
                      storage=f"sqlite:///{tmp_path}/mixed.db", logdir=str(tmp_path / "runs"))
    finally:
        get_reusable_executor().shutdown(wait=True)  # the workers hold TensorFlow

    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 2
    assert [t.user_attrs["policy"] for t in result.study.trials] == ["mixed_float16"] * 2
    model = result.best_model()  # filterwarnings=error: a skipped optimiser state fails here
    assert int(model.optimizer.iterations) == 5  # one epoch of 300 images in batches of 64


@pytest.mark.parametrize("where", ["x", "validation_data"])
def test_a_tf_data_dataset_for_worker_processes_is_refused_before_the_study(
        where: str, build_fn: Any, space: Any, digits: Data, tmp_path: Any) -> None:
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((digits["x"], digits["y"])).batch(64)
    data = {"x": train, "y": None} if where == "x" else {
        "validation_data": tf.data.Dataset.from_tensor_slices(
            (digits["x_val"], digits["y_val"])).batch(64)}
    url = f"sqlite:///{tmp_path}/refused.db"
    with pytest.raises(ConfigurationError,
                       match=rf"Expected `{where}` to be data that can be sent to the worker "
                             rf"processes .*\(n_jobs=2\)\. Received: {where}=a tf\.data\.Dataset"
                             rf".*Pass NumPy arrays .*n_jobs=1"):
        tune(build_fn, space, digits, n_jobs=2, storage=url, **data)

    store = get_storage(url)
    try:
        assert store.list_studies() == []  # no empty study left behind
    finally:
        store.close()


def test_a_missing_objective_gets_advice_keras_tune_users_can_follow(
        build_fn: Any, space: Any, digits: Data) -> None:
    with pytest.raises(ConfigurationError,
                       match=r"'val_accuracy' was not logged.*\)\. Pass validation data to "
                             r"keras_tune for a 'val_\*' objective \(validation_data= or "
                             r"validation_split=\).*or set objective= to one of the logged "
                             r"names\. The study was stopped") as caught:
        tune(build_fn, space, digits, validation_data=None)
    assert "HPOCallback" not in str(caught.value)


def test_a_generator_that_the_first_trial_would_use_up_is_refused(
        build_fn: Any, space: Any, digits: Data) -> None:
    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, 300, 64):
            yield digits["x"][start:start + 64], digits["y"][start:start + 64]

    with pytest.raises(ConfigurationError,
                       match=r"Expected `x` to be data that every trial can read from its "
                             r"start .*Received: x=an iterator \(generator\).*"
                             r"tf\.data\.Dataset\.from_generator"):
        tune(build_fn, space, digits, x=batches(), y=None, n_trials=2)


@pytest.mark.parametrize(("make", "words"), [
    (lambda: keras.optimizers.Adam(1e-2), "a Keras optimizer object, Adam"),
    (lambda: keras.layers.Dense(8), "a Keras layer or model object, Dense"),
    (lambda: keras.metrics.AUC(), "a Keras metric object, AUC"),
])
def test_a_stateful_keras_object_in_the_space_is_refused_before_the_study(
        build_fn: Any, digits: Data, make: Callable[[], Any], words: str) -> None:
    """Made once with the space, it would be shared by every trial's model."""
    from hpo_plugins import hp

    storage = InMemoryStorage()
    space = {"units": hp.choice("units", [4, 8]),
             "deep": {"extra": hp.choice("extra", [None, make()])}}  # nested in a choice
    with pytest.raises(ConfigurationError, match=rf"keras_tune: the space holds {words} .*"
                                                 r"create the object in build_fn"):
        tune(build_fn, space, digits, storage=storage)
    assert storage.list_studies() == []  # refused before the study was created


def test_a_keras_class_or_name_in_the_space_is_taken(digits: Data) -> None:
    from hpo_plugins import hp

    def build(params: Any) -> Any:
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, "softmax")])
        model.compile(optimizer=params["opt"](learning_rate=1e-2), jit_compile=False,
                      loss="sparse_categorical_crossentropy")
        return model

    space = {"opt": hp.choice("opt", [keras.optimizers.Adam, keras.optimizers.SGD])}
    result = tune(build, space, digits, n_trials=2, objective="val_loss")
    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 2
