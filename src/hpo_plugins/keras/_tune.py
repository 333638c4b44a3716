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
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras

from hpo_plugins._api import default_study_name, maximize, minimize
from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins.context import current_trial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras._callback import HPOCallback, missing_metric_reason
from hpo_plugins.keras._direction import resolve_direction
from hpo_plugins.keras._memory import forget_custom_gradients, release_memory
from hpo_plugins.space import as_space

if TYPE_CHECKING:
    from hpo_plugins.pruners import Pruner
    from hpo_plugins.samplers import Sampler
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial

__all__ = ["CHECKPOINT_ATTR", "KerasObjective", "KerasTuneResult", "keras_tune"]

_logger = logging.getLogger("hpo_plugins.keras")

#: The trial user attribute that holds the path of the trial's best weights.
CHECKPOINT_ATTR = "checkpoint"
#: The file, in ``trial.log_dir``, that holds those weights.
CHECKPOINT_FILE = "best.weights.h5"
#: ``model.fit`` arguments that are ``keras_tune`` arguments, so not accepted in ``fit_kwargs``.
_OWN_FIT_ARGUMENTS = ("x", "y", "batch_size", "epochs", "validation_data", "validation_split",
                      "callbacks")

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
        >>> model = result.best_model()  # the best trial's best weights, no retraining
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
        trial = self.best_trial
        path = trial.user_attrs.get(CHECKPOINT_ATTR)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise ConfigurationError(
                f"Expected the weights of trial {trial.number} at {path!r}, but no such file "
                f"exists. Run keras_tune where the trial directories are (logdir=), or retrain "
                f"with result.build_fn(result.best_params).")
        return path

    def best_model(self) -> Any:
        """Rebuild the best trial's model with ``build_fn`` and load its best weights.

        No training happens: the model gives the validation score of the best trial's best
        epoch. It is compiled as ``build_fn`` compiles it, with the optimiser's state of that
        epoch restored too, so training can go on from there.

        Raises:
            ConfigurationError: No trial completed, the weights file is missing, or
                ``build_fn`` returns a model whose weights do not exist yet.
        """
        path = self.best_checkpoint
        model = check_model(self.build_fn(self.study.natural_params(self.best_trial)))
        if not model.built:
            raise ConfigurationError(
                "Expected build_fn to return a built model (with its weights created) so that "
                "the best weights can be loaded. Start the model with keras.Input(shape=...), "
                "or call model.build(input_shape) in build_fn.")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so its saved state loads too
        model.load_weights(path)
        return model


