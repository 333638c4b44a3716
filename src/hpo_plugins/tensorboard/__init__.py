"""TensorBoard HParams logging, without TensorFlow.

Give a study a ``logdir`` and every trial appears in TensorBoard's HParams dashboard as it runs:
its parameters under their flat labels, its curve (``hpo/intermediate``), its final value
(``hpo/value``), its exact state (``hpo/state``) and its status. Each trial is a run in its own
directory, ``trial.log_dir``, which framework loggers can share (:func:`run_dir`).

Only the ``tensorboard`` package's protos and record writer are used (``pip install
'hpo_plugins[tensorboard]'``); TensorFlow is never imported. The constants and :func:`run_dir`
import without ``tensorboard``; :class:`HParamsObserver` needs it.

Example:
    >>> import hpo_plugins as hpo
    >>> study = hpo.minimize(lambda p: p["x"] ** 2, {"x": hpo.hp.uniform("x", -1, 1)},
    ...                      n_trials=3, storage=":memory:", logdir="runs/square")
    >>> # then: tensorboard --logdir runs/square; a study in a storage file (the default
    >>> # storage, or storage="sqlite:///hpo.db") is served with:
    >>> # hpo-plugins tensorboard --study NAME --storage sqlite:///hpo.db
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo_plugins.tensorboard._mapping import (
    INTERMEDIATE_TAG,
    STATE_CODES,
    STATE_TAG,
    TENSORBOARD_STATUS,
    VALUE_TAG,
    run_dir,
)

if TYPE_CHECKING:
    from hpo_plugins.tensorboard._observer import HParamsObserver
    from hpo_plugins.tensorboard._writer import EXPERIMENT_FILE

__all__ = [
    "EXPERIMENT_FILE",
    "INTERMEDIATE_TAG",
    "STATE_CODES",
    "STATE_TAG",
    "TENSORBOARD_STATUS",
    "VALUE_TAG",
    "HParamsObserver",
    "run_dir",
]

_NEEDS_TENSORBOARD = {"HParamsObserver": "_observer", "EXPERIMENT_FILE": "_writer"}


def __getattr__(name: str) -> object:
    # The writer imports `tensorboard` (an extra); keep the constants and run_dir importable
    # without it, and name the pip install when it is missing.
    if name not in _NEEDS_TENSORBOARD:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(f"{__name__}.{_NEEDS_TENSORBOARD[name]}")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("tensorboard", "google"):
            raise
        from hpo_plugins.exceptions import missing_dependency

        raise missing_dependency("tensorboard", "tensorboard") from exc
    return getattr(module, name)
