"""With a study logdir, Lightning's TensorBoard loggers write into the trial's run and leave the
HParams dashboard to the study."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning.pytorch as L
import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from lit_digits import DigitsClassifier, DigitsData
from tensorboard.plugins.hparams import metadata

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.lightning import HPOCallback, lightning_objective
from hpo_plugins.tensorboard import EXPERIMENT_FILE, run_dir
from hpo_plugins.tensorboard._writer import read_summary_values


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


class SavingClassifier(DigitsClassifier):
    """Calls ``save_hyperparameters()``, so Lightning logs the hyperparameters at fit start."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__(lr=lr)
        self.save_hyperparameters()


def _hparams_tags(logdir: Path) -> dict[str, list[str]]:
    """For each event file under ``logdir`` (relative path), its HParams and ``hp_metric``
    tags."""
    found: dict[str, list[str]] = {}
    for path in sorted(logdir.rglob("events.out.tfevents*")):
        tags = [tag for tag in (metadata.EXPERIMENT_TAG, metadata.SESSION_START_INFO_TAG,
                                "hp_metric") if read_summary_values(str(path), tag)]
        if tags:
            found[str(path.relative_to(logdir))] = tags
    return found


@pytest.mark.parametrize("logger", ["default", "user"])
def test_lightning_writes_no_hparams_session_under_the_study_logdir(
        tmp_path: Path, logger: str, caplog: pytest.LogCaptureFixture) -> None:
    """Lightning's TensorBoardLogger would write its own HParams session (hp_metric = -1) for a
    module that saves its hyperparameters: in the trial's run it would replace the trial's row
    in the HParams dashboard, in ``lightning_logs/version_0`` add a second one."""
    def objective(params: dict[str, float]) -> None:
        trial = hpo.current_trial()
        extra = ({"default_root_dir": trial.log_dir} if logger == "default" else
                 {"logger": TensorBoardLogger(run_dir(trial), name="", version="")})
        trainer = L.Trainer(max_epochs=1, callbacks=[HPOCallback()], accelerator="cpu",
                            enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, log_every_n_steps=1, **extra)
        trainer.fit(SavingClassifier(lr=params["lr"]), datamodule=DigitsData())

    logdir = tmp_path / "runs"
    with caplog.at_level(logging.INFO, logger="hpo_plugins.lightning"):
        study = hpo.minimize(objective, {"lr": hp.loguniform("lr", -6, -2)}, n_trials=1,
                             storage=":memory:", study_name="tb", logdir=str(logdir))
    assert study.trials[0].state is hpo.TrialState.COMPLETE
    run = Path(study.trials[0].log_dir or "").relative_to(logdir)
    lightning_files = [p for p in logdir.rglob("events.out.tfevents*")
                       if not p.name.endswith(".hpo") and p.name != EXPERIMENT_FILE]
    assert lightning_files  # Lightning did write its curves under the logdir
    hpo_file = next(p for p in (logdir / run).iterdir() if p.name.endswith(".hpo"))
    assert _hparams_tags(logdir) == {
        EXPERIMENT_FILE: [metadata.EXPERIMENT_TAG],
        str(run / hpo_file.name): [metadata.SESSION_START_INFO_TAG]}
    assert "default `hp_metric` HParams session is turned off" in caplog.text


def test_a_logger_outside_the_study_logdir_is_left_alone(tmp_path: Path) -> None:
    elsewhere = TensorBoardLogger(str(tmp_path / "elsewhere"), name="", version="")

    def objective(params: dict[str, float]) -> None:
        trainer = L.Trainer(max_epochs=1, callbacks=[HPOCallback()], accelerator="cpu",
                            enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False, logger=elsewhere,
                            log_every_n_steps=1)
        trainer.fit(SavingClassifier(lr=params["lr"]), datamodule=DigitsData())

    hpo.minimize(objective, {"lr": hp.loguniform("lr", -6, -2)}, n_trials=1,
                 storage=":memory:", study_name="tb", logdir=str(tmp_path / "runs"))
    assert elsewhere._default_hp_metric is True
    assert "hp_metric" in _hparams_tags(tmp_path / "elsewhere").popitem()[1]


def test_the_hp_metric_explanation_is_logged_once_per_study(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """It repeated at INFO for every trial of a study that follows the README's pattern."""
    from types import SimpleNamespace

    from hpo_plugins.lightning._loggers import quiet_hp_metric

    study = hpo.create_study({"lr": hp.uniform("lr", 0, 1)}, storage=":memory:",
                             study_name="once", logdir=str(tmp_path / "runs"))
    with caplog.at_level(logging.DEBUG, logger="hpo_plugins.lightning"):
        for _ in range(3):
            trial = study.ask()
            logger = TensorBoardLogger(run_dir(trial), name="", version="")
            quiet_hp_metric(SimpleNamespace(loggers=[logger]), trial)  # Trainer's attribute
            assert logger._default_hp_metric is False
            study.tell(trial, 0.5)
    levels = [r.levelno for r in caplog.records if "hp_metric" in r.getMessage()]
    assert levels == [logging.INFO, logging.DEBUG, logging.DEBUG]
