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
from hpo_plugins.keras._checks import fit_arguments
from hpo_plugins.keras._objective import KerasObjective
from hpo_plugins.keras._result import KerasTuneResult

Data = dict[str, np.ndarray]
EPOCHS = 5


class _Watch(keras.callbacks.Callback):
    """Records the epochs each attempt starts. The first attempt of a trial is lost as epoch
    ``lose_at`` starts; with ``("after", k)`` at the end of epoch ``k``, after the best-epoch
    checkpoint and before the epoch's backup; with ``"end"`` once the fit is over, after the
    last epoch's backup.

    Lost as a worker judged dead is: its trial is failed in the storage and re-queued (as the
    check of a stale heartbeat does), then the worker's fit stops (an exception). Such a worker
    must leave its backups to the retry, as a killed one does."""

    def __init__(self, lose_at: Any) -> None:
        super().__init__()
        self.lose_at = lose_at

    def _lose(self, when: Any) -> None:
        trial = hpo.current_trial()
        if self.lose_at == when and "retry_of" not in trial.system_attrs:
            dead = trial.study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None,
                                                    {"fail_reason": "stale heartbeat (test)"})
            trial.study.requeue_lost(dead)
            raise RuntimeError("lost")

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        trial = hpo.current_trial()
        trial.set_user_attr("epochs", [*trial.user_attrs.get("epochs", []), epoch])
        self._lose(epoch)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._lose(("after", epoch))

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._lose("end")


def _objective(digits: Data, build_fn: Any, lose_at: Any) -> KerasObjective:
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
                            logdir=str(tmp_path / f"{name}[1]"), **kwargs)  # no glob pattern


def _lose_then_retry(tmp_path: Path, digits: Data, build_fn: Any, lose_at: Any,
                     retry_build_fn: Any = None) -> tuple[hpo.FrozenTrial, hpo.FrozenTrial]:
    study = _study(tmp_path, "lost", max_retries=1)
    study.optimize(_objective(digits, build_fn, lose_at), n_trials=1, catch=RuntimeError)
    lost = study.trials[0]
    assert lost.state is TrialState.FAIL and lost.fail_reason == "stale heartbeat (test)"
    study.optimize(_objective(digits, retry_build_fn or build_fn, lose_at), n_trials=1)
    return study.trials[0], study.trials[1]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, digits: Data,
          build_fn: Any) -> hpo.FrozenTrial:
    """The same trial, never interrupted."""
    study = _study(tmp_path_factory.mktemp("whole"), "whole")
    study.optimize(_objective(digits, build_fn, None), n_trials=1)
    return study.trials[0]


def _backups_left(trial: hpo.FrozenTrial) -> list[str]:
    folder = Path(trial.log_dir or "") / "backup"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize(("lose_at", "done"), [
    (3, 3),  # as epoch 3 starts: the backup after 3 epochs
    (("after", 2), 2),  # after epoch 2's best checkpoint, before its backup: epoch 2 again
    ("end", EPOCHS),  # after the last backup: nothing left to train
])
def test_a_lost_trial_goes_on_from_its_last_epoch_as_if_never_interrupted(
        tmp_path: Path, digits: Data, build_fn: Any, whole: hpo.FrozenTrial, lose_at: Any,
        done: int) -> None:
    lost, retry = _lose_then_retry(tmp_path, digits, build_fn, lose_at)
    assert retry.state is TrialState.COMPLETE and retry.system_attrs["retry_of"] == 0
    resumed = retry.system_attrs["resumed_from"]
    assert (resumed["trial"], resumed["step"]) == (0, done - 1)
    assert os.path.basename(resumed["checkpoint"]) == f"epoch={done}"
    assert retry.user_attrs.get("epochs", []) == list(range(done, EPOCHS))  # not 0.. again
    # weights and optimiser restored: the same curve and value as the uninterrupted trial
    assert sorted(retry.intermediate_values) == list(range(EPOCHS))
    assert retry.intermediate_values == pytest.approx(whole.intermediate_values, rel=1e-5)
    assert retry.value == pytest.approx(whole.value, rel=1e-5)
    for step in range(done):  # the lost trial's reports, carried over
        assert retry.intermediate_values[step] == lost.intermediate_values[step]
    # the lost worker, judged dead, left its backups to the retry; the retry, once ended,
    # deleted them and its own: nothing is left to resume
    assert _backups_left(lost) == [] and _backups_left(retry) == []


