"""Resume a lost trial from its last checkpoint: ``lightning_objective(resume_lost_trials=True)``.

A trial whose worker dies (a killed process, a preempted machine) is marked FAIL once its
heartbeat is stale and, with ``max_retries``, re-queued with the same parameters
(:meth:`hpo_plugins.Study.requeue_lost`). Without more, the retry trains from scratch and the
epochs the lost trial had trained are lost. With ``resume_lost_trials=True``:

* every trial keeps ``<trial.log_dir>/checkpoints/last-step=<N>.ckpt``, written at the end of
  each training epoch where Lightning's ``ModelCheckpoint`` writes (after the epoch's
  validation, and after ``EarlyStopping`` and the other callbacks have looked at it). ``N`` is
  the last report step the checkpoint covers; the file is written under a temporary name and
  renamed, then the older one deleted, so a kill at any moment leaves at least one complete
  checkpoint whose name tells its step. The checkpoint also holds the Python, NumPy and torch
  random states (so a seeded trial draws the same numbers, a data loader's shuffling from
  torch's global generator included, as it would have without the interruption) and the
  epoch's metrics and stop decision: Lightning steps plateau schedulers after the end-of-epoch
  hooks and not when it restarts from such a checkpoint, so the resumed fit steps them itself
  with the saved metrics, and a stop (``EarlyStopping``, the pruner) decided in that epoch
  stays decided;
* a retry looks for the newest checkpoint along its chain of lost trials (``retry_of``: the trial
  it replaces, then the one that trial replaced, ...), copies that trial's reports up to the
  checkpoint's step into its own curve (so the pruner and the study's TensorBoard run see the
  whole curve), records where it resumed from in the system attribute ``"resumed_from"``, and
  fits from that checkpoint (hard-linked into its own folder): Lightning restores the weights,
  the optimiser, the schedulers, the callbacks' states and the epoch, and training goes on with
  the next epoch. Only epoch-based training (``max_epochs``) is supported. A checkpoint whose
  weights do not load into the freshly built module (edited since, or a damaged file) is not
  used: the retry trains from scratch and records why in ``"resume_failed"``;
* with ``save_checkpoint=True`` too, the best checkpoint the lost trial kept (``best.ckpt``) moves
  into the retry's ``checkpoints`` folder, and the retry's ``ModelCheckpoint`` takes over the lost
  one's record of it (best score, best path) instead of starting afresh: Lightning drops that
  record when the folder changes, so the first epoch after a resume would count as the best and
  ``user_attrs["checkpoint"]`` could name a worse model than the trial's value;
* once a trial ends (complete, pruned or failed, but not lost), its checkpoints and those of the
  lost trials of its chain are deleted: nobody can resume them any more. A trial stopped by
  SIGTERM (a preempted machine) counts as lost: the run loop re-queues it under
  ``max_retries``, and its checkpoints stay for the retry (:func:`kept_for_retry`). A worker
  that finds its trial failed meanwhile (it was judged dead: a stopped or frozen process)
  deletes only its own, and only if no trial is waiting or running to retry it: otherwise they
  are its retry's.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import warnings
from typing import TYPE_CHECKING, Any

from hpo_plugins import _resume
from hpo_plugins._sigterm import stopped_by_sigterm
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.lightning._base import report_step
from hpo_plugins.lightning._checks import LIGHTNING_ROOTS

if TYPE_CHECKING:
    from hpo_plugins._resume import Resume
    from hpo_plugins.trial import Trial

__all__ = ["adopt_best", "best_checkpoint_class", "checkpoint_class", "checkpoint_folder",
           "claim_checkpoint", "discard_checkpoints", "kept_for_retry", "load_problem"]

_logger = logging.getLogger("hpo_plugins.lightning")

_NAME = re.compile(r"^last-step=(\d+)\.ckpt$")
#: The files of ``lightning_objective``'s ``ModelCheckpoint(filename="best")``, with the
#: version suffix Lightning adds when a name is taken.
_BEST = re.compile(r"^best(-v\d+)?\.ckpt$")


def _folder(log_dir: str) -> str:
    return os.path.join(log_dir, "checkpoints")


def _checkpoints(log_dir: str) -> list[tuple[int, str]]:
    """``(step, path)`` of the resumable checkpoints in a trial's directory, newest last."""
    return _resume.numbered(_folder(log_dir), _NAME)


