"""Fixtures of the Keras adapter tests: digits subsets, a tiny model, a deterministic pruner.

Every test runs real Keras 3 on the TensorFlow backend on CPU (the torch backend in a
subprocess, see ``test_keras_backends.py``). Models are a single small ``Dense`` layer on 64
inputs, so a trial costs about a second, mostly tracing. Third-party warnings these runs cannot
avoid are filtered here by message, one by one, for this directory only; everything else still
fails the test (``filterwarnings = error``).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins.pruners import Pruner

if importlib.util.find_spec("keras") is None:  # pragma: no cover - the dev extra has it
    collect_ignore_glob = ["test_*.py"]

_UNAVOIDABLE = (
    # TensorFlow 2.21 tensors implement __array__ without `copy`; NumPy 2 warns when Keras
    # converts them (weights saving, metric results)
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply the filters above to the tests of this directory only."""
    for item in items:
        if "/tests/keras/" in str(item.path):
            for spec in _UNAVOIDABLE:
                item.add_marker(pytest.mark.filterwarnings(spec))


class PruneAt(Pruner):
    """Prunes trial ``number`` once it has reported at ``step`` or later; never any other.

    A real pruner with a fixed answer, so tests know which trial ends PRUNED and where.
    """

    def __init__(self, *, number: int = 1, step: int = 1) -> None:
        self.number = number
        self.step = step

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        return trial.number == self.number and (trial.last_step or 0) >= self.step


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """300 training and 150 validation images of scikit-learn's digits, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    y = y.astype("int64")
    return {"x": x[:300], "y": y[:300], "x_val": x[300:450], "y_val": y[300:450]}


@pytest.fixture(scope="session")
def space() -> dict[str, Any]:
    """Hidden units and learning rate of the tiny network."""
    return {"units": hp.choice("units", [4, 8]),
            "lr": hp.loguniform("lr", math.log(3e-3), math.log(3e-2))}


def build_tiny(params: dict[str, Any]) -> Any:
    """A compiled 64 -> units -> 10 network (no XLA: compiling it would cost more than it saves)."""
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(int(params["units"]), activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(params["lr"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    return model


@pytest.fixture(scope="session")
def build_fn() -> Callable[[dict[str, Any]], Any]:
    """:func:`build_tiny`."""
    return build_tiny


@pytest.fixture(scope="session")
def prune_at() -> type[PruneAt]:
    """The :class:`PruneAt` pruner class."""
    return PruneAt
