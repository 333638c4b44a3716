"""Resume a lost trial from its last epoch: ``keras_tune(..., resume_lost_trials=True)``.

A trial whose worker dies (a killed process, a preempted machine) is marked FAIL once its
heartbeat is stale and, with ``max_retries``, re-queued with the same parameters. Without more,
the retry trains from scratch. With ``resume_lost_trials=True``:

* every trial keeps ``<trial.log_dir>/backup/epoch=<N>.weights.h5``: the model's weights and
  its optimiser's variables (step count, learning rate, moments) after ``N`` epochs, saved by
  ``model.save_weights`` at the end of each epoch, after the other callbacks. The file is
  written under a temporary name and renamed, then the older one deleted, so a kill at any
  moment leaves at least one complete file whose name tells its epoch (Keras' own
  ``BackupAndRestore`` overwrites its file in place and keeps the epoch in a second one);
* a retry looks for the newest file along its chain of lost trials (``retry_of``), copies that
  trial's reports up to its epoch (the pruner and TensorBoard see the whole curve), and the
  best-epoch weights file ``best.weights.h5`` with the best value so far, records
  ``"resumed_from"`` in its system attributes, loads the weights and optimiser into the freshly
  built model and fits with ``initial_epoch=N``: the curve goes on at epoch ``N``;
* once a trial ends (complete, pruned or failed, but not lost), its files and those of the lost
  trials of its chain are deleted.

What Keras does not save in the weights file is not restored: the random state (the data's
shuffling and dropout of the resumed epochs differ from an uninterrupted run's, even seeded)
and the state of the user's callbacks (an ``EarlyStopping`` counts its patience again from the
resumed epoch; a ``ReduceLROnPlateau``'s reduced rate is restored, since it is an optimiser
variable, but not its counter).
"""

from __future__ import annotations

import glob
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras

from hpo_plugins import _resume
from hpo_plugins._resume import Resume

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = ["EpochBackup", "discard_backups", "find_resume", "start_from"]

_NAME = re.compile(r"^epoch=(\d+)\.weights\.h5$")


def _folder(log_dir: str) -> str:
    return os.path.join(log_dir, "backup")


def _backups(log_dir: str) -> list[tuple[int, str]]:
    """``(last epoch index, path)`` of the resumable files in a trial's folder, newest last
    (a file after ``N`` epochs covers the report at step ``N - 1``)."""
    found = []
    for path in glob.glob(os.path.join(_folder(log_dir), "epoch=*.weights.h5")):
        match = _NAME.match(os.path.basename(path))
        if match and int(match.group(1)) >= 1:
            found.append((int(match.group(1)) - 1, path))
    return sorted(found)


class EpochBackup(keras.callbacks.Callback):
    """Saves the model and its optimiser at the end of every epoch, for a retry to resume."""

    def __init__(self, log_dir: str) -> None:
        super().__init__()
        self.folder = _folder(log_dir)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        path = os.path.join(self.folder, f"epoch={epoch + 1}.weights.h5")
        older = [p for _, p in _backups(os.path.dirname(self.folder)) if p != path]
        os.makedirs(self.folder, exist_ok=True)
        # save_weights wants a name ending in .weights.h5; rename is atomic in one folder
        temporary = os.path.join(self.folder, f"tmp-{uuid.uuid4().hex}.weights.h5")
        self.model.save_weights(temporary)
        os.replace(temporary, path)
        for stale in older:
            os.remove(stale)


def find_resume(trial: Trial) -> Resume | None:
    """The newest backup along ``trial``'s chain of lost trials, or None (not a retry, or no
    lost trial finished an epoch)."""
    return _resume.find_resume(trial, _backups)


def start_from(trial: Trial, resume: Resume, model: Any, *, best_file: str,
               mode: str) -> float | None:
    """Load the lost trial's weights and optimiser into ``model``, carry its reports and its
    best-epoch weights file (``best_file`` in each trial's folder) over into ``trial``; return
    the best value so far, by ``mode`` ``"min"`` or ``"max"`` (None: no best-epoch file to
    carry over, so the retry's first epoch writes one).

    Raises:
        OSError, ValueError: The backup does not fit ``model`` (``build_fn`` builds another
            architecture for the same params than it did for the lost trial).
    """
    own = _resume.link_into(resume.checkpoint, _folder(trial.log_dir))
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to load
    model.load_weights(own)
    _resume.carry_over(trial, resume, own)
    lost_best = os.path.join(resume.trial.log_dir or "", best_file)
    values = [v for s, v in resume.trial.intermediate_values.items()
              if s <= resume.step and not math.isnan(v)]
    if not values or not os.path.exists(lost_best):
        return None
    # a copy, not a link: ModelCheckpoint rewrites its file in place
    shutil.copyfile(lost_best, os.path.join(trial.log_dir, best_file))
    return min(values) if mode == "min" else max(values)


def discard_backups(trial: Trial) -> None:
    """Delete the backups of ``trial`` and of the lost trials of its chain: the trial has
    ended, so nobody can resume them (only under the study's own trial directory)."""
    for folder in _resume.own_folders(trial):
        for path in glob.glob(os.path.join(_folder(folder), "*.weights.h5")):
            os.remove(path)
