"""lightning_objective: module class or factory -> fit with HPOCallback -> best or last value."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
import torch
from lit_digits import DigitsClassifier, DigitsData, PruneAt

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins.exceptions import ConfigurationError, NoActiveTrialError
from hpo_plugins.lightning import LightningObjective, lightning_objective
from hpo_plugins.storages import InMemoryStorage

QUIET = {"accelerator": "cpu", "devices": 1, "logger": False}
SPACE = {"hidden": hpo.hp.choice("hidden", [8, 16])}


def quiet(**kwargs: Any) -> dict[str, Any]:
    return {**QUIET, **kwargs}


@pytest.mark.parametrize("result", ["best", "last"])
def test_value_is_the_best_or_the_last_monitored_value(make_study: Any, result: str) -> None:
    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(), result=result,
                                    trainer_kwargs=quiet(max_epochs=3), seed=0)
    study.optimize(objective, n_trials=1)

    (trial,) = study.trials
    curve = trial.intermediate_values
    assert trial.state is TrialState.COMPLETE and sorted(curve) == [0, 1, 2]
    assert trial.value == (min(curve.values()) if result == "best" else curve[2])


def test_best_follows_the_study_direction(make_study: Any) -> None:
    study = make_study(direction="maximize")
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(), monitor="val_acc",
                                    trainer_kwargs=quiet(max_epochs=3))
    study.optimize(objective, n_trials=1)

    (trial,) = study.trials
    assert trial.value == max(trial.intermediate_values.values())


def test_checkpoint_of_the_best_trial_is_recorded(make_study: Any) -> None:
    study = make_study(logdir="runs")
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs=quiet(max_epochs=2), save_checkpoint=True)
    study.optimize(objective, n_trials=2)

    best = study.best_trial
    path = best.user_attrs["checkpoint"]
    assert path == os.path.join(best.log_dir or "", "checkpoints", "best.ckpt")
    assert Path(path).is_file() and Path(path).is_relative_to(Path("runs").resolve())
    assert "state_dict" in torch.load(path, weights_only=False)


def test_default_logger_writes_csv_in_the_trial_directory(make_study: Any) -> None:
    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs={"max_epochs": 1, "log_every_n_steps": 1})
    study.optimize(objective, n_trials=1)

    log_dir = Path(study.trials[0].log_dir or "")
    assert "val_loss" in (log_dir / "metrics.csv").read_text().splitlines()[0]
    assert not Path("lightning_logs").exists() and not Path("checkpoints").exists()


def test_factory_with_nested_params_and_dataloaders(make_study: Any) -> None:
    from lit_digits import loaders

    space = {"net": hpo.hp.choice("net", [{"hidden": hpo.hp.choice("h", [8, 12])}])}
    train, val = loaders()
    objective = lightning_objective(lambda p: DigitsClassifier(hidden=p["net"]["hidden"]),
                                    train_dataloaders=train, val_dataloaders=val,
                                    trainer_kwargs=quiet(max_epochs=1))
    study = hpo.create_study(space, storage=":memory:", seed=0)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.COMPLETE


def test_pruned_trial_and_copied_callbacks(make_study: Any) -> None:
    from lightning.pytorch.callbacks import EarlyStopping

    early = EarlyStopping(monitor="val_loss", patience=100)
    study = make_study(pruner=PruneAt(number=0, step=1))
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(), callbacks=[early],
                                    trainer_kwargs=quiet(max_epochs=3))
    study.optimize(objective, n_trials=2)

    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert early.wait_count == 0 and early.stopped_epoch == 0  # each trial got its own copy


@pytest.mark.parametrize("settings", [{"max_epochs": 1, "limit_val_batches": 0},
                                      {"max_steps": 3}], ids=["no-val-batches", "max-steps"])
def test_no_validation_in_a_study_that_never_validated_stops_it(make_study: Any,
                                                                settings: dict[str, Any]) -> None:
    """Every trial would run the same way: the first one fails and the study stops, even with
    ``catch=``, as for a misspelt monitor."""
    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs=quiet(**settings))
    with pytest.warns(UserWarning, match="HPOCallback: no validation ran during this fit"), \
            pytest.raises(ConfigurationError, match=r"no validation ran.*val_dataloaders.*"
                                                    r"max_steps, val_check_interval.*No trial "
                                                    r"of the study has validated yet"):
        study.optimize(objective, n_trials=3, catch=(Exception,))

    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "no validation ran" in (trial.fail_reason or "")


def test_a_fit_stopped_before_its_first_validation_only_fails_its_trial(
        make_study: Any) -> None:
    """A fit stopped early (by a callback, max_time) in an epoch not due to validate ends
    without a report for its own reasons: the study goes on even though no trial has validated
    yet. (Lightning validates when a stop comes in an epoch that is due to.)"""
    class StopAtOnce(L.Callback):
        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            trainer.should_stop = True

    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    callbacks=[StopAtOnce()],
                                    trainer_kwargs=quiet(max_epochs=3,
                                                         check_val_every_n_epoch=3))
    with pytest.warns(UserWarning, match="HPOCallback: no validation ran during this fit"):
        study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert all("no validation ran" in (t.fail_reason or "") for t in study.trials)


def test_no_validation_only_fails_its_trial_once_a_trial_validated(make_study: Any) -> None:
    """With some trial validated, a trial without validation is the configuration's doing (its
    batch size, say, against max_steps), not the set-up's: the study goes on."""
    study = make_study()
    study.optimize(lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                       trainer_kwargs=quiet(max_epochs=1)), n_trials=1)
    silent = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                 trainer_kwargs=quiet(max_steps=3))
    with pytest.warns(UserWarning, match="HPOCallback: no validation ran during this fit"):
        study.optimize(silent, n_trials=2)

    assert [t.state for t in study.trials] == [TrialState.COMPLETE] + [TrialState.FAIL] * 2
    assert "no validation ran" in (study.trials[2].fail_reason or "")