def checkpoint_class(base: type, module: str) -> type:
    """The ``LastCheckpoint`` callback class of one Lightning namespace (``base``: its
    ``callbacks.Checkpoint``), made in ``module``'s namespace so that ``ddp_spawn`` can pickle
    its instances by reference."""

    class LastCheckpoint(base):
        """Keep the trial's latest state, so that a retry of a lost trial can resume it.

        A ``Checkpoint`` subclass, so Lightning calls it after the other callbacks, as it calls
        ``ModelCheckpoint``; it therefore needs ``enable_checkpointing=True``.
        """

        def __init__(self, log_dir: str) -> None:
            self.log_dir = log_dir
            self._saved: dict[str, Any] = {}  # the epoch's metrics and stop, saved with it
            self._owed: dict[str, Any] | None = None  # what a resumed fit must catch up on

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            step = report_step(trainer)
            path = os.path.join(_folder(self.log_dir), f"last-step={step}.ckpt")
            older = [p for _, p in _checkpoints(self.log_dir) if p != path]
            self._saved = {
                "epoch": int(trainer.current_epoch), "should_stop": bool(trainer.should_stop),
                "metrics": {key: float(value) for key, value in trainer.callback_metrics.items()
                            if getattr(value, "numel", lambda: 1)() == 1}}
            trainer.save_checkpoint(path + ".tmp")  # every rank calls it; rank 0 writes
            if trainer.is_global_zero:
                if not os.path.exists(path + ".tmp"):
                    raise ConfigurationError(_not_written(trainer, path + ".tmp"))
                os.replace(path + ".tmp", path)
                for stale in older:
                    os.remove(stale)

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            """Refuse, before training, a checkpoint plugin that writes in the background."""
            if stage == "fit" and _writes_later(trainer):
                raise ConfigurationError(_not_written(trainer, None))

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            """After a resume, catch up on what Lightning does not restore from an end-of-epoch
            checkpoint: the epoch's plateau-scheduler steps, and a stop decided in that epoch
            (by ``EarlyStopping`` or the pruner)."""
            if self._owed is None:
                return
            owed, self._owed = self._owed, None
            _step_plateau_schedulers(trainer, int(owed.get("epoch", -1)),
                                     dict(owed.get("metrics") or {}))
            if owed.get("should_stop"):
                trainer.should_stop = True

        def state_dict(self) -> dict[str, Any]:
            return {**_random_states(), **self._saved}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            _restore_random_states(state_dict)
            self._owed = dict(state_dict)

    LastCheckpoint.__module__ = module
    LastCheckpoint.__qualname__ = "LastCheckpoint"
    return LastCheckpoint


def _writes_later(trainer: Any) -> bool:
    """Whether the trainer's checkpoint plugin writes in the background (Lightning's
    ``AsyncCheckpointIO``, in either namespace): the file is not complete, or not there at all,
    when ``save_checkpoint`` returns, so it cannot be renamed into place then."""
    plugin = getattr(trainer.strategy, "checkpoint_io", None)
    return any(cls.__name__ == "AsyncCheckpointIO" for cls in type(plugin).__mro__)


def _not_written(trainer: Any, path: str | None) -> str:
    """Why ``resume_lost_trials=True`` cannot keep its checkpoint with this trainer's plugin."""
    plugin = type(getattr(trainer.strategy, "checkpoint_io", None)).__name__
    what = ("it writes in the background, so the file is incomplete or missing when "
            "save_checkpoint returns" if path is None
            else f"after trainer.save_checkpoint({path!r}) no file is there")
    return (f"Expected a checkpoint plugin that writes the file it is given, at once, with "
            f"lightning_objective(resume_lost_trials=True): each epoch's checkpoint is written "
            f"under a temporary name and renamed, so that a kill never leaves half a file. "
            f"Received: {plugin} ({what}). Drop that plugin from trainer_kwargs (plugins=, "
            f"or the strategy's checkpoint_io), or set resume_lost_trials=False")


