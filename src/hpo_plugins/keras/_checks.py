"""``keras_tune``'s checks of its arguments, made before any study exists: the data and
``fit`` arguments, the space's Keras objects, ``build_fn``, the callbacks."""

from __future__ import annotations

import copy
import inspect
import numbers
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import keras

from hpo_plugins._numbers import is_integer
from hpo_plugins._signature import one_argument_problem, two_argument_problem
from hpo_plugins._text import short_repr
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras._callback import HPOCallback

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial


__all__ = ["CallbackList", "CallbackSpec", "check_build_fn", "check_callback_list",
           "check_callbacks", "check_model", "check_picklable_data", "check_space_objects",
           "check_validation_epochs", "copy_callbacks", "fit_arguments", "plain_int",
           "ships_objective", "validates"]
#: ``model.fit`` arguments that are ``keras_tune`` arguments, so not accepted in ``fit_kwargs``.
_OWN_FIT_ARGUMENTS = ("x", "y", "batch_size", "epochs", "validation_data", "validation_split",
                      "callbacks")

CallbackList = Sequence[keras.callbacks.Callback]
#: A list of callbacks (deep-copied for each trial) or a factory ``trial -> list``.
CallbackSpec = CallbackList | Callable[["Trial"], CallbackList] | None


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
    _refuse_hp_expressions({name: value for name, value in own.items()
                            if name not in ("x", "y", "validation_data")}, extra)
    if own["x"] is None:
        raise ConfigurationError(
            "Expected training data: pass x= (arrays, a tf.data.Dataset, a PyDataset...).")
    kwargs = {name: plain_int(value) for name, value in {"verbose": 0, **own, **extra}.items()}
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


def plain_int(value: Any) -> Any:
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


def _refuse_hp_expressions(own: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
    """Refuse an ``hp`` expression given as a ``fit`` argument (``batch_size=hp.choice(...)``,
    Keras Tuner's ``HyperModel.fit`` habit): ``fit`` would get the expression itself and fail
    every trial with a pyll error; arguments here are the same for every trial."""
    from hyperopt.pyll.base import Apply

    for where, name, value in [*(("", n, v) for n, v in own.items()),
                               *(("fit_kwargs", n, v) for n, v in extra.items())]:
        if isinstance(value, Apply):
            shown = f"fit_kwargs[{name!r}]" if where else f"`{name}`"
            raise ConfigurationError(
                f"Expected {shown} to be one value for every trial. Received an hp expression "
                f"({_label_of(value)}): keras_tune's fit arguments are not tuned. To tune "
                f"one (batch_size, shuffle, as Keras Tuner's HyperModel.fit does), put it in "
                f"the space and write the objective yourself with hpo.minimize and an "
                f"HPOCallback: see docs/keras.md, 'Tuning fit arguments'.")


def _label_of(expression: Any) -> str:
    """``label 'bs'`` for an ``hp`` expression (its first parameter's label), else its repr."""
    stack = [expression]
    while stack:
        node = stack.pop()
        if getattr(node, "name", None) == "hyperopt_param" and node.pos_args:
            return f"label {getattr(node.pos_args[0], 'obj', '?')!r}"
        stack.extend(reversed(getattr(node, "pos_args", [])))
    return short_repr(expression, 60)


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
            study_level = (type(item).__module__ == "hpo_plugins.stoppers"
                           or (callable(item) and two_argument_problem(item) is None))
            hint = (" It looks like a study callback fn(study, frozen_trial) (a stopper): "
                    "pass those as study_callbacks=[...]; callbacks= is for Keras callbacks."
                    if study_level else "")
            raise ConfigurationError(
                f"Expected keras.callbacks.Callback objects. Received ({origin}): {item!r} "
                f"(of type {type(item).__name__}).{hint}")
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
