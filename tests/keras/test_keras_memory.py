"""Memory between in-process trials: 30 trials do not grow the process without bound."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from hpo_plugins import TrialState
from hpo_plugins.keras import keras_tune
from hpo_plugins.keras._memory import forget_custom_gradients
from hpo_plugins.samplers import RandomSampler

pytestmark = pytest.mark.slow

#: Trials run before the first measurement (caches, allocator pools and lazy imports fill up).
WARM_UP = 5
#: Allowed growth over the 25 trials after the warm-up. Without the release of TensorFlow's
#: custom-gradient registrations this tiny model grows the process by about 3-4 MB per trial
#: (99.5 MB over 25 trials, measured); with it 0.3 MB.
BOUND_MB = 40.0


def rss_mb() -> float:
    """This process's resident memory (VmRSS), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS line in /proc/self/status")  # pragma: no cover


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_thirty_trials_in_one_process_keep_memory_flat(build_fn: Any, space: Any,
                                                       digits: dict[str, np.ndarray]) -> None:
    memory: list[float] = []

    result = keras_tune(build_fn, space, x=digits["x"][:128], y=digits["y"][:128], epochs=1,
                        batch_size=64, objective="loss", n_trials=30, storage=":memory:",
                        sampler=RandomSampler(), seed=0, show_progress_bar=False,
                        study_callbacks=[lambda study, frozen: memory.append(rss_mb())])

    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 30
    growth = memory[-1] - memory[WARM_UP - 1]
    assert growth < BOUND_MB, f"RSS grew {growth:.1f} MB over 25 trials: {memory}"


def test_custom_gradients_registered_by_a_fit_are_forgotten(build_fn: Any, space: Any,
                                                            digits: dict[str, np.ndarray]
                                                            ) -> None:
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    before = set(registry)

    with forget_custom_gradients():
        model = build_fn({"units": 4, "lr": 0.01})
        model.fit(digits["x"][:64], digits["y"][:64], epochs=1, verbose=0)
        registered = [n for n in registry if n not in before]

    assert registered and all(n.startswith("CustomGradient-") for n in registered)
    assert set(registry) == before


def test_clear_session_keeps_the_settings_the_user_made_and_no_other() -> None:
    """A policy the user set survives the clear between trials; one never set keeps following
    its default, so set_floatx still changes new layers' dtype."""
    import keras

    from hpo_plugins.keras._memory import clear_session

    keras.backend.clear_session()
    try:
        clear_session(collect=False)
        keras.config.set_floatx("float64")
        assert keras.layers.Dense(1).dtype == "float64"  # no policy was fixed by the clear
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("mixed_float16")
        keras.config.enable_unsafe_deserialization()
        clear_session(collect=False)
        assert keras.config.dtype_policy().name == "mixed_float16"
        assert keras.layers.Dense(1).dtype_policy.name == "mixed_float16"
        from keras.src.backend.common import global_state
        assert global_state.get_global_attribute("safe_mode_saving") is False
    finally:
        keras.config.set_floatx("float32")
        keras.backend.clear_session()  # Keras' own clear: back to no setting at all
