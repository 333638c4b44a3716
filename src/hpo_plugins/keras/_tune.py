"""``keras_tune``: a study over a ``build_fn`` that turns params into a compiled Keras model.

Each trial builds a fresh model, fits it with the user's data and an :class:`HPOCallback`
(reports and pruning), keeps its best weights with Keras' own ``ModelCheckpoint`` in the trial's
directory, and gives back Keras' memory before the next trial. The study itself is an ordinary
:func:`hpo_plugins.minimize` / :func:`hpo_plugins.maximize` run: every option of those passes
through.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras

from hpo_plugins._api import _optimize, check_run_args, default_study_name
from hpo_plugins._callback_args import as_number, raise_recorded_stop
from hpo_plugins._direction import resolve_direction
from hpo_plugins._frozen import CHECKPOINT_ATTR, Direction, FrozenTrial, TrialState
from hpo_plugins._numbers import is_integer
from hpo_plugins._ported import KERAS_TUNER_ARGUMENTS, ported_arguments
from hpo_plugins._resume import warn_without_retries
from hpo_plugins._signature import one_argument_problem
from hpo_plugins._warn import warn_user
from hpo_plugins.context import current_trial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras._callback import HPOCallback
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
from hpo_plugins.keras._shapes import BUILD_ATTR, build_record, rebuild
from hpo_plugins.storages._base import ranked_by_value

if TYPE_CHECKING:
    from hpo_plugins.pruners import Pruner
    from hpo_plugins.samplers import Sampler
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial

__all__ = ["CHECKPOINT_ATTR", "STOP_ATTR", "KerasObjective", "KerasTuneResult", "keras_tune"]

_logger = logging.getLogger("hpo_plugins.keras")

#: The file, in ``trial.log_dir``, that holds those weights.
CHECKPOINT_FILE = "best.weights.h5"
#: The trial system attribute that holds the set-up error which stops the study (see
#: ``KerasObjective.after_trial``); stored, so the parent sees it when the trial ran in a worker.
STOP_ATTR = "keras_tune_stop"
#: ``model.fit`` arguments that are ``keras_tune`` arguments, so not accepted in ``fit_kwargs``.
_OWN_FIT_ARGUMENTS = ("x", "y", "batch_size", "epochs", "validation_data", "validation_split",
                      "callbacks")
#: What the resume warning says a derived study name is derived from (see ``_log_derived_name``
#: in ``hpo_plugins._api``).
_DERIVED_FROM = "build_fn, the space and the objective"
#: The fixes for an objective that ``fit`` never logged, in ``keras_tune``'s terms (it adds its
#: own ``HPOCallback`` and follows ``validation_freq`` by itself).
_MISSING_OBJECTIVE_ADVICE = (
    "Pass validation data to keras_tune for a 'val_*' objective (validation_data= or "
    "validation_split=), compile the model in build_fn with the metric "
    "(model.compile(metrics=[...])), or set objective= to one of the logged names")

CallbackList = Sequence[keras.callbacks.Callback]
#: A list of callbacks (deep-copied for each trial) or a factory ``trial -> list``.
CallbackSpec = CallbackList | Callable[["Trial"], CallbackList] | None


@dataclass(frozen=True)
class KerasTuneResult:
    """What :func:`keras_tune` returns: the study and the way back to its best model.

    Attributes:
        study: The full study (trials, curves, storage, ``trials_dataframe()``).
        build_fn: The function that built each trial's model.

    Example:
        >>> result = keras_tune(build_fn, space, x=x, y=y, validation_split=0.2,
        ...                     n_trials=20)  # doctest: +SKIP
        >>> result.best_params, result.best_value  # doctest: +SKIP
        >>> model = result.best_model()  # best weights, no retraining  # doctest: +SKIP
        >>> runners_up = result.best_models(3)  # the three best, best first  # doctest: +SKIP
    """

    study: Study
    build_fn: Callable[[Any], Any]

    @property
    def best_trial(self) -> FrozenTrial:
        """The COMPLETE trial with the best value."""
        return self.study.best_trial

    @property
    def best_params(self) -> Any:
        """The best trial's nested natural params (what ``build_fn`` received)."""
        return self.study.best_params

    @property
    def best_value(self) -> float:
        """The best trial's value: the best epoch's ``objective``."""
        return self.study.best_value

    @property
    def best_checkpoint(self) -> str:
        """The path of the best trial's best weights (a ``.weights.h5`` file).

        Raises:
            ConfigurationError: The file is not there (moved, deleted, or another machine's).
        """
        return self.checkpoint_of(self.best_trial)

    def best_trials(self, n: int = 1) -> list[FrozenTrial]:
        """The ``n`` best COMPLETE trials, best first (fewer when fewer completed); Keras
        Tuner's ``get_best_trials``. Their ``params`` are in :meth:`Study.natural_params`.

        Raises:
            ConfigurationError: ``n`` is not an integer >= 1, or no trial completed.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ConfigurationError(
                f"Expected `n` to be an integer >= 1, the number of trials. Received: n={n!r}.")
        ranked = ranked_by_value(self.study.get_trials(TrialState.COMPLETE),
                                 self.study.direction)
        if not ranked:
            return [self.best_trial]  # raises, with the trials counted by state
        return ranked[:int(n)]

    def best_models(self, n: int = 1) -> list[Any]:
        """The models of :meth:`best_trials` ``(n)``, best first, each as :meth:`model_of`
        gives it; Keras Tuner's ``get_best_models``."""
        return [self.model_of(trial) for trial in self.best_trials(n)]

    def best_model(self) -> Any:
        """Rebuild the best trial's model with ``build_fn`` and load its best weights.

        No training happens: the model gives the validation score of the best trial's best
        epoch. It is compiled as ``build_fn`` compiles it, with the optimiser's state of that
        epoch restored too, so training can go on from there.

        Raises:
            ConfigurationError: No trial completed, or as :meth:`model_of`.
        """
        return self.model_of(self.best_trial)

    def checkpoint_of(self, trial: FrozenTrial) -> str:
        """The path of ``trial``'s best weights (a ``.weights.h5`` file): those of its best
        epoch (up to the one it was pruned at, for a PRUNED trial).

        Raises:
            ConfigurationError: ``trial`` is no trial of this study that saved weights, or the
                file is not there (moved, deleted, or another machine's).
        """
        if not isinstance(trial, FrozenTrial):
            raise ConfigurationError(
                f"Expected a trial of result.study (an item of result.study.trials or of "
                f"result.best_trials(n)). Received: {trial!r} (of type "
                f"{type(trial).__name__}).")
        path = trial.user_attrs.get(CHECKPOINT_ATTR)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise ConfigurationError(
                f"Expected the weights of trial {trial.number} at {path!r}, but no such file "
                f"exists (a trial that failed before its first validation saves none). Run "
                f"this where the trial directories are (logdir=), or retrain with "
                f"result.build_fn(result.study.natural_params(trial)).")
        return path

    def model_of(self, trial: FrozenTrial) -> Any:
        """Rebuild ``trial``'s model with ``build_fn`` and load its best weights (see
        :meth:`best_model`): a runner-up, or a PRUNED trial's model as it was when it stopped.

        Raises:
            ConfigurationError: As :meth:`checkpoint_of`, or ``build_fn`` returns a model whose
                weights do not exist yet and cannot be created from the input shapes the
                trial's ``fit`` saw (a model without ``keras.Input`` is built from them as
                ``fit`` built it).
        """
        path = self.checkpoint_of(trial)
        model = check_model(self.build_fn(self.study.natural_params(trial)))
        record = trial.system_attrs.get(BUILD_ATTR)
        if not model.built and isinstance(record, dict):  # fit built it at its first batch
            rebuild(model, record)
        if not model.built:
            raise ConfigurationError(
                "Expected build_fn to return a built model (with its weights created) so that "
                "the best weights can be loaded"
                + (f", or one that builds from the input shapes its trial recorded ({record})"
                   if isinstance(record, dict) else "")
                + ". Start the model with keras.Input(shape=...), or call "
                "model.build(input_shape) in build_fn.")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so its saved state loads too
        model.load_weights(path)
        return model


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
        self.seed = _plain_int(seed)  # keras.utils.set_random_seed refuses NumPy integers
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


