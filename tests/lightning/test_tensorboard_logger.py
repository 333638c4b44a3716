"""With a study logdir, lightning_objective's Lightning logger writes into the trial's run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lit_digits import DigitsClassifier, DigitsData

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.lightning import lightning_objective


@pytest.mark.slow
def test_lightning_curves_land_in_the_trial_run(tmp_path: Path) -> None:
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs={"max_epochs": 2, "log_every_n_steps": 1})
    study = hpo.minimize(objective, {"lr": hp.loguniform("lr", -6, -2)}, n_trials=1,
                         storage=f"sqlite:///{tmp_path}/tb.db", study_name="tb",
                         logdir=str(tmp_path / "runs"))
    run = Path(study.trials[0].log_dir or "")
    assert run.parent == tmp_path / "runs"
    files = [f for f in os.listdir(run) if f.startswith("events.out.tfevents")]
    assert any(not f.endswith(".hpo") for f in files), files  # Lightning's own event file
    assert any(f.endswith(".hpo") for f in files), files  # the trial's HParams session
