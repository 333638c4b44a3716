"""``lightning_objective``: an objective that trains a LightningModule per trial.

It imports no framework until it is called, and then the namespace (``lightning.pytorch`` or
``pytorch_lightning``) of the module it built, so the Trainer, the callbacks and the logger always
match the user's module.
"""

from __future__ import annotations

import copy
import gc
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import numpy as np

from hpo_plugins import _resume
from hpo_plugins._callback_args import raise_recorded_stop
from hpo_plugins._frozen import CHECKPOINT_ATTR
from hpo_plugins._resume import warn_without_retries
from hpo_plugins.context import current_trial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.lightning._base import NEVER_LOGGED_ATTR
from hpo_plugins.lightning._checks import (
    check_arguments,
    check_data,
    keyword_problem,
    module_class_namespace,
    own_callbacks,
    trainer_kwargs_problem,
)
from hpo_plugins.lightning._resume import (
    adopt_best,
    checkpoint_folder,
    claim_checkpoint,
    discard_checkpoints,
    kept_for_retry,
    load_problem,
)
from hpo_plugins.trial import Trial

if TYPE_CHECKING:
    from hpo_plugins._frozen import FrozenTrial
    from hpo_plugins._resume import Resume
    from hpo_plugins.study import Study

__all__ = ["LightningObjective", "lightning_objective"]

_logger = logging.getLogger("hpo_plugins.lightning")

#: The trial system attribute that holds the set-up mistake which stops the study (see
#: :meth:`LightningObjective.after_trial`); stored, so the parent reads it after a worker's trial.
STOP_ATTR = "lightning_objective_stop"

_CALLBACK_MODULES = {"lightning.pytorch": "hpo_plugins.lightning._callback",
                     "pytorch_lightning": "hpo_plugins.lightning.pl"}