@ported_arguments(KERAS_TUNER_ARGUMENTS, whose="Keras Tuner's", positional=(
    "keras_tune(build_fn, space, x=..., y=..., validation_data=..., epochs=..., "
    "objective='val_loss', n_trials=...), with the data by keyword as in Keras Tuner's "
    "tuner.search(x=..., y=...)"))
def keras_tune(build_fn: Callable[[Any], Any], space: Any, *, x: Any = None, y: Any = None,
               validation_data: Any = None, validation_split: float = 0.0, epochs: int = 10,
               batch_size: int | None = None, objective: str = "val_loss",
               direction: str | Direction | None = None, callbacks: CallbackSpec = None,
               fit_kwargs: Mapping[str, Any] | None = None, n_trials: int | None = None,
               max_trials: int | None = None, timeout: float | None = None,
               study_name: str | None = None, storage: Any = None,
               sampler: Sampler | None = None, pruner: Pruner | None = None,
               seed: int | None = None,
               catch: Iterable[type[BaseException]] | type[BaseException] = (),
               study_callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
               show_progress_bar: bool | None = None, n_jobs: int = 1, launcher: Any = None,
               logdir: str | None = None, heartbeat_interval: float | None = 30.0,
               grace_period: float | None = None, max_retries: int = 0,
               resume_lost_trials: bool = False) -> KerasTuneResult:
    """Tune a Keras model: one ``build_fn(params)`` and one ``fit`` per trial, with pruning.

    For each trial, ``build_fn`` receives the nested natural params (a ``hp.choice`` gives the
    chosen option) and returns a compiled ``keras.Model``; ``model.fit`` runs with the data and
    fit arguments given here, an :class:`HPOCallback` that reports ``objective`` at every epoch
    that logs it (step = epoch; with ``validation_freq`` the epochs Keras validates) and stops the
    fit when the pruner says so, a ``keras.callbacks.ModelCheckpoint`` that keeps the best epoch's
    weights in ``<trial.log_dir>/best.weights.h5`` (recorded as the trial's user attribute
    ``"checkpoint"``), Keras' ``TensorBoard`` callback when the study has a ``logdir``, and the
    user's callbacks. The trial's value is the best epoch's ``objective`` (the weights the
    checkpoint kept). Between trials ``keras.backend.clear_session()`` and garbage collection give
    memory back.

    Args:
        build_fn: ``params -> compiled keras.Model``, a function of one argument (the natural
            params: plain values, not a Keras Tuner ``HyperParameters``); called again by
            :meth:`KerasTuneResult.best_model`, so it must build the same architecture for the
            same params.
        space: A Hyperopt search space (nested dicts, lists and ``hp.choice`` allowed).
        x, y, validation_data, validation_split, epochs, batch_size: Passed to ``model.fit``
            as they are: NumPy arrays, ``tf.data`` datasets, ``keras.utils.PyDataset``...
            (integers, here and in ``fit_kwargs``, may be NumPy integers). Not an iterator (a
            generator): the first trial would use it up. Trials in worker processes
            (``n_jobs`` > 1, a ``JoblibLauncher`` or ``DaskLauncher``) receive the data
            pickled, which a ``tf.data`` dataset cannot be: pass NumPy arrays or a
            ``PyDataset`` there.
        objective: The logged metric to optimise (``"val_loss"``, ``"val_accuracy"``...); the
            study's ``metric``.
        direction: ``"minimize"`` or ``"maximize"``; default: read from ``objective`` (a loss
            or error is minimised; accuracy, AUC, precision, recall are maximised).
        callbacks: More Keras callbacks for every trial: a list, deep-copied (``copy.deepcopy``)
            for each trial so no state (an ``EarlyStopping`` counter, say) leaks from one trial
            into the next; or a factory ``trial -> list`` for callbacks that cannot be copied
            or need the trial (a ``CSVLogger(os.path.join(trial.log_dir, "epochs.csv"))``). Do
            not add an ``HPOCallback``: one is added for you; nor a ``TensorBoard`` when the study
            has a ``logdir``: one writing to the trial's run is added then.
        fit_kwargs: Every other ``model.fit`` argument (``class_weight``, ``sample_weight``,
            ``steps_per_epoch``, ``validation_freq``, ``shuffle``, ``verbose``...); ``verbose``
            defaults to 0. Checked against ``model.fit``'s signature before the first trial.
        n_trials, max_trials, timeout, study_name, storage, sampler, pruner, seed, catch,
        show_progress_bar, n_jobs, launcher, logdir, heartbeat_interval, grace_period,
        max_retries: As in :func:`hpo_plugins.minimize`. ``seed`` also seeds Keras
            (``keras.utils.set_random_seed``) before each model is built, so every trial starts
            from the same random state. Without ``study_name`` the name derives from
            ``build_fn``, the space and ``objective``, so running the script again resumes it
            (a WARNING says so, with the number of earlier trials: the data and the body of
            ``build_fn`` are not in the name). The Keras settings made when ``keras_tune`` is
            called (dtype policy, ``floatx``...) are made again in worker processes.
        study_callbacks: :func:`hpo_plugins.minimize`'s ``callbacks``: called as
            ``callback(study, frozen_trial)`` after each trial.
        resume_lost_trials: Keep each trial's weights and optimiser state in
            ``<trial.log_dir>/backup/epoch=<N>/`` (a new folder at the end of every epoch, the
            older one deleted; all deleted when the trial ends), so that a trial re-queued
            after its worker was lost (``max_retries`` >= 1) goes on from the lost trial's last
            finished epoch instead of training from scratch: its reports and its best-epoch
            weights are carried over, and ``trial.system_attrs["resumed_from"]`` says from
            which trial and step. The random state and the user's callbacks' state are not
            restored (see :mod:`hpo_plugins.keras._resume`). Costs one weights file write per
            epoch, and a copy of the best-epoch weights at each epoch that improves them.

    Returns:
        A :class:`KerasTuneResult`: ``best_params``, ``best_value``, ``best_model()``,
        ``study``.

    Raises:
        ConfigurationError: An argument is wrong (checked before the study is created:
            ``build_fn`` not a function of one argument, a ``fit_kwargs`` name ``fit`` does not
            take, no epoch that validates for a ``val_*`` objective, a ``tf.data`` dataset for
            worker processes...); ``direction="maximize"`` with
            Keras' own ``loss``/``val_loss`` (another name whose words say the opposite of
            ``direction`` only warns); or a trial meets a set-up error: ``objective`` not
            logged by ``fit`` (at the first epoch that validates) or not a scalar, or
            ``build_fn`` not returning a compiled model; a Keras optimizer, layer, model or
            metric object in the space (made once, it would be shared by every trial). That
            trial is recorded FAIL and the
            study stops there, also with ``catch=(Exception,)`` and with ``n_jobs`` > 1.

    Example:
        >>> import hpo_plugins as hpo
        >>> result = keras_tune(build_fn, space, x=x_train, y=y_train,  # doctest: +SKIP
        ...                     validation_data=(x_val, y_val), epochs=30, batch_size=64,
        ...                     objective="val_accuracy", n_trials=40,
        ...                     pruner=hpo.pruners.HyperbandPruner())
        >>> model = result.best_model()  # doctest: +SKIP
    """
    resolved = resolve_direction(objective, direction)
    if callable(study_callbacks) or isinstance(study_callbacks, (str, bytes)) or not (
            study_callbacks is None or isinstance(study_callbacks, Iterable)):
        raise ConfigurationError(
            f"Expected `study_callbacks` to be a list of functions callback(study, "
            f"frozen_trial), called after each trial. Received: "
            f"study_callbacks={study_callbacks!r}. Wrap a single one in a list.")
    check_space_objects(space)
    kwargs = fit_arguments(fit_kwargs, x=x, y=y, validation_data=validation_data,
                           validation_split=validation_split, epochs=epochs,
                           batch_size=batch_size)
    trainer = KerasObjective(build_fn, fit_kwargs=kwargs, objective=objective,
                             direction=resolved, callbacks=callbacks, seed=seed,
                             resume_lost_trials=resume_lost_trials)
    check_run_args(trainer, n_jobs, launcher)
    if ships_objective(n_jobs, launcher):
        check_picklable_data(kwargs, n_jobs=n_jobs, launcher=launcher)
    # hpo.minimize's own path with keras_tune's derived name, so that a resume under it warns
    study = _optimize(
        resolved.value, objective=trainer, space=space, n_trials=n_trials,
        max_trials=max_trials, timeout=timeout, study_name=study_name,
        derive_name=lambda fingerprint: default_study_name(build_fn, f"{fingerprint}:{objective}"),
        derived_from=_DERIVED_FROM, storage=storage, sampler=sampler, pruner=pruner, seed=seed,
        catch=catch, callbacks=[*(study_callbacks or ()), trainer.after_trial],
        show_progress_bar=show_progress_bar, n_jobs=n_jobs, launcher=launcher,
        metric=objective, logdir=logdir, heartbeat_interval=heartbeat_interval,
        grace_period=grace_period, max_retries=max_retries)
    return KerasTuneResult(study, build_fn)


