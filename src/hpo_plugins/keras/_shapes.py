"""Rebuild a model that ``build_fn`` returns without weights, as ``fit`` built it.

A model with no ``keras.Input`` (``Sequential([Dense(64), ...])``, a subclassed model) gets
its weights at its first batch. ``best_model()`` loads weights without training, so it must
build the model first, with the input shapes the trial's ``fit`` saw: each trial stores them
(Keras' own ``get_build_config()``, the record its ``.keras`` files keep) when ``build_fn``
returned the model unbuilt.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from hpo_plugins.storages._base import json_copy

__all__ = ["BUILD_ATTR", "build_record", "rebuild"]

_logger = logging.getLogger("hpo_plugins.keras")

#: System attribute of a trial whose model ``fit`` built: its build config as JSON.
BUILD_ATTR = "keras_build_config"


def build_record(model: Any) -> dict[str, Any] | None:
    """``model.get_build_config()`` as JSON (tuples as lists), or None when there is none."""
    try:
        config = model.get_build_config()
        return json_copy(config, "the build config") if isinstance(config, dict) and config \
            else None
    except Exception as exc:  # a model whose own get_build_config fails, or is no JSON
        _logger.debug("No build config for %s: %s: %s", type(model).__name__,
                      type(exc).__name__, exc)
        return None


def rebuild(model: Any, record: dict[str, Any]) -> None:
    """Build ``model`` from ``record`` (:func:`build_record`): ``build_from_config``, as Keras
    loads a saved model, then, for a subclassed model whose ``build`` creates nothing, a call on
    zeros of those shapes, as ``fit`` builds it on its first batch."""
    config = _as_shapes(record)
    try:
        model.build_from_config(config)
    except Exception as exc:  # the call on zeros below is the other way
        _logger.debug("build_from_config(%r) failed: %s: %s", config, type(exc).__name__, exc)
    if model.built and model.weights:
        return
    shapes = config.get("input_shape", config.get("shapes_dict"))
    if shapes is None:
        return
    try:
        if "shapes_dict" in config and isinstance(shapes, dict):
            model(**{key.removesuffix("_shape"): _zeros(value) for key, value in shapes.items()})
        else:
            model(_zeros(shapes))
    except Exception as exc:  # best_model() says what to do when the model stays unbuilt
        _logger.debug("Calling the model on zeros of %r failed: %s: %s", shapes,
                      type(exc).__name__, exc)


def _as_shapes(value: Any) -> Any:
    """JSON back to Keras' shapes: a list of ints and None is a shape (a tuple)."""
    if isinstance(value, list) and all(item is None or isinstance(item, int) for item in value):
        return tuple(value)
    if isinstance(value, list):
        return [_as_shapes(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_shapes(item) for key, item in value.items()}
    return value


def _zeros(shapes: Any) -> Any:
    """Zeros of ``shapes`` (one shape, or a list or dict of them), one sample each."""
    if isinstance(shapes, tuple):
        return keras.ops.zeros((1, *(1 if size is None else size for size in shapes[1:])))
    if isinstance(shapes, list):
        return [_zeros(item) for item in shapes]
    if isinstance(shapes, dict):
        return {key: _zeros(item) for key, item in shapes.items()}
    raise TypeError(f"not a shape: {shapes!r}")