class LightningObjective:
    """Train a LightningModule built from the trial's params; return its monitored value.

    Build it with :func:`lightning_objective`, which documents every argument; the attributes
    hold those arguments under the same names.
    """

    def __init__(self, module: Callable[..., Any], *, datamodule: Any = None,
                 train_dataloaders: Any = None, val_dataloaders: Any = None,
                 monitor: str | None = None, trainer_kwargs: Mapping[str, Any] | None = None,
                 callbacks: Sequence[Any] | None = None,
                 result: Literal["best", "last"] = "best", save_checkpoint: bool = False,
                 seed: int | None = None, resume_lost_trials: bool = False) -> None:
        check_arguments(module, datamodule=datamodule, train_dataloaders=train_dataloaders,
                        monitor=monitor, trainer_kwargs=trainer_kwargs, callbacks=callbacks,
                        result=result, save_checkpoint=save_checkpoint, seed=seed,
                        resume_lost_trials=resume_lost_trials)
        if resume_lost_trials and (trainer_kwargs or {}).get("max_steps") not in (None, -1):
            raise ConfigurationError(
                "Expected epoch-based training (max_epochs) with resume_lost_trials=True. "
                f"Received: max_steps={(trainer_kwargs or {})['max_steps']!r}; with max_steps "
                "Lightning replays the end of the checkpoint's epoch on a resume, which the "
                "resumed trial cannot match. Use max_epochs, or resume_lost_trials=False.")
        keeps = [name for name, on in (("resume_lost_trials", resume_lost_trials),
                                       ("save_checkpoint", save_checkpoint)) if on]
        if keeps and (trainer_kwargs or {}).get("enable_checkpointing") is False:
            raise ConfigurationError(
                f"Expected trainer_kwargs without enable_checkpointing=False when "
                f"{keeps[0]}=True: the checkpoints it keeps are written by Lightning "
                f"checkpoint callbacks, which Lightning refuses to run then. Received: "
                f"enable_checkpointing=False. Drop it (no checkpoint is written unless "
                f"save_checkpoint=True or resume_lost_trials=True).")
        check_data(module, datamodule, train_dataloaders)
        self.module = module
        self.datamodule = datamodule
        self.train_dataloaders = train_dataloaders
        self.val_dataloaders = val_dataloaders
        self.monitor = monitor
        self.trainer_kwargs = dict(trainer_kwargs or {})
        self.callbacks = own_callbacks(callbacks, "callbacks")
        self.result = result
        self.save_checkpoint = save_checkpoint
        self.seed = seed
        self.resume_lost_trials = resume_lost_trials
        # hpo.minimize derives the default study name from these: name it after the module.
        self.__qualname__ = getattr(module, "__qualname__", type(module).__qualname__)
        self.__module__ = getattr(module, "__module__", None) or __name__

    @property
    def hpo_study_key(self) -> str:
        """What ``hpo.minimize`` adds to the derived study name: the monitored metric and how
        a trial's value is taken from it, which make two runs different experiments."""
        return json.dumps([self.monitor, self.result])

    def __repr__(self) -> str:
        return (f"lightning_objective({self.__qualname__}, monitor={self.monitor!r}, "
                f"result={self.result!r}, save_checkpoint={self.save_checkpoint!r}, "
                f"resume_lost_trials={self.resume_lost_trials!r})")

    def __call__(self, params: Any) -> float | None:
        """Run one trial: build the module, fit it with ``HPOCallback``, return its value.

        Raises:
            ConfigurationError: A set-up mistake every trial would repeat: the monitored metric
                never appeared in the fit; the space's keys are not the module's arguments;
                an unknown Trainer argument; no validation ran while no trial of the study
                has validated yet. The trial is recorded FAIL with this message, and the study
                stops: with ``catch=`` too, through :meth:`after_trial`.
            NoActiveTrialError: Called outside a trial (it needs the trial's directory and
                curve).
        """
        trial = current_trial()
        if self.resume_lost_trials:
            warn_without_retries(trial, "lightning_objective")
        try:
            claimed = claim_checkpoint(trial) if self.resume_lost_trials else None
            checkpoint, stopped = self._fit(trial, params, claimed)
        except BaseException as exc:
            self._clean_up(trial, exc)
            # Lightning's ModelCheckpoint (save_checkpoint=True) raises about the same missing
            # key right after the callback judged it: the set-up mistake still stops the study
            mistake = self._set_up_mistake(trial) if isinstance(exc, Exception) else None
            if mistake is not None:
                _stop_study(trial, mistake)
            raise
        self._clean_up(trial, None)
        mistake = self._set_up_mistake(trial)
        if mistake is not None:
            _stop_study(trial, mistake)
        if checkpoint:
            trial.set_user_attr(CHECKPOINT_ATTR, checkpoint)
        return self._value(trial, stopped)

    def check_study(self, study: Study) -> None:
        """Before the first trial (``Study.optimize`` calls it): refuse a study whose params a
        LightningModule class cannot take as keyword arguments, tested on a draw from the
        space's prior (the trials check their own params again).

        Raises:
            ConfigurationError: A key of the space is not an argument of the module, or a
                required argument has no key.
        """
        if not isinstance(self.module, type) or study.space is None:
            return
        space = study.space
        params = space.build(space.sample_prior(np.random.default_rng(0)))
        problem = keyword_problem(self.module, params)
        if problem is not None:
            raise ConfigurationError(f"lightning_objective: {problem}")

    # -- one fit ------------------------------------------------------------------------------

    def _fit(self, trial: Trial, params: Any, claimed: tuple[Resume, str] | None
             ) -> tuple[str | None, bool]:
        """Fit a fresh module and Trainer (from the lost trial's checkpoint ``claimed``, if
        given and it loads, else from scratch); return the best checkpoint's path, if one was
        kept, and whether the fit was stopped early (``trainer.should_stop``: a callback,
        ``max_time``) while it had validation batches to run (when a stop comes mid-epoch
        Lightning validates anyway, unless the epoch was not due to validate)."""
        seed = self.seed if self.seed is not None else trial.study.seed  # as keras_tune
        if seed is not None:
            _seed_everything(seed)
        model = self._build(trial, params)
        start = moved_from = None
        if claimed is not None:
            resume, own = claimed
            problem = load_problem(model, own)
            if problem is None:
                _resume.carry_over(trial, resume, own)
                start, moved_from = own, os.path.dirname(resume.checkpoint)
            else:  # from scratch, as a first attempt: reseeded, and a model the load left alone
                _resume.give_up(trial, resume, own, problem)
                if seed is not None:
                    _seed_everything(seed)
                model = self._build(trial, params)
        framework = importlib.import_module(_namespace_of(model))
        problem = trainer_kwargs_problem(framework.Trainer, self.trainer_kwargs)
        if problem is not None:
            _stop_study(trial, f"lightning_objective: {problem}")
        checkpoint = (self._checkpoint_callback(framework, trial, moved_from)
                      if self.save_checkpoint else None)
        trainer = framework.Trainer(**self._trainer_kwargs(framework, trial, checkpoint))
        trainer.fit(model, train_dataloaders=self.train_dataloaders,
                    val_dataloaders=self.val_dataloaders, datamodule=self.datamodule,
                    ckpt_path=start)
        best = (checkpoint.best_model_path or None) if checkpoint is not None else None
        has_validation = sum(getattr(trainer, "num_val_batches", None) or [0]) > 0
        return best, bool(trainer.should_stop) and has_validation

    def _build(self, trial: Trial, params: Any) -> Any:
        if not isinstance(self.module, type):
            return self.module(params)
        problem = keyword_problem(self.module, params)
        if problem is not None:
            _stop_study(trial, f"lightning_objective: {problem}")
        return self.module(**params)

    def _trainer_kwargs(self, framework: Any, trial: Trial, checkpoint: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"enable_progress_bar": False, "enable_model_summary": False,
                                  **copy.deepcopy(self.trainer_kwargs)}
        own = copy.deepcopy(self.callbacks)
        given = own_callbacks(kwargs.get("callbacks"), "trainer_kwargs['callbacks']")
        kwargs.setdefault("enable_checkpointing", self._checkpointing(framework, [*own, *given]))
        if "logger" not in kwargs:
            kwargs["logger"] = _default_logger(framework, trial)
        if kwargs["logger"] or kwargs["enable_checkpointing"]:  # Lightning will write files
            kwargs.setdefault("default_root_dir", trial.log_dir)
        hpo_callback = _callback_class(framework)(self.monitor, trial=trial)
        hpo_callback._objective_stops_study = True  # see _set_up_mistake
        extra = [checkpoint] if checkpoint is not None else []
        if self.resume_lost_trials:  # after ModelCheckpoint: trainer.checkpoint_callback is it
            extra.append(_callback_module(framework).LastCheckpoint(trial.log_dir))
        kwargs["callbacks"] = [hpo_callback, *extra, *own, *given]
        return kwargs

    def _checkpointing(self, framework: Any, callbacks: Sequence[Any]) -> bool:
        """The default of ``enable_checkpointing``: on when this objective keeps checkpoints
        (``save_checkpoint``, ``resume_lost_trials``) or the user's ``callbacks`` hold a
        checkpoint callback (a ``ModelCheckpoint``), which Lightning refuses with
        ``enable_checkpointing=False``, a setting the user never passed; off otherwise, so that
        Lightning writes no checkpoint of its own. ``trainer_kwargs`` overrides it."""
        return (self.save_checkpoint or self.resume_lost_trials
                or any(isinstance(c, framework.callbacks.Checkpoint) for c in callbacks))

    def _checkpoint_callback(self, framework: Any, trial: Trial, moved_from: str | None) -> Any:
        """The trial's best-checkpoint keeper; in a resumed trial (``moved_from``: the lost
        trial's checkpoint folder) it takes over the lost trial's best checkpoint and record."""
        folder = checkpoint_folder(trial.log_dir)
        if moved_from is not None:
            adopt_best(moved_from, folder)
        mode = "min" if trial.study.direction.value == "minimize" else "max"
        return _callback_module(framework).BestCheckpoint(
            dirpath=folder, filename="best", monitor=self.monitor or trial.study.metric,
            mode=mode, save_top_k=1, moved_from=moved_from)

    def _clean_up(self, trial: Trial, error: BaseException | None) -> None:
        """After the fit (``error``: what it raised, if anything): release the trainer, and
        delete the resumable checkpoints nobody will resume, unless SIGTERM stopped the trial
        and the run loop re-queues it (:func:`kept_for_retry`). A trial whose worker is
        killed outright never gets here."""
        self._release()
        if self.resume_lost_trials and not kept_for_retry(trial, error):
            discard_checkpoints(trial)

    def _release(self) -> None:
        """Drop what Lightning left attached, then collect (trainers hold reference cycles)."""
        if self.datamodule is not None and hasattr(self.datamodule, "trainer"):
            self.datamodule.trainer = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    def after_trial(self, study: Study, frozen: FrozenTrial) -> None:
        """Study callback (``Study.optimize`` adds it): stop the study after a trial whose
        monitored metric was never logged, also when ``catch=`` caught the error.

        Raises:
            ConfigurationError: ``frozen`` ended on that set-up mistake (its ``STOP_ATTR``).
        """
        raise_recorded_stop(frozen, STOP_ATTR)

    # -- the trial's value --------------------------------------------------------------------

    def _set_up_mistake(self, trial: Trial) -> str | None:
        """The message that stops the study when the monitored metric never appeared, or None.

        The callback failed the trial at its first reporting validation and recorded the
        metric's name (:data:`NEVER_LOGGED_ATTR`): a typo or a metric that ``validation_step``
        does not log, which every trial would repeat. Raising here, after ``fit`` returned,
        stops the run loop at this trial (``keras_tune`` does the same) and puts nothing
        through Lightning. A metric that was reported and then went missing only fails its
        trial: that is not a mistake every trial must make.
        """
        reason = trial.fail_reason  # first: reads back what ddp_spawn's rank 0 stored
        if reason is None or trial.system_attrs.get(NEVER_LOGGED_ATTR) is None:
            return None
        key = self.monitor or trial.study.metric
        given = f"monitor={key!r}" if self.monitor else f"monitor=None, the study's metric {key!r}"
        return (f"lightning_objective({given}): {reason.rstrip('.')}. The study stops at this "
                f"first such trial (even with catch=), "
                f"since a metric the fit never logged is a mistake in the code or the "
                f"settings that every trial would repeat, not a bad configuration to skip.")

    def _value(self, trial: Trial, stopped: bool) -> float | None:
        """The trial's value from its curve; with no report at all, FAIL, and a stop of the
        study when no trial of the study has validated yet, unless the fit was ``stopped``
        early with validation batches it was not due to run yet."""
        if trial.fail_reason is not None or trial.pruned:
            return None  # the run loop records FAIL or PRUNED whatever is returned
        curve = trial.intermediate_values
        if not curve:
            reason = (f"no validation ran, so nothing was reported for "
                      f"{self.monitor or trial.study.metric!r}; check the validation data "
                      f"(val_dataloaders, the datamodule's val_dataloader), max_epochs, "
                      f"max_steps, val_check_interval, check_val_every_n_epoch and "
                      f"limit_val_batches")
            if not stopped and not _any_validated(trial.study):
                _stop_study(trial, f"lightning_objective: {reason}. No trial of the study has "
                                   f"validated yet, so the study stops here (even with "
                                   f"catch=) instead of running every trial the same way.")
            trial.mark_failed(reason)
            return None
        if self.result == "last":
            return curve[max(curve)]
        best = min if trial.study.direction.value == "minimize" else max
        return best(curve.values())


