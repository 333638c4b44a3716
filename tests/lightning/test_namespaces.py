"""Both Lightning namespaces, without mixing; what importing costs; a missing install."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
from lit_digits import PLDigitsClassifier, PLDigitsData

from hpo_plugins import TrialState
from hpo_plugins.exceptions import MissingDependencyError
from hpo_plugins.lightning import HPOCallback, lightning_objective
from hpo_plugins.lightning import pl as hpo_pl


def test_each_namespace_has_its_own_callback_class() -> None:
    assert isinstance(HPOCallback(), L.Callback)
    assert not isinstance(HPOCallback(), pl.Callback)
    assert isinstance(hpo_pl.HPOCallback(), pl.Callback)
    assert not isinstance(hpo_pl.HPOCallback(), L.Callback)


def test_pytorch_lightning_trainer_with_its_callback(make_study: Any, counting_storage: Any
                                                     ) -> None:
    study = make_study(counting_storage)

    def objective(params: Any) -> None:
        trainer = pl.Trainer(max_epochs=2, callbacks=[hpo_pl.HPOCallback()], logger=False,
                             accelerator="cpu", enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False)
        trainer.fit(PLDigitsClassifier(hidden=params["hidden"]), datamodule=PLDigitsData())

    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE
    assert counting_storage.steps_of(trial.trial_id) == [0, 1]


def test_lightning_objective_picks_the_modules_namespace(make_study: Any) -> None:
    study = make_study()
    objective = lightning_objective(PLDigitsClassifier, datamodule=PLDigitsData(),
                                    trainer_kwargs={"max_epochs": 1, "logger": False})
    study.optimize(objective, n_trials=1)  # a lightning.pytorch Trainer would refuse the module
    assert study.trials[0].state is TrialState.COMPLETE


@pytest.mark.slow
def test_imports_stay_light() -> None:
    code = (
        "import sys\n"
        "import hpo_plugins\n"
        "assert 'torch' not in sys.modules, 'hpo_plugins imported torch'\n"
        "import hpo_plugins.lightning\n"
        "assert 'torch' not in sys.modules, 'hpo_plugins.lightning imported torch'\n"
        "from hpo_plugins.lightning import HPOCallback\n"
        "from hpo_plugins.lightning.pl import HPOCallback as PLCallback\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("framework", "module", "name"), [
    ("lightning", "hpo_plugins.lightning", "HPOCallback"),
    ("pytorch_lightning", "hpo_plugins.lightning.pl", "HPOCallback"),
])
def test_missing_framework_names_the_install(monkeypatch: pytest.MonkeyPatch, framework: str,
                                             module: str, name: str) -> None:
    for loaded in [m for m in sys.modules if m.split(".")[0] == framework]:
        monkeypatch.setitem(sys.modules, loaded, None)  # None in sys.modules: ImportError
    for ours in ("hpo_plugins.lightning._callback", "hpo_plugins.lightning.pl"):
        monkeypatch.delitem(sys.modules, ours, raising=False)

    with pytest.raises(MissingDependencyError,
                       match=rf"`{framework}` is needed.*pip install 'hpo_plugins\[lightning\]'"):
        getattr(importlib.import_module(module), name)
