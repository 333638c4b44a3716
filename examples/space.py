"""The digits MLP's search space, importable without torch (script mode loads it in the launcher).

    hpo-plugins run --space examples/space.py:SPACE --n-trials 20 --n-jobs 2 --study digits \\
        --pruner asha -- python examples/train_digits.py --epochs 20
"""

from __future__ import annotations

import math
from typing import Any

from hyperopt.pyll import scope

from hpo_plugins import hp


def _units(n_layers: int) -> tuple[Any, ...]:
    """One ``units`` parameter per hidden layer, labelled by depth and position.

    ``hp.quniform`` gives floats (``160.0``); ``scope.int`` hands the model whole numbers.
    """
    return tuple(scope.int(hp.quniform(f"units_{n_layers}_{i}", 16, 256, 16))
                 for i in range(n_layers))


SPACE = {
    "layers": hp.choice("n_layers", [_units(1), _units(2), _units(3)]),
    "dropout": hp.uniform("dropout", 0.0, 0.5),
    "optimizer": hp.choice("optimizer", [
        {"name": "adam", "lr": hp.loguniform("adam_lr", math.log(1e-4), math.log(3e-2)),
         "weight_decay": hp.loguniform("adam_weight_decay", math.log(1e-6), math.log(1e-2))},
        {"name": "sgd", "lr": hp.loguniform("sgd_lr", math.log(1e-3), math.log(0.5)),
         "momentum": hp.uniform("sgd_momentum", 0.0, 0.95)},
    ]),
}

#: What train_digits.py uses when it runs without the tuner.
DEFAULTS = {"layers": (128,), "dropout": 0.1,
            "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-5}}