def test_outside_a_study_raises() -> None:
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData())
    with pytest.raises(NoActiveTrialError, match="No trial is active"):
        objective({"hidden": 8})


def test_default_study_name_follows_the_module() -> None:
    from hpo_plugins._api import default_study_name  # what hpo.minimize names a study by

    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData())

    assert default_study_name(objective, "abc").startswith("DigitsClassifier-")
    assert isinstance(objective, LightningObjective)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"module": 3}, "`module` to be a LightningModule class or a function"),
    ({"result": "mean"}, '`result` to be "best" or "last". Received: result=\'mean\''),
    ({"monitor": 5}, "`monitor` to be a metric name or None"),
    ({"trainer_kwargs": [("max_epochs", 1)]}, "`trainer_kwargs` to be a dict"),
    ({"datamodule": object(), "train_dataloaders": []}, "either `datamodule` or"),
    ({"module": torch.nn.Linear}, "Received: the class Linear, which is not a LightningModule"),
    ({"seed": -1}, r"`seed` to be None or an integer from 0 to 2\*\*32 - 1.*seed=-1"),
    ({"seed": 2**40}, r"`seed` to be None or an integer.*seed=1099511627776"),
    ({"seed": True}, r"`seed` to be None or an integer.*seed=True"),
    ({"save_checkpoint": "yes"}, "`save_checkpoint` to be True or False. Received: "
                                 "save_checkpoint='yes'"),
    ({"resume_lost_trials": 1}, "`resume_lost_trials` to be True or False"),
    ({"callbacks": [1]}, r"`callbacks` to be a Lightning callback or a list of them. Received: "
                         r"1 \(of type int\)"),
    ({"trainer_kwargs": {"callbacks": 3}}, r"`trainer_kwargs\['callbacks'\]` to be a Lightning "
                                           r"callback"),
    ({"trainer_kwargs": {"max_epoch": 2, "acelerator": "cpu"}},
     r"arguments of lightning.pytorch.trainer.trainer.Trainer. Received unknown 'acelerator' "
     r"\(did you mean 'accelerator'\?\), 'max_epoch' \(did you mean 'max_epochs'\?\)"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"module": DigitsClassifier, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        lightning_objective(**arguments)


def test_a_module_instance_or_no_data_is_refused_before_any_trial() -> None:
    with pytest.raises(ConfigurationError, match=r"Received: an instance of DigitsClassifier\. "
                                                 r"Pass the class itself"):
        lightning_objective(DigitsClassifier(), datamodule=DigitsData())
    with pytest.raises(ConfigurationError, match=r"Expected training data: datamodule=.*"
                                                 r"DigitsClassifier defines no "
                                                 r"train_dataloader\(\)"):
        lightning_objective(DigitsClassifier)

    class OwnData(DigitsClassifier):
        def train_dataloader(self) -> Any:
            return DigitsData().train_dataloader()

    assert lightning_objective(OwnData) is not None  # its own data: nothing missing
    from lightning.pytorch.demos.boring_classes import BoringModel

    assert lightning_objective(BoringModel) is not None  # Lightning's own demo defines its data


def test_an_hpo_callback_among_the_callbacks_is_refused() -> None:
    from hpo_plugins.lightning import HPOCallback

    for arguments in ({"callbacks": [HPOCallback()]},
                      {"trainer_kwargs": {"callbacks": HPOCallback()}}):
        with pytest.raises(ConfigurationError, match="Expected no HPOCallback in .*adds its own"):
            lightning_objective(DigitsClassifier, **arguments)


def test_a_decorated_init_and_any_sequence_of_callbacks_are_taken() -> None:
    """A decorator may supply some of __init__'s arguments (not read through it); a sequence
    that is not a list (Hydra's ListConfig, a UserList) holds callbacks as a list does."""
    import collections
    import functools

    from hpo_plugins.lightning._checks import keyword_problem

    def with_classes(init: Any) -> Any:
        @functools.wraps(init)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, num_classes=10, **kwargs)
        return wrapper

    class Decorated(L.LightningModule):
        @with_classes
        def __init__(self, lr: float, num_classes: int) -> None:
            super().__init__()

    assert keyword_problem(Decorated, {"lr": 0.1}) is None
    timer = L.callbacks.Timer()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    callbacks=collections.UserList([timer]))
    assert objective.callbacks == [timer]