# -- checks -----------------------------------------------------------------------------------


def fit_arguments(fit_kwargs: Mapping[str, Any] | None, **own: Any) -> dict[str, Any]:
    """``model.fit``'s keyword arguments from keras_tune's own ones and ``fit_kwargs``.

    NumPy integers become Python ints (Keras refuses a NumPy ``validation_freq``), so an
    ``epochs`` read from a NumPy array works as a literal one does.

    Raises:
        ConfigurationError: ``fit_kwargs`` is not a dict, ``x`` is missing, ``epochs`` is not an
            integer >= 1, ``fit_kwargs`` holds a name ``fit`` does not take or one
            keras_tune takes itself, or the data is an iterator that one trial would use up.
    """
    if fit_kwargs is not None and not isinstance(fit_kwargs, Mapping):
        raise ConfigurationError(
            f"Expected `fit_kwargs` to be a dict of model.fit arguments, e.g. "
            f"fit_kwargs={{'shuffle': False}}. Received: fit_kwargs={fit_kwargs!r} (of type "
            f"{type(fit_kwargs).__name__}).")
    extra = dict(fit_kwargs or {})
    _check_fit_names(extra)
    if own["x"] is None:
        raise ConfigurationError(
            "Expected training data: pass x= (arrays, a tf.data.Dataset, a PyDataset...).")
    kwargs = {name: _plain_int(value) for name, value in {"verbose": 0, **own, **extra}.items()}
    epochs = kwargs["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigurationError(
            f"Expected `epochs` to be an integer >= 1. Received: epochs={own['epochs']!r}.")
    _check_fit_values(kwargs)
    _check_rereadable_data(kwargs)
    return kwargs