def _stop_study(trial: Trial, message: str) -> NoReturn:
    """Fail ``trial`` with a set-up mistake and stop the study: the message is stored for
    :meth:`LightningObjective.after_trial`, which reads it in the launching process (with
    ``catch=`` too, and when the trial ran in a worker).

    Raises:
        ConfigurationError: Always, with ``message``.
    """
    trial.set_system_attr(STOP_ATTR, message)
    raise ConfigurationError(message)


def _any_validated(study: Study) -> bool:
    """Whether some finished trial of ``study`` reported a value (its validation ran)."""
    return any(t.intermediate_values for t in study.get_trials(["COMPLETE", "PRUNED"]))


def lightning_objective(module: Callable[..., Any], *, datamodule: Any = None,
                        train_dataloaders: Any = None, val_dataloaders: Any = None,
                        monitor: str | None = None,
                        trainer_kwargs: Mapping[str, Any] | None = None,
                        callbacks: Sequence[Any] | None = None,
                        result: Literal["best", "last"] = "best", save_checkpoint: bool = False,
                        seed: int | None = None,
                        resume_lost_trials: bool = False) -> LightningObjective:
    """An objective that builds a LightningModule from the params, fits it, returns its value.

    For each trial: ``module(**params)`` (a LightningModule class) or ``module(params)`` (a
    factory) builds a fresh module; a fresh Trainer of the module's own namespace
    (``lightning.pytorch`` or ``pytorch_lightning``) fits it with an ``HPOCallback`` (reports
    and pruning); the trial's value is the best (or last) monitored value reported. Trainer,
    module and optimiser are released before the next trial.

    Trainer defaults, each overridden by ``trainer_kwargs``: a ``CSVLogger`` writing
    ``metrics.csv`` in ``trial.log_dir`` (or, when the study has a ``logdir``, a
    ``TensorBoardLogger`` writing into the trial's TensorBoard run, the directory of its HParams
    session, so Lightning's own curves appear beside it; it loads TensorFlow when that is
    installed, and writes no ``metrics.csv``); ``default_root_dir=trial.log_dir``
    (when Lightning writes anything); no progress bar; no model summary; and checkpointing only
    when ``save_checkpoint`` or ``resume_lost_trials`` is set or the callbacks hold a checkpoint
    callback of the user's (a ``ModelCheckpoint``, which Lightning refuses without it). With
    ``logger=False`` and no checkpoints nothing is written.

    Args:
        module: A LightningModule class called with the params as keyword arguments, or a
            function ``params -> LightningModule``.
        datamodule: Passed to ``trainer.fit`` (shared by the trials; keep it stateless).
        train_dataloaders: Passed to ``trainer.fit`` (instead of a datamodule).
        val_dataloaders: Passed to ``trainer.fit``.
        monitor: The metric to report and return; default: the study's ``metric``
            (``"val_loss"``).
        trainer_kwargs: Keyword arguments of the Trainer (``max_epochs``, ``accelerator``,
            ``strategy``...). Callbacks given here are added to ``callbacks``.
        callbacks: More Lightning callbacks; deep-copied for every trial, so no state (say an
            ``EarlyStopping`` counter) leaks from one trial into the next.
        result: ``"best"``: the best monitored value of the trial in the study's direction;
            ``"last"``: the value at the last validation.
        save_checkpoint: Keep the best checkpoint (by ``monitor``) in
            ``<trial.log_dir>/checkpoints/best.ckpt`` and record its path as the trial's user
            attribute ``"checkpoint"``: ``study.best_trial.user_attrs["checkpoint"]``. It is
            the best epoch's also with ``result="last"``, whose value is the last epoch's.
        seed: ``seed_everything(seed)`` before each module is built, so every trial starts
            from the same random state and a trial run again gives the same value. Default:
            the study's seed (``hpo.minimize(..., seed=0)``), as ``keras_tune`` does; neither
            given, nothing is seeded.
        resume_lost_trials: Keep each trial's latest state in
            ``<trial.log_dir>/checkpoints/last-step=<N>.ckpt`` (rewritten at the end of every
            epoch, deleted when the trial ends), so that a trial re-queued after its worker was
            lost (``max_retries`` >= 1) resumes from where the lost trial got to, instead of
            training from scratch: its reports up to that point are copied, Lightning restores
            weights, optimiser, schedulers, callbacks and epoch, the random states are restored,
            and ``trial.system_attrs["resumed_from"]`` says from which trial and step (see
            :mod:`hpo_plugins.lightning._resume`). Costs one checkpoint write per epoch; needs
            ``enable_checkpointing`` (not ``False`` in ``trainer_kwargs``).

    Returns:
        A picklable callable for ``hpo.minimize`` / ``study.optimize``; ``hpo.minimize`` names
        the study after ``module`` unless given a ``study_name``.

    Raises:
        ConfigurationError: An argument has the wrong type or value (a module instance
            instead of its class; no data for a module class without ``train_dataloader()``),
            or (when Lightning is already imported) ``trainer_kwargs`` holds a name the
            Trainer does not take.
            Raised by ``study.optimize`` before the first trial: the space's keys are not the
            arguments of a LightningModule class. Raised by the returned objective, for a
            set-up mistake every trial would repeat: the monitored metric never appeared in a
            trial's fit (a typo, a metric ``validation_step`` does not log; the message names
            the logged metrics and the closest one); the trial's params are not the module's
            arguments; an unknown Trainer argument; a fit that ran to its limits without any
            validation while no trial of the study has validated yet. That trial is recorded
            FAIL and the study stops there, with ``catch=`` and ``n_jobs`` > 1 too. A metric
            that was reported and then went missing only fails its trial.

    Example:
        With ``DigitsMLP``, ``DigitsData`` and ``SPACE`` of ``examples/lightning_digits.py``:

        >>> import hpo_plugins as hpo
        >>> objective = lightning_objective(DigitsMLP, datamodule=DigitsData(),
        ...                                 trainer_kwargs={"max_epochs": 27},
        ...                                 save_checkpoint=True)  # doctest: +SKIP
        >>> study = hpo.minimize(objective, SPACE, n_trials=40,
        ...                      pruner=hpo.pruners.SuccessiveHalvingPruner())  # doctest: +SKIP
        >>> study.best_trial.user_attrs["checkpoint"]  # doctest: +SKIP
        '.../hpo_runs/DigitsMLP-<hash>/trial_0017/checkpoints/best.ckpt'
    """
    return LightningObjective(module, datamodule=datamodule, train_dataloaders=train_dataloaders,
                              val_dataloaders=val_dataloaders, monitor=monitor,
                              trainer_kwargs=trainer_kwargs, callbacks=callbacks, result=result,
                              save_checkpoint=save_checkpoint, seed=seed,
                              resume_lost_trials=resume_lost_trials)