def test_a_judged_dead_worker_leaves_its_backup_and_it_holds_the_best_weights_of_its_epoch(
        tmp_path: Path, digits: Data, build_fn: Any, whole: hpo.FrozenTrial) -> None:
    """Lost after epoch 2's best-epoch checkpoint and before its backup: the live best file
    holds epoch 2, the backup (after 2 epochs) the best of epochs 0 and 1, which is what a
    retry resuming from it must carry over with the best value so far."""
    study = _study(tmp_path, "lost", max_retries=1)
    study.optimize(_objective(digits, build_fn, ("after", 2)), n_trials=1, catch=RuntimeError)
    lost = study.trials[0]
    assert _backups_left(lost) == ["epoch=2"]  # failed elsewhere: this worker deleted nothing
    curve = lost.intermediate_values
    assert curve[2] < min(curve[0], curve[1])  # epoch 2 is the best: the live file moved on
    scores = {}
    for name, path in (("backup", Path(lost.log_dir or "") / "backup" / "epoch=2"
                        / "best.weights.h5"),
                       ("live", Path(lost.user_attrs["checkpoint"]))):
        model = KerasTuneResult(study, build_fn).build_fn(lost.natural)
        model.optimizer.build(model.trainable_variables)
        model.load_weights(str(path))
        scores[name] = model.evaluate(digits["x_val"], digits["y_val"], verbose=0)[0]
    assert scores["backup"] == pytest.approx(min(curve[0], curve[1]), rel=1e-4)
    assert scores["live"] == pytest.approx(curve[2], rel=1e-4)


def test_a_judged_dead_worker_that_nothing_retries_deletes_its_backup(
        tmp_path: Path, digits: Data, build_fn: Any) -> None:
    study = _study(tmp_path, "lost")  # max_retries=0: the lost trial is not re-queued
    study.optimize(_objective(digits, build_fn, 3), n_trials=1, catch=RuntimeError)
    (lost,) = study.trials
    assert lost.fail_reason == "stale heartbeat (test)" and _backups_left(lost) == []


def test_the_best_epoch_weights_are_carried_over(tmp_path: Path, digits: Data,
                                                 build_fn: Any) -> None:
    """Lost after its last epoch, the retry trains no more: its value and best weights are the
    lost trial's, and ``best_model`` loads them."""
    _, retry = _lose_then_retry(tmp_path, digits, build_fn, "end")
    best = Path(retry.user_attrs["checkpoint"])
    assert best.parent == Path(retry.log_dir or "") and best.exists()
    study = hpo.load_study("lost", f"sqlite:///{tmp_path}/k.db")
    model = KerasTuneResult(study, build_fn).best_model()
    loss = model.evaluate(digits["x_val"], digits["y_val"], verbose=0)[0]
    assert loss == pytest.approx(retry.value, rel=1e-4) and math.isfinite(loss)


def test_a_trial_lost_before_its_first_epoch_ended_starts_over(
        tmp_path: Path, digits: Data, build_fn: Any, whole: hpo.FrozenTrial) -> None:
    _, retry = _lose_then_retry(tmp_path, digits, build_fn, 0)
    assert retry.state is TrialState.COMPLETE and "resumed_from" not in retry.system_attrs
    assert retry.user_attrs["epochs"] == list(range(EPOCHS))
    assert retry.intermediate_values == pytest.approx(whole.intermediate_values, rel=1e-5)


@pytest.mark.parametrize(("change", "error"), [("wider", "ValueError"),
                                               ("sgd", "Skipping variable")])
