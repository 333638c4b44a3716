"""The Lightning adapter's answers to review 13: a trial stopped by SIGTERM is lost (re-queued,
its checkpoint kept), an epoch-level training metric is never reported one epoch late, a fit
in another thread still finds its trial, a user's ModelCheckpoint works in
``lightning_objective``."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
import pytorch_lightning as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lit_digits import DigitsClassifier, DigitsData

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins._process import process_record
from hpo_plugins._run_settings import RunSettings
from hpo_plugins._sigterm import stopped_by_sigterm
from hpo_plugins.cli._base import Terminated
from hpo_plugins.launchers._state import RunState
from hpo_plugins.launchers._worker import Job
from hpo_plugins.lightning import HPOCallback, lightning_objective

# -- 1. SIGTERM during fit: a lost trial --------------------------------------------------------


class _Stop(L.Callback):
    """Stops the first attempt of a trial as epoch ``at`` starts: ``"sigterm"`` sends this
    process SIGTERM, as a preemption does (Lightning's own handler turns it into its
    ``SIGTERMException``), ``"ctrl-c"`` raises ``KeyboardInterrupt`` where Ctrl-C would. A
    retry (``retry_of``) records the epochs it starts instead."""

    def __init__(self, how: str, at: int = 2) -> None:
        self.how, self.at = how, at

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        trial = hpo.current_trial()
        if "retry_of" in trial.system_attrs:
            started = list(trial.user_attrs.get("epochs_started", []))
            trial.set_user_attr("epochs_started", [*started, trainer.current_epoch])
        elif trainer.current_epoch == self.at and self.how == "sigterm":
            # Lightning's handler must be there, or SIGTERM would end the test session
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
            os.kill(os.getpid(), signal.SIGTERM)
        elif trainer.current_epoch == self.at:
            raise KeyboardInterrupt


@pytest.fixture
def sigterm_handled_by_lightning_only() -> None:
    """Skip where a SIGTERM to this process would reach more than Lightning's handler: outside
    the main thread (Lightning installs none there), or under a runner with a handler of its
    own (Lightning calls it too)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Lightning handles SIGTERM in the main thread only")
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("this process has a SIGTERM handler of its own")


def _resumable(how: str) -> Any:
    return lightning_objective(
        DigitsClassifier, datamodule=DigitsData(), callbacks=[_Stop(how)], seed=0,
        resume_lost_trials=True,
        trainer_kwargs={"max_epochs": 3, "accelerator": "cpu", "devices": 1, "logger": False})


def _resumable_files(trial: hpo.FrozenTrial) -> list[str]:
    return sorted(p.name for p in (Path(trial.log_dir or "") / "checkpoints").glob("last-*"))


@pytest.mark.usefixtures("sigterm_handled_by_lightning_only")
def test_a_trial_stopped_by_sigterm_is_requeued_and_resumes_from_its_checkpoint(
        make_study: Callable[..., hpo.Study]) -> None:
    study = make_study(max_retries=1)
    with pytest.raises(SIGTERMException):  # the process still stops
        study.optimize(_resumable("sigterm"), n_trials=1)
    lost, waiting = study.trials
    assert lost.state is TrialState.FAIL
    assert lost.fail_reason == ("stopped by SIGTERM (SIGTERMException): counted as lost, like "
                                "a trial whose worker died")
    assert waiting.state is TrialState.WAITING and waiting.system_attrs["retry_of"] == 0
    assert waiting.params == lost.params
    assert _resumable_files(lost) == ["last-step=1.ckpt"]  # kept for the retry
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # Lightning put it back

    study.optimize(_resumable("sigterm"), n_trials=1)
    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    assert retry.system_attrs["resumed_from"]["step"] == 1
    assert retry.user_attrs["epochs_started"] == [2]  # not 0 and 1 again
    assert sorted(retry.intermediate_values) == [0, 1, 2]
    assert _resumable_files(lost) == [] and _resumable_files(retry) == []


