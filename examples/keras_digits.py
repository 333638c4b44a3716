"""Keras on digits: tune a small dense network with a nested space and Hyperband pruning, on CPU.

The space is nested: the number of hidden layers is a choice, and each layer of each depth has its
own units and activation; the optimiser is a choice too, each with its own parameters. Hyperband
stops unpromising trials after 2, 4 or 10 epochs (its rungs are at steps 1, 3 and 9, and steps
are 0-based epochs), so most of the budget goes to the good ones.
Results go to the default SQLite file ``hpo.db`` (study ``keras_digits``) and each trial's best
weights to ``hpo_runs/keras_digits/trial_NNNN/best.weights.h5``; run the script again and the study
resumes (``max_trials`` makes it complete the study rather than add to it).

    python examples/keras_digits.py --trials 30 --epochs 20
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.keras import keras_tune


def layer(depth: int, index: int) -> dict[str, Any]:
    """Units and activation of hidden layer ``index`` of a ``depth``-layer network."""
    return {"units": hp.quniform(f"units_{depth}_{index}", 16, 128, 16),
            "activation": hp.choice(f"activation_{depth}_{index}", ["relu", "tanh", "elu"])}


SPACE = {
    "layers": hp.choice("n_layers", [[layer(n, i) for i in range(n)] for n in (1, 2, 3)]),
    "dropout": hp.uniform("dropout", 0.0, 0.4),
    "optimizer": hp.choice("optimizer", [
        {"name": "adam", "learning_rate": hp.loguniform("adam_lr", math.log(1e-4),
                                                        math.log(1e-2))},
        {"name": "sgd", "learning_rate": hp.loguniform("sgd_lr", math.log(1e-3), math.log(0.3)),
         "momentum": hp.uniform("sgd_momentum", 0.0, 0.95),
         "nesterov": hp.choice("sgd_nesterov", [False, True])},
        {"name": "rmsprop", "learning_rate": hp.loguniform("rmsprop_lr", math.log(1e-4),
                                                           math.log(1e-2)),
         "rho": hp.uniform("rmsprop_rho", 0.8, 0.99)},
    ]),
}

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
              "rmsprop": keras.optimizers.RMSprop}


def build_model(params: dict[str, Any]) -> keras.Model:
    """The natural nested params -> a compiled Keras network for 8x8 digit images."""
    model = keras.Sequential([keras.Input((64,))])
    for spec in params["layers"]:
        model.add(keras.layers.Dense(int(spec["units"]), activation=spec["activation"]))
        model.add(keras.layers.Dropout(params["dropout"]))
    model.add(keras.layers.Dense(10, activation="softmax"))
    settings = dict(params["optimizer"])
    optimizer = OPTIMIZERS[settings.pop("name")](**settings)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def digits_splits(seed: int = 0) -> dict[str, np.ndarray]:
    """Train (60 %), validation (20 %) and test (20 %) splits, pixels scaled to [0, 1]."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y,
                                                        random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5,
                                                    stratify=y_rest, random_state=seed)
    return {"x": x_train, "y": y_train, "x_val": x_val, "y_val": y_val, "x_test": x_test,
            "y_test": y_test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="total trials in the study")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of an unpruned trial")
    parser.add_argument("--storage", default=None, help="database URL (default: sqlite hpo.db)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("hpo_plugins._optimize").setLevel(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes, one per model
    data = digits_splits()

    result = keras_tune(
        build_model, SPACE, x=data["x"], y=data["y"],
        validation_data=(data["x_val"], data["y_val"]), epochs=args.epochs, batch_size=64,
        objective="val_accuracy", max_trials=args.trials, study_name="keras_digits",
        storage=args.storage, seed=0, show_progress_bar=True,
        pruner=hpo.pruners.HyperbandPruner(min_resource=1, max_resource=args.epochs,
                                           reduction_factor=3))

    study = result.study
    states = study.trials_dataframe()["state"].value_counts().to_dict()
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    test = result.best_model().evaluate(data["x_test"], data["y_test"], verbose=0,
                                        return_dict=True)
    print(f"trials in the study: {len(study.trials)} {states}; epochs trained: {epochs}")
    print(f"best validation accuracy: {result.best_value:.4f} (trial {result.best_trial.number})")
    print(f"test accuracy of the best model, reloaded: {test['accuracy']:.4f}")
    print(f"best params: {result.best_params}")
    print(f"study {study.study_name!r} in {study.storage.describe()}")
    print(f"best weights: {result.best_checkpoint}")


if __name__ == "__main__":
    main()
