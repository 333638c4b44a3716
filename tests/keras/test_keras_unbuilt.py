"""``best_model()`` of models that ``build_fn`` returns without weights (no ``keras.Input``):
built from the input shapes their trial's ``fit`` saw, as ``fit`` built them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from hpo_plugins import hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras import keras_tune
from hpo_plugins.keras._shapes import BUILD_ATTR
from hpo_plugins.samplers import RandomSampler

pytestmark = pytest.mark.slow

Data = dict[str, np.ndarray]


class TwoDense(keras.Model):
    """A subclassed model: its ``build`` creates nothing, its first call does."""

    def __init__(self, units: int) -> None:
        super().__init__()
        self.hidden = keras.layers.Dense(units, activation="relu")
        self.out = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs: Any) -> Any:
        return self.out(self.hidden(inputs))


class Opaque(TwoDense):
    """A subclassed model whose build config Keras cannot give."""

    def get_build_config(self) -> Any:
        raise NotImplementedError("no config here")


def compiled(model: Any) -> Any:
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    return model


def sequential(params: Any) -> Any:
    return compiled(keras.Sequential([keras.layers.Dense(params["units"], activation="relu"),
                                      keras.layers.Dense(10, activation="softmax")]))


def subclassed(params: Any) -> Any:
    return compiled(TwoDense(params["units"]))


def opaque(params: Any) -> Any:
    return compiled(Opaque(params["units"]))


def run(build_fn: Any, digits: Data, tmp_path: Path) -> Any:
    return keras_tune(build_fn, {"units": hp.choice("units", [4, 8])}, x=digits["x"],
                      y=digits["y"], validation_data=(digits["x_val"], digits["y_val"]),
                      epochs=2, batch_size=64, objective="val_accuracy", n_trials=2,
                      storage=":memory:", sampler=RandomSampler(), seed=0,
                      logdir=str(tmp_path / "runs"), show_progress_bar=False)


@pytest.mark.parametrize("build_fn", [sequential, subclassed], ids=["sequential", "subclassed"])
def test_a_model_without_input_is_rebuilt_from_the_shapes_fit_saw(build_fn: Any, digits: Data,
                                                                   tmp_path: Path) -> None:
    result = run(build_fn, digits, tmp_path)
    assert result.best_trial.system_attrs[BUILD_ATTR] == {"input_shape": [None, 64]}
    model = result.best_model()
    scores = model.evaluate(digits["x_val"], digits["y_val"], batch_size=50, verbose=0,
                            return_dict=True)
    assert scores["accuracy"] == pytest.approx(result.best_value, abs=1e-6)
    assert int(model.optimizer.iterations.numpy()) > 0  # the optimiser's state loaded too


def test_a_model_with_input_records_nothing(digits: Data, tmp_path: Path) -> None:
    def with_input(params: Any) -> Any:
        return compiled(keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)]))

    result = run(with_input, digits, tmp_path)
    assert all(BUILD_ATTR not in trial.system_attrs for trial in result.study.trials)


def test_a_model_that_cannot_be_rebuilt_says_what_to_do(digits: Data, tmp_path: Path) -> None:
    result = run(opaque, digits, tmp_path)
    assert BUILD_ATTR not in result.best_trial.system_attrs
    with pytest.raises(ConfigurationError, match=r"Expected build_fn to return a built model "
                                                 r".*Start the model with keras.Input"):
        result.best_model()


def test_a_second_tensorboard_writing_into_the_trials_run_is_warned_about(
        digits: Data, tmp_path: Path) -> None:
    """keras_tune writes the trial's curves into its run; another writer there doubles them."""
    from hpo_plugins.tensorboard import run_dir

    def callbacks(trial: Any) -> list[Any]:
        return [keras.callbacks.TensorBoard(log_dir=run_dir(trial), profile_batch=0)]

    with pytest.warns(UserWarning, match="a TensorBoard callback in `callbacks` writes into the "
                                         "trial's own TensorBoard run"):
        keras_tune(sequential, {"units": hp.choice("units", [4, 8])}, x=digits["x"],
                   y=digits["y"], validation_data=(digits["x_val"], digits["y_val"]),
                   epochs=1, batch_size=64, n_trials=1, storage=":memory:",
                   logdir=str(tmp_path / "runs"), callbacks=callbacks, show_progress_bar=False)


def test_a_tensorboard_of_the_users_own_folder_is_left_alone(digits: Data,
                                                             tmp_path: Path) -> None:
    import warnings

    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path / "mine"), profile_batch=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras_tune(sequential, {"units": hp.choice("units", [4, 8])}, x=digits["x"],
                   y=digits["y"], validation_data=(digits["x_val"], digits["y_val"]),
                   epochs=1, batch_size=64, n_trials=1, storage=":memory:",
                   logdir=str(tmp_path / "runs"), callbacks=[board], show_progress_bar=False)
    assert not [w for w in caught if "TensorBoard callback" in str(w.message)]
    assert (tmp_path / "mine").is_dir()
