"""Code ported from Keras Tuner: its tuner and ``search()`` arguments get an error from
``keras_tune`` that names ours, before any study or model exists."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hpo_plugins import hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras import keras_tune
from hpo_plugins.storages import InMemoryStorage

SPACE = {"units": hp.choice("units", [4, 8])}
X, Y = np.zeros((8, 4), dtype="float32"), np.zeros(8, dtype="int64")


def _never_built(params: Any) -> Any:
    raise AssertionError("no trial may start for a refused call")


@pytest.mark.parametrize(("kwargs", "fix"), [
    ({"directory": "my_dir", "project_name": "digits"},
     r"`directory`, `project_name` \(Keras Tuner's name\).*`directory` -> "
     r"storage='sqlite:///<directory>/hpo.db'.*`project_name` -> study_name="),
    ({"max_consecutive_failed_trials": 3},
     r"study_callbacks=\[hpo.stoppers.FailureStop\(3\)\] with catch=\(Exception,\)"),
    ({"overwrite": True}, r"hpo.delete_study\(study_name, storage\) first"),
    ({"executions_per_trial": 2}, r"return the mean"),
    ({"max_epochs": 20, "factor": 3},
     r"`max_epochs` -> epochs=20, with pruner=hpo.pruners.HyperbandPruner\(max_resource=20\).*"
     r"`factor` -> pruner=hpo.pruners.HyperbandPruner\(reduction_factor=3\)"),
    ({"num_initial_points": 5}, r"TPESampler\(n_startup_trials=5\)"),
    ({"oracle": object(), "tuner_id": "t0"},
     r"`oracle` -> sampler=.*`tuner_id` -> nothing: workers need no id"),
    ({"optimizer": "adam", "loss": "mse", "metrics": ["mae"]},
     r"`optimizer` -> model.compile\(optimizer=...\) in build_fn.*`metrics` -> "
     r"model.compile\(metrics=...\)"),
    ({"alpha": 1e-4, "beta": 2.6}, r"`alpha` -> nothing: the default TPESampler"),
    ({"shuffle": False, "verbose": 1},
     r"`shuffle` -> fit_kwargs=\{'shuffle': False\}.*`verbose` -> fit_kwargs=\{'verbose': 1\}"),
])
def test_keras_tuner_arguments_name_their_replacement(kwargs: dict[str, Any], fix: str) -> None:
    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError, match=r"^keras_tune\(\) does not take .*" + fix):
        keras_tune(_never_built, SPACE, x=X, y=Y, epochs=1, n_trials=1, storage=storage,
                   **kwargs)
    assert storage.list_studies() == []


def test_data_by_position_as_in_search_names_the_keywords() -> None:
    with pytest.raises(ConfigurationError, match=r"keras_tune\(\) takes its first arguments by "
                                                 r"position and the others by keyword: "
                                                 r"keras_tune\(build_fn, space, x=..., y=..."):
        keras_tune(_never_built, SPACE, X, Y, n_trials=1)  # type: ignore[misc]


class _KerasTunerObjective:
    """Keras Tuner's ``kt.Objective(name, direction)`` as it looks to keras_tune (the package
    is not a dependency): a name and "min"/"max"."""

    def __init__(self, name: str, direction: str) -> None:
        self.name, self.direction = name, direction


@pytest.mark.parametrize(("objective", "fix"), [
    (_KerasTunerObjective("val_accuracy", "max"),
     r"Keras Tuner's Objective becomes objective='val_accuracy', direction='maximize'\."),
    (_KerasTunerObjective("val_mae", "min"), r"objective='val_mae', direction='minimize'\."),
    (["val_loss", "val_accuracy"], r"One metric is optimised: pass its name"),
])
def test_an_objective_object_or_list_names_the_string_form(objective: Any, fix: str) -> None:
    with pytest.raises(ConfigurationError, match=r"Expected `objective` to be a metric name "
                                                 r"such as 'val_loss'\. Received: .*" + fix):
        keras_tune(_never_built, SPACE, x=X, y=Y, epochs=1, n_trials=1, storage=":memory:",
                   objective=objective)


@pytest.mark.parametrize(("kwargs", "shown"), [
    ({"batch_size": hp.choice("bs", [16, 32])}, r"`batch_size`.*\(label 'bs'\)"),
    ({"fit_kwargs": {"shuffle": hp.choice("sh", [True, False])}},
     r"fit_kwargs\['shuffle'\].*\(label 'sh'\)"),
])
def test_an_hp_expression_as_a_fit_argument_is_refused_with_the_way_to_tune_it(
        kwargs: dict[str, Any], shown: str) -> None:
    """Keras Tuner's HyperModel.fit tunes batch_size; here every trial failed with a pyll
    TypeError ('len of pyll.Apply either undefined or unknown')."""
    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError, match=r"^Expected " + shown + r": keras_tune's fit "
                                                 r"arguments are not tuned.*'Tuning fit "
                                                 r"arguments'"):
        keras_tune(_never_built, SPACE, x=X, y=Y, epochs=1, n_trials=1, storage=storage,
                   **kwargs)
    assert storage.list_studies() == []


def test_a_stopper_among_the_keras_callbacks_is_pointed_to_study_callbacks() -> None:
    from hpo_plugins.stoppers import FailureStop

    with pytest.raises(ConfigurationError, match=r"Expected keras.callbacks.Callback objects.*"
                                                 r"pass those as study_callbacks=\[...\]"):
        keras_tune(_never_built, SPACE, x=X, y=Y, epochs=1, n_trials=1, storage=":memory:",
                   callbacks=[FailureStop(3)])