def test_one_callback_needs_no_list(make_study: Any) -> None:
    """As ``Trainer(callbacks=...)``, a single callback is taken as a list of one."""
    study = make_study()
    stop = L.callbacks.EarlyStopping("val_loss", patience=0, min_delta=10.0)
    timer = L.callbacks.Timer()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(), callbacks=stop,
                                    trainer_kwargs=quiet(max_epochs=4, callbacks=timer))
    study.optimize(objective, n_trials=1)

    assert len(objective.callbacks) == 1
    assert sorted(study.trials[0].intermediate_values) == [0, 1]  # stopped after patience 0


def test_space_keys_the_module_does_not_take_are_refused_before_any_trial(
        make_study: Any) -> None:
    study = hpo.create_study({"hiden": hpo.hp.choice("hidden", [8, 16]),
                              "lr": hpo.hp.uniform("lr", 0.01, 0.1)}, storage=":memory:")
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs=quiet(max_epochs=1))
    with pytest.raises(ConfigurationError,
                       match=r"keys of the space \(the params dict\) to be keyword arguments of "
                             r"DigitsClassifier\(hidden, lr, log_val\). Received params with keys "
                             r"\['hiden', 'lr'\]: keys DigitsClassifier does not take: 'hiden' "
                             r"\(did you mean 'hidden'\?\).*not the hp labels inside"):
        study.optimize(objective, n_trials=2)
    assert study.trials == []


def test_params_the_module_does_not_take_stop_the_study_at_their_trial(
        make_study: Any) -> None:
    """The up-front check reads one draw of the space; params of a branch it did not draw are
    checked by their trial, whose error is recorded to stop the study (with ``catch=`` too)."""
    from hpo_plugins.lightning._objective import STOP_ATTR

    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs=quiet(max_epochs=1))
    trial = study.ask()
    with pytest.raises(ConfigurationError, match=r"lightning_objective: Expected the keys.*"
                                                 r"does not take: 'depth'"), trial:
        objective({"hidden": 8, "depth": 2})

    (frozen,) = study.trials
    assert frozen.state is TrialState.FAIL
    assert "does not take: 'depth'" in frozen.system_attrs[STOP_ATTR]


def test_module_that_is_not_a_lightning_module_is_refused(make_study: Any) -> None:
    study = make_study()
    objective = lightning_objective(lambda p: torch.nn.Linear(2, 2))
    with pytest.raises(ConfigurationError, match="to build a LightningModule"):
        study.optimize(objective, n_trials=1)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_does_not_grow_over_30_trials(make_study: Any) -> None:
    rss: dict[int, float] = {}
    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs=quiet(max_epochs=1, limit_train_batches=2,
                                                         num_sanity_val_steps=0))
    study.optimize(objective, n_trials=30,
                   callbacks=[lambda s, t: rss.__setitem__(t.number, _rss_mb())])

    assert all(t.state is TrialState.COMPLETE for t in study.trials)
    assert rss[29] - rss[9] < 50, rss
    gc.collect()
    alive = [o for o in gc.get_objects() if type(o) in (L.Trainer, DigitsClassifier)]
    assert alive == []  # no trainer or module of a finished trial is kept


def test_derived_names_tell_monitor_and_result_apart() -> None:
    from hpo_plugins._api import default_study_name

    names = {default_study_name(lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                                    monitor=monitor, result=result), "fp")
             for monitor, result in (("val_loss", "best"), ("val_acc", "best"),
                                     ("val_loss", "last"))}
    assert len(names) == 3
    again = lightning_objective(DigitsClassifier, datamodule=DigitsData(batch_size=50),
                                monitor="val_acc", result="best")
    assert default_study_name(again, "fp") in names  # other data: the same experiment's name