def best_checkpoint_class(base: type, module: str) -> type:
    """The ``BestCheckpoint`` class of one Lightning namespace (``base``: its
    ``callbacks.ModelCheckpoint``), made in ``module``'s namespace for ``ddp_spawn``."""

    class BestCheckpoint(base):
        """``ModelCheckpoint`` that, in a resumed trial, takes over the record of the lost
        trial's best checkpoint, which :func:`adopt_best` moved into this one's folder.

        ``moved_from``: the lost trial's checkpoint folder, or None (not a resume).
        """

        def __init__(self, *args: Any, moved_from: str | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.moved_from = moved_from

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if self.moved_from is None:
                super().setup(trainer, pl_module, stage)
                return
            with warnings.catch_warnings():  # the folder holds the files the resume put there
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists "
                                                          r"and is not empty")
                super().setup(trainer, pl_module, stage)

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            """In a resumed trial, read the record as if written in this trial's folder.

            The record's folder is the one of the trial that wrote the checkpoint, which need
            not be ``moved_from``: a retry lost before its first epoch end hands on the
            checkpoint it claimed (and the best files it took over) to the next retry.
            """
            old = state_dict.get("dirpath")
            if self.moved_from is not None and self.dirpath is not None and old is not None:
                state_dict = _moved_state(state_dict, old, str(self.dirpath))
            super().load_state_dict(state_dict)

    BestCheckpoint.__module__ = module
    BestCheckpoint.__qualname__ = "BestCheckpoint"
    return BestCheckpoint


def _moved_state(state: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``ModelCheckpoint``'s state with its folder ``old`` replaced by ``new`` (where
    :func:`adopt_best` moved the files), so that Lightning keeps the best score and paths."""
    def moved(path: Any) -> Any:
        if isinstance(path, str) and path and os.path.dirname(path) == old.rstrip(os.sep):
            return os.path.join(new, os.path.basename(path))
        return path

    state = dict(state, dirpath=new)
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            state[key] = moved(state[key])
    if isinstance(state.get("best_k_models"), dict):
        state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}
    return state


def adopt_best(moved_from: str, folder: str) -> None:
    """Move the best checkpoints of a lost trial (its folder ``moved_from``) into the retry's
    checkpoint ``folder``: moved, not linked, as Lightning overwrites a better one in place."""
    try:
        names = [n for n in os.listdir(moved_from) if _BEST.match(n)]
    except OSError:
        return
    os.makedirs(folder, exist_ok=True)
    for name in names:
        try:
            shutil.move(os.path.join(moved_from, name), os.path.join(folder, name))
        except OSError as exc:  # gone meanwhile, or unwritable: the retry starts a new record
            _logger.warning("Could not move %s into %s: %s", name, folder, exc)


def checkpoint_folder(log_dir: str) -> str:
    """The folder of a trial's checkpoints (resumable and best)."""
    return _folder(log_dir)


