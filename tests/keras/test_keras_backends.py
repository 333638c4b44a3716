"""The torch backend, and what importing the package does, each in a fresh interpreter.

``KERAS_BACKEND`` is read when Keras is first imported, and this test process already runs Keras
on TensorFlow, so the torch-backend run happens in a subprocess.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from hpo_plugins.exceptions import MissingDependencyError

TORCH_RUN = textwrap.dedent("""
    import json, math
    import keras
    from sklearn.datasets import load_digits
    import hpo_plugins as hpo
    from hpo_plugins.keras import keras_tune
    from hpo_plugins.pruners import Pruner

    class PruneSecond(Pruner):
        def prune(self, trial, others, direction):
            return trial.number == 1 and (trial.last_step or 0) >= 1

    def build_fn(params):
        model = keras.Sequential([keras.Input((64,)),
                                  keras.layers.Dense(params["units"], activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    result = keras_tune(build_fn, {"units": hpo.hp.choice("units", [4, 8])}, x=x[:300],
                        y=y[:300], validation_data=(x[300:450], y[300:450]), epochs=3,
                        batch_size=64, objective="val_accuracy", n_trials=3,
                        storage=":memory:", sampler=hpo.samplers.RandomSampler(),
                        pruner=PruneSecond(), show_progress_bar=False)
    scores = result.best_model().evaluate(x[300:450], y[300:450], batch_size=64, verbose=0,
                                          return_dict=True)
    print(json.dumps({"backend": keras.backend.backend(),
                      "states": [t.state.value for t in result.study.trials],
                      "best": result.best_value, "reloaded": scores["accuracy"]}))
""")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env}, check=False)


@pytest.mark.slow
def test_keras_tune_on_the_torch_backend(tmp_path: object) -> None:
    pytest.importorskip("torch")

    done = run_python(TORCH_RUN, KERAS_BACKEND="torch")

    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "torch"
    assert out["states"] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert out["reloaded"] == pytest.approx(out["best"], abs=1e-6)


def test_importing_hpo_plugins_imports_no_framework() -> None:
    done = run_python("import sys, hpo_plugins; print(sorted(m for m in ('keras', "
                      "'tensorflow', 'torch') if m in sys.modules))")

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_without_keras_the_import_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "hpo_plugins.keras"
                 or m.startswith("hpo_plugins.keras.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "keras", None)  # what an absent package looks like

    with pytest.raises(MissingDependencyError,
                       match=r"pip install 'hpo_plugins\[keras\]'") as caught:
        importlib.import_module("hpo_plugins.keras")

    assert isinstance(caught.value, ImportError)