class KerasObjective:
    """The objective :func:`keras_tune` runs: build, fit, checkpoint, release; picklable.

    Attributes hold :func:`keras_tune`'s arguments of the same names; ``fit_kwargs`` holds every
    argument given to ``model.fit`` except the callbacks.
    """

    def __init__(self, build_fn: Callable[[Any], Any], *, fit_kwargs: Mapping[str, Any],
                 objective: str, direction: Direction, callbacks: CallbackSpec = None,
                 seed: int | None = None) -> None:
        if not callable(build_fn):
            raise ConfigurationError(
                f"Expected `build_fn` to be a function params -> compiled keras.Model. "
                f"Received: build_fn={build_fn!r} (of type {type(build_fn).__name__}).")
        self.build_fn = build_fn
        self.fit_kwargs = dict(fit_kwargs)
        self.objective = objective
        self.direction = direction
        self.callbacks = check_callbacks(callbacks)
        self.seed = seed
        self.missing: str | None = None  # why the objective is never logged, once seen

    def __repr__(self) -> str:
        name = getattr(self.build_fn, "__qualname__", repr(self.build_fn))
        return f"KerasObjective({name}, objective={self.objective!r})"

    def __call__(self, params: Any) -> float | None:
        """Run one trial: build the model, fit it, return the best epoch's value.

        Raises:
            ConfigurationError: The objective metric is not logged by ``fit`` (the trial is
                recorded FAIL first), or ``build_fn`` does not return a compiled model.
            NoActiveTrialError: Called outside a trial.
        """
        trial = current_trial()
        try:
            with forget_custom_gradients():
                history = self._fit(trial, params)
        finally:
            release_memory()
        if self.missing is not None:
            raise ConfigurationError(self._missing_message())
        return self._value(trial, history)

    def after_trial(self, study: Study, frozen: FrozenTrial) -> None:
        """Study callback: stop the study after a missing metric even if ``catch`` caught it."""
        if self.missing is not None:
            raise ConfigurationError(self._missing_message())

    # -- one fit ------------------------------------------------------------------------------

    def _fit(self, trial: Trial, params: Any) -> dict[str, list[float]]:
        seed = self.seed if self.seed is not None else trial.study.seed  # a resume keeps it
        if seed is not None:
            keras.utils.set_random_seed(seed)
        model = check_model(self.build_fn(params))
        path = os.path.join(trial.log_dir, CHECKPOINT_FILE)
        trial.set_user_attr(CHECKPOINT_ATTR, path)
        reporter = _Reporter(self.objective, trial=trial, interval=self._interval())
        checkpoint = _BestCheckpoint(path, monitor=self.objective, mode=self._mode(),
                                     save_best_only=True, save_weights_only=True, verbose=0)
        callbacks = [reporter, checkpoint, *_tensorboard(trial), *self._user_callbacks(trial)]
        history = model.fit(**self.fit_kwargs, callbacks=callbacks)
        self.missing = reporter.missing
        return dict(history.history)

    def _user_callbacks(self, trial: Trial) -> list[keras.callbacks.Callback]:
        """This trial's own callbacks: made by the factory, or deep copies of the list."""
        if callable(self.callbacks):
            return check_callback_list(self.callbacks(trial), "the callbacks factory returned")
        return copy_callbacks(self.callbacks or [])

    def _interval(self) -> int:
        """Report at the epochs that validate (every ``validation_freq``-th, when an int)."""
        freq = self.fit_kwargs.get("validation_freq", 1)
        return freq if isinstance(freq, int) and not isinstance(freq, bool) and freq > 1 else 1

    def _mode(self) -> str:
        return "min" if self.direction is Direction.MINIMIZE else "max"

    # -- the trial's value --------------------------------------------------------------------

    def _value(self, trial: Trial, history: Mapping[str, list[float]]) -> float | None:
        """The best epoch's objective (the weights the checkpoint kept); None: the loop decides."""
        if trial.fail_reason is not None or trial.pruned:
            return None  # the run loop records FAIL or PRUNED whatever is returned
        values = [float(v) for v in history.get(self.objective, [])]
        if not values:
            return None  # the run loop uses the last reported value, or fails the trial
        return min(values) if self.direction is Direction.MINIMIZE else max(values)

    def _missing_message(self) -> str:
        return (f"keras_tune(objective={self.objective!r}): {self.missing}. The study was "
                f"stopped after the first such trial, since every trial would fail the same way.")


class _Reporter(HPOCallback):
    """``keras_tune``'s HPOCallback: a missing metric fails the trial and is kept, not warned."""

    missing: str | None = None

    def _missing_metric(self, trial: Trial, key: str, logged: list[str]) -> None:
        self.missing = missing_metric_reason(key, logged)
        trial.mark_failed(self.missing)