@pytest.mark.parametrize(("how", "max_retries", "raised"), [
    ("ctrl-c", 1, SystemExit),  # Lightning turns Ctrl-C into sys.exit(1): the user's choice
    ("sigterm", 0, SIGTERMException),
])
def test_a_stopped_trial_that_is_not_retried_leaves_no_checkpoint(
        make_study: Callable[..., hpo.Study], request: pytest.FixtureRequest, how: str,
        max_retries: int, raised: type[BaseException]) -> None:
    """Ctrl-C is the user's choice (not re-queued, whatever ``max_retries`` says); SIGTERM
    without a retry left is lost for good. Either way nothing resumes the checkpoint."""
    if how == "sigterm":
        request.getfixturevalue("sigterm_handled_by_lightning_only")
    study = make_study(max_retries=max_retries)
    with pytest.raises(raised):
        study.optimize(_resumable(how), n_trials=1)
    (trial,) = study.trials  # nothing re-queued
    assert trial.state is TrialState.FAIL
    expected = ("interrupted by the user" if how == "ctrl-c"
                else "stopped by SIGTERM (SIGTERMException): counted as lost")
    assert expected in (trial.fail_reason or "")
    assert _resumable_files(trial) == []


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(("stop", "reason", "retried"), [
    (Terminated("SIGTERM"), "stopped by SIGTERM (Terminated(SIGTERM)): counted as lost, like a "
                            "trial whose worker died", True),
    (KeyboardInterrupt(), "interrupted by the user (KeyboardInterrupt)", False),
], ids=["sigterm", "ctrl-c"])
def test_a_parallel_run_stopped_by_sigterm_requeues_its_trials_with_their_checkpoints(
        tmp_path: Path, stop: BaseException, reason: str, retried: bool) -> None:
    """The launcher's side (``RunState``), as ``hpo-plugins run --n-jobs 2`` meets SIGTERM: the
    running trials are lost, as in a sequential run; after Ctrl-C they are not, and the
    launcher deletes the resumable checkpoints their killed workers left."""
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0.0, 1.0)}, seed=0,
                             storage=f"sqlite:///{tmp_path}/stop.db", max_retries=1)
    trial = study.ask(system_attrs={"run_id": "run", "worker": {
        **process_record(), "pid": _dead_pid(), "started": None}})
    resumable = Path(trial.log_dir) / "checkpoints" / "last-step=1.ckpt"
    resumable.parent.mkdir()
    resumable.write_bytes(b"a checkpoint")
    settings = RunSettings.build(study, n_trials=2, max_trials=None, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=False)
    with pytest.raises(type(stop)), RunState(study, settings,
                                             Job(b"", "key", "run", None, None)):
        raise stop
    lost, *retries = study.trials
    study.storage.close()
    assert lost.state is TrialState.FAIL and lost.fail_reason == reason
    assert [t.system_attrs["retry_of"] for t in retries] == ([0] if retried else [])
    assert resumable.exists() is retried


def test_both_lightning_namespaces_and_the_command_line_stop_as_sigterm() -> None:
    """The exceptions are known by name (the core imports neither Lightning nor the CLI): a
    rename there must fail here."""
    assert stopped_by_sigterm(SIGTERMException)
    assert stopped_by_sigterm(pl.utilities.exceptions.SIGTERMException)
    assert stopped_by_sigterm(Terminated)
    assert not stopped_by_sigterm(SystemExit) and not stopped_by_sigterm(KeyboardInterrupt)


# -- 2. an epoch-level training metric, with validation every other epoch -------------------------


class _TrainMetrics(DigitsClassifier):
    """Logs ``train_epoch`` (the epoch number) per epoch only, and ``train_both`` (the epoch
    number plus 0.5) per step and per epoch."""

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        epoch = float(self.current_epoch)
        self.log("train_epoch", epoch, on_step=False, on_epoch=True)
        self.log("train_both", epoch + 0.5, on_step=True, on_epoch=True)
        return loss


def _fit_monitoring(study: hpo.Study, monitor: str, trainer_kwargs: dict[str, Any]) -> None:
    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback(monitor)], **trainer_kwargs)
        trainer.fit(_TrainMetrics(), datamodule=DigitsData())

    study.optimize(objective, n_trials=1)


def test_an_epoch_level_training_metric_fails_also_when_validation_skips_epochs(
        make_study: Callable[..., hpo.Study], trainer_kwargs: dict[str, Any]) -> None:
    """At the first validation (epoch 1) ``callback_metrics`` holds epoch 0's value: it must
    not be reported as epoch 1's. The step-level value of a metric also logged per epoch is
    current, and still reported."""
    trainer_kwargs.update(max_epochs=4, check_val_every_n_epoch=2)
    study = make_study()
    with pytest.warns(UserWarning, match="'train_epoch' is logged in training_step with "
                                         "on_epoch=True"):
        _fit_monitoring(study, "train_epoch", trainer_kwargs)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL and trial.intermediate_values == {}
    assert "only after the epoch's validation" in (trial.fail_reason or "")
    assert "previous epoch's value" in (trial.fail_reason or "")

    study = make_study()
    _fit_monitoring(study, "train_both", trainer_kwargs)
    assert study.trials[0].intermediate_values == {1: 1.5, 3: 3.5}


# -- 3. a fit in another thread ----------------------------------------------------------------


def _fit_in_a_thread(callbacks: Callable[[], list[Any]], trainer_kwargs: dict[str, Any]) -> None:
    """What a third-party ``train()`` with a timeout does: ``fit`` in a worker thread, with the
    callbacks that ``callbacks()`` makes (called in the thread)."""
    def work() -> None:
        L.Trainer(callbacks=callbacks(), **trainer_kwargs).fit(DigitsClassifier(),
                                                                datamodule=DigitsData())

    with ThreadPoolExecutor(1) as pool:
        pool.submit(work).result(timeout=120)


def test_a_callback_made_in_the_objective_reports_from_a_thread(
        make_study: Callable[..., hpo.Study], trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=2)
    study = make_study()
    made: list[HPOCallback] = []

    def objective(params: Any) -> None:
        made.append(HPOCallback())
        _fit_in_a_thread(lambda: [made[-1]], trainer_kwargs)

    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert [sorted(t.intermediate_values) for t in study.trials] == [[0, 1], [0, 1]]
    # kept past its trial, the callback reports to no finished trial, and warns of nothing
    _fit_in_a_thread(lambda: [made[0]], trainer_kwargs)
    assert sorted(study.trials[0].intermediate_values) == [0, 1]


