"""The objective ``keras_tune`` runs per trial: build the model, fit it with reports and
pruning, keep the best epoch's weights, give Keras' memory back."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import keras

from hpo_plugins._callback_args import as_number, raise_recorded_stop
from hpo_plugins._frozen import CHECKPOINT_ATTR, Direction, FrozenTrial
from hpo_plugins._resume import warn_without_retries
from hpo_plugins._warn import warn_user
from hpo_plugins.context import current_trial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras._callback import HPOCallback
from hpo_plugins.keras._checks import (
    CallbackSpec,
    check_build_fn,
    check_callback_list,
    check_callbacks,
    check_model,
    check_validation_epochs,
    copy_callbacks,
    plain_int,
    validates,
)
from hpo_plugins.keras._memory import (
    KerasSettings,
    clear_session,
    forget_custom_gradients,
    release_memory,
)
from hpo_plugins.keras._resume import (
    RESUME_FAILED_ATTR,
    EpochBackup,
    discard_backups,
    resume_into,
)
from hpo_plugins.keras._shapes import BUILD_ATTR, build_record

if TYPE_CHECKING:
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial


__all__ = ["CHECKPOINT_FILE", "STOP_ATTR", "KerasObjective"]

#: The file, in ``trial.log_dir``, that holds those weights.
CHECKPOINT_FILE = "best.weights.h5"
#: The trial system attribute that holds the set-up error which stops the study (see
#: ``KerasObjective.after_trial``); stored, so the parent sees it when the trial ran in a worker.
STOP_ATTR = "keras_tune_stop"
#: The fixes for an objective that ``fit`` never logged, in ``keras_tune``'s terms (it adds its
#: own ``HPOCallback`` and follows ``validation_freq`` by itself).
_MISSING_OBJECTIVE_ADVICE = (
    "Pass validation data to keras_tune for a 'val_*' objective (validation_data= or "
    "validation_split=), compile the model in build_fn with the metric "
    "(model.compile(metrics=[...])), or set objective= to one of the logged names")


class KerasObjective:
    """The objective :func:`keras_tune` runs: build, fit, checkpoint, release; picklable.

    Attributes hold :func:`keras_tune`'s arguments of the same names; ``fit_kwargs`` holds every
    argument given to ``model.fit`` except the callbacks; ``keras_settings`` the process-wide
    Keras settings (dtype policy, ``floatx``...) made when it was created, made again before
    each model is built, so trials in worker processes use the calling process's set-up, as
    ``best_model()`` does. It keeps no state between trials: a
    set-up error found in a trial is stored on that trial (``STOP_ATTR``), so the study stops
    whether the trial ran here or in a worker process.

    Raises:
        ConfigurationError: ``build_fn`` cannot be called as ``build_fn(params)``, no epoch of
            ``fit`` validates although ``objective`` is a ``val_*`` metric, or ``callbacks`` is
            not a list of copyable callbacks or a factory.
    """

    def __init__(self, build_fn: Callable[[Any], Any], *, fit_kwargs: Mapping[str, Any],
                 objective: str, direction: Direction, callbacks: CallbackSpec = None,
                 seed: int | None = None, resume_lost_trials: bool = False) -> None:
        check_build_fn(build_fn)
        if not isinstance(resume_lost_trials, bool):
            raise ConfigurationError(
                f"Expected `resume_lost_trials` to be True or False. Received: "
                f"resume_lost_trials={resume_lost_trials!r}.")
        self.build_fn = build_fn
        self.fit_kwargs = dict(fit_kwargs)
        self.objective = objective
        self.direction = direction
        self.callbacks = check_callbacks(callbacks)
        self.seed = plain_int(seed)  # keras.utils.set_random_seed refuses NumPy integers
        self.resume_lost_trials = resume_lost_trials
        self.keras_settings = KerasSettings.capture()
        check_validation_epochs(self.fit_kwargs, objective)

    def __repr__(self) -> str:
        name = getattr(self.build_fn, "__qualname__", repr(self.build_fn))
        return f"KerasObjective({name}, objective={self.objective!r})"

    def __call__(self, params: Any) -> float | None:
        """Run one trial: build the model, fit it, return the best epoch's value.

        Raises:
            ConfigurationError: The objective metric is not logged by ``fit`` or is not a
                scalar (the trial is recorded FAIL first), or ``build_fn`` does not return a
                compiled model; the trial holds the message as ``STOP_ATTR``.
            NoActiveTrialError: Called outside a trial.
        """
        trial = current_trial()
        try:
            with forget_custom_gradients():
                history, problem = self._fit(trial, params)
        finally:
            release_memory()
            if self.resume_lost_trials:  # the trial ended (a lost one never gets here)
                discard_backups(trial)
        if problem is not None:
            raise self._stop(trial, problem)
        return self._value(trial, history)

    def after_trial(self, study: Study, frozen: FrozenTrial) -> None:
        """Study callback: stop the study after a set-up error even if ``catch`` caught it.

        Raises:
            ConfigurationError: ``frozen`` ended on a set-up error (its ``STOP_ATTR``).
        """
        raise_recorded_stop(frozen, STOP_ATTR)

    # -- one fit ------------------------------------------------------------------------------

    def _fit(self, trial: Trial, params: Any) -> tuple[dict[str, list[float]], str | None]:
        """Build and fit one model; its history, and why ``objective`` was unusable (or None)."""
        model = self._seeded_build(trial, params)
        path = os.path.join(trial.log_dir, CHECKPOINT_FILE)
        trial.set_user_attr(CHECKPOINT_ATTR, path)
        fit_kwargs, best, before = dict(self.fit_kwargs), None, []
        if self.resume_lost_trials:
            warn_without_retries(trial, "keras_tune")
        resumed = (resume_into(trial, model, best_file=path, mode=self._mode())
                   if self.resume_lost_trials and "retry_of" in trial.system_attrs else None)
        if resumed is not None:
            resume, best = resumed
            curve = trial.intermediate_values
            before = [curve[s] for s in sorted(curve) if not math.isnan(curve[s])]
            fit_kwargs["initial_epoch"] = resume.step + 1
        elif RESUME_FAILED_ATTR in trial.system_attrs:  # the model may hold part of the backup
            release_memory()
            model = self._seeded_build(trial, params)
        reporter = _Reporter(self.objective, trial=trial,
                             validation_freq=self.fit_kwargs.get("validation_freq", 1))
        checkpoint = _BestCheckpoint(path, monitor=self.objective, mode=self._mode(),
                                     save_best_only=True, save_weights_only=True, verbose=0,
                                     initial_value_threshold=best)
        own_board, users = _tensorboard(trial), self._user_callbacks(trial)
        if own_board:
            _warn_second_board(own_board[0].log_dir, users)
        callbacks = [reporter, checkpoint, *own_board, *users]
        if self.resume_lost_trials:  # last: it saves what the others have done in the epoch
            callbacks.append(EpochBackup(trial.log_dir, checkpoint))
        built = model.built  # by build_fn (keras.Input), else by fit's first batch
        history = dict(model.fit(**fit_kwargs, callbacks=callbacks).history)
        if not built and model.built:  # best_model() builds it the same way
            record = build_record(model)
            if record is not None:
                trial.set_system_attr(BUILD_ATTR, record)
        if before:  # the lost trial's epochs count toward the best value
            history[self.objective] = [*before, *history.get(self.objective, [])]
        return history, reporter.problem

    def _seeded_build(self, trial: Trial, params: Any) -> Any:
        """:meth:`_build` in a fresh Keras session with the caller's Keras settings, after
        seeding Keras with ``seed``, else the study's (a retry keeps it), so that every trial
        starts from the same set-up and random state.

        The session is cleared first (as Keras Tuner does) and not only after each trial:
        Keras numbers the default name of a metric object made while another of that name
        exists (``auc``, then ``auc_1``), so a model built before the study (a check of
        ``build_fn``, ``best_model()`` of an earlier run) would make the first trial log
        ``val_auc_1`` and miss ``objective="val_auc"``.
        """
        clear_session(collect=False)  # release_memory collected after the previous trial
        self.keras_settings.apply()  # in a worker process they are Keras' defaults until now
        seed = self.seed if self.seed is not None else trial.study.seed
        if seed is not None:
            keras.utils.set_random_seed(seed)
        return self._build(trial, params)

    def _build(self, trial: Trial, params: Any) -> Any:
        """``build_fn(params)``, checked; a mistake in ``build_fn`` stops the study.

        Raises:
            ConfigurationError: ``build_fn`` used its params as an object (Keras Tuner's
                ``hp.Int(...)``), or did not return a compiled model.
        """
        try:
            model = self.build_fn(params)
        except AttributeError as exc:
            if getattr(exc, "obj", None) is not params:  # a fault elsewhere in build_fn
                raise
            raise self._stop(trial, (
                f"build_fn(params) failed with AttributeError: {exc}. build_fn receives the "
                f"trial's natural params, plain values such as {{'units': 64, 'lr': 0.001}}, "
                f"not a keras_tuner HyperParameters object: read params['units'], and declare "
                f"the ranges in the space with hpo_plugins.hp (hp.choice('units', [32, 64]), "
                f"hp.loguniform(...))")) from exc
        try:
            return check_model(model)
        except ConfigurationError as exc:
            raise self._stop(trial, str(exc)) from exc

    def _user_callbacks(self, trial: Trial) -> list[keras.callbacks.Callback]:
        """This trial's own callbacks: made by the factory, or deep copies of the list."""
        if callable(self.callbacks):
            made = self.callbacks(trial)
            try:  # a factory that returns the wrong thing is wrong for every trial
                return check_callback_list(made, "the callbacks factory returned")
            except ConfigurationError as exc:
                raise self._stop(trial, str(exc)) from exc
        return copy_callbacks(self.callbacks or [])

    def _mode(self) -> str:
        return "min" if self.direction is Direction.MINIMIZE else "max"

    def _stop(self, trial: Trial, reason: str) -> ConfigurationError:
        """The error that stops the study; stored on ``trial`` for :meth:`after_trial`."""
        message = (f"keras_tune(objective={self.objective!r}): {reason.rstrip('.')}. The study "
                   f"was stopped after the first such trial (even with catch=), since this is "
                   f"a mistake in the code or the settings, not a bad configuration to skip.")
        trial.set_system_attr(STOP_ATTR, message)
        return ConfigurationError(message)

    # -- the trial's value --------------------------------------------------------------------

    def _value(self, trial: Trial, history: Mapping[str, list[float]]) -> float | None:
        """The best epoch's objective (the weights the checkpoint kept); None: the loop decides."""
        if trial.fail_reason is not None or trial.pruned:
            return None  # the run loop records FAIL or PRUNED whatever is returned
        values = [float(v) for v in history.get(self.objective, [])]
        if not values:
            trial.mark_failed(self._no_value_reason())
            return None  # the run loop records FAIL with that reason
        return min(values) if self.direction is Direction.MINIMIZE else max(values)

    def _no_value_reason(self) -> str:
        """Why a fit that ended normally left no value of ``objective``."""
        kwargs = self.fit_kwargs
        return (f"keras_tune(objective={self.objective!r}): fit ended without logging "
                f"{self.objective!r} at any epoch (epochs={kwargs.get('epochs')}, "
                f"initial_epoch={kwargs.get('initial_epoch', 0)}, "
                f"validation_freq={kwargs.get('validation_freq', 1)!r}). Keras validates only "
                f"after the epochs whose number counted from 1 is a multiple of "
                f"validation_freq (or is in its list); a callback that stopped the training "
                f"before the first of them leaves the trial without a value")