def ships_objective(n_jobs: int, launcher: Any) -> bool:
    """Whether the trials run in other processes, which receive the objective pickled.

    That is ``n_jobs`` other than 1 (a ``JoblibLauncher``) or a ``JoblibLauncher`` or
    ``DaskLauncher``, which pickle it whatever their ``n_jobs``; another launcher may run
    trials in this process, so it is left to fail (or not) by itself.
    """
    from hpo_plugins.launchers import DaskLauncher, JoblibLauncher

    return n_jobs != 1 or isinstance(launcher, (JoblibLauncher, DaskLauncher))


def check_picklable_data(kwargs: Mapping[str, Any], *, n_jobs: int, launcher: Any) -> None:
    """Refuse, before the study is created, data that cannot be sent to worker processes.

    A ``tf.data.Dataset`` holds a TensorFlow graph resource and cannot be pickled; without this
    check the launcher would fail on it with a bare TensorFlow error, once an empty study
    exists.

    Raises:
        ConfigurationError: A ``model.fit`` argument is (or, for ``validation_data``, holds) one.
    """
    tensorflow = sys.modules.get("tensorflow")  # not imported: no Dataset can exist
    dataset = getattr(getattr(tensorflow, "data", None), "Dataset", None)
    if not isinstance(dataset, type):
        return
    where = f"launcher={launcher!r}" if launcher is not None else f"n_jobs={n_jobs}"
    for name, part, inside in _data_parts(kwargs):
        if isinstance(part, dataset):
            received = f"{name} holding" if inside else f"{name}="
            raise ConfigurationError(
                f"Expected `{name}` to be data that can be sent to the worker processes that "
                f"run the trials ({where}). Received: {received}a tf.data.Dataset "
                f"({type(part).__name__}), which cannot be pickled. Pass NumPy arrays (each "
                f"worker receives a copy) or a keras.utils.PyDataset, or run the trials in "
                f"this process (n_jobs=1, no launcher).")