def _namespace_of(model: Any) -> str:
    """``"lightning.pytorch"`` or ``"pytorch_lightning"``: where the model's LightningModule is."""
    namespace = module_class_namespace(type(model))
    if namespace is not None:
        return namespace
    raise ConfigurationError(
        f"Expected `module` to build a LightningModule (of lightning.pytorch or "
        f"pytorch_lightning). Received: {model!r} (of type {type(model).__name__}).")


def _seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (what either namespace's ``seed_everything`` does)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _callback_module(framework: Any) -> Any:
    """The module of our callbacks for ``framework``'s namespace."""
    return importlib.import_module(_CALLBACK_MODULES[framework.__name__])


def _callback_class(framework: Any) -> Any:
    return _callback_module(framework).HPOCallback


def _default_logger(framework: Any, trial: Trial) -> Any:
    """TensorBoard in the trial's run when the study has a logdir, else a CSV file.

    Lightning's ``TensorBoardLogger`` writes through ``torch.utils.tensorboard`` (where the
    ``tensorboard`` package is installed), which loads TensorFlow when that is installed too;
    ``trainer_kwargs={"logger": ...}`` avoids it.
    """
    from hpo_plugins.tensorboard import run_dir

    directory = run_dir(trial)
    if directory is not None:
        return framework.loggers.TensorBoardLogger(directory, name="", version="",
                                                   default_hp_metric=False)
    return framework.loggers.CSVLogger(trial.log_dir, name="", version="")