def test_a_misspelt_monitor_stops_the_study_after_its_first_trial() -> None:
    storage = InMemoryStorage()
    options: dict[str, Any] = {"n_trials": 4, "storage": storage, "study_name": "typo",
                               "seed": 0, "show_progress_bar": False}
    typo = lightning_objective(DigitsClassifier, datamodule=DigitsData(), monitor="val_los",
                               trainer_kwargs=quiet(max_epochs=2))
    with pytest.raises(ConfigurationError,
                       match=r"lightning_objective\(monitor='val_los'\): the monitored metric "
                             r"'val_los' was not logged.*logged: 'train_loss', 'val_acc', "
                             r"'val_loss'; did you mean 'val_loss'\?.*The study stops"):
        hpo.minimize(typo, SPACE, **options)  # no UserWarning besides: the error says it

    (trial,) = hpo.load_study("typo", storage).trials
    assert trial.state is TrialState.FAIL
    assert "'val_los' was not logged" in (trial.fail_reason or "")
    assert "did you mean 'val_loss'?" in (trial.fail_reason or "")

    fixed = lightning_objective(DigitsClassifier, datamodule=DigitsData(), monitor="val_loss",
                                trainer_kwargs=quiet(max_epochs=2))
    study = hpo.minimize(fixed, SPACE, **{**options, "n_trials": 3})  # the same study, resumed
    assert [t.state for t in study.trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 3


def test_a_misspelt_monitor_stops_the_study_also_when_lightnings_checkpoint_raises_first(
        tmp_path: Any) -> None:
    """With save_checkpoint=True Lightning's ModelCheckpoint raises about the same missing key
    right after our callback judged it: the set-up error still stops the study, with advice."""
    storage = InMemoryStorage()
    typo = lightning_objective(DigitsClassifier, datamodule=DigitsData(), monitor="val_los",
                               save_checkpoint=True,
                               trainer_kwargs=quiet(max_epochs=1, limit_train_batches=2))
    with pytest.raises(ConfigurationError, match=r"'val_los' was not logged.*did you mean "
                                                 r"'val_loss'\?.*even with catch="):
        hpo.minimize(typo, SPACE, n_trials=3, storage=storage, study_name="checkpoint",
                     catch=(Exception,), show_progress_bar=False, logdir=str(tmp_path))
    (trial,) = hpo.load_study("checkpoint", storage).trials  # one trial, not three
    assert trial.state is TrialState.FAIL
    assert "did you mean 'val_loss'?" in (trial.fail_reason or "")


def test_a_misspelt_monitor_stops_the_study_even_when_catch_takes_the_error() -> None:
    """``catch=`` lets bad configurations go on, not a metric the code never logs: the
    objective's own ``after_trial`` (added to the callbacks by ``optimize``) stops the study."""
    storage = InMemoryStorage()
    typo = lightning_objective(DigitsClassifier, datamodule=DigitsData(), monitor="val_los",
                               trainer_kwargs=quiet(max_epochs=1, limit_train_batches=2))
    with pytest.raises(ConfigurationError, match=r"'val_los' was not logged.*even with catch="):
        hpo.minimize(typo, SPACE, n_trials=4, storage=storage, study_name="caught",
                     catch=(Exception,), show_progress_bar=False)
    (trial,) = hpo.load_study("caught", storage).trials
    assert trial.state is TrialState.FAIL


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_misspelt_monitor_stops_a_parallel_study(tmp_path: Path) -> None:
    from joblib.externals.loky import get_reusable_executor

    storage = f"sqlite:///{tmp_path}/parallel.db"
    typo = lightning_objective(DigitsClassifier, datamodule=DigitsData(), monitor="val_los",
                               trainer_kwargs=quiet(max_epochs=1, limit_train_batches=2))
    try:
        with pytest.raises(ConfigurationError, match=r"'val_los' was not logged.*did you mean "
                                                     r"'val_loss'\?.*The study stops"):
            hpo.minimize(typo, SPACE, n_trials=6, n_jobs=2, storage=storage,
                         study_name="parallel", show_progress_bar=False)
    finally:
        get_reusable_executor().shutdown(wait=True)

    trials = hpo.load_study("parallel", storage).trials
    assert 1 <= len(trials) <= 3  # those in flight when the first one came back, not 6
    assert all(t.state is TrialState.FAIL for t in trials)


@pytest.mark.parametrize("study_seed", [0, None])
def test_the_study_seed_seeds_each_model_unless_the_objective_has_its_own(
        study_seed: int | None) -> None:
    """The same configuration run twice gives the same value in a seeded study (as in
    ``keras_tune``); without any seed the two fits start from different weights."""
    study = hpo.create_study(SPACE, storage=":memory:", seed=study_seed)
    study.enqueue({"hidden": 8})
    study.enqueue({"hidden": 8})
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs=quiet(max_epochs=1, limit_train_batches=3))
    study.optimize(objective, n_trials=2)
    first, second = (t.value for t in study.trials)
    assert (first == second) is (study_seed is not None)
