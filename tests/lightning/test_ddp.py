"""HPOCallback under strategy="ddp_spawn" with two CPU processes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
from lit_digits import DigitsClassifier, DigitsData, PruneAt, RankRecorder

from hpo_plugins import TRIAL_ENV, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.lightning import HPOCallback
from hpo_plugins.lightning._handover import hand_over


def ddp_trainer(max_epochs: int, strategy: str = "ddp_spawn") -> L.Trainer:
    return L.Trainer(strategy=strategy, accelerator="cpu", devices=2, max_epochs=max_epochs,
                     callbacks=[HPOCallback()], logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ddp_spawn_reports_on_rank_0_and_stops_every_rank(make_study: Any,
                                                          tmp_path: Path) -> None:
    """One trial pruned after epoch 1: the costly part is starting two Python processes."""

    folder = tmp_path
    study = make_study(f"sqlite:///{folder}/ddp.db", pruner=PruneAt(number=0, step=1))

    def objective(params: Any) -> None:
        ddp_trainer(max_epochs=4).fit(RankRecorder(record_dir=str(folder)),
                                      datamodule=DigitsData())

    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.PRUNED  # the mark made in the worker reached the run loop
    assert sorted(trial.intermediate_values) == [0, 1]  # reports at epochs 0 and 1, then stop
    assert max(trial.intermediate_values.values()) < 1000  # rank 1 logs 1000 more: rank 0 only
    assert trial.value == trial.intermediate_values[1]  # the worker's last value
    # both ranks received the decision: each stopped after epoch 1 with should_stop set
    assert {(folder / f"rank{r}.txt").read_text() for r in (0, 1)} == {"2 True\n"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_spawned_ranks_exit_cleanly_right_after_the_last_broadcast(make_study: Any,
                                                                   tmp_path: Path) -> None:
    """A rank exits about a millisecond after the callback's last broadcast. Without the
    pause of ``_settle``, torch's gloo thread could still hold that broadcast's tensors and
    abort the rank (SIGABRT) as the interpreter finalized: here about one fit in five, so six
    fits in a row passed only about one time in four."""
    study = make_study(f"sqlite:///{tmp_path}/exits.db")

    def objective(params: Any) -> None:
        ddp_trainer(max_epochs=1).fit(DigitsClassifier(), datamodule=DigitsData())

    study.optimize(objective, n_trials=6, catch=(Exception,))
    assert [t.fail_reason for t in study.trials if t.state is not TrialState.COMPLETE] == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_refusal_in_the_spawned_ranks_reaches_the_trial(tmp_path: Path) -> None:
    """Every rank raises the refusal right after the setup broadcast and exits: the trial
    fails with the refusal, not with the abort of a rank."""
    import hpo_plugins as hpo

    study = hpo.create_study({"hidden": hpo.hp.choice("hidden", [8, 16])},
                             storage=f"sqlite:///{tmp_path}/refusal.db", direction="maximize")

    def objective(params: Any) -> None:  # maximising, monitoring the default val_loss
        ddp_trainer(max_epochs=1).fit(DigitsClassifier(), datamodule=DigitsData())

    study.optimize(objective, n_trials=1, catch=(Exception,))
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "HPOCallback: " in (trial.fail_reason or "") and "val_loss" in trial.fail_reason


def test_in_memory_study_with_ddp_spawn_raises_before_workers_start(make_study: Any) -> None:
    study = make_study(":memory:")

    def objective(params: Any) -> None:
        ddp_trainer(max_epochs=1).fit(DigitsClassifier(), datamodule=DigitsData())

    with pytest.raises(ConfigurationError, match="HPOCallback cannot follow trial 0 into the "
                                                 "processes.*storage='sqlite:///hpo.db'"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("prompt", "fix"), [
    (False, "Use strategy='ddp_spawn'"),
    # in a notebook Lightning refuses ddp_spawn: the advice pointed to it, and Lightning's back
    (True, "In a notebook .* use devices=1, and n_jobs for several trials"),
])
def test_ddp_fork_is_refused_in_the_worker(make_study: Any, tmp_path: Path, prompt: bool,
                                           fix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    study = make_study(f"sqlite:///{tmp_path}/fork.db")
    if prompt:
        monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)

    def objective(params: Any) -> None:
        ddp_trainer(max_epochs=1, strategy="ddp_fork").fit(DigitsClassifier(),
                                                           datamodule=DigitsData())

    with pytest.raises(Exception, match=f"HPOCallback was copied into a forked process.*{fix}"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL


def test_hand_over_note_is_the_trial_env_json(make_study: Any, tmp_path: Path) -> None:
    study = make_study(f"sqlite:///{tmp_path}/note.db")
    trial = study.ask()
    note = hand_over(trial)
    assert note is not None
    assert json.loads(note) == {"storage": f"sqlite:///{tmp_path}/note.db",
                                "study": study.study_name, "trial_id": trial.trial_id}
    assert TRIAL_ENV == "HPO_PLUGINS_TRIAL"


def test_copy_within_the_process_of_an_in_memory_trial_finds_its_trial_again(
        make_study: Any, trainer_kwargs: dict[str, Any]) -> None:
    import copy

    study = make_study(":memory:")
    with study.ask() as trial:
        callback = copy.deepcopy(HPOCallback())
        trainer = L.Trainer(max_epochs=1, callbacks=[callback], **trainer_kwargs)
        trainer.fit(DigitsClassifier(), datamodule=DigitsData())
    assert trial.intermediate_values.keys() == {0}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_lightning_objective_reads_a_never_logged_monitor_back_from_the_workers(
        tmp_path: Path) -> None:
    """Rank 0 runs in a spawned process: the objective learns from the storage that the
    monitored metric never appeared, and stops the study after that first trial."""
    import hpo_plugins as hpo
    from hpo_plugins.lightning import lightning_objective

    objective = lightning_objective(
        DigitsClassifier, datamodule=DigitsData(), monitor="val_los",
        trainer_kwargs={"strategy": "ddp_spawn", "accelerator": "cpu", "devices": 2,
                        "max_epochs": 2, "logger": False, "enable_progress_bar": False})

    storage = f"sqlite:///{tmp_path}/typo.db"
    with pytest.raises(ConfigurationError) as raised:
        hpo.minimize(objective, {"hidden": hpo.hp.choice("hidden", [8, 16])}, n_trials=3,
                     storage=storage, study_name="typo", show_progress_bar=False)
    assert re.search(r"lightning_objective\(monitor='val_los'\): .*did you mean "
                     r"'val_loss'\?", str(raised.value)), raised.value
    (trial,) = hpo.load_study("typo", storage).trials
    assert trial.state is TrialState.FAIL
    assert "'val_los' was not logged" in (trial.fail_reason or "")
