"""What ``HPOCallback`` does, written once for both Lightning namespaces.

This mixin touches only what ``lightning.pytorch`` and ``pytorch_lightning`` share (the trainer's
public attributes and ``trainer.strategy.broadcast``) and imports neither, so each namespace's
``HPOCallback`` is this class plus that namespace's ``Callback``, and the two never mix.

The protocol, per ``fit``:

* ``setup("fit")``: rank 0 finds the trial: the one passed as ``trial=``, the current one
  (:func:`hpo_plugins.context.current_trial_or_none`, which also reads
  :data:`hpo_plugins.TRIAL_ENV`), the one that was current when the callback was made if it
  still runs (a ``fit`` in a thread the objective started, which the context does not reach),
  or, in a process that ``ddp_spawn`` started, the one named by the hand-over note the
  callback was pickled with. Rank 0's answer is broadcast, so every rank
  agrees whether the callback is active (no rank waits on a broadcast another skips). Rank 0
  also turns off ``default_hp_metric`` of the TensorBoard loggers that write under the study's
  logdir (:mod:`hpo_plugins.lightning._loggers`).
* ``on_validation_end`` (not during the sanity check): rank 0 reports the monitored value and asks
  the pruner; the verdict is broadcast and every rank sets ``trainer.should_stop``. Rank 0 marks
  the trial pruned or failed; the run loop records the state after ``fit`` returns, so nothing
  is raised through Lightning and its loggers finish with status ``"success"``.
* ``teardown("fit")``: warn (rank 0) when the fit ended without a single report, then forget
  the trial; under gloo, pause so torch's threads finish with the last broadcast before a
  spawned rank exits (:mod:`hpo_plugins.lightning._settle`).

Copies: ``copy.deepcopy`` (a copied callbacks list, ``lightning_objective(callbacks=...)``) keeps
the same trial and starts with a fresh per-fit state; only pickling (``ddp_spawn``) replaces the
trial by a hand-over note.
"""

from __future__ import annotations

import copy
import logging
import os
import weakref
from typing import TYPE_CHECKING, Any

from hpo_plugins._callback_args import (
    NO_TRIAL_NOTICE,
    as_number,
    check_callback_arguments,
    logged_names,
    monitor_direction_problem,
)
from hpo_plugins._frozen import TrialState
from hpo_plugins._outcome import NOTHING_REPORTED_ATTR
from hpo_plugins._warn import warn_user
from hpo_plugins.context import current_trial_or_none, pushed_elsewhere, pushed_trial_or_none
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.lightning._handover import hand_over, open_trial
from hpo_plugins.lightning._loggers import quiet_hp_metric
from hpo_plugins.lightning._settle import settle_collectives

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = ["NEVER_LOGGED_ATTR", "HPOCallbackBase", "report_step", "training_batches"]

_logger = logging.getLogger("hpo_plugins.lightning")

_STOP = "stop"  # the verdict rank 0 broadcasts when the trial must end (pruned or failed)

#: The unit of each Trainer's report steps, ``"epoch"`` or ``"batch"``, fixed at its first use
#: (see :func:`report_step`), so that one Trainer's curve never mixes the two.
_units: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
#: Where a checkpoint keeps that unit, for the Trainer that resumes it.
_UNIT_KEY = "hpo_plugins_report_unit"

#: The trial system attribute that holds the monitored name when the callback of
#: ``lightning_objective`` failed the trial because that metric never appeared (its first
#: reporting validation lacked it and the trial had no report yet). Stored, so the objective
#: reads it also when rank 0 ran in a process that ``ddp_spawn`` started.
NEVER_LOGGED_ATTR = "monitor_never_logged"