class _BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """``ModelCheckpoint`` that skips epochs without its metric (the reporter fails the trial).

    Keras' own would warn and save anyway, which hides the real error behind a second one.
    """

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if logs is not None and self.monitor in logs:
            super().on_epoch_end(epoch, logs)


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
               grace_period: float | None = None, max_retries: int = 0) -> KerasTuneResult:
    """Tune a Keras model: one ``build_fn(params)`` and one ``fit`` per trial, with pruning.

    For each trial, ``build_fn`` receives the nested natural params (a ``hp.choice`` gives the
    chosen option) and returns a compiled ``keras.Model``; ``model.fit`` runs with the data and
    fit arguments given here, an :class:`HPOCallback` that reports ``objective`` every epoch
    (step = epoch) and stops the fit when the pruner says so, a ``keras.callbacks.ModelCheckpoint``
    that keeps the best epoch's weights in ``<trial.log_dir>/best.weights.h5`` (recorded as the
    trial's user attribute ``"checkpoint"``), and the user's callbacks. The trial's value is the
    best epoch's ``objective`` (the weights the checkpoint kept). Between trials
    ``keras.backend.clear_session()`` and garbage collection give memory back.

    Args:
        build_fn: ``params -> compiled keras.Model``; called again by
            :meth:`KerasTuneResult.best_model`, so it must build the same architecture for the
            same params.
        space: A Hyperopt search space (nested dicts, lists and ``hp.choice`` allowed).
        x, y, validation_data, validation_split, epochs, batch_size: Passed to ``model.fit``
            as they are: NumPy arrays, ``tf.data`` datasets, ``keras.utils.PyDataset``...
        objective: The logged metric to optimise (``"val_loss"``, ``"val_accuracy"``...); the
            study's ``metric``.
        direction: ``"minimize"`` or ``"maximize"``; default: read from ``objective`` (a loss
            or error is minimised; accuracy, AUC, precision, recall are maximised).
        callbacks: More Keras callbacks for every trial: a list, deep-copied (``copy.deepcopy``)
            for each trial so no state (an ``EarlyStopping`` counter, say) leaks from one trial
            into the next; or a factory ``trial -> list`` for callbacks that cannot be copied
            or need the trial (a ``TensorBoard(trial.log_dir)``). Do not add an ``HPOCallback``:
            one is added for you.
        fit_kwargs: Every other ``model.fit`` argument (``class_weight``, ``sample_weight``,
            ``steps_per_epoch``, ``validation_freq``, ``shuffle``, ``verbose``...); ``verbose``
            defaults to 0. Checked against ``model.fit``'s signature before the first trial.
        n_trials, max_trials, timeout, study_name, storage, sampler, pruner, seed, catch,
        show_progress_bar, n_jobs, launcher, logdir, heartbeat_interval, grace_period,
        max_retries: As in :func:`hpo_plugins.minimize`. ``seed`` also seeds Keras
            (``keras.utils.set_random_seed``) before each model is built, so every trial starts
            from the same random state. Without ``study_name`` the name derives from
            ``build_fn``, the space and ``objective``, so running the script again resumes it.
        study_callbacks: :func:`hpo_plugins.minimize`'s ``callbacks``: called as
            ``callback(study, frozen_trial)`` after each trial.

    Returns:
        A :class:`KerasTuneResult`: ``best_params``, ``best_value``, ``best_model()``,
        ``study``.

    Raises:
        ConfigurationError: An argument is wrong (checked before the first trial); the
            direction contradicts ``objective``; or ``objective`` is never logged by ``fit``:
            raised after the first epoch of the first trial, which is recorded FAIL, naming
            the metrics that are logged.

    Example:
        >>> import hpo_plugins as hpo
        >>> result = keras_tune(build_fn, space, x=x_train, y=y_train,  # doctest: +SKIP
        ...                     validation_data=(x_val, y_val), epochs=30, batch_size=64,
        ...                     objective="val_accuracy", n_trials=40,
        ...                     pruner=hpo.pruners.HyperbandPruner())
        >>> model = result.best_model()  # doctest: +SKIP
    """
    resolved = resolve_direction(objective, direction)
    kwargs = fit_arguments(fit_kwargs, x=x, y=y, validation_data=validation_data,
                           validation_split=validation_split, epochs=epochs,
                           batch_size=batch_size)
    trainer = KerasObjective(build_fn, fit_kwargs=kwargs, objective=objective,
                             direction=resolved, callbacks=callbacks, seed=seed)
    name = study_name or default_study_name(build_fn, f"{as_space(space).fingerprint}:{objective}")
    run = maximize if resolved is Direction.MAXIMIZE else minimize
    study = run(trainer, space, n_trials=n_trials, max_trials=max_trials, timeout=timeout,
                study_name=name, storage=storage, sampler=sampler, pruner=pruner, seed=seed,
                catch=catch, callbacks=[*(study_callbacks or ()), trainer.after_trial],
                show_progress_bar=show_progress_bar, n_jobs=n_jobs, launcher=launcher,
                metric=objective, logdir=logdir, heartbeat_interval=heartbeat_interval,
                grace_period=grace_period, max_retries=max_retries)
    return KerasTuneResult(study, build_fn)


# -- checks -----------------------------------------------------------------------------------


def fit_arguments(fit_kwargs: Mapping[str, Any] | None, **own: Any) -> dict[str, Any]:
    """``model.fit``'s keyword arguments from keras_tune's own ones and ``fit_kwargs``.

    Raises:
        ConfigurationError: ``x`` is missing, ``epochs`` is not an integer >= 1, or
            ``fit_kwargs`` holds a name ``fit`` does not take or one keras_tune takes itself.
    """
    extra = dict(fit_kwargs or {})
    _check_fit_names(extra)
    if own["x"] is None:
        raise ConfigurationError(
            "Expected training data: pass x= (arrays, a tf.data.Dataset, a PyDataset...).")
    epochs = own["epochs"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigurationError(
            f"Expected `epochs` to be an integer >= 1. Received: epochs={epochs!r}.")
    return {"verbose": 0, **own, **extra}


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
    if callbacks is None or callable(callbacks):
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