def _data_parts(kwargs: Mapping[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """``(name, value, inside)`` for each ``fit`` argument, and for each item of a
    ``validation_data`` tuple (``inside`` True)."""
    for name, value in kwargs.items():
        inside = name == "validation_data" and isinstance(value, (tuple, list))
        for part in value if inside else (value,):
            yield name, part, inside


def _check_rereadable_data(kwargs: Mapping[str, Any]) -> None:
    """Refuse an iterator (a generator) as data: every trial fits on the same objects.

    The first trial would use up a finite one, and the next trial's ``fit`` would fail on an
    empty generator; an endless one would give each trial other batches, and other validation
    data, so that their values could not be compared.

    Raises:
        ConfigurationError: ``x``, ``y`` or ``validation_data`` is (or holds) an iterator.
    """
    for name, part, inside in _data_parts(kwargs):
        if name in ("x", "y", "validation_data") and isinstance(part, Iterator):
            received = f"{name} holding" if inside else f"{name}="
            raise ConfigurationError(
                f"Expected `{name}` to be data that every trial can read from its start "
                f"(NumPy arrays, a tf.data.Dataset, a keras.utils.PyDataset). Received: "
                f"{received}an iterator ({type(part).__name__}), which the first trial would "
                f"use up. Wrap the function that makes it: tf.data.Dataset.from_generator("
                f"make_batches, output_signature=...) calls it again for each trial; or "
                f"write a keras.utils.PyDataset.")


def _check_fit_values(kwargs: Mapping[str, Any]) -> None:
    """Refuse ``batch_size``, ``validation_split`` and ``validation_freq`` values that Keras
    would take without a word and then misuse (a split of 1.5, a batch of 0), or refuse with a
    bare error inside the first trial.

    Raises:
        ConfigurationError: One of them is out of range or of the wrong type.
    """
    batch_size = kwargs.get("batch_size")
    if batch_size is not None and not (is_integer(batch_size) and batch_size >= 1):
        raise ConfigurationError(
            f"Expected `batch_size` to be None or an integer >= 1. Received: "
            f"batch_size={batch_size!r}.")
    split = kwargs.get("validation_split", 0.0)
    if (isinstance(split, bool) or not isinstance(split, numbers.Real)
            or not 0.0 <= float(split) < 1.0):
        raise ConfigurationError(
            f"Expected `validation_split` to be a fraction from 0 (no split) up to, not "
            f"including, 1: the share of x held out for validation. Received: "
            f"validation_split={split!r}.")
    freq = kwargs.get("validation_freq", 1)
    positive = is_integer(freq) and freq >= 1
    listed = (isinstance(freq, list) and bool(freq)
              and all(is_integer(n) and n >= 1 for n in freq))
    if not (positive or listed):
        raise ConfigurationError(
            f"Expected `validation_freq` to be an integer >= 1 (validate every n epochs) or a "
            f"list of epochs counted from 1. Received: validation_freq={freq!r}.")


def _plain_int(value: Any) -> Any:
    """A NumPy (or other non-bool) integer as a Python int; anything else unchanged."""
    return int(value) if is_integer(value) and not isinstance(value, int) else value


def validates(epoch: int, validation_freq: Any) -> bool:
    """Whether ``fit`` validates at the end of 0-based ``epoch``: Keras' own rule.

    Keras (``Trainer._should_eval``) counts epochs from 1: it validates when ``epoch + 1`` is a
    multiple of an integer ``validation_freq``, or is in a list of them, from epoch 0 of the
    count whatever ``initial_epoch`` is. Another value is Keras' to refuse; here it validates.

    Example:
        >>> [e for e in range(1, 5) if validates(e, 2)], [e for e in range(4) if validates(e, [2])]
        ([1, 3], [1])
    """
    if is_integer(validation_freq) and validation_freq >= 1:
        return (epoch + 1) % int(validation_freq) == 0
    if isinstance(validation_freq, list):
        return epoch + 1 in validation_freq
    return True


def check_validation_epochs(fit_kwargs: Mapping[str, Any], objective: str) -> None:
    """Refuse a fit in which no epoch validates, when ``objective`` is a ``val_*`` metric.

    Otherwise every trial would end without a value (``epochs=1, validation_freq=2``).
    Types Keras refuses itself (a tuple ``validation_freq``, say) are left to Keras.

    Raises:
        ConfigurationError: No epoch from ``initial_epoch`` to ``epochs - 1`` validates.
    """
    freq = fit_kwargs.get("validation_freq", 1)
    first, epochs = fit_kwargs.get("initial_epoch", 0), fit_kwargs.get("epochs")
    if not objective.startswith("val_") or not (is_integer(first) and is_integer(epochs)):
        return
    if is_integer(freq) and freq >= 1:
        candidates = [-(-(first + 1) // freq) * freq]  # the first multiple of freq above first
    elif isinstance(freq, list):
        candidates = [n for n in freq if is_integer(n)]
    else:
        return
    if any(first < n <= epochs for n in candidates):
        return
    start = f", initial_epoch={first}" if first else ""
    later = [int(n) for n in candidates if n > first]
    fix = (f"Raise epochs to at least {min(later)}, or " if later else "") + (
        "lower validation_freq" if is_integer(freq) else
        f"list an epoch from {first + 1} to {epochs} in validation_freq")
    raise ConfigurationError(
        f"Expected at least one epoch that validates, so that objective={objective!r} is "
        f"logged. Received: epochs={epochs}{start}, validation_freq={freq!r}: Keras validates "
        f"after epoch n (counted from 1) only when n is a multiple of validation_freq (or is in "
        f"its list), and no epoch from {first + 1} to {epochs} is. {fix}.")


def _check_fit_names(extra: Mapping[str, Any]) -> None:
    own = [k for k in extra if k in _OWN_FIT_ARGUMENTS]
    if own:
        raise ConfigurationError(
            f"Expected {own} as keras_tune arguments, not in fit_kwargs. Received: "
            f"fit_kwargs={sorted(extra)}.")
    accepted = [p for p in inspect.signature(keras.Model.fit).parameters if p != "self"]
    unknown = sorted(k for k in extra if k not in accepted)
    if unknown:
        allowed = [p for p in accepted if p not in _OWN_FIT_ARGUMENTS]
        raise ConfigurationError(
            f"Expected fit_kwargs to hold arguments of model.fit ({', '.join(allowed)}). "
            f"Received unknown: {unknown}.")


#: Keras objects that hold state (variables, weights): one made once, in the space, would be
#: shared by the models of every trial.
_STATEFUL = {"optimizer": keras.optimizers.Optimizer, "layer or model": keras.layers.Layer,
             "metric": keras.metrics.Metric}


def check_space_objects(space: Any) -> None:
    """Refuse a Keras optimizer, layer, model or metric object in the space.

    The space is made once, so such an object is shared by every trial's model: an optimizer
    serves one model only (the next trial fails with Keras' "Unknown variable ... recreate a
    new optimizer instance"), and a layer or metric would carry its weights or totals from one
    trial into the next. The space should hold what makes the object (a name, a class, its
    settings); ``build_fn`` makes it. A space that hyperopt cannot read is left to the run's
    own check, which says what is wrong with it.

    Raises:
        ConfigurationError: Such an object is in the space.
    """
    from hyperopt.pyll import Literal, as_apply, dfs

    try:
        nodes = dfs(as_apply(space))
    except Exception:  # the space check of the run explains it
        return
    for node in nodes:
        obj = node.obj if isinstance(node, Literal) else None
        kind = next((name for name, cls in _STATEFUL.items() if isinstance(obj, cls)), None)
        if kind is None:
            continue
        name = type(obj).__name__
        raise ConfigurationError(
            f"keras_tune: the space holds a Keras {kind} object, {name} ({obj!r}). The space "
            f"is made once, so every trial would share that object: a Keras optimizer serves "
            f"one model only (the next trial fails), and a layer or metric carries its state "
            f"from trial to trial. Put what makes it in the space instead, such as "
            f"hp.choice('{kind.split()[0]}', ['{name.lower()}', ...]) or the class {name} "
            f"itself, and create the object in build_fn (e.g. "
            f"keras.optimizers.get(params['optimizer']) or {name}(...)).")


def check_build_fn(build_fn: Any) -> None:
    """Refuse a ``build_fn`` that cannot be called as ``build_fn(params)``.

    A wrong signature (no argument, or two required ones) would otherwise fail every trial
    with a bare ``TypeError``. (Keras Tuner's ``build(hp)`` has the right signature; its
    ``hp.Int(...)`` calls are caught when the first trial builds its model.) A callable whose
    signature Python cannot read (some built-ins) is accepted as it is.

    Raises:
        ConfigurationError: ``build_fn`` is not callable, or not with exactly one argument.
    """
    if not callable(build_fn):
        raise ConfigurationError(
            f"Expected `build_fn` to be a function params -> compiled keras.Model. "
            f"Received: build_fn={build_fn!r} (of type {type(build_fn).__name__}).")
    problem = one_argument_problem(build_fn)
    if problem is not None:
        raise ConfigurationError(
            f"Expected build_fn(params), a function of one argument: the trial's natural "
            f"params (plain values such as {{'units': 64}}). Received: build_fn={problem}, "
            f"which cannot be called with one argument. Define it as def build_fn(params): "
            f"... and read params['units'].")


def check_model(model: Any) -> Any:
    """``model`` if it is a compiled ``keras.Model``.

    Raises:
        ConfigurationError: It is not a ``keras.Model``, or it is not compiled.
    """
    if not isinstance(model, keras.Model):
        raise ConfigurationError(
            f"Expected build_fn to return a compiled keras.Model. Received: {model!r} (of type "
            f"{type(model).__name__}).")
    if not getattr(model, "compiled", True):
        raise ConfigurationError(
            "Expected build_fn to return a compiled keras.Model. Received a model that was "
            "not compiled: call model.compile(optimizer=..., loss=..., metrics=...) in "
            "build_fn.")
    return model


def check_callbacks(callbacks: CallbackSpec) -> CallbackSpec:
    """``callbacks`` if it is None, a factory, or a list of callbacks that can be deep-copied.

    Raises:
        ConfigurationError: Anything else, or a list that ``copy.deepcopy`` cannot copy.
    """
    if callbacks is None:
        return callbacks
    if callable(callbacks):
        problem = one_argument_problem(callbacks)
        if problem is not None:
            raise ConfigurationError(
                f"Expected `callbacks` to be a function of one argument, the trial (or a list "
                f"of callbacks). Received: callbacks={problem}, which cannot be called with "
                f"one argument. Define it as def make_callbacks(trial): return [...].")
        return callbacks
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise ConfigurationError(
            f"Expected `callbacks` to be a list of keras.callbacks.Callback or a function "
            f"trial -> list. Received: callbacks={callbacks!r} (of type "
            f"{type(callbacks).__name__}).")
    check_callback_list(callbacks, "callbacks=")
    copy_callbacks(callbacks)
    return list(callbacks)


def check_callback_list(callbacks: Any, origin: str) -> list[keras.callbacks.Callback]:
    """``callbacks`` as a list, if it holds only Keras callbacks and no ``HPOCallback``.

    Raises:
        ConfigurationError: It is not a list of callbacks, or it holds an ``HPOCallback``.
    """
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise ConfigurationError(
            f"Expected a list of keras.callbacks.Callback. Received ({origin}): {callbacks!r}.")
    for item in callbacks:
        if not isinstance(item, keras.callbacks.Callback):
            raise ConfigurationError(
                f"Expected keras.callbacks.Callback objects. Received ({origin}): {item!r} "
                f"(of type {type(item).__name__}).")
        if isinstance(item, HPOCallback):
            raise ConfigurationError(
                f"keras_tune adds its own HPOCallback (monitoring `objective`); remove "
                f"{item!r} from {origin}.")
    return list(callbacks)


def copy_callbacks(callbacks: CallbackList) -> list[keras.callbacks.Callback]:
    """Deep copies of ``callbacks``, one trial's worth.

    Raises:
        ConfigurationError: A callback cannot be deep-copied; the message says to use a factory.
    """
    try:
        return copy.deepcopy(list(callbacks))
    except Exception as exc:
        raise ConfigurationError(
            f"Expected callbacks that copy.deepcopy can copy (each trial gets its own copy). "
            f"Copying failed with {type(exc).__name__}: {exc}. Pass a factory instead: "
            f"callbacks=lambda trial: [MyCallback(...)].") from exc


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