class _Reporter(HPOCallback):
    """``keras_tune``'s HPOCallback: reports whenever the objective is logged, and records (not
    warns) an unusable objective.

    It reports at every epoch whose logs hold the objective, so a training metric (``"loss"``)
    is reported every epoch whatever ``validation_freq`` says. The objective counts as missing
    only at an epoch where Keras validated (its ``validation_freq`` rule, see
    :func:`validates`), since a ``val_*`` metric is absent from the other epochs by design.
    """

    _check_direction = False  # resolve_direction checked (or warned about) it once
    _missing_metric_advice = _MISSING_OBJECTIVE_ADVICE

    def __init__(self, objective: str, *, trial: Trial, validation_freq: Any) -> None:
        super().__init__(objective, trial=trial)
        self.validation_freq = validation_freq
        self.problem: str | None = None  # why the objective could not be reported

    def _due(self, epoch: int, logs: Mapping[str, Any]) -> bool:
        return self.monitor in logs or validates(epoch, self.validation_freq)

    def _unusable_metric(self, trial: Trial, reason: str) -> None:
        self.problem = reason
        trial.mark_failed(reason)

    def _nothing_reported(self, trial: Trial) -> None:
        pass  # KerasObjective fails such a trial with its own reason (_no_value_reason)


class _BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` that skips epochs without its metric as a scalar (the reporter fails
    the trial then).

    Keras' own would warn and save anyway, which hides the real error behind a second one.
    ``saves`` counts the epochs it wrote its file (``EpochBackup`` reads it).
    """

    saves = 0

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if logs is not None and as_number(logs.get(self.monitor)) is not None:
            best = self.best
            super().on_epoch_end(epoch, logs)
            self.saves += self.best != best  # save_best_only: a new best is a new file


def _warn_second_board(run: str, callbacks: Sequence[Any]) -> None:
    """Warn about a user's ``TensorBoard`` callback that writes into the trial's run, where
    ``keras_tune`` already writes one: two writers of the same run double or garble its
    curves."""
    ours = os.path.realpath(run)
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.TensorBoard):
            continue
        theirs = os.path.realpath(os.fspath(callback.log_dir))
        if theirs == ours or theirs.startswith(ours + os.sep):
            warn_user("keras_tune: a TensorBoard callback in `callbacks` writes into the trial's "
                      "own TensorBoard run, where keras_tune already writes the trial's curves "
                      "(the study has a logdir): the run would hold each curve twice. Leave "
                      "that callback out, or give it a log_dir outside the study's logdir.")
            return


def _tensorboard(trial: Trial) -> list[keras.callbacks.Callback]:
    """Keras' own TensorBoard callback in the trial's run, when the study has a ``logdir``.

    Its curves then sit in the same TensorBoard run as the trial's HParams session.
    """
    from hpo_plugins.tensorboard import run_dir

    directory = run_dir(trial)
    if directory is None:
        return []
    return [keras.callbacks.TensorBoard(log_dir=directory, write_graph=False,
                                        profile_batch=0)]