def test_a_backup_that_does_not_fit_the_model_is_not_used(
        tmp_path: Path, digits: Data, build_fn: Any, change: str, error: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """build_fn changed between the runs (wider layers; the same layers with another optimiser,
    whose variables differ): the retry trains from scratch, says why, and does not pass off a
    half-loaded model (or a fresh optimiser on old weights) as a resume."""

    def changed(params: dict[str, Any]) -> Any:
        if change == "wider":
            return build_fn({**params, "units": 16})
        model = build_fn(params)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss="sparse_categorical_crossentropy", jit_compile=False)
        return model

    lost, retry = _lose_then_retry(tmp_path, digits, build_fn, 3, changed)
    assert retry.state is TrialState.COMPLETE and "resumed_from" not in retry.system_attrs
    failed = retry.system_attrs["resume_failed"]
    assert failed["trial"] == 0 and error in failed["error"] and len(failed["error"]) <= 400
    assert retry.user_attrs["epochs"] == list(range(EPOCHS))
    assert "cannot resume lost trial 0" in caplog.text and "trains from scratch" in caplog.text
    assert _backups_left(lost) == []  # the retry ended: nothing is left to resume


def test_without_resume_no_backup_is_written(tmp_path: Path, digits: Data,
                                             build_fn: Any) -> None:
    result = keras_tune(build_fn, {"units": hp.choice("units", [4]),
                                   "lr": hp.choice("lr", [0.01])},
                        x=digits["x"], y=digits["y"],
                        validation_data=(digits["x_val"], digits["y_val"]), epochs=2,
                        n_trials=1, storage=f"sqlite:///{tmp_path}/k.db",
                        show_progress_bar=False)
    assert not (Path(result.best_trial.log_dir or "") / "backup").exists()


def test_resume_without_retries_warns_once(tmp_path: Path, build_fn: Any, digits: Data,
                                           caplog: pytest.LogCaptureFixture) -> None:
    keras_tune(build_fn, {"units": hp.choice("units", [4, 8]), "lr": hp.choice("lr", [0.01])},
               x=digits["x"], y=digits["y"],
               validation_data=(digits["x_val"], digits["y_val"]), epochs=1, n_trials=2,
               storage=f"sqlite:///{tmp_path}/k.db", study_name="no-retries",
               resume_lost_trials=True, show_progress_bar=False)
    warned = [r for r in caplog.records if "max_retries=0: a lost trial is not re-queued" in
              r.getMessage()]
    assert len(warned) == 1 and "keras_tune(resume_lost_trials=True) in study 'no-retries'" \
        in warned[0].getMessage()


def test_resume_lost_trials_must_be_a_bool(build_fn: Any, digits: Data) -> None:
    with pytest.raises(ConfigurationError, match=r"resume_lost_trials=1"):
        keras_tune(build_fn, {"units": hp.choice("units", [4])}, x=digits["x"], y=digits["y"],
                   resume_lost_trials=1)  # type: ignore[arg-type]


def test_a_trial_a_parallel_run_stopped_loses_its_backups_and_its_chains(
        tmp_path: Path) -> None:
    """What the launcher does after Ctrl-C, when the killed workers could not clean up: the
    stopped trial's backups and those of the lost trial it retried go; the best weights and
    other trials' backups stay (the Lightning side is tested with a real Ctrl-C)."""
    import hpo_plugins.keras._resume  # noqa: F401  (registers the Keras discarder)
    from hpo_plugins._resume import discard_stopped

    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:",
                             logdir=str(tmp_path / "runs"), max_retries=1,
                             heartbeat_interval=None)
    lost, other = study.ask(), study.ask()
    study.tell(lost, state=TrialState.FAIL)
    study.requeue_lost(study.trials[0])
    retry = study.ask()
    for trial in (lost, other, retry):
        (Path(trial.log_dir) / "backup" / "epoch=2").mkdir(parents=True)
        (Path(trial.log_dir) / "best.weights.h5").write_bytes(b"best")
    stopped = study.tell(retry, state=TrialState.FAIL)
    assert stopped.system_attrs["retry_of"] == lost.number
    discard_stopped(study, [stopped])
    assert not (Path(lost.log_dir) / "backup" / "epoch=2").exists()
    assert not (Path(retry.log_dir) / "backup" / "epoch=2").exists()
    assert (Path(other.log_dir) / "backup" / "epoch=2").exists()
    assert all((Path(t.log_dir) / "best.weights.h5").exists() for t in (lost, other, retry))