class HPOCallbackBase:
    """The namespace-free body of ``HPOCallback``; see :class:`hpo_plugins.lightning.HPOCallback`.

    Args:
        monitor: The metric to report, a key of ``trainer.callback_metrics``; default: the
            study's ``metric`` (``"val_loss"`` unless the study was created with another).
        trial: The trial to report to; default: the current trial, found when ``fit`` starts,
            else the trial current when the callback was made, if it still runs.
        interval: Report (and ask the pruner) at every ``interval``-th validation run of a fit:
            the ``interval``-th, ``2 * interval``-th, ...

    Raises:
        ConfigurationError: An argument has the wrong type or value.
    """

    _bound: Trial | None  # the trial rank 0 reports to during a fit
    _active: bool  # the same on every rank: whether this fit reports at all
    _stopped: bool
    _checks: int  # validation runs seen in this fit
    _floor: int | None  # rank 0: the trial's last step before this fit; reports must pass it
    _last: int | None  # rank 0: this fit's last report step
    _repeated: bool  # rank 0: whether a repeated step was warned about in this fit
    #: Set by ``lightning_objective``, which owns the trial: a monitored metric that never
    #: appeared is recorded (:data:`NEVER_LOGGED_ATTR`) instead of warned about, since the
    #: objective then stops the study with a ``ConfigurationError`` saying the same.
    _objective_stops_study = False

    def __init__(self, monitor: str | None = None, *, trial: Trial | None = None,
                 interval: int = 1) -> None:
        super().__init__()
        self.interval = check_callback_arguments(monitor, trial, interval)
        self.monitor = monitor
        self.trial = trial
        # the trial current here, for a fit in another thread (the context does not follow)
        self._origin = pushed_trial_or_none() if trial is None else None
        self._note: str | None = None  # hand-over note, set only in a spawned worker
        self._pid = os.getpid()
        self._announced = False
        self._forget()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(monitor={self.monitor!r}, interval={self.interval!r})"

    # -- copying and pickling ------------------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> HPOCallbackBase:
        """A copy with the same settings and the same ``trial`` (a live handle is shared, never
        copied), and a fresh per-fit state.

        Without this, ``copy.deepcopy`` would go through :meth:`__getstate__`, which is meant for
        another process: the copy lost an in-memory study's trial (it then reported nothing) or
        re-opened the trial from the storage.
        """
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        shared = ("trial", "_bound", "_origin")
        clone.__dict__.update({name: copy.deepcopy(value, memo)
                               for name, value in self.__dict__.items() if name not in shared})
        clone.trial, clone._origin = self.trial, self._origin
        clone._forget()
        return clone

    # how the callback reaches the processes of strategy="ddp_spawn"

    def __getstate__(self) -> dict[str, Any]:
        trial = self.trial if self.trial is not None else self._implicit_trial()
        state = dict(self.__dict__)
        state.update(trial=None, _bound=None, _origin=None,
                     _note=self._note or hand_over(trial))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    # -- Lightning hooks ----------------------------------------------------------------------

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Find the trial on rank 0 and let every rank know whether to take part (fit only).

        Raises:
            ConfigurationError: On every rank, before training starts, when ``val_loss`` (the
                default metric) is monitored in a study that maximises: every trial would be
                optimised and pruned the wrong way. Another name whose words say the opposite
                direction (``val_acc`` in a study that minimises) only warns, on rank 0, as the
                word rules can misread a name.
        """
        if stage != "fit":
            return
        self._forget()
        refusal, ended = None, False
        if trainer.is_global_zero:
            self._bound = self._find_trial(trainer)
            refusal = self._check_direction()
            ended = self._already_decided()
        active, refusal, ended = trainer.strategy.broadcast(
            (self._bound is not None, refusal, ended), src=0)
        if refusal is not None:
            self._forget()
            settle_collectives()  # every rank raises, and a spawned rank then exits
            raise ConfigurationError(f"HPOCallback: {refusal}")
        self._active = bool(active)
        if ended:  # a fit after the decision (say a continued Trainer): it must not train on
            self._stopped = True
            trainer.should_stop = True
        if self._bound is not None:
            self._floor = max(self._bound.intermediate_values, default=None)
            quiet_hp_metric(trainer, self._bound)
            if (trainer.is_global_zero and self._bound.system_attrs.get("run_id")
                    and _writes_to_shared_default(trainer)):
                warn_user(_SHARED_DEFAULT_FOLDER)
            if trainer.is_global_zero and getattr(trainer, "fast_dev_run", False):
                warn_user(_FAST_DEV_RUN.format(number=self._bound.number))
        if trainer.is_global_zero and self._bound is None:
            self._announce()

    def on_save_checkpoint(self, trainer: Any, pl_module: Any,
                           checkpoint: dict[str, Any]) -> None:
        """Keep the unit of the report steps with the checkpoint (see :func:`report_step`)."""
        unit = _units.get(trainer)
        if unit is not None:
            checkpoint[_UNIT_KEY] = unit

    def on_load_checkpoint(self, trainer: Any, pl_module: Any,
                           checkpoint: dict[str, Any]) -> None:
        """A Trainer resumed from a checkpoint (``ckpt_path``, a retry of a lost trial) goes on
        in the unit of the steps it resumes: chosen again, it could differ (a training set
        whose size changed since the first report) and the curve would mix units or go back."""
        unit = checkpoint.get(_UNIT_KEY)
        if unit in ("epoch", "batch"):
            _units.setdefault(trainer, unit)  # a Trainer that already reported keeps its own

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Report on rank 0, then stop every rank when the trial is pruned or failed."""
        if not self._active or self._stopped or trainer.sanity_checking:
            return
        self._checks += 1
        if self._checks % self.interval:
            return
        verdict = self._judge(trainer) if trainer.is_global_zero else None
        if trainer.strategy.broadcast(verdict, src=0) == _STOP:
            self._stopped = True
            trainer.should_stop = True

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Forget the trial once ``fit`` ends (a later ``validate`` reports nothing).

        Before that, rank 0 warns when the fit reported nothing (no validation ran, or fewer
        than ``interval``): otherwise the only trace would be the run loop's generic "reported
        no value". It only warns: another fit of the same trial may still report.
        """
        if stage != "fit":
            return
        # a resumed trial whose checkpoint had already decided to stop has its (copied) reports
        resumed = (self._bound is not None and bool(self._bound.intermediate_values)
                   and "resumed_from" in self._bound.system_attrs)
        if (self._bound is not None and self._checks < self.interval and not resumed
                and not self._stopped and not _tuning(trainer)):
            message = _nothing_reported(trainer, self._bound.number, self._checks,
                                        self.interval)
            warn_user(message)
            if trainer.is_global_zero:  # the trial's reason quotes it if nothing else reports
                self._bound.set_system_attr(NOTHING_REPORTED_ATTR, message)
        self._forget()
        settle_collectives()  # a rank that ddp_spawn started exits right after fit

    # -- rank 0 -------------------------------------------------------------------------------

    def _check_direction(self) -> str | None:
        """Warn about a monitored name that reads as the other direction; return the message
        when it is certain (then every rank raises it)."""
        if self._bound is None:
            return None
        problem = monitor_direction_problem(self.monitor or self._bound.study.metric,
                                            self._bound, explicit=self.monitor is not None)
        if problem is None:
            return None
        if problem.certain:
            return problem.message
        warn_user(f"HPOCallback: {problem.message}.")
        return None

    def _already_decided(self) -> bool:
        """Whether the trial was already pruned or failed (by an earlier fit): then this fit
        stops before it trains, and reports nothing, as the earlier one did after its
        decision."""
        trial = self._bound
        if trial is None or not (trial.pruned or trial.fail_reason is not None):
            return False
        decision = "pruned" if trial.pruned else f"failed ({trial.fail_reason})"
        _logger.info("HPOCallback: trial %d was already %s in an earlier fit; this fit stops "
                     "before it trains and reports nothing.", trial.number, decision)
        return True

    def _find_trial(self, trainer: Any) -> Trial | None:
        if self._note is not None:
            return open_trial(self._note)
        trial = self.trial if self.trial is not None else self._implicit_trial()
        if trial is not None and trainer.world_size > 1 and os.getpid() != self._pid:
            from hpo_plugins._interactive import interactive

            fix = ("In a notebook (or at a prompt) Lightning takes only forked strategies, so "
                   "a trial run in it trains on one device: use devices=1, and n_jobs for "
                   "several trials at once; for several devices per trial, run the training "
                   "as a script (hpo-plugins run ... -- python train.py, see docs/parallel.md)."
                   if interactive() else
                   "Use strategy='ddp_spawn' (or 'ddp' with a launcher, see "
                   "docs/lightning.md).")
            raise ConfigurationError(
                f"HPOCallback was copied into a forked process (strategy='ddp_fork' or "
                f"'ddp_notebook'), where reports would not reach the study. {fix}"
            )
        return trial

    def _implicit_trial(self) -> Trial | None:
        """The trial current now, else the one current when the callback was made, if that one
        still runs: a fit in a thread that the objective started does not see the trial's
        context, but a callback made in the objective does (one that outlived its trial, say
        kept for a later fit outside the study, must not report to it)."""
        trial = current_trial_or_none()
        if trial is not None or self._origin is None:
            return trial
        origin = self._origin
        try:
            running = (origin.study.storage.get_trial(origin.trial_id).state
                       is TrialState.RUNNING)
        except Exception as exc:  # its study deleted, its database gone: it runs no more
            _logger.debug("HPOCallback: the trial current when it was made cannot be read "
                          "(%s: %s); it is not used.", type(exc).__name__, exc)
            return None
        if not running:
            return None
        _logger.debug("HPOCallback: no trial is current here; reporting to trial %d, current "
                      "when the callback was made.", origin.number)
        return origin

    def _judge(self, trainer: Any) -> str | None:
        """Report the monitored value; the verdict is ``_STOP`` when the trial must end."""
        trial = self._bound
        assert trial is not None
        key = self.monitor or trial.study.metric
        hook = _training_epoch_hook(trainer, key)
        if hook is not None:  # missing, or the previous epoch's value: unusable either way
            return self._unusable(trial, _epoch_level_metric(key, hook, trainer))
        value = as_number(trainer.callback_metrics.get(key))  # self.log takes scalars only
        if value is None:
            return self._missing(trial, key, trainer)
        step = report_step(trainer)
        if self._floor is not None and step <= self._floor:
            return self._fail(trial, _step_went_back(step, self._floor))
        if step == self._last and not self._repeated:
            self._repeated = True
            warn_user(_repeated_step(step, trial.number))
        self._last = step
        try:
            trial.report(value, step)
        except ConfigurationError as exc:  # never raised through Lightning (its loggers)
            return self._fail(trial, f"the report at step {step} was refused: {exc}")
        if not trial.should_prune():
            return None
        if trial.fail_reason is None:  # a non-finite value fails rather than prunes
            trial.mark_pruned()
            _logger.info("Trial %d pruned at step %d (%s=%.6g).", trial.number, step, key, value)
        return _STOP

    def _missing(self, trial: Trial, key: str, trainer: Any) -> str:
        """Fail the trial whose monitored metric is not in ``callback_metrics`` now.

        Whether the metric appeared before in this trial changes the advice: never (a typo, a
        metric not logged in ``validation_step``) or after reports (a later fit of the trial,
        with a new Trainer, whose module does not log it; within one fit Lightning keeps a
        metric's last value in ``callback_metrics``). Only the first is a mistake of the
        set-up, which ``lightning_objective`` turns into an error that stops the study.
        """
        last = max(trial.intermediate_values, default=None)
        return self._unusable(trial, _missing_metric(key, trainer, last))

    def _unusable(self, trial: Trial, reason: str) -> str:
        """Fail the trial whose monitored metric cannot be reported (``reason``). At the
        trial's first report this is a mistake of the set-up, which ``lightning_objective``
        turns into an error that stops the study (:data:`NEVER_LOGGED_ATTR`)."""
        if not trial.intermediate_values and self._objective_stops_study:
            trial.set_system_attr(NEVER_LOGGED_ATTR, self.monitor or trial.study.metric)
            trial.mark_failed(reason)
            return _STOP
        return self._fail(trial, reason)

    def _fail(self, trial: Trial, reason: str) -> str:
        warn_user(f"HPOCallback: {reason}; trial {trial.number} ends as FAIL.")
        trial.mark_failed(reason)
        return _STOP

    # -- bookkeeping --------------------------------------------------------------------------

    def _forget(self) -> None:
        self._bound = None
        self._active = False
        self._stopped = False
        self._checks = 0
        self._floor = None
        self._last = None
        self._repeated = False

    def _announce(self) -> None:
        """Say that this fit reports nothing: once, at INFO, outside any study (one training
        script runs with or without the tuner); as a warning at every fit while a trial runs
        in another thread of this process, whose objective most likely started this fit in a
        thread of its own with a callback made outside the trial."""
        others = pushed_elsewhere()
        if others:
            warn_user(_other_thread_notice(others))
        elif not self._announced:
            self._announced = True
            _logger.info(NO_TRIAL_NOTICE)


#: Said when a trial's Trainer has ``fast_dev_run`` set: its values come from a batch or two.
_FAST_DEV_RUN = (
    "HPOCallback: trial {number} runs with fast_dev_run, so what it reports comes from a batch "
    "or two of training and validation, and the study ranks it with real trials. Use "
    "fast_dev_run to check the code outside a study, or in a study you delete after "
    "(hpo.delete_study).")

#: Said when a trial of a parallel run writes to the working directory's ``lightning_logs``.
_SHARED_DEFAULT_FOLDER = (
    "HPOCallback: this trial runs beside others (a parallel run), and its Trainer has no "
    "default_root_dir, so its logs and checkpoints go to ./lightning_logs, which the other "
    "trials share: two trials can take the same version_N folder and mix their files. Pass "
    "default_root_dir=hpo.current_trial().log_dir to the Trainer (lightning_objective does).")


def _writes_to_shared_default(trainer: Any) -> bool:
    """Whether ``trainer`` writes files (a logger's or a checkpoint's) under its default
    root, the working directory, because nobody gave it a folder."""
    root = os.path.normpath(str(trainer.default_root_dir))
    if root != os.path.normpath(os.getcwd()):
        return False
    loggers = [logger for logger in trainer.loggers
               if getattr(logger, "save_dir", None) is not None
               and os.path.normpath(str(logger.save_dir)) == root]
    # a ModelCheckpoint without dirpath saves under the first logger's save_dir, as Lightning
    # resolves it, else under the default root
    first = getattr(trainer.loggers[0], "save_dir", None) if trainer.loggers else None
    checkpoint_root = os.path.normpath(str(first)) if first is not None else root
    checkpoints = [callback for callback in trainer.checkpoint_callbacks
                   if getattr(callback, "dirpath", None) is None and checkpoint_root == root]
    return bool(loggers or checkpoints)


def report_step(trainer: Any) -> int:
    """The step of a report: the epoch, or the training batches so far when validation runs
    within epochs.

    Validation runs once per epoch when ``check_val_every_n_epoch`` is set and the training
    batches between two validations (``trainer.val_check_batch``) cover the whole epoch; then
    the step is ``trainer.current_epoch`` (0-based; with ``check_val_every_n_epoch=2`` the steps
    are 1, 3, 5, ...). Otherwise, when validation runs within epochs (``val_check_interval``
    below 1.0, an integer number of batches smaller than an epoch, a duration, or
    ``check_val_every_n_epoch=None``), it is :func:`training_batches`, which grows at every
    batch: ``trainer.global_step`` did not (with ``accumulate_grad_batches`` above the
    validation interval two validations shared a step, and the second value replaced the
    first; with manual optimisation and a plain torch optimizer it stayed 0). Without gradient
    accumulation, one optimizer step per batch, the two are the same number. An integer
    ``val_check_interval`` equal to the batches per epoch reports epochs.

    The unit is chosen at a Trainer's first report and kept for its life, and in its
    checkpoints for a Trainer that resumes one: a training set whose size changes between
    epochs (``reload_dataloaders_every_n_epochs``) could otherwise switch it in the middle of a
    curve.
    """
    unit = _units.get(trainer)
    if unit is None:
        unit = _units[trainer] = _step_unit(trainer)
    return int(trainer.current_epoch) if unit == "epoch" else training_batches(trainer)


def _step_unit(trainer: Any) -> str:
    every = trainer.val_check_batch
    if (trainer.check_val_every_n_epoch is not None and every is not None
            and every >= trainer.num_training_batches):
        return "epoch"
    return "batch"


def training_batches(trainer: Any) -> int:
    """The training batches run so far by ``trainer``'s fit loop, across its epochs and its
    fits, and restored with it from a checkpoint (``ckpt_path``); ``trainer.global_step`` where
    a Lightning version keeps no such count."""
    try:
        return int(trainer.fit_loop.epoch_loop.batch_progress.total.completed)
    except AttributeError:
        return int(trainer.global_step)


def _tuning(trainer: Any) -> bool:
    """Whether this fit is a run of Lightning's ``Tuner`` (``lr_find``, ``scale_batch_size``: a
    few training steps, never a validation, so a fit without a report is no mistake worth a
    warning). The Tuner marks the finder callback it adds with ``_early_exit``; the same
    callback passed by the user runs inside the real fit, which must still warn."""
    return any(getattr(callback, "_early_exit", False) is True
               for callback in getattr(trainer, "callbacks", ()))


def _other_thread_notice(others: list[Trial]) -> str:
    """The warning of a fit that finds no trial while ``others`` run in other threads."""
    numbers = ", ".join(str(trial.number) for trial in others[:5])
    return (f"HPOCallback: no trial is current in this thread, while trial(s) {numbers} run in "
            f"another thread of this process, so this fit reports nothing. A trial's context "
            f"does not reach a thread the objective starts: create the callback in the "
            f"objective itself, or pass the trial: HPOCallback(trial=hpo.current_trial()), "
            f"called in the objective")


def _missing_metric(key: str, trainer: Any, last: int | None) -> str:
    """Why ``key`` is not in ``trainer.callback_metrics`` at this validation end, and the fix.

    ``last`` is the trial's last reported step (None: the metric never appeared in the trial,
    so the message suggests the closest logged name, most likely what a typo meant).
    """
    names = list(trainer.callback_metrics)
    if last is not None:
        return (f"the monitored metric {key!r} was reported up to step {last} but was not "
                f"logged as a number by this validation end "
                f"({logged_names(key, names, suggest=False)}). Log it at every validation: "
                f"self.log({key!r}, value) in validation_step, on every path through it")
    return (f"the monitored metric {key!r} was not logged as a number by this validation end "
            f"({logged_names(key, names)}). Log it with self.log({key!r}, value) in "
            f"validation_step (on_epoch=False keeps it out of callback_metrics), or monitor "
            f"one of the logged names with monitor=... (a metric "
            f"that training_step logs with on_epoch=True cannot be monitored: it arrives only "
            f"after the validation)")


def _epoch_level_metric(key: str, hook: str, trainer: Any) -> str:
    """Why ``key``, an epoch-level training metric logged in ``hook``, cannot be monitored."""
    names = list(trainer.callback_metrics)
    return (f"the monitored metric {key!r} is logged in {hook} with on_epoch=True; Lightning "
            f"adds such a metric to callback_metrics only after the epoch's validation, so "
            f"when HPOCallback reports it is missing or still the previous epoch's value (at "
            f"this validation end, {logged_names(key, names, suggest=False)}). Monitor a "
            f"metric that validation_step logs, with monitor=... or the study's metric")


def _training_epoch_hook(trainer: Any, key: str) -> str | None:
    """The training hook (``training_step``, ``on_train_epoch_end``...) that logs ``key`` as an
    epoch-level value, or None.

    Lightning puts such a value in ``callback_metrics`` after the epoch's validation, so at a
    validation end it is missing (the first epoch) or the previous epoch's, one epoch late
    (``check_val_every_n_epoch=2``). Either way it cannot be reported, whether or not a stale
    value is there. A key that validation logs too is validation's, and current; a step-level
    value (``on_step=True``, or the unsuffixed name when both are on) is current as well.
    Lightning has no public view of what the loops log, so this reads their result
    collections (kept for the whole fit) and answers None wherever those private structures
    differ.
    """
    epoch_loop = getattr(trainer.fit_loop, "epoch_loop", None)
    results = getattr(epoch_loop, "_results", None)
    if results is None:
        return None
    try:
        validation = getattr(getattr(epoch_loop, "val_loop", None), "_results", None) or {}
        if any(key in (m.meta.name, m.meta.forked_name(on_step=True),
                       m.meta.forked_name(on_step=False)) for m in validation.values()):
            return None
        return next((str(m.meta.fx) for m in results.values()
                     if m.meta.on_epoch and key == m.meta.forked_name(on_step=False)), None)
    except (AttributeError, TypeError):  # another Lightning version: the general message stays
        return None


def _step_went_back(step: int, last: int) -> str:
    """Why a report at or below the trial's last step before this fit is refused, and the fix."""
    return (f"this fit reports step {step}, but the trial already has reports up to step "
            f"{last} (from an earlier fit in the same trial: a new Trainer counts epochs and "
            f"batches from 0 again). Give HPOCallback only to the fit you tune, or "
            f"continue the same Trainer (raise max_epochs and call fit again) instead of "
            f"starting a new one")


