"""HPOCallback with real lightning.pytorch training on CPU: reports, pruning, failures, no-op."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning.pytorch as L
import pytest
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
def test_validation_within_epochs_reports_the_global_step(
        make_study: Any, counting_storage: Any, trainer_kwargs: dict[str, Any],
        validation: dict[str, Any], steps: list[int]) -> None:
    trainer_kwargs.update(max_epochs=2, limit_train_batches=4, **validation)
    study = make_study(counting_storage)
    study.optimize(fit_objective(trainer_kwargs), n_trials=1)

    assert counting_storage.steps_of(study.trials[0].trial_id) == steps


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
