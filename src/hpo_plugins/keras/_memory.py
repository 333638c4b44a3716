"""Give back what a trial's training held, so that a long in-process study keeps its memory flat.

Two things are needed between trials on the TensorFlow backend:

* ``keras.backend.clear_session()`` and ``gc.collect()``: Keras' global state (layer names,
  graph caches) and the model's reference cycles. ``clear_session`` collects by itself where it
  has the ``free_memory`` argument (default True), so the collection is not run twice.
* Forgetting TensorFlow's custom-gradient registrations. Every trace of a training step that goes
  through ``tf.custom_gradient`` in graph mode (Keras' optimiser does, through the distribution
  strategy's ``all_reduce``) registers a gradient function under a fresh
  ``"CustomGradient-<uid>"`` name in TensorFlow's global gradient registry and never removes it.
  That function closes over the traced graph, so every trial's training graph stays alive:
  measured at about 4 MB per trial of a two-layer ``Dense`` model (TensorFlow 2.21, Keras 3.15),
  without bound. :func:`forget_custom_gradients` removes the names registered while a trial ran,
  which brings the growth to zero. It touches a private TensorFlow attribute, so it is guarded:
  when the attribute is not where it is expected it does nothing (and logs at DEBUG).

A fresh process per trial (the joblib launcher) returns everything whatever the backend does.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import keras

__all__ = ["KerasSettings", "clear_session", "forget_custom_gradients", "release_memory"]

_logger = logging.getLogger("hpo_plugins.keras")
_PREFIX = "CustomGradient-"


def release_memory() -> None:
    """Clear Keras' global state and collect garbage (once: a collection costs ~0.5 s with TF)."""
    clear_session(collect=True)


#: The user's settings that Keras 3 keeps in the global state ``clear_session`` resets: the dtype
#: policy (``keras.config.set_dtype_policy``), the distribution, ``enable_unsafe_deserialization``,
#: flash attention, interactive logging, traceback filtering, NNX, and an enclosing
#: ``custom_object_scope``.
_USER_SETTINGS = ("dtype_policy", "distribution", "safe_mode_saving", "flash_attention",
                  "interactive_logging", "traceback_filtering", "nnx_enabled",
                  "custom_objects_scope_dict")


def clear_session(*, collect: bool) -> None:
    """``keras.backend.clear_session()``, keeping the user's settings it resets.

    Keras 3 keeps some settings a user makes before a study (:data:`_USER_SETTINGS`) in the
    state it clears: without this a study would, say, train its trials in float32 after the
    user chose ``mixed_float16``. Only settings that were set are put back, so one never set
    keeps following its default (``keras.config.set_floatx``). They are read through Keras'
    private ``global_state`` module; where it is not found, the session is cleared as it is.
    ``collect``: also run the garbage collector (which ``clear_session`` does by itself where
    it has ``free_memory``; early Keras 3 releases do not).
    """
    state = _global_state()
    saved = ({name: state.get_global_attribute(name) for name in _USER_SETTINGS}
             if state is not None else {})
    if "free_memory" in inspect.signature(keras.backend.clear_session).parameters:
        keras.backend.clear_session(free_memory=collect)
    else:
        keras.backend.clear_session()
        if collect:
            gc.collect()
    for name, value in saved.items():
        if value is not None and state is not None:
            state.set_global_attribute(name, value)


#: The settings of :data:`_USER_SETTINGS` that :class:`KerasSettings` carries to another process:
#: not the distribution (it names this process's devices) nor NNX (chosen from the environment,
#: which worker processes inherit, when the backend is imported).
_CARRIED_SETTINGS = tuple(name for name in _USER_SETTINGS
                          if name not in ("distribution", "nnx_enabled"))
#: ``keras.config`` settings kept outside the global state: ``clear_session`` leaves them alone,
#: but a worker process starts from their defaults.
_CONFIG_SETTINGS = ("floatx", "epsilon", "image_data_format", "max_epochs",
                    "max_steps_per_epoch")


@dataclass(frozen=True)
class KerasSettings:
    """The process-wide Keras settings made before a study, to make again where trials run.

    A worker process (``n_jobs`` > 1, a launcher) imports Keras afresh, so a dtype policy or a
    ``floatx`` set in the main script's ``if __name__ == "__main__":`` block does not hold
    there: its trials would train in float32 while ``best_model()``, in the calling process,
    builds a mixed-precision model. The settings are read through public ``keras.config``
    getters, and those of Keras' global state (:data:`_CARRIED_SETTINGS`) only where set.

    Attributes:
        config: ``keras.config`` name -> value (``floatx``, ``image_data_format``...).
        state: Keras global-state name -> value (``dtype_policy``...), those that were set.

    Example:
        >>> settings = KerasSettings.capture()  # in the calling process
        >>> settings.apply()  # in the worker, before the model is built  # doctest: +SKIP
    """

    config: Mapping[str, Any]
    state: Mapping[str, Any]

    @classmethod
    def capture(cls) -> KerasSettings:
        """This process's settings now (a getter missing from this Keras is left out)."""
        config = {name: getattr(keras.config, name)() for name in _CONFIG_SETTINGS
                  if hasattr(keras.config, name) and hasattr(keras.config, f"set_{name}")}
        state = _global_state()
        values = ({} if state is None else
                  {name: state.get_global_attribute(name) for name in _CARRIED_SETTINGS})
        return cls(config, {name: dict(value) if isinstance(value, dict) else value
                            for name, value in values.items() if value is not None})

    def apply(self) -> None:
        """Make these settings in this process (and thread: Keras' global state is per thread)."""
        for name, value in self.config.items():
            getattr(keras.config, f"set_{name}")(value)
        state = _global_state()
        for name, value in self.state.items():
            if state is not None:
                state.set_global_attribute(name, value)


def _global_state() -> Any:
    """Keras' ``global_state`` module, or None where it is not where Keras 3.x keeps it."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        _logger.debug("Keras' global_state module was not found; clear_session resets the "
                      "user's dtype policy and other global settings.")
        return None
    if not (hasattr(global_state, "get_global_attribute")
            and hasattr(global_state, "set_global_attribute")):
        return None
    return global_state


@contextlib.contextmanager
def forget_custom_gradients() -> Iterator[None]:
    """Unregister the custom gradients TensorFlow registered inside the block.

    Example:
        >>> with forget_custom_gradients():
        ...     model.fit(x, y)  # doctest: +SKIP
    """
    registry = _tf_gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        if registry is not None:
            for name in [n for n in registry if n not in before and n.startswith(_PREFIX)]:
                registry.pop(name, None)


def _tf_gradient_registry() -> dict[str, Any] | None:
    """TensorFlow's name -> gradient dict when Keras runs on TensorFlow, else None."""
    ops = sys.modules.get("tensorflow.python.framework.ops")
    if keras.backend.backend() != "tensorflow" or ops is None:
        return None
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if not isinstance(registry, dict):
        _logger.debug("TensorFlow's gradient registry was not found; custom gradients that "
                      "trials register are kept (memory may grow across trials).")
        return None
    return registry
