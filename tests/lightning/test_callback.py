"""HPOCallback with real lightning.pytorch training on CPU: reports, pruning, failures, no-op."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import signal
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lit_digits import DigitsClassifier, DigitsData, PruneAt

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.lightning import HPOCallback


class RecordingCSVLogger(CSVLogger):
    """A CSVLogger that also remembers the status Lightning finalises it with."""

    statuses: list[str] = []

    def finalize(self, status: str) -> None:
        RecordingCSVLogger.statuses.append(status)
        super().finalize(status)


def fit_objective(trainer_kwargs: dict[str, Any], **callback_kwargs: Any
                  ) -> Callable[[Any], None]:
    """An objective that fits the digits MLP with ``HPOCallback(**callback_kwargs)``."""

    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback(**callback_kwargs)], **trainer_kwargs)
        trainer.fit(DigitsClassifier(hidden=params["hidden"]), datamodule=DigitsData())

    return objective


_FIT_LINE = fit_objective.__code__.co_firstlineno + 6  # the trainer.fit line above


def test_completed_and_pruned_trials_are_recorded(make_study: Any, counting_storage: Any,
                                                  trainer_kwargs: dict[str, Any],
                                                  tmp_path: Any) -> None:
    RecordingCSVLogger.statuses = []
    trainer_kwargs.update(max_epochs=4, logger=RecordingCSVLogger(tmp_path),
                          log_every_n_steps=1)
    study = make_study(counting_storage, pruner=PruneAt(number=1, step=2))
    study.optimize(fit_objective(trainer_kwargs), n_trials=3)

    first, pruned, _ = study.trials
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED,
                                               TrialState.COMPLETE]
    assert counting_storage.steps_of(first.trial_id) == [0, 1, 2, 3]  # no sanity-check report
    assert counting_storage.steps_of(pruned.trial_id) == [0, 1, 2]  # stopped where pruned
    assert first.value == first.intermediate_values[3]
    assert pruned.value == pruned.intermediate_values[2]
    assert RecordingCSVLogger.statuses == ["success"] * 3


def test_sanity_check_skipped_and_check_val_every_n_epoch_honoured(
        make_study: Any, counting_storage: Any, trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=4, check_val_every_n_epoch=2, num_sanity_val_steps=2)
    study = make_study(counting_storage)
    study.optimize(fit_objective(trainer_kwargs), n_trials=1)

    (trial,) = study.trials
    assert counting_storage.steps_of(trial.trial_id) == [1, 3]  # epochs 1 and 3, 0-based
    assert trial.state is TrialState.COMPLETE


@pytest.mark.parametrize(("validation", "steps"), [
    ({"val_check_interval": 0.5}, [2, 4, 6, 8]),
    ({"val_check_interval": 3, "check_val_every_n_epoch": None}, [3, 6]),
], ids=["fraction-of-epoch", "every-3-batches"])
def test_validation_within_epochs_reports_the_training_batches(
        make_study: Any, counting_storage: Any, trainer_kwargs: dict[str, Any],
        validation: dict[str, Any], steps: list[int]) -> None:
    trainer_kwargs.update(max_epochs=2, limit_train_batches=4, **validation)
    study = make_study(counting_storage)
    study.optimize(fit_objective(trainer_kwargs), n_trials=1)

    assert counting_storage.steps_of(study.trials[0].trial_id) == steps


class RawOptimizerClassifier(DigitsClassifier):
    """Manual optimisation with a plain torch optimizer (not Lightning's wrapper), which
    ``trainer.global_step`` never counts: it stays 0."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__(hidden=hidden)
        self.automatic_optimization = False
        self.raw = torch.optim.SGD(self.parameters(), lr=0.1)

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.raw.zero_grad()
        self.manual_backward(loss)
        self.raw.step()
        return loss


def test_steps_grow_at_every_validation_with_gradient_accumulation_or_manual_steps(
        make_study: Any, counting_storage: Any, trainer_kwargs: dict[str, Any]) -> None:
    """The step within epochs is the training batches so far: ``global_step`` repeated (with
    accumulate_grad_batches=4 and a validation every 2 batches it went 0, 1, 1, 2, ..., so a
    later value replaced an earlier one and a continued fit failed as "going back"), and with
    a plain torch optimizer under manual optimisation it stayed 0."""
    trainer_kwargs.update(max_epochs=2, limit_train_batches=6, val_check_interval=2)

    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback()], accumulate_grad_batches=4,
                            **trainer_kwargs)
        trainer.fit(DigitsClassifier(hidden=params["hidden"]), datamodule=DigitsData(100))
        trainer.fit_loop.max_epochs = 3  # the documented way to train on: continue it
        trainer.fit(trainer.lightning_module, datamodule=DigitsData(100))
        manual = L.Trainer(callbacks=[HPOCallback(trial=other)], **trainer_kwargs)
        manual.fit(RawOptimizerClassifier(hidden=params["hidden"]), datamodule=DigitsData(100))

    study = make_study(counting_storage)
    other = study.ask()
    study.optimize(objective, n_trials=1)
    study.tell(other, 0.0)

    trial = study.trials[1]
    assert trial.state is TrialState.COMPLETE, trial.fail_reason
    assert counting_storage.steps_of(trial.trial_id) == [2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert counting_storage.steps_of(other.trial_id) == [2, 4, 6, 8, 10, 12]


def test_a_fit_after_the_trial_was_pruned_stops_before_training(
        make_study: Any, counting_storage: Any, trainer_kwargs: dict[str, Any]) -> None:
    """Continuing the Trainer of a pruned trial trained every epoch again and stored their
    reports on the pruned trial: the callback's per-fit state forgot the decision."""
    trainer_kwargs.update(max_epochs=4)
    epochs: list[int] = []

    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback()], **trainer_kwargs)
        trainer.fit(DigitsClassifier(hidden=params["hidden"]), datamodule=DigitsData())
        epochs.append(trainer.current_epoch)
        trainer.fit_loop.max_epochs = 8
        trainer.fit(trainer.lightning_module, datamodule=DigitsData())
        epochs.append(trainer.current_epoch)

    study = make_study(counting_storage, pruner=PruneAt(number=0, step=1))
    study.optimize(objective, n_trials=1)  # filterwarnings=error: no "reported nothing"

    (trial,) = study.trials
    assert trial.state is TrialState.PRUNED
    assert counting_storage.steps_of(trial.trial_id) == [0, 1]
    assert epochs[1] == epochs[0]  # the second fit trained no epoch