def _repeated_step(step: int, number: int) -> str:
    """The warning for a second report at the same epoch in one fit (its value replaces the
    first): epochs are the unit, but validation now runs more than once per epoch."""
    return (f"HPOCallback: trial {number} reports epoch {step} a second time (its value "
            f"replaces the first): this fit reports epochs, as validation ran once per epoch "
            f"at its first report, but it now runs more often (a training set that grew, "
            f"reload_dataloaders_every_n_epochs). Set val_check_interval as a fraction of the "
            f"epoch, or check_val_every_n_epoch=None, to report training batches instead")


def _nothing_reported(trainer: Any, number: int, checks: int, interval: int) -> str:
    """The warning for a fit that ended without one report: where it stopped, what to check."""
    where = (f"it stopped at global_step {trainer.global_step}; max_epochs={trainer.max_epochs}, "
             f"max_steps={trainer.max_steps}, {trainer.num_training_batches} training batches "
             f"per epoch")
    if checks == 0:
        return (f"HPOCallback: no validation ran during this fit of trial {number} ({where}), "
                f"so it reported nothing. Check max_epochs/max_steps, val_check_interval, "
                f"check_val_every_n_epoch and limit_val_batches")
    return (f"HPOCallback: only {checks} validation run(s) during this fit of trial {number} "
            f"({where}), fewer than interval={interval}, so it reported nothing. Lower "
            f"`interval` or validate more often")