def _step_plateau_schedulers(trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
    """Step the plateau schedulers as Lightning would have at the end of ``epoch`` (it steps
    the others before the checkpoint, and these after it, except when it restarts from it):
    those of interval ``"epoch"`` whose ``frequency`` falls on ``epoch``, with the monitored
    value saved with the checkpoint, through the module's ``lr_scheduler_step``."""
    if epoch < 0:
        return
    for config in trainer.lr_scheduler_configs:
        if (config.interval != "epoch" or not config.reduce_on_plateau
                or (epoch + 1) % config.frequency != 0):
            continue
        value = metrics.get(config.monitor)
        if value is None:  # Lightning raises (strict) or skips; it had checked it at the time
            continue
        trainer.lightning_module.lr_scheduler_step(config.scheduler, value)


def _random_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's random states, as plain lists and tensors (a checkpoint
    loads with ``weights_only``)."""
    import numpy as np
    import torch

    version, python, gauss = random.getstate()
    numpy_state: Any = np.random.get_state()
    kind, keys, position, has_gauss, cached = numpy_state
    states: dict[str, Any] = {
        "python": [version, list(python), gauss],
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_random_states(states: dict[str, Any]) -> None:
    import numpy as np
    import torch

    if "python" in states:
        version, python, gauss = states["python"]
        random.setstate((version, tuple(python), gauss))
    if "numpy" in states:
        kind, keys, position, has_gauss, cached = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss,
                             cached))
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def claim_checkpoint(trial: Trial) -> tuple[Resume, str] | None:
    """The checkpoint ``trial`` may fit from, or None (not a retry, or no lost trial of its
    chain got as far as the end of an epoch): where it resumes, and the newest checkpoint
    along its chain hard-linked (else copied) into its own folder (see
    :func:`hpo_plugins._resume.link_into`). Nothing is recorded yet: the caller checks that it
    loads (:func:`load_problem`), then carries the lost trial's reports over
    (:func:`hpo_plugins._resume.carry_over`) or gives up (:func:`hpo_plugins._resume.give_up`).
    """
    return _resume.claim(trial, _checkpoints,
                         lambda path: _resume.link_into(path, _folder(trial.log_dir)))


#: LightningModule hooks that change a module's weights or a checkpoint's before Lightning
#: loads one: a module that overrides any of them is only checked for a file that reads.
_RESHAPING_HOOKS = ("setup", "configure_model", "configure_sharded_model", "on_load_checkpoint")


def load_problem(model: Any, path: str) -> str | None:
    """Why the checkpoint at ``path`` cannot resume ``model`` (freshly built), or None.

    The file is read as ``trainer.fit(ckpt_path=...)`` reads it (``torch.load`` with torch's
    default ``weights_only``), and its weights are loaded into ``model`` as Lightning will
    (``strict_loading``): a file that does not read, or weights of another architecture (the
    module changed since the lost trial ran), would otherwise fail the retry inside ``fit``.
    Lightning builds layers in ``setup``/``configure_model`` and lets ``on_load_checkpoint``
    rewrite the checkpoint before it loads the weights; a module that overrides one of those
    hooks (or has no weights yet) is checked for a file that reads only, and the rest is left
    to Lightning. The optimiser's state is not checked. ``model`` may hold part of the weights
    afterwards: build a fresh one to train from scratch.
    """
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu")
        if next(iter(model.parameters()), None) is None or _overrides_hooks(model):
            return None
        model.load_state_dict(checkpoint["state_dict"],
                              strict=bool(getattr(model, "strict_loading", True)))
    except Exception as exc:  # an unreadable file, another architecture, no state_dict
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        gist = " ".join(lines[:2])
        gist = gist if len(gist) <= 400 else gist[:397] + "..."
        return f"{type(exc).__name__}: {gist}"
    return None


def _overrides_hooks(model: Any) -> bool:
    """Whether the module's class defines one of :data:`_RESHAPING_HOOKS` itself (not only
    Lightning's own, empty, ones)."""
    for name in _RESHAPING_HOOKS:
        owner = next((cls for cls in type(model).__mro__ if name in vars(cls)), None)
        if owner is not None and owner.__module__.split(".")[0] not in LIGHTNING_ROOTS:
            return True
    return False


def kept_for_retry(trial: Trial, error: BaseException | None) -> bool:
    """Whether ``trial``'s resumable checkpoints must outlive its objective: SIGTERM stopped
    it (``error``, see :func:`hpo_plugins._sigterm.stopped_by_sigterm`: a preempted machine),
    and the study's ``max_retries`` lets the run loop re-queue it, so its retry resumes them.
    A trial stopped otherwise (Ctrl-C, an error) or out of retries ends here for good."""
    if error is None or not stopped_by_sigterm(type(error)):
        return False
    retries = int(trial.system_attrs.get("retries", 0))
    return retries < trial.study.max_retries and bool(trial.flat_params)  # as requeue_lost


def discard_checkpoints(trial: Trial) -> None:
    """Delete the resumable checkpoints that nobody can resume now that ``trial``'s objective
    has returned: see :func:`hpo_plugins._resume.folders_to_clean` (a worker judged dead
    leaves its checkpoints to its retry)."""
    for folder in _resume.folders_to_clean(trial):
        _discard_folder(folder)


def _discard_folder(log_dir: str) -> None:
    """Delete the resumable checkpoints (and a temporary one being written) of one trial
    folder; the best checkpoint stays."""
    try:
        names = os.listdir(_folder(log_dir))
    except OSError:
        return
    for name in names:
        if name.startswith("last-step=") and ".ckpt" in name:
            try:
                os.remove(os.path.join(_folder(log_dir), name))
            except FileNotFoundError:  # deleted meanwhile (a rotation, another cleaner)
                continue


_resume.register_discarder(_discard_folder)