class GrowingData(DigitsData):
    """A training set whose size changes every epoch (read again at each epoch)."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__(batch_size=50)
        self.sizes = sizes

    def train_dataloader(self) -> Any:
        size = self.sizes[min(self.trainer.current_epoch, len(self.sizes) - 1)]
        loader = super().train_dataloader()
        return torch.utils.data.DataLoader(
            torch.utils.data.Subset(loader.dataset, range(size * 50)), batch_size=50)


@pytest.mark.parametrize(("sizes", "steps"), [
    ([4, 2, 2], [2, 4, 6, 8]),  # batches throughout, where epochs 1 and 2 were reported
    ([2, 4], [0, 1]),  # epochs throughout; epoch 1 validates twice, the second value replaces
], ids=["shrinking", "growing"])
def test_the_step_unit_of_a_trainer_never_changes(
        make_study: Any, counting_storage: Any, trainer_kwargs: dict[str, Any],
        sizes: list[int], steps: list[int]) -> None:
    """An integer val_check_interval with a training set whose size changes between epochs:
    the unit (epochs when validation covers the epoch at the first report, else batches) was
    chosen again at every report, so a curve mixed the two, or went back and raised through
    Lightning."""
    trainer_kwargs.update(max_epochs=len(sizes), val_check_interval=2,
                          reload_dataloaders_every_n_epochs=1, num_sanity_val_steps=0)

    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback()], **trainer_kwargs)
        trainer.fit(DigitsClassifier(hidden=params["hidden"]), datamodule=GrowingData(sizes))

    study = make_study(counting_storage)
    with contextlib.ExitStack() as stack:
        if sizes[0] < sizes[-1]:
            stack.enter_context(pytest.warns(UserWarning, match="reports epoch 1 a second time"))
        study.optimize(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE, trial.fail_reason
    assert sorted(set(counting_storage.steps_of(trial.trial_id))) == steps


def test_a_trainer_resumed_from_a_checkpoint_keeps_the_step_unit(
        make_study: Any, counting_storage: Any, trainer_kwargs: dict[str, Any],
        tmp_path: Any) -> None:
    """The unit travels in the checkpoint: chosen again by the resumed Trainer, it was epochs
    here (its epoch is 2 batches, one validation), the step went back to 2 below the reported
    6, and the trial failed (a retry of a lost trial resumes this way too)."""
    trainer_kwargs.update(val_check_interval=2, reload_dataloaders_every_n_epochs=1,
                          num_sanity_val_steps=0)
    path = str(tmp_path / "mid.ckpt")

    def objective(params: Any) -> None:
        data = GrowingData([4, 2, 2])
        first = L.Trainer(callbacks=[HPOCallback()], max_epochs=2, **trainer_kwargs)
        first.fit(DigitsClassifier(hidden=params["hidden"]), datamodule=data)
        first.save_checkpoint(path)
        resumed = L.Trainer(callbacks=[HPOCallback()], max_epochs=3, **trainer_kwargs)
        resumed.fit(DigitsClassifier(hidden=params["hidden"]), datamodule=data, ckpt_path=path)

    study = make_study(counting_storage)
    study.optimize(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE, trial.fail_reason
    assert counting_storage.steps_of(trial.trial_id) == [2, 4, 6, 8]


def test_interval_reports_every_nth_validation(make_study: Any, counting_storage: Any,
                                               trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=4)
    study = make_study(counting_storage)
    study.optimize(fit_objective(trainer_kwargs, interval=2), n_trials=1)

    assert counting_storage.steps_of(study.trials[0].trial_id) == [1, 3]


def test_missing_monitor_warns_once_and_fails_the_trial(make_study: Any,
                                                        trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=3)
    study = make_study()
    with pytest.warns(UserWarning, match="'val_los'.*logged: 'train_loss', 'val_acc', "
                                         "'val_loss'") as caught:
        study.optimize(fit_objective(trainer_kwargs, monitor="val_los"), n_trials=1)

    (trial,) = study.trials
    assert len([w for w in caught if "HPOCallback" in str(w.message)]) == 1
    assert trial.state is TrialState.FAIL
    assert "'val_los' was not logged" in (trial.fail_reason or "")
    assert trial.intermediate_values == {}


def test_default_monitor_is_the_study_metric(make_study: Any,
                                             trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=2)
    study = make_study(metric="val_acc", direction="maximize")
    study.optimize(fit_objective(trainer_kwargs), n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE
    assert 0.0 < (trial.value or 0.0) <= 1.0  # an accuracy, not a loss


def test_the_default_val_loss_in_a_maximising_study_stops_before_training(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    """hpo.maximize without metric= would keep the worst trials without a word: refused when
    fit starts, before any epoch runs."""
    trainer_kwargs.update(max_epochs=2)
    study = make_study(direction="maximize")
    with pytest.raises(ConfigurationError,
                       match=re.escape(f"HPOCallback: Expected a metric to maximize, as the "
                                       f"study {study.study_name!r} does. Received: the study's "
                                       f"metric "
                                       "'val_loss', monitored by default")):
        study.optimize(fit_objective(trainer_kwargs), n_trials=3)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL and trial.intermediate_values == {}


def test_another_monitor_against_the_study_direction_warns_and_runs(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=1)
    study = make_study()
    with pytest.warns(UserWarning, match=r"Received: monitor='val_acc', which reads as a metric "
                                         r"to maximize.*ignore this warning") as caught:
        study.optimize(fit_objective(trainer_kwargs, monitor="val_acc"), n_trials=1)
    assert study.trials[0].state is TrialState.COMPLETE
    # attributed to the user's `trainer.fit(...)` line, not to Lightning's loop that called us
    [where] = [(w.filename, w.lineno) for w in caught if "reads as a metric" in str(w.message)]
    assert where == (__file__, _FIT_LINE), where


def test_non_finite_value_fails_the_trial(make_study: Any, trainer_kwargs: dict[str, Any]
                                          ) -> None:
    trainer_kwargs.update(max_epochs=3)
    study = make_study()

    class Diverged(DigitsClassifier):
        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_loss", float("nan"))

    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback()], **trainer_kwargs)
        trainer.fit(Diverged(), datamodule=DigitsData())

    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "non-finite" in (trial.fail_reason or "")


def test_standalone_does_nothing_and_logs_once(trainer_kwargs: dict[str, Any],
                                              caplog: pytest.LogCaptureFixture) -> None:
    callback = HPOCallback()
    caplog.set_level(logging.INFO, logger="hpo_plugins.lightning")
    for _ in range(2):
        trainer = L.Trainer(max_epochs=2, callbacks=[callback], **trainer_kwargs)
        trainer.fit(DigitsClassifier(), datamodule=DigitsData())
        assert trainer.current_epoch == 2 and not trainer.should_stop

    assert [r.getMessage() for r in caplog.records].count(
        "HPOCallback: no trial is active, so it reports nothing. Run the training inside a "
        "study (hpo.minimize, study.optimize) to tune it.") == 1


def test_explicit_trial_outside_the_run_loop(make_study: Any, counting_storage: Any,
                                             trainer_kwargs: dict[str, Any]) -> None:
    study = make_study(counting_storage, pruner=PruneAt(number=0, step=1))
    trial = study.ask()
    trainer = L.Trainer(max_epochs=4, callbacks=[HPOCallback(trial=trial)], **trainer_kwargs)
    trainer.fit(DigitsClassifier(), datamodule=DigitsData())

    assert trial.pruned and trainer.should_stop
    assert counting_storage.steps_of(trial.trial_id) == [0, 1]
    assert study.tell(trial, state="PRUNED").state is TrialState.PRUNED


@pytest.mark.parametrize(("callback_kwargs", "state"), [
    ({}, TrialState.PRUNED), ({"monitor": "val_los"}, TrialState.FAIL),
], ids=["pruned", "metric-missing"])
def test_tell_without_a_state_follows_the_callbacks_mark(
        make_study: Any, trainer_kwargs: dict[str, Any], callback_kwargs: dict[str, Any],
        state: TrialState) -> None:
    study = make_study(pruner=PruneAt(number=0, step=1))
    trial = study.ask()
    trainer = L.Trainer(max_epochs=4, callbacks=[HPOCallback(trial=trial, **callback_kwargs)],
                        **trainer_kwargs)
    missing = pytest.warns(UserWarning, match="'val_los' was not logged")
    with missing if callback_kwargs else contextlib.nullcontext():
        trainer.fit(DigitsClassifier(), datamodule=DigitsData())

    assert study.tell(trial, float(trainer.callback_metrics["val_loss"])).state is state


def test_validate_after_fit_reports_nothing(make_study: Any, counting_storage: Any,
                                            trainer_kwargs: dict[str, Any]) -> None:
    study = make_study(counting_storage)
    with study.ask() as trial:
        trainer = L.Trainer(max_epochs=1, callbacks=[HPOCallback()], **trainer_kwargs)
        model, data = DigitsClassifier(), DigitsData()
        trainer.fit(model, datamodule=data)
        trainer.validate(model, datamodule=data, verbose=False)

    assert counting_storage.steps_of(trial.trial_id) == [0]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"interval": 0}, "`interval` to be an integer >= 1. Received: interval=0"),
    ({"interval": True}, "`interval` to be an integer >= 1"),
    ({"monitor": ""}, "`monitor` to be a metric name or None. Received: monitor=''"),
    ({"trial": "trial-3"}, "`trial` to be a Trial or None. Received: trial='trial-3'"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        HPOCallback(**kwargs)


def test_repr_shows_the_options() -> None:
    assert repr(HPOCallback("val_acc", interval=2)) == "HPOCallback(monitor='val_acc', interval=2)"


def test_minimize_with_the_issue_example(trainer_kwargs: dict[str, Any]) -> None:
    """The issue's first example: returning nothing gives the last value the callback saw."""
    trainer_kwargs.update(max_epochs=2)
    study = hpo.minimize(fit_objective(trainer_kwargs), {"hidden": hpo.hp.choice("h", [8])},
                         n_trials=1, storage=":memory:")
    (trial,) = study.trials
    assert trial.value == trial.intermediate_values[1]


