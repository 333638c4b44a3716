"""Resume a lost trial from its last checkpoint: ``lightning_objective(resume_lost_trials=True)``.

A trial whose worker dies (a killed process, a preempted machine) is marked FAIL once its
heartbeat is stale and, with ``max_retries``, re-queued with the same parameters
(:meth:`hpo_plugins.Study.requeue_lost`). Without more, the retry trains from scratch and the
epochs the lost trial had trained are lost. With ``resume_lost_trials=True``:

* every trial keeps ``<trial.log_dir>/checkpoints/last.ckpt``, written after each validation
  (to a temporary file, then renamed, so a kill during the write leaves the previous one), with
  ``last.json`` beside it naming the step the checkpoint reached;
* a retry looks for the newest such checkpoint along its chain of lost trials (``retry_of``:
  the trial it replaces, then the one that trial replaced, ...), copies that trial's reports up
  to the checkpoint's step into its own curve (so the pruner and TensorBoard see the whole
  curve), records where it resumed from in the system attribute ``"resumed_from"``, and fits
  with ``ckpt_path`` set: Lightning restores the weights, the optimiser, the schedulers and the
  epoch, and training goes on from there;
* once a trial ends (complete, pruned or failed, but not lost), its ``last.ckpt`` and those of
  the lost trials it resumed are deleted: nobody can resume them any more.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_plugins.lightning._base import report_step

if TYPE_CHECKING:
    from hpo_plugins._frozen import FrozenTrial
    from hpo_plugins.trial import Trial

__all__ = ["RESUMED_ATTR", "Resume", "discard_checkpoints", "find_resume", "last_checkpoint",
           "start_from"]

_logger = logging.getLogger("hpo_plugins.lightning")

#: The trial system attribute that says which lost trial's checkpoint a retry resumed from.
RESUMED_ATTR = "resumed_from"
_CHECKPOINT = "last.ckpt"
_SIDECAR = "last.json"


@dataclass(frozen=True)
class Resume:
    """Where a retry resumes: the lost trial, its checkpoint, and the step it reached."""

    trial: FrozenTrial
    checkpoint: str
    step: int


def _paths(log_dir: str) -> tuple[str, str]:
    folder = os.path.join(log_dir, "checkpoints")
    return os.path.join(folder, _CHECKPOINT), os.path.join(folder, _SIDECAR)


def last_checkpoint(framework: Any, trial: Trial) -> Any:
    """A callback of ``framework``'s namespace that saves ``last.ckpt`` and ``last.json`` in
    the trial's directory after every validation (sanity checks excepted)."""
    checkpoint, sidecar = _paths(trial.log_dir)

    class LastCheckpoint(framework.Callback):
        """Keep the trial's latest state, so that a retry of a lost trial can resume it."""

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
            trainer.save_checkpoint(checkpoint + ".tmp")  # every rank calls it; rank 0 writes
            if trainer.is_global_zero:
                os.replace(checkpoint + ".tmp", checkpoint)
                with open(sidecar + ".tmp", "w", encoding="utf-8") as handle:
                    json.dump({"step": report_step(trainer)}, handle)
                os.replace(sidecar + ".tmp", sidecar)

    return LastCheckpoint()


def find_resume(trial: Trial) -> Resume | None:
    """The newest checkpoint along ``trial``'s chain of lost trials, or None (not a retry, or
    no lost trial got as far as a checkpoint)."""
    number = trial.system_attrs.get("retry_of")
    if number is None:
        return None
    by_number = {t.number: t for t in trial.study.get_trials()}
    seen: set[int] = set()
    while isinstance(number, int) and number in by_number and number not in seen:
        seen.add(number)
        lost = by_number[number]
        resume = _readable(lost)
        if resume is not None:
            return resume
        number = lost.system_attrs.get("retry_of")
    return None


def _readable(lost: FrozenTrial) -> Resume | None:
    """The checkpoint ``lost`` left, if both files are there and the step reads back."""
    if not lost.log_dir:
        return None
    checkpoint, sidecar = _paths(lost.log_dir)
    if not (os.path.isfile(checkpoint) and os.path.isfile(sidecar)):
        return None
    try:
        with open(sidecar, encoding="utf-8") as handle:
            step = int(json.load(handle)["step"])
    except (OSError, ValueError, KeyError, TypeError):
        _logger.warning("Trial %d left a checkpoint whose step cannot be read (%s); it is not "
                        "resumed.", lost.number, sidecar)
        return None
    return Resume(lost, checkpoint, step)


def start_from(trial: Trial, resume: Resume) -> None:
    """Copy the lost trial's reports up to the checkpoint's step into ``trial``, and record
    where it resumes from."""
    for step in sorted(resume.trial.intermediate_values):
        if step <= resume.step:
            trial.report(resume.trial.intermediate_values[step], step)
    trial.set_system_attr(RESUMED_ATTR, {"trial": resume.trial.number,
                                         "checkpoint": resume.checkpoint, "step": resume.step})
    _logger.info("Trial %d resumes lost trial %d from its checkpoint at step %d.",
                 trial.number, resume.trial.number, resume.step)


def discard_checkpoints(trial: Trial, resume: Resume | None) -> None:
    """Delete ``trial``'s resumable checkpoint and the one it resumed from: it has ended."""
    folders = [trial.log_dir] + ([resume.trial.log_dir] if resume and resume.trial.log_dir
                                 else [])
    for folder in folders:
        for path in _paths(folder):
            for name in (path, path + ".tmp"):
                if os.path.exists(name):
                    os.remove(name)
