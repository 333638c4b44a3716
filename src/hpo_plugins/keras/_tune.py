"""``keras_tune``: a study over a ``build_fn`` that turns params into a compiled Keras model.

Each trial builds a fresh model, fits it with the user's data and an :class:`HPOCallback`
(reports and pruning), keeps its best weights with Keras' own ``ModelCheckpoint`` in the trial's
directory, and gives back Keras' memory before the next trial. The study itself is an ordinary
:func:`hpo_plugins.minimize` / :func:`hpo_plugins.maximize` run: every option of those passes
through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpo_plugins._api import check_run_args, default_study_name, optimize_study
from hpo_plugins._direction import resolve_direction
from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins._ported import KERAS_TUNER_ARGUMENTS, ported_arguments
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras._checks import (
    CallbackSpec,
    check_picklable_data,
    check_space_objects,
    fit_arguments,
    ships_objective,
)
from hpo_plugins.keras._objective import KerasObjective
from hpo_plugins.keras._result import KerasTuneResult

if TYPE_CHECKING:
    from hpo_plugins.launchers import Launcher
    from hpo_plugins.pruners import Pruner
    from hpo_plugins.samplers import Sampler
    from hpo_plugins.storages import Storage
    from hpo_plugins.study import Study

__all__ = ["KerasObjective", "KerasTuneResult", "fit_arguments", "keras_tune"]
#: What the resume warning says a derived study name is derived from (see ``_log_derived_name``
#: in ``hpo_plugins._api``).
_DERIVED_FROM = "build_fn, the space and the objective"


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
               study_name: str | None = None, storage: Storage | str | None = None,
               sampler: Sampler | None = None, pruner: Pruner | None = None,
               seed: int | None = None,
               catch: Iterable[type[BaseException]] | type[BaseException] = (),
               study_callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
               show_progress_bar: bool | None = None, n_jobs: int = 1,
               launcher: Launcher | None = None,
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
    study = optimize_study(
        resolved.value, objective=trainer, space=space, n_trials=n_trials,
        max_trials=max_trials, timeout=timeout, study_name=study_name,
        derive_name=lambda fingerprint: default_study_name(build_fn, f"{fingerprint}:{objective}"),
        derived_from=_DERIVED_FROM, storage=storage, sampler=sampler, pruner=pruner, seed=seed,
        catch=catch, callbacks=[*(study_callbacks or ()), trainer.after_trial],
        show_progress_bar=show_progress_bar, n_jobs=n_jobs, launcher=launcher,
        metric=objective, logdir=logdir, heartbeat_interval=heartbeat_interval,
        grace_period=grace_period, max_retries=max_retries)
    return KerasTuneResult(study, build_fn)