def test_a_second_fit_with_a_new_trainer_fails_the_trial_without_raising(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    """Pre-train, then fine-tune with a fresh Trainer: its steps start again from 0."""
    trainer_kwargs.update(max_epochs=2)
    study = make_study()
    epochs: list[int] = []

    def objective(params: Any) -> None:
        model = DigitsClassifier()
        for _ in range(2):
            trainer = L.Trainer(callbacks=[HPOCallback()], **trainer_kwargs)
            trainer.fit(model, datamodule=DigitsData())
            epochs.append(trainer.current_epoch)

    with pytest.warns(UserWarning, match=r"HPOCallback: this fit reports step 0, but the trial "
                                         r"already has reports up to step 1 .*earlier fit"):
        study.optimize(objective, n_trials=1)  # nothing raised through Lightning

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "continue the same Trainer" in (trial.fail_reason or "")
    assert sorted(trial.intermediate_values) == [0, 1]  # the first fit's curve is kept
    assert epochs == [2, 1]  # the second fit stopped at its first validation


def test_a_second_fit_after_a_one_epoch_fit_is_refused_too(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    """Its step 0 would silently overwrite the first fit's step 0."""
    trainer_kwargs.update(max_epochs=1)
    study = make_study()

    def objective(params: Any) -> None:
        model = DigitsClassifier()
        for _ in range(2):
            L.Trainer(callbacks=[HPOCallback()], **trainer_kwargs).fit(
                model, datamodule=DigitsData())

    with pytest.warns(UserWarning, match=r"this fit reports step 0, but the trial already has "
                                         r"reports up to step 0"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL


class EpochTrainLoss(DigitsClassifier):
    """Logs ``train_loss`` per epoch only, as many training scripts do."""

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss


def test_monitoring_an_epoch_level_training_metric_says_why_it_fails(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=2)
    study = make_study()

    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback(monitor="train_loss")], **trainer_kwargs)
        trainer.fit(EpochTrainLoss(), datamodule=DigitsData())

    with pytest.warns(UserWarning, match="'train_loss' is logged in training_step with "
                                         "on_epoch=True"):
        study.optimize(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "only after the epoch's validation" in (trial.fail_reason or "")
    assert "Monitor a metric that validation_step logs" in (trial.fail_reason or "")


@pytest.mark.parametrize(("settings", "match"), [
    ({"max_steps": 3}, r"no validation ran during this fit of trial 0 \(it stopped at "
                       r"global_step 3; max_epochs=-1, max_steps=3, 7 training batches per "
                       r"epoch\).*val_check_interval"),
    ({"max_epochs": 2, "interval": 3}, r"only 2 validation run\(s\) during this fit of trial 0 "
                                       r".*fewer than interval=3"),
], ids=["max-steps-below-one-epoch", "fewer-validations-than-interval"])
def test_a_fit_that_reports_nothing_warns_at_its_end(
        make_study: Any, trainer_kwargs: dict[str, Any], settings: dict[str, Any],
        match: str) -> None:
    callback_kwargs = {"interval": settings.pop("interval")} if "interval" in settings else {}
    trainer_kwargs.update(settings)
    study = make_study()
    with pytest.warns(UserWarning, match=match) as caught:
        study.optimize(fit_objective(trainer_kwargs, **callback_kwargs), n_trials=1)

    assert len([w for w in caught if "HPOCallback" in str(w.message)]) == 1
    assert study.trials[0].state is TrialState.FAIL  # no report, nothing returned
    reason = study.trials[0].fail_reason or ""  # the warning's diagnosis, kept with the trial
    assert reason.startswith("the objective returned None and reported no value")
    assert re.search(match, reason), reason


def test_deepcopy_keeps_the_trial(make_study: Any, counting_storage: Any,
                                  trainer_kwargs: dict[str, Any]) -> None:
    """An in-memory study's trial survives a copied callbacks list."""
    study = make_study(counting_storage)
    trial = study.ask()
    original = HPOCallback("val_loss", trial=trial, interval=2)
    (clone,) = copy.deepcopy([original])

    assert (clone.trial, clone.monitor, clone.interval) == (trial, "val_loss", 2)
    trainer = L.Trainer(max_epochs=2, callbacks=[clone], **trainer_kwargs)
    trainer.fit(DigitsClassifier(), datamodule=DigitsData())
    assert counting_storage.steps_of(trial.trial_id) == [1]


class CtrlCAtEpoch1(L.Callback):
    """Raises what Ctrl-C raises in the main thread, in the second epoch."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_during_fit_fails_the_trial_and_stops_the_study(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    trainer_kwargs.update(max_epochs=3)
    study = make_study()

    def objective(params: Any) -> None:
        trainer = L.Trainer(callbacks=[HPOCallback(), CtrlCAtEpoch1()], **trainer_kwargs)
        trainer.fit(DigitsClassifier(), datamodule=DigitsData())

    handler = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT from then on
    try:
        with pytest.raises(SystemExit):  # Lightning turns the KeyboardInterrupt into exit(1)
            study.optimize(objective, n_trials=3)
    finally:
        signal.signal(signal.SIGINT, handler)

    (trial,) = study.trials  # the study stopped
    assert trial.state is TrialState.FAIL
    assert "interrupted by the user" in (trial.fail_reason or "")
    assert sorted(trial.intermediate_values) == [0]


def test_a_bare_callback_suggests_the_close_name_and_fails_only_its_trials(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    """In the user's own objective a never-logged monitor fails each trial (with a warning) and
    raises nothing: only lightning_objective, which owns the whole trial, stops the study."""
    trainer_kwargs.update(max_epochs=2)
    study = make_study()
    with pytest.warns(UserWarning, match=r"'val_los' was not logged.*logged: 'train_loss', "
                                         r"'val_acc', 'val_loss'; did you mean 'val_loss'\?"):
        study.optimize(fit_objective(trainer_kwargs, monitor="val_los"), n_trials=2)

    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert all("did you mean 'val_loss'?" in (t.fail_reason or "") for t in study.trials)


def test_a_metric_missing_after_it_was_reported_is_named_as_such(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    """A second fit of the trial (a new Trainer) whose module no longer logs the metric: the
    name is right, so no look-alike is suggested; the advice is to log it at every validation."""
    trainer_kwargs.update(max_epochs=1)
    study = make_study()

    def objective(params: Any) -> None:
        for module in (DigitsClassifier(), DigitsClassifier(log_val=False)):
            trainer = L.Trainer(callbacks=[HPOCallback()], **trainer_kwargs)
            trainer.fit(module, datamodule=DigitsData())

    with pytest.warns(UserWarning, match=r"'val_loss' was reported up to step 0 but was not "
                                         r"logged as a number by this validation end \(logged: "
                                         r"'train_loss'\)\. Log it at every validation") as caught:
        study.optimize(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL and sorted(trial.intermediate_values) == [0]
    assert not any("did you mean" in str(w.message) for w in caught)


def test_lightning_tuner_runs_are_not_reported_or_warned_about(make_study: Any,
                                                               trainer_kwargs: dict[str, Any],
                                                               tmp_path: Any) -> None:
    """``Tuner.lr_find`` fits a few training steps with the trial's Trainer and no validation:
    no "nothing reported" warning for it, and the fit that follows reports as usual."""
    from lightning.pytorch.tuner import Tuner

    trainer_kwargs.update(max_epochs=2, default_root_dir=str(tmp_path))
    study = make_study()

    def objective(params: Any) -> None:
        model = DigitsClassifier(hidden=params["hidden"])
        trainer = L.Trainer(callbacks=[HPOCallback()], **trainer_kwargs)
        Tuner(trainer).lr_find(model, datamodule=DigitsData(), num_training=5,
                               early_stop_threshold=None)
        trainer.fit(model, datamodule=DigitsData())

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="HPOCallback")
        study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE and sorted(trial.intermediate_values) == [0, 1]


def test_a_finder_callback_in_the_real_fit_does_not_silence_the_warning(
        make_study: Any, trainer_kwargs: dict[str, Any], tmp_path: Any) -> None:
    """A LearningRateFinder passed as a callback runs inside the fit that is tuned: a fit
    without validation still warns (only the Tuner's own short fits do not)."""
    from lightning.pytorch.callbacks import LearningRateFinder

    trainer_kwargs.update(max_epochs=1, limit_val_batches=0, default_root_dir=str(tmp_path))
    study = make_study()

    def objective(params: Any) -> None:
        finder = LearningRateFinder(num_training_steps=3, early_stop_threshold=None)
        trainer = L.Trainer(callbacks=[HPOCallback(), finder], **trainer_kwargs)
        trainer.fit(DigitsClassifier(hidden=params["hidden"]), datamodule=DigitsData())

    with pytest.warns(UserWarning, match="HPOCallback: no validation ran during this fit"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL


def _fit_in_a_parallel_run(study: hpo.Study, **trainer_options: Any) -> list[str]:
    """A trial tagged as a launcher's worker tags it (run_id), fit with a default Trainer."""
    trial = study.ask(system_attrs={"run_id": "r"})
    with trial, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=2,
                  enable_progress_bar=False, enable_model_summary=False,
                  callbacks=[HPOCallback()], **trainer_options).fit(
            DigitsClassifier(), datamodule=DigitsData())
    return [str(w.message) for w in caught if "HPOCallback" in str(w.message)]


def test_a_parallel_trial_writing_to_the_shared_lightning_logs_is_warned_about(
        make_study: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers' Trainers without default_root_dir can take the same version_N folder."""
    monkeypatch.chdir(tmp_path)
    study = make_study(f"sqlite:///{tmp_path}/p.db")
    (message,) = _fit_in_a_parallel_run(study)
    assert "its Trainer has no default_root_dir, so its logs and checkpoints go to " \
           "./lightning_logs" in message
    assert "default_root_dir=hpo.current_trial().log_dir" in message
    own = _fit_in_a_parallel_run(study, default_root_dir=str(tmp_path / "own"))
    quiet = _fit_in_a_parallel_run(study, logger=False, enable_checkpointing=False)
    logger_dir = _fit_in_a_parallel_run(study, logger=CSVLogger(save_dir=str(tmp_path / "l")))
    assert own == [] and quiet == []  # its own folder, or nothing written
    assert logger_dir == []  # the checkpoints follow the logger's save_dir, as Lightning does


def test_a_trial_or_a_dict_given_as_monitor_says_what_was_meant(make_study: Any) -> None:
    """Optuna's callback takes the trial first; Ray Tune's takes a dict of metric names."""
    trial = make_study(":memory:").ask()
    with pytest.raises(ConfigurationError, match=r"monitor=Trial\(number=0.*The trial goes by "
                                                 r"keyword, HPOCallback\(trial=trial\)"):
        HPOCallback(trial)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"HPOCallback reports one metric, by its "
                                                 r"logged name: HPOCallback\('val_loss'\)"):
        HPOCallback({"loss": "val_loss"})  # type: ignore[arg-type]


def test_a_fast_dev_run_trial_is_warned_about(make_study: Any) -> None:
    """Its value comes from one batch, ranked with real trials."""
    study = make_study(":memory:")

    def objective(params: Any) -> None:
        L.Trainer(fast_dev_run=True, enable_progress_bar=False, enable_model_summary=False,
                  callbacks=[HPOCallback()]).fit(DigitsClassifier(), datamodule=DigitsData())

    with pytest.warns(UserWarning, match=r"trial 0 runs with fast_dev_run, so what it reports "
                                         r"comes from a batch or two"):
        study.optimize(objective, n_trials=1)
