"""lightning_objective(resume_lost_trials=True): a trial whose worker was killed mid-training is
re-queued and resumes from its last checkpoint instead of training again from scratch."""

from __future__ import annotations

import functools
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from lit_digits import N_TRAIN, DigitsClassifier, DigitsData, digits_arrays
from torch.utils.data import DataLoader, TensorDataset

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.lightning import lightning_objective

HERE = Path(__file__).parent

#: The run, as a script: the first attempt of trial 0 kills its own process at the first batch
#: of epoch 3 (the checkpoint that covers epoch 2 is written as that epoch starts), as a
#: preempted machine would; a retry never does.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    import lightning.pytorch as L
    import hpo_plugins as hpo
    from hpo_plugins.lightning import lightning_objective
    from lit_digits import DigitsClassifier, DigitsData

    class Recorder(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            trial = hpo.current_trial()
            started = list(trial.user_attrs.get("epochs_started", []))
            trial.set_user_attr("epochs_started", started + [trainer.current_epoch])

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            trial = hpo.current_trial()
            if trainer.current_epoch == 3 and "retry_of" not in trial.system_attrs:
                os.kill(os.getpid(), signal.SIGKILL)

    if __name__ == "__main__":
        objective = lightning_objective(
            DigitsClassifier, datamodule=DigitsData(), callbacks=[Recorder()],
            trainer_kwargs={{"max_epochs": 5, "accelerator": "cpu", "devices": 1,
                            "logger": False}},
            resume_lost_trials={resume})
        hpo.minimize(objective, {{"hidden": hpo.hp.choice("hidden", [8, 16])}}, n_trials=1,
                     storage=sys.argv[1], study_name="resume", seed=0, max_retries=1,
                     heartbeat_interval=0.2, grace_period=1.0,
                     sampler=hpo.samplers.RandomSampler())
""")


def _run(script: Path, url: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, str(script), url], env=env, timeout=300,
                          capture_output=True, text=True).returncode


@pytest.mark.slow
def test_a_killed_trial_is_retried_from_its_last_checkpoint(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(here=str(HERE), resume=True))
    url = f"sqlite:///{tmp_path}/s.db"
    assert _run(script, url) == -9  # killed, as a preempted machine is
    lost = hpo.load_study("resume", url).trials[0]
    assert lost.state is TrialState.RUNNING and sorted(lost.intermediate_values) == [0, 1, 2]
    checkpoint = Path(lost.log_dir or "") / "checkpoints" / "last-step=2.ckpt"
    assert checkpoint.exists()
    assert _run(script, url) == 0  # at once: its process on this host is gone, so it is lost
    dead, retry = hpo.load_study("resume", url).trials
    assert dead.state is TrialState.FAIL and "on this host was gone" in (dead.fail_reason or "")
    assert retry.state is TrialState.COMPLETE and retry.system_attrs["retry_of"] == 0
    assert sorted(retry.intermediate_values) == [0, 1, 2, 3, 4]
    assert retry.user_attrs["epochs_started"] == [3, 4]  # not 0, 1, 2 again
    assert retry.system_attrs["resumed_from"] == {"trial": 0, "checkpoint": str(checkpoint),
                                                  "step": 2}
    for step in (0, 1, 2):  # the lost trial's reports, carried over
        assert retry.intermediate_values[step] == lost.intermediate_values[step]
    assert not checkpoint.exists()  # the trial ended: nothing is left to resume
    assert list((Path(retry.log_dir or "") / "checkpoints").glob("last-*")) == []


class _Scheduled(DigitsClassifier):
    """SGD whose rate a plateau scheduler halves every ``frequency`` epochs (mode "max" on a
    falling loss: never an improvement)."""

    def __init__(self, frequency: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frequency = frequency

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.5)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5,
                                                             patience=0)
        return {"optimizer": optimizer, "lr_scheduler": {
            "scheduler": plateau, "monitor": "val_loss", "frequency": self.frequency}}


def _scheduled(params: dict[str, Any], frequency: int) -> _Scheduled:
    return _Scheduled(frequency=frequency, **params)


class _Shuffled(L.LightningDataModule):
    """The digits, shuffled by torch's global generator (restored on a resume)."""

    def train_dataloader(self) -> DataLoader:
        x, y = digits_arrays()
        return DataLoader(TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), batch_size=200, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        x, y = digits_arrays()
        return DataLoader(TensorDataset(x[N_TRAIN:], y[N_TRAIN:]), batch_size=512)


class _Watch(L.Callback):
    """Records each epoch's start and learning rate. The first attempt of a trial is lost (an
    exception stands in for the kill) at the first batch of epoch ``lose_at``, or, with
    ``lose_at="end"``, when the fit ends, after its last checkpoint."""

    def __init__(self, lose_at: int | str | None) -> None:
        self.lose_at = lose_at

    def _lose(self, when: int | str) -> None:
        if self.lose_at == when and "retry_of" not in hpo.current_trial().system_attrs:
            raise RuntimeError("lost")

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        self._lose(trainer.current_epoch)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._lose("end")

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        trial = hpo.current_trial()
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        seen = [list(e) for e in trial.user_attrs.get("epochs", [])]
        trial.set_user_attr("epochs", [*seen, [trainer.current_epoch, lr]])


def _resumable(lose_at: int | str | None, frequency: int = 1, patience: int = 20) -> Any:
    # min_delta=10: the loss never improves that much, so EarlyStopping stops after `patience`
    stop = EarlyStopping(monitor="val_loss", patience=patience, min_delta=10.0)
    return lightning_objective(
        functools.partial(_scheduled, frequency=frequency), datamodule=_Shuffled(), seed=0,
        resume_lost_trials=True, callbacks=[_Watch(lose_at), stop],
        trainer_kwargs={"max_epochs": 5, "accelerator": "cpu", "devices": 1, "logger": False})


@pytest.mark.parametrize(("lose_at", "frequency", "patience"), [
    (3, 1, 20),  # the plateau scheduler steps every epoch
    (3, 2, 20),  # every other epoch: the checkpoint's epoch owes no step...
    (4, 2, 20),  # ...or one
    (2, 1, 2),  # EarlyStopping's counter (1 at the checkpoint) stops the retry after epoch 2
    ("end", 1, 2),  # lost after the checkpoint of the epoch that decided to stop
])
def test_a_resumed_trial_trains_exactly_as_an_uninterrupted_one(
        make_study: Any, monkeypatch: pytest.MonkeyPatch, lose_at: int | str, frequency: int,
        patience: int) -> None:
    reference = make_study()
    reference.optimize(_resumable(None, frequency, patience), n_trials=1)
    (whole,) = reference.trials
    study = make_study(max_retries=1)
    with monkeypatch.context() as patch:  # a killed worker never cleans up after its trial
        patch.setattr("hpo_plugins.lightning._objective.discard_checkpoints", lambda trial: None)
        study.optimize(_resumable(lose_at, frequency, patience), n_trials=1, catch=RuntimeError)
    lost = study.trials[0]
    assert lost.state is TrialState.FAIL
    study.requeue_lost(lost)
    study.optimize(_resumable(lose_at, frequency, patience), n_trials=1)
    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    resumed = retry.system_attrs["resumed_from"]["step"]
    assert resumed == max(lost.intermediate_values)  # the last epoch it finished
    # same weights, optimiser, plateau scheduler, EarlyStopping state, stop decision and
    # shuffling as without the interruption: the same learning rates and the same curve
    assert retry.user_attrs.get("epochs", []) == [e for e in whole.user_attrs["epochs"]
                                                  if e[0] > resumed]
    assert retry.intermediate_values == pytest.approx(whole.intermediate_values, rel=1e-6)
    for trial in (lost, retry):
        assert list((Path(trial.log_dir or "") / "checkpoints").glob("last-*")) == []


def test_the_checkpoint_callbacks_pickle_for_ddp_spawn(tmp_path: Path) -> None:
    from hpo_plugins.lightning import _callback, pl

    for namespace in (_callback, pl):
        callback = pickle.loads(pickle.dumps(namespace.LastCheckpoint(str(tmp_path))))
        assert type(callback) is namespace.LastCheckpoint and callback.log_dir == str(tmp_path)
        best = pickle.loads(pickle.dumps(namespace.BestCheckpoint(
            dirpath=str(tmp_path), filename="best", moved_from=str(tmp_path / "lost"))))
        assert type(best) is namespace.BestCheckpoint and best.moved_from == str(tmp_path / "lost")


def test_a_trial_that_ends_keeps_no_resumable_checkpoint(make_study: Any) -> None:
    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs={"max_epochs": 3, "accelerator": "cpu",
                                                    "devices": 1, "logger": False},
                                    resume_lost_trials=True)
    seen: list[list[str]] = []

    class Spy(L.Callback):
        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            folder = Path(hpo.current_trial().log_dir) / "checkpoints"
            seen.append(sorted(p.name for p in folder.glob("last-*")))

    objective.callbacks.append(Spy())
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    folder = Path(trial.log_dir or "") / "checkpoints"
    assert trial.state is TrialState.COMPLETE
    assert seen == [[], ["last-step=0.ckpt"], ["last-step=1.ckpt"]]  # the newest, while it ran
    assert list(folder.glob("last-*")) == []
    assert "resume_lost_trials=True" in repr(objective)


