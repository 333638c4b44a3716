"""keras_tune(resume_lost_trials=True): a trial whose worker was lost mid-training is re-queued
and goes on from the lost trial's last finished epoch instead of training from scratch."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._frozen import Direction
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras import keras_tune
from hpo_plugins.keras._tune import KerasObjective, KerasTuneResult, fit_arguments

Data = dict[str, np.ndarray]
EPOCHS = 5


class _Watch(keras.callbacks.Callback):
    """Records the epochs each attempt starts. The first attempt of a trial is lost (an
    exception stands in for the kill) as epoch ``lose_at`` starts, or, with ``"end"``, once the
    fit is over, after the last epoch's backup."""

    def __init__(self, lose_at: int | str | None) -> None:
        super().__init__()
        self.lose_at = lose_at

    def _lose(self, when: int | str) -> None:
        if self.lose_at == when and "retry_of" not in hpo.current_trial().system_attrs:
            raise RuntimeError("lost")

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        trial = hpo.current_trial()
        trial.set_user_attr("epochs", [*trial.user_attrs.get("epochs", []), epoch])
        self._lose(epoch)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._lose("end")


def _objective(digits: Data, build_fn: Any, lose_at: int | str | None) -> KerasObjective:
    # no shuffling and no dropout: the random state, which a resume does not restore, plays no
    # part, so a resumed trial must match an uninterrupted one exactly
    kwargs = fit_arguments({"shuffle": False}, x=digits["x"], y=digits["y"],
                           validation_data=(digits["x_val"], digits["y_val"]), epochs=EPOCHS,
                           batch_size=64, validation_split=0.0)
    return KerasObjective(build_fn, fit_kwargs=kwargs, objective="val_loss",
                          direction=Direction.MINIMIZE, callbacks=[_Watch(lose_at)], seed=0,
                          resume_lost_trials=True)


def _study(tmp_path: Path, name: str, **kwargs: Any) -> hpo.Study:
    return hpo.create_study({"units": hp.choice("units", [8]), "lr": hp.choice("lr", [0.01])},
                            storage=f"sqlite:///{tmp_path}/k.db", study_name=name,
                            logdir=str(tmp_path / name), **kwargs)


def _lose_then_retry(tmp_path: Path, digits: Data, build_fn: Any, lose_at: int | str,
                     monkeypatch: pytest.MonkeyPatch) -> tuple[hpo.FrozenTrial, hpo.FrozenTrial]:
    study = _study(tmp_path, "lost", max_retries=1)
    with monkeypatch.context() as patch:  # a killed worker never cleans up after its trial
        patch.setattr("hpo_plugins.keras._tune.discard_backups", lambda trial: None)
        study.optimize(_objective(digits, build_fn, lose_at), n_trials=1, catch=RuntimeError)
    lost = study.trials[0]
    assert lost.state is TrialState.FAIL
    study.requeue_lost(lost)  # what the stale heartbeat of a killed worker leads to
    study.optimize(_objective(digits, build_fn, lose_at), n_trials=1)
    return study.trials[0], study.trials[1]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, digits: Data,
          build_fn: Any) -> hpo.FrozenTrial:
    """The same trial, never interrupted."""
    study = _study(tmp_path_factory.mktemp("whole"), "whole")
    study.optimize(_objective(digits, build_fn, None), n_trials=1)
    return study.trials[0]


@pytest.mark.parametrize("lose_at", [3, "end"])
def test_a_lost_trial_goes_on_from_its_last_epoch_as_if_never_interrupted(
        tmp_path: Path, digits: Data, build_fn: Any, whole: hpo.FrozenTrial,
        monkeypatch: pytest.MonkeyPatch, lose_at: int | str) -> None:
    lost, retry = _lose_then_retry(tmp_path, digits, build_fn, lose_at, monkeypatch)
    done = EPOCHS if lose_at == "end" else int(lose_at)  # epochs the lost attempt finished
    assert retry.state is TrialState.COMPLETE and retry.system_attrs["retry_of"] == 0
    resumed = retry.system_attrs["resumed_from"]
    assert (resumed["trial"], resumed["step"]) == (0, done - 1)
    assert os.path.basename(resumed["checkpoint"]) == f"epoch={done}.weights.h5"
    assert retry.user_attrs.get("epochs", []) == list(range(done, EPOCHS))  # not 0.. again
    # weights and optimiser restored: the same curve and value as the uninterrupted trial
    assert sorted(retry.intermediate_values) == list(range(EPOCHS))
    assert retry.intermediate_values == pytest.approx(whole.intermediate_values, rel=1e-5)
    assert retry.value == pytest.approx(whole.value, rel=1e-5)
    for step in range(done):  # the lost trial's reports, carried over
        assert retry.intermediate_values[step] == lost.intermediate_values[step]
    for trial in (lost, retry):  # the trial ended: nothing is left to resume
        assert list((Path(trial.log_dir or "") / "backup").glob("*.h5")) == []


def test_the_best_epoch_weights_are_carried_over(tmp_path: Path, digits: Data, build_fn: Any,
                                                 whole: hpo.FrozenTrial,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Lost after its last epoch, the retry trains no more: its value and best weights are the
    lost trial's, and ``best_model`` loads them."""
    _, retry = _lose_then_retry(tmp_path, digits, build_fn, "end", monkeypatch)
    best = Path(retry.user_attrs["checkpoint"])
    assert best.parent == Path(retry.log_dir or "") and best.exists()
    study = hpo.load_study("lost", f"sqlite:///{tmp_path}/k.db")
    model = KerasTuneResult(study, build_fn).best_model()
    loss = model.evaluate(digits["x_val"], digits["y_val"], verbose=0)[0]
    assert loss == pytest.approx(retry.value, rel=1e-4) and math.isfinite(loss)


def test_a_trial_lost_before_its_first_epoch_ended_starts_over(
        tmp_path: Path, digits: Data, build_fn: Any, whole: hpo.FrozenTrial,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, retry = _lose_then_retry(tmp_path, digits, build_fn, 0, monkeypatch)
    assert retry.state is TrialState.COMPLETE and "resumed_from" not in retry.system_attrs
    assert retry.user_attrs["epochs"] == list(range(EPOCHS))
    assert retry.intermediate_values == pytest.approx(whole.intermediate_values, rel=1e-5)


def test_without_resume_no_backup_is_written(tmp_path: Path, digits: Data,
                                             build_fn: Any) -> None:
    result = keras_tune(build_fn, {"units": hp.choice("units", [4]),
                                   "lr": hp.choice("lr", [0.01])},
                        x=digits["x"], y=digits["y"],
                        validation_data=(digits["x_val"], digits["y_val"]), epochs=2,
                        n_trials=1, storage=f"sqlite:///{tmp_path}/k.db",
                        show_progress_bar=False)
    assert not (Path(result.best_trial.log_dir or "") / "backup").exists()


def test_resume_lost_trials_must_be_a_bool(build_fn: Any, digits: Data) -> None:
    with pytest.raises(ConfigurationError, match=r"resume_lost_trials=1"):
        keras_tune(build_fn, {"units": hp.choice("units", [4])}, x=digits["x"], y=digits["y"],
                   resume_lost_trials=1)  # type: ignore[arg-type]
