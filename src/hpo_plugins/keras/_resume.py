"""Resume a lost trial from its last epoch: ``keras_tune(..., resume_lost_trials=True)``.

A trial whose worker dies (a killed process, a preempted machine) is marked FAIL once its
heartbeat is stale and, with ``max_retries``, re-queued with the same parameters. Without more,
the retry trains from scratch. With ``resume_lost_trials=True``:

* every trial keeps ``<trial.log_dir>/backup/epoch=<N>/``, the state after ``N`` epochs, made at
  the end of each epoch after the other callbacks: ``model.weights.h5`` (``model.save_weights``:
  the weights and the optimiser's variables: step count, learning rate, moments) and, once an
  epoch was the best so far, ``best.weights.h5``, the best-epoch weights as they were then (the
  live ``best.weights.h5`` beside it is rewritten in place by ``ModelCheckpoint``, so it may be
  an epoch ahead of the backup, or cut short by a kill). The folder is filled under a temporary
  name and renamed, then the older one deleted, so a kill at any moment leaves at least one
  whole backup whose name tells its epoch (Keras' own ``BackupAndRestore`` overwrites its file
  in place and keeps the epoch in a second one);
* a retry looks for the newest backup along its chain of lost trials (``retry_of``), links it
  into its own folder, loads the weights and optimiser into the freshly built model, copies
  the lost trial's reports up to that epoch (the pruner and TensorBoard see the whole curve)
  and the best-epoch weights with the best value so far, records ``"resumed_from"`` in its
  system attributes, and fits with ``initial_epoch=N``. A backup that does not load into the
  model (``build_fn`` changed, or builds no weights before ``fit``) is not used: the retry
  trains from scratch and records why in ``"resume_failed"``;
* once a trial ends (complete, pruned or failed, but not lost), its backups and those of the
  lost trials of its chain are deleted. A worker that finds its trial failed meanwhile (it was
  judged dead: a stopped or frozen process) deletes only its own, and only if no trial is
  waiting or running to retry it: otherwise they are its retry's.

What Keras does not save in the weights file is not restored: the random state (the data's
shuffling and dropout of the resumed epochs differ from an uninterrupted run's, even seeded)
and the state of the user's callbacks (an ``EarlyStopping`` counts its patience again from the
resumed epoch; a ``ReduceLROnPlateau``'s reduced rate is restored, since it is an optimiser
variable, but not its counter).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras

from hpo_plugins import _resume
from hpo_plugins._resume import RESUME_FAILED_ATTR, Resume

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = ["RESUME_FAILED_ATTR", "EpochBackup", "discard_backups", "resume_into"]

_logger = logging.getLogger("hpo_plugins.keras")

_NAME = re.compile(r"^epoch=(\d+)$")
_MODEL = "model.weights.h5"
_BEST = "best.weights.h5"


def _folder(log_dir: str) -> str:
    return os.path.join(log_dir, "backup")


def _backups(log_dir: str) -> list[tuple[int, str]]:
    """``(last epoch index, folder)`` of the whole backups in a trial's folder, newest last (a
    backup after ``N`` epochs covers the report at step ``N - 1``)."""
    return [(epochs - 1, path) for epochs, path in _resume.numbered(_folder(log_dir), _NAME)
            if epochs >= 1]


class EpochBackup(keras.callbacks.Callback):
    """Saves the model, its optimiser and the best-epoch weights at the end of every epoch, for
    a retry to resume. ``best``: the trial's best-epoch ``ModelCheckpoint``, with a ``saves``
    count of the times it wrote its file."""

    def __init__(self, log_dir: str, best: Any) -> None:
        super().__init__()
        self.folder = _folder(log_dir)
        self.best = best
        self._copied: int | None = None  # best.saves when the best file was last copied

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        path = os.path.join(self.folder, f"epoch={epoch + 1}")
        older = [p for _, p in _backups(os.path.dirname(self.folder)) if p != path]
        building = os.path.join(self.folder, f"tmp-{uuid.uuid4().hex}")
        os.makedirs(building)
        self.model.save_weights(os.path.join(building, _MODEL))
        self._snapshot_best(building, older[-1] if older else None)
        if os.path.isdir(path):  # this epoch again (a fit restarted at it): replace it
            _remove(path)
        os.rename(building, path)
        for stale in older:
            _remove(stale)

    def _snapshot_best(self, building: str, previous: str | None) -> None:
        """The best-epoch weights as they are now: linked from the previous backup when
        ``ModelCheckpoint`` has not written them since, else copied."""
        if not os.path.exists(self.best.filepath):
            return  # no epoch has been the best yet
        kept = os.path.join(previous, _BEST) if previous else None
        if self.best.saves == self._copied and kept and os.path.exists(kept):
            os.link(kept, os.path.join(building, _BEST))
            return
        shutil.copyfile(self.best.filepath, os.path.join(building, _BEST))
        self._copied = self.best.saves


def _remove(folder: str) -> None:
    """Delete a backup folder: first renamed out of the ``epoch=<N>`` names (one atomic step),
    so that a retry never finds a folder of that name half deleted."""
    doomed = os.path.join(os.path.dirname(folder), f"tmp-{uuid.uuid4().hex}")
    try:
        os.rename(folder, doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def resume_into(trial: Trial, model: Any, *, best_file: str,
                mode: str) -> tuple[Resume, float | None] | None:
    """Resume ``trial`` from the newest backup along its chain of lost trials, into ``model``.

    Loads the weights and optimiser, carries the lost trial's reports over, and puts the
    best-epoch weights of the backup at ``best_file``. Returns where it resumed and the best
    value so far by ``mode`` (``"min"``/``"max"``; None: no best epoch yet, so the retry's first
    epoch writes ``best_file``); None if there was nothing to resume from, or the backup did not
    load, in which case ``model`` may hold part of it: build a fresh one.
    """
    claimed = _resume.claim(trial, _backups, lambda path: _link_backup(path, trial.log_dir))
    if claimed is None:
        return None
    resume, own = claimed
    problem = _load(model, os.path.join(own, _MODEL))
    if problem is not None:
        _resume.give_up(trial, resume, own, problem)
        return None
    _resume.carry_over(trial, resume, own)
    values = [v for s, v in resume.trial.intermediate_values.items()
              if s <= resume.step and not math.isnan(v)]
    if not values or not os.path.exists(os.path.join(own, _BEST)):
        return resume, None
    # a copy, not a link: ModelCheckpoint rewrites its file in place
    shutil.copyfile(os.path.join(own, _BEST), best_file)
    return resume, (min(values) if mode == "min" else max(values))


def _link_backup(source: str, log_dir: str) -> str:
    """A copy of the backup folder ``source`` in ``log_dir``'s backups, its files hard-linked
    (never written in place), filled under a temporary name and renamed."""
    folder = _folder(log_dir)
    own = os.path.join(folder, os.path.basename(source))
    building = os.path.join(folder, f"tmp-{uuid.uuid4().hex}")
    os.makedirs(building)
    try:
        for name in os.listdir(source):
            _resume.link_into(os.path.join(source, name), building)
        if not os.path.exists(os.path.join(building, _MODEL)):
            raise FileNotFoundError(os.path.join(source, _MODEL))
    except FileNotFoundError:
        shutil.rmtree(building, ignore_errors=True)
        raise
    if os.path.isdir(own):
        _remove(own)
    os.rename(building, own)
    return own


def _load(model: Any, path: str) -> str | None:
    """Load ``path`` into ``model`` (weights and optimiser); None, or why it could not be."""
    if not model.built:
        return ("build_fn returned a model without weights (start it with keras.Input(...) or "
                "call model.build(input_shape) in build_fn)")
    try:
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables must exist
        with warnings.catch_warnings():
            # Keras loads the rest and only warns: the optimiser (say) would silently start
            # afresh under a resume's name
            warnings.filterwarnings("error", message="Skipping variable loading")
            model.load_weights(path)
    except (OSError, ValueError, UserWarning) as exc:  # another model, an unreadable file
        return _gist(f"{type(exc).__name__}: {exc}")
    return None


def _gist(message: str) -> str:
    """The first lines of Keras' loading error that say what went wrong (it may go on for
    kilobytes with variable values)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    gist = " ".join(lines[:2] if lines and "Example error message" in lines[0] else lines[:1])
    gist = gist.split(" Target variable:")[0]  # then the variable's values
    return gist if len(gist) <= 400 else gist[:397] + "..."


def discard_backups(trial: Trial) -> None:
    """Delete the backups that nobody can resume now that ``trial``'s objective has returned:
    see :func:`hpo_plugins._resume.folders_to_clean` (a worker judged dead leaves its backups
    to its retry)."""
    for folder in _resume.folders_to_clean(trial):
        _discard_folder(folder)


def _discard_folder(log_dir: str) -> None:
    """Delete the backups (and one being written) of one trial folder."""
    backups = _folder(log_dir)
    try:
        names = os.listdir(backups)
    except OSError:
        return
    for name in names:
        if _NAME.match(name) or name.startswith("tmp-"):
            _remove(os.path.join(backups, name))


_resume.register_discarder(_discard_folder)