def test_a_lost_trial_without_a_checkpoint_starts_over(make_study: Any) -> None:
    study = make_study(max_retries=1)
    lost = study.ask()
    folder = Path(lost.log_dir) / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last-step=3.ckpt.tmp").write_bytes(b"cut short")  # killed while writing
    study.tell(lost, state="FAIL")
    study.requeue_lost(study.trials[0])
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs={"max_epochs": 2, "accelerator": "cpu",
                                                    "devices": 1, "logger": False},
                                    resume_lost_trials=True)
    study.optimize(objective, n_trials=1)
    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE and sorted(retry.intermediate_values) == [0, 1]
    assert "resumed_from" not in retry.system_attrs
    assert list(folder.iterdir()) == []  # the lost trial's leftovers went with it


def test_resume_lost_trials_must_be_a_bool_and_needs_checkpointing() -> None:
    with pytest.raises(ConfigurationError, match="Expected `resume_lost_trials` to be True or "
                                                 "False. Received: resume_lost_trials='yes'"):
        lightning_objective(DigitsClassifier, resume_lost_trials="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="without enable_checkpointing=False"):
        lightning_objective(DigitsClassifier, resume_lost_trials=True,
                            trainer_kwargs={"enable_checkpointing": False})
    with pytest.raises(ConfigurationError, match="Expected epoch-based training.*max_steps=40"):
        lightning_objective(DigitsClassifier, resume_lost_trials=True,
                            trainer_kwargs={"max_steps": 40})
    # save_checkpoint's ModelCheckpoint is refused by Lightning then, inside the first trial
    with pytest.raises(ConfigurationError, match="without enable_checkpointing=False when "
                                                 "save_checkpoint=True"):
        lightning_objective(DigitsClassifier, save_checkpoint=True,
                            trainer_kwargs={"enable_checkpointing": False})


class SuffixCheckpointIO(TorchCheckpointIO):
    """A plugin that writes elsewhere than the path it is given (a compressing one, say)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any = None) -> None:
        super().save_checkpoint(checkpoint, f"{path}.gz", storage_options)


@pytest.mark.parametrize("plugin", [lambda: AsyncCheckpointIO(), SuffixCheckpointIO],
                         ids=["async", "other-path"])
def test_a_checkpoint_plugin_that_does_not_write_the_file_at_once_is_refused(
        make_study: Any, plugin: Any) -> None:
    """The epoch's checkpoint is renamed into place right after save_checkpoint returns; with
    AsyncCheckpointIO (or a plugin writing another path) that failed with a bare
    FileNotFoundError from os.replace, or could rename half a file."""
    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs={"max_epochs": 1, "accelerator": "cpu",
                                                    "devices": 1, "logger": False,
                                                    "plugins": [plugin()]},
                                    resume_lost_trials=True)
    name = "AsyncCheckpointIO" if plugin is not SuffixCheckpointIO else "SuffixCheckpointIO"
    with pytest.raises(ConfigurationError, match=rf"Expected a checkpoint plugin that writes "
                                                 rf"the file it is given, at once.*{name}"):
        study.optimize(objective, n_trials=1)


def test_a_copied_study_resumes_a_lost_trial_and_leaves_the_originals_checkpoint(
        make_study: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the copy's trial folders go to ./hpo_runs/<name>
    storage = hpo.storages.InMemoryStorage()
    original = make_study(storage=storage, study_name="orig", logdir=str(tmp_path / "orig"),
                          max_retries=1)
    with monkeypatch.context() as patch:  # a killed worker never cleans up after its trial
        patch.setattr("hpo_plugins.lightning._objective.discard_checkpoints", lambda trial: None)
        original.optimize(_resumable(3), n_trials=1, catch=RuntimeError)
    kept = sorted((tmp_path / "orig" / "trial_0000" / "checkpoints").glob("last-*"))
    assert [p.name for p in kept] == ["last-step=2.ckpt"]
    hpo.copy_study("orig", storage, storage, "copy")  # renamed: a logdir of its own
    copy = make_study(storage=storage, study_name="copy", max_retries=1)
    copy.requeue_lost(copy.trials[0])
    copy.optimize(_resumable(3), n_trials=1)
    retry = copy.trials[1]
    assert retry.state is TrialState.COMPLETE and retry.system_attrs["resumed_from"]["step"] == 2
    assert (retry.log_dir or "").startswith(str(tmp_path / "hpo_runs" / "copy"))
    assert [p.exists() for p in kept] == [True]  # the original's file is the original's


class _JudgedDead(L.Callback):
    """At the first batch of epoch 2 of a trial's first attempt, the trial is failed in the
    storage and re-queued (as the check of a stale heartbeat does while its process is
    stopped), then the process comes back and its fit fails on it."""

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        trial = hpo.current_trial()
        if trainer.current_epoch == 2 and "retry_of" not in trial.system_attrs:
            dead = trial.study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None,
                                                    {"fail_reason": "stale heartbeat (test)"})
            trial.study.requeue_lost(dead)
            raise RuntimeError("came back")


def test_a_worker_judged_dead_leaves_its_checkpoint_to_the_retry(make_study: Any,
                                                                 tmp_path: Path) -> None:
    study = make_study(max_retries=1, logdir=str(tmp_path / "runs[1]"))  # no glob pattern
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    callbacks=[_JudgedDead()], resume_lost_trials=True,
                                    trainer_kwargs={"max_epochs": 3, "accelerator": "cpu",
                                                    "devices": 1, "logger": False})
    study.optimize(objective, n_trials=1, catch=RuntimeError)
    lost = study.trials[0]
    assert lost.fail_reason == "stale heartbeat (test)"  # the first end stands
    folder = Path(lost.log_dir or "") / "checkpoints"
    assert [p.name for p in folder.iterdir()] == ["last-step=1.ckpt"]  # not deleted
    study.optimize(objective, n_trials=1)
    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE and retry.system_attrs["resumed_from"]["step"] == 1
    assert list(folder.iterdir()) == []  # the retry ended: now nobody can resume it


class _Deeper(_Scheduled):
    """The module after an edit between the lost trial and its retry: one more layer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = torch.nn.Sequential(self.net, torch.nn.ReLU(), torch.nn.Linear(10, 10))


@pytest.mark.parametrize("damage", ["architecture", "file"])
def test_a_checkpoint_that_does_not_load_is_not_used_and_the_retry_starts_over(
        make_study: Any, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    """As ``keras_tune``: the retry trains from scratch as a first attempt would, and says why
    in ``"resume_failed"``, instead of failing inside ``fit``."""
    study = make_study(max_retries=1)
    with monkeypatch.context() as patch:  # a killed worker never cleans up after its trial
        patch.setattr("hpo_plugins.lightning._objective.discard_checkpoints", lambda trial: None)
        study.optimize(_resumable(3), n_trials=1, catch=RuntimeError)
    lost = study.trials[0]
    (checkpoint,) = (Path(lost.log_dir or "") / "checkpoints").glob("last-*")
    if damage == "file":
        checkpoint.write_bytes(b"not a checkpoint")  # a disk that lost it
    study.requeue_lost(lost)
    retry_objective = _resumable(None)
    if damage == "architecture":
        retry_objective.module = lambda params: _Deeper(**params)
    study.optimize(retry_objective, n_trials=1)

    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    assert sorted(retry.intermediate_values) == [0, 1, 2, 3, 4]  # all its own
    assert [e[0] for e in retry.user_attrs["epochs"]] == [0, 1, 2, 3, 4]
    assert "resumed_from" not in retry.system_attrs
    failed = retry.system_attrs["resume_failed"]
    assert failed["trial"] == 0 and failed["checkpoint"] == str(checkpoint)
    if damage == "architecture":
        assert failed["error"].startswith("RuntimeError: Error(s) in loading state_dict for "
                                          "_Deeper: Missing key(s)"), failed["error"]
    else:
        assert failed["error"].split(":")[0].endswith("Error"), failed["error"]
    if damage == "file":  # a fresh start: the same curve as a trial never lost
        reference = make_study()
        reference.optimize(_resumable(None), n_trials=1)
        assert retry.intermediate_values == pytest.approx(
            reference.trials[0].intermediate_values, rel=1e-6)


class _HeadInSetup(_Scheduled):
    """A module that makes a layer in ``setup``, as Lightning's docs show: the fresh module has
    no such weights before ``fit``, so only Lightning can load them."""

    def setup(self, stage: str) -> None:
        if not hasattr(self, "head"):
            self.head = torch.nn.Linear(10, 10)


def test_a_module_that_builds_layers_in_setup_still_resumes(make_study: Any,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    def objective(lose_at: int | None) -> Any:
        made = _resumable(lose_at)
        made.module = lambda params: _HeadInSetup(**params)
        return made

    study = make_study(max_retries=1)
    with monkeypatch.context() as patch:  # a killed worker never cleans up after its trial
        patch.setattr("hpo_plugins.lightning._objective.discard_checkpoints", lambda trial: None)
        study.optimize(objective(3), n_trials=1, catch=RuntimeError)
    study.requeue_lost(study.trials[0])
    study.optimize(objective(None), n_trials=1)

    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    assert retry.system_attrs["resumed_from"]["step"] == 2
    assert "resume_failed" not in retry.system_attrs


class _ScriptedLoss(DigitsClassifier):
    """Logs a scripted ``val_loss`` per epoch, best at epoch 1, so that the best checkpoint
    comes before the loss of the first attempt."""

    SCRIPT = (1.0, 0.5, 0.9, 0.8, 0.7)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self.SCRIPT[self.current_epoch])


def _best_of(path: str) -> tuple[int, float]:
    """The epoch a best checkpoint was written at and the best score it records."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    (record,) = [v for k, v in state["callbacks"].items() if "Checkpoint{" in k
                 and "best_model_score" in v]
    return int(state["epoch"]), float(record["best_model_score"])


def test_a_resumed_trial_keeps_the_lost_trials_best_checkpoint(
        make_study: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning drops ModelCheckpoint's record of the best when its folder changes: without
    the carry-over, epoch 3 (0.8) would become the retry's "best" next to a value of 0.5."""
    def objective(lose_at: int | None) -> Any:
        return lightning_objective(
            _ScriptedLoss, datamodule=DigitsData(), seed=0, resume_lost_trials=True,
            save_checkpoint=True, callbacks=[_Watch(lose_at)],
            trainer_kwargs={"max_epochs": 5, "accelerator": "cpu", "devices": 1,
                            "logger": False})

    reference = make_study()
    reference.optimize(objective(None), n_trials=1)
    (whole,) = reference.trials
    assert _best_of(whole.user_attrs["checkpoint"]) == (1, 0.5)
    study = make_study(max_retries=1)
    with monkeypatch.context() as patch:  # a killed worker never cleans up after its trial
        patch.setattr("hpo_plugins.lightning._objective.discard_checkpoints", lambda trial: None)
        study.optimize(objective(3), n_trials=1, catch=RuntimeError)
    lost = study.trials[0]
    lost_best = Path(lost.log_dir or "") / "checkpoints" / "best.ckpt"
    assert lost.state is TrialState.FAIL and lost_best.exists()
    study.requeue_lost(lost)
    study.optimize(objective(3), n_trials=1)
    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE and retry.value == 0.5
    assert retry.system_attrs["resumed_from"]["step"] == 2
    best = Path(retry.user_attrs["checkpoint"])
    assert best.parent == Path(retry.log_dir or "") / "checkpoints"
    assert _best_of(str(best)) == (1, 0.5)  # the lost trial's epoch-1 model, moved over
    assert not lost_best.exists()


#: A parallel run of two long trials that keep resumable checkpoints, to be interrupted.
PARALLEL = textwrap.dedent("""
    import signal, sys, time
    sys.path.insert(0, {here!r})
    import lightning.pytorch as L
    import hpo_plugins as hpo
    from hpo_plugins.launchers import JoblibLauncher
    from hpo_plugins.lightning import lightning_objective
    from lit_digits import DigitsClassifier, DigitsData

    class Slow(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            time.sleep(0.3)

    if __name__ == "__main__":
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
        objective = lightning_objective(
            DigitsClassifier, datamodule=DigitsData(), callbacks=[Slow()],
            trainer_kwargs={{"max_epochs": 500, "accelerator": "cpu", "devices": 1,
                            "logger": False}},
            resume_lost_trials=True)
        hpo.minimize(objective, {{"hidden": hpo.hp.choice("hidden", [8, 16])}}, n_trials=2,
                     storage=sys.argv[1], study_name="stop", max_retries=1,
                     launcher=JoblibLauncher(n_jobs=2),
                     sampler=hpo.samplers.RandomSampler())
""")


@pytest.mark.slow
def test_ctrl_c_in_a_parallel_run_leaves_no_resumable_checkpoint(tmp_path: Path) -> None:
    """The launcher's workers are killed before the objective can clean up, as it does in
    its own process: the parent deletes what the stopped trials could have resumed from."""
    script, url = tmp_path / "parallel.py", f"sqlite:///{tmp_path}/p.db"
    script.write_text(PARALLEL.format(here=str(HERE)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    launched = subprocess.Popen([sys.executable, str(script), url], cwd=tmp_path, env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(list(tmp_path.rglob("last-step=*.ckpt"))) < 2:
            assert launched.poll() is None and time.monotonic() < deadline, "no checkpoints"
            time.sleep(0.2)
        os.killpg(launched.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, errors = launched.communicate(timeout=120)
    finally:
        if launched.poll() is None:
            os.killpg(launched.pid, signal.SIGKILL)
    assert launched.returncode != 0, errors
    trials = hpo.load_study("stop", url).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 2, errors
    assert all("interrupted" in (t.fail_reason or "") for t in trials)
    assert list(tmp_path.rglob("last-step=*")) == []


def test_the_best_record_follows_the_files_along_a_chain_of_lost_retries(
        tmp_path: Path) -> None:
    """Trial 3 wrote the checkpoint, its retry 5 was lost before an epoch end and handed it on:
    retry 7 takes the best files over from 5's folder, but the record names 3's."""
    from hpo_plugins.lightning._callback import BestCheckpoint

    first = os.path.realpath(tmp_path / "trial_0003" / "checkpoints")
    now = tmp_path / "trial_0007" / "checkpoints"
    callback = BestCheckpoint(dirpath=str(now), filename="best", monitor="val_loss",
                              moved_from=str(tmp_path / "trial_0005" / "checkpoints"))
    best = os.path.join(first, "best.ckpt")
    callback.load_state_dict({
        "dirpath": first, "best_model_score": torch.tensor(0.5), "best_model_path": best,
        "kth_best_model_path": best, "kth_value": torch.tensor(0.5),
        "best_k_models": {best: torch.tensor(0.5)}, "last_model_path": ""})
    moved = os.path.join(os.path.realpath(now), "best.ckpt")
    assert callback.best_model_path == callback.kth_best_model_path == moved
    assert float(callback.best_model_score) == 0.5
    assert list(callback.best_k_models) == [moved]