def test_a_callback_made_in_the_thread_warns_that_it_reports_nothing(
        make_study: Callable[..., hpo.Study], trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=1)
    study = make_study()

    def objective(params: Any) -> None:
        _fit_in_a_thread(lambda: [HPOCallback()], trainer_kwargs)

    with pytest.warns(UserWarning, match=r"no trial is current in this thread, while trial\(s\) "
                                         r"0 run .* HPOCallback\(trial=hpo.current_trial\(\)\)"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL
    # outside any study a fit in a thread is no mistake: no warning (filterwarnings=error)
    _fit_in_a_thread(lambda: [HPOCallback()], trainer_kwargs)


# -- 4. the user's own ModelCheckpoint in lightning_objective -----------------------------------


@pytest.mark.parametrize("own_checkpoints", [False, True])
def test_a_users_model_checkpoint_works_beside_the_objectives_own(
        make_study: Callable[..., hpo.Study], own_checkpoints: bool) -> None:
    """Checkpointing is turned on for it; with ``save_checkpoint`` and ``resume_lost_trials``
    too, each keeps its own files and only the resumable ones are deleted."""
    user = ModelCheckpoint(monitor="val_loss", save_last=True)
    settings: dict[str, Any] = {"max_epochs": 2, "accelerator": "cpu", "devices": 1,
                                "logger": False}
    if own_checkpoints:
        settings["callbacks"] = [user]
    objective = lightning_objective(
        DigitsClassifier, datamodule=DigitsData(), trainer_kwargs=settings,
        callbacks=None if own_checkpoints else [user], save_checkpoint=own_checkpoints,
        resume_lost_trials=own_checkpoints)
    study = make_study(max_retries=1)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE, trial.fail_reason
    folder = Path(trial.log_dir or "") / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert "last.ckpt" in names and "epoch=1-step=14.ckpt" in names  # the user's
    assert ("best.ckpt" in names) is own_checkpoints
    assert not [n for n in names if n.startswith("last-step=")]
    assert ("checkpoint" in trial.user_attrs) is own_checkpoints


# -- the review of these fixes ----------------------------------------------------------------


def test_a_sigterm_stop_ends_the_process_with_status_143() -> None:
    """Lightning's SIGTERMException has no code (status 0): a job runner would take the run
    for a success and never start the one that retries the lost trial."""
    def preempted(params: Any) -> float:
        raise SIGTERMException()

    with pytest.raises(SIGTERMException) as stopped:
        hpo.minimize(preempted, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=1,
                     storage=":memory:", max_retries=1)
    assert stopped.value.code == 143


def test_a_trial_failed_elsewhere_first_is_not_requeued_twice() -> None:
    """The launcher failed and re-queued the trial while its worker was still telling it."""
    from hpo_plugins._outcome import tell_lost
    from hpo_plugins._sigterm import sigterm_reason

    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             max_retries=2)
    trial = study.ask()
    reason = sigterm_reason(None, Terminated)
    frozen = study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None,
                                        {"fail_reason": reason})
    study.requeue_lost(frozen)  # what the launcher did
    tell_lost(study, trial, SIGTERMException())  # what the worker then does
    assert [t.system_attrs.get("retry_of") for t in study.get_trials("WAITING")] == [
        trial.number]


def test_a_claimed_retry_keeps_the_checkpoint_it_resumes_from() -> None:
    from hpo_plugins.launchers._state import _not_retried

    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             max_retries=1)
    lost = study.ask()
    frozen = study.storage.finish_trial(lost.trial_id, TrialState.FAIL, None,
                                        {"fail_reason": "lost"})
    study.requeue_lost(frozen)
    retry = study.ask()  # another process claims the retry at once
    assert retry.system_attrs["retry_of"] == lost.number
    assert _not_retried(study, [frozen]) == []


def test_a_hand_run_trial_stopped_by_sigterm_is_requeued() -> None:
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                             max_retries=1)
    with pytest.raises(SIGTERMException) as stopped, study.ask() as trial:
        raise SIGTERMException()
    assert stopped.value.code == 143
    frozen = study.storage.get_trial(trial.trial_id)
    assert frozen.state is TrialState.FAIL and "counted as lost" in (frozen.fail_reason or "")
    assert [t.system_attrs.get("retry_of") for t in study.get_trials("WAITING")] == [
        trial.number]


def test_a_kept_callback_whose_study_is_gone_does_not_break_a_later_fit(
        trainer_kwargs: dict[str, Any]) -> None:
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:")
    with study.ask() as trial:
        callback = HPOCallback()  # made in the trial, kept by the user
        study.tell(trial, 1.0)
    study.storage.delete_study(study.study_id)
    trainer_kwargs.update(max_epochs=1)
    trainer = L.Trainer(callbacks=[callback], **trainer_kwargs)
    trainer.fit(DigitsClassifier(), datamodule=DigitsData())
