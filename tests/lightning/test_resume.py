"""lightning_objective(resume_lost_trials=True): a trial whose worker was killed mid-training is
re-queued and resumes from its last checkpoint instead of training again from scratch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import pytest
from lit_digits import DigitsClassifier, DigitsData

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.lightning import lightning_objective

HERE = Path(__file__).parent

#: The run, as a script: the first attempt of trial 0 kills its own process after the
#: validation of epoch 2 (the checkpoint of that epoch is written just before), as a preempted
#: machine would; a retry never does.
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

        def on_validation_end(self, trainer, pl_module):
            trial = hpo.current_trial()
            if (not trainer.sanity_checking and trainer.current_epoch == 2
                    and "retry_of" not in trial.system_attrs):
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
    checkpoint = Path(lost.log_dir or "") / "checkpoints" / "last.ckpt"
    assert checkpoint.exists()
    time.sleep(1.3)  # past the grace period: the next run finds the trial lost
    assert _run(script, url) == 0
    dead, retry = hpo.load_study("resume", url).trials
    assert dead.state is TrialState.FAIL and "heartbeat" in (dead.fail_reason or "")
    assert retry.state is TrialState.COMPLETE and retry.system_attrs["retry_of"] == 0
    assert sorted(retry.intermediate_values) == [0, 1, 2, 3, 4]
    assert retry.user_attrs["epochs_started"] == [3, 4]  # not 0, 1, 2 again
    assert retry.system_attrs["resumed_from"] == {"trial": 0, "checkpoint": str(checkpoint),
                                                  "step": 2}
    for step in (0, 1, 2):  # the lost trial's reports, carried over
        assert retry.intermediate_values[step] == lost.intermediate_values[step]
    assert not checkpoint.exists()  # the trial ended: nothing is left to resume
    assert not (Path(retry.log_dir or "") / "checkpoints" / "last.ckpt").exists()


def test_a_trial_that_ends_keeps_no_resumable_checkpoint(make_study: Any) -> None:
    study = make_study()
    objective = lightning_objective(DigitsClassifier, datamodule=DigitsData(),
                                    trainer_kwargs={"max_epochs": 2, "accelerator": "cpu",
                                                    "devices": 1, "logger": False},
                                    resume_lost_trials=True)
    seen: list[bool] = []

    class Spy(L.Callback):
        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            folder = Path(hpo.current_trial().log_dir) / "checkpoints"
            seen.append((folder / "last.ckpt").exists())

    objective.callbacks.append(Spy())
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    folder = Path(trial.log_dir or "") / "checkpoints"
    assert trial.state is TrialState.COMPLETE
    assert seen == [True, True]  # written after every validation while it ran
    assert not (folder / "last.ckpt").exists() and not (folder / "last.json").exists()
    assert "resume_lost_trials=True" in repr(objective)


def test_a_lost_trial_without_a_readable_checkpoint_starts_over(make_study: Any) -> None:
    study = make_study(max_retries=1)
    lost = study.ask()
    folder = Path(lost.log_dir) / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"not a checkpoint")  # its step file never got written
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


def test_resume_lost_trials_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="Expected `resume_lost_trials` to be True or "
                                                 "False. Received: resume_lost_trials='yes'"):
        lightning_objective(DigitsClassifier, resume_lost_trials="yes")  # type: ignore[arg-type]
