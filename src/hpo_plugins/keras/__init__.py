"""Keras 3 adapter: ``HPOCallback`` and ``keras_tune``.

``HPOCallback`` reports a ``model.fit`` to the current trial and stops it when the pruner says so;
:func:`keras_tune` runs a whole study over a ``build_fn`` that turns the trial's params into a
compiled ``keras.Model``. Both work on every Keras 3 backend (TensorFlow, JAX, torch). See
``docs/keras.md``.

Importing this package imports Keras (and so its backend); without Keras it raises
:class:`~hpo_plugins.exceptions.MissingDependencyError` naming the ``pip install`` to run.

Example:
    >>> from hpo_plugins.keras import HPOCallback, keras_tune
"""

from __future__ import annotations

from hpo_plugins.exceptions import missing_dependency

try:
    import keras  # noqa: F401 - fail here, with the install hint, rather than deep inside
except ImportError as exc:
    raise missing_dependency("keras", "keras") from exc

from hpo_plugins._direction import infer_direction
from hpo_plugins.keras._callback import HPOCallback
from hpo_plugins.keras._result import KerasTuneResult
from hpo_plugins.keras._tune import keras_tune

__all__ = ["HPOCallback", "KerasTuneResult", "infer_direction", "keras_tune"]
