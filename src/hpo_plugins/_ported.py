"""Arguments of code ported from Hyperopt, Optuna or Keras Tuner: errors that name our
equivalent.

A Hyperopt user's first call is often ``fmin``'s, renamed: ``minimize(fn, space, algo=tpe.suggest,
max_evals=100, rstate=np.random.default_rng(0))``. Python's own ``TypeError`` ("unexpected keyword
argument 'max_evals'") says what is wrong but not what to write instead, and a sampler given as
``tpe.suggest`` or as a class, or a seed given as a NumPy generator, would get a message that
only states the expected type. The functions here turn each such argument into a
:class:`~hpo_plugins.exceptions.ForeignArgumentError` that names the replacement (a
``ConfigurationError`` and, as Python's own error for such a call, a ``TypeError``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from hpo_plugins._text import short_repr
from hpo_plugins.exceptions import ForeignArgumentError

__all__ = ["FMIN_ARGUMENTS", "KERAS_TUNER_ARGUMENTS", "PRUNER_ARGUMENTS", "SAMPLER_ARGUMENTS",
           "STUDY_ATTRIBUTES", "TRIAL_ATTRIBUTES", "check_constructor_call", "foreign_attribute",
           "plugin_hint", "ported_arguments", "seed_hint"]

_F = TypeVar("_F", bound=Callable[..., Any])

_STOP_CALLBACK = ("a callback that calls study.stop(): callbacks=[lambda study, trial: "
                  "study.stop() if <condition> else None]")

#: ``hyperopt.fmin``'s arguments that ``minimize``/``maximize``/``optimize`` name otherwise.
FMIN_ARGUMENTS: Mapping[str, str] = {
    "max_evals": "n_trials={value} (the trials this call runs) or max_trials={value} (the "
                 "study's total across re-runs, as fmin's max_evals with a reused Trials "
                 "object)",
    "algo": "sampler=: tpe.suggest becomes sampler=hpo.samplers.HyperoptTPESampler() "
            "(Hyperopt's own TPE; the default TPESampler() is our own), rand.suggest "
            "RandomSampler(), anneal.suggest AnnealSampler()",
    "trials": "nothing: the study is the record (storage= and study_name= keep it; "
              "study.trials and study.trials_dataframe() read it; running the same call again "
              "resumes it)",
    "trials_save_file": "storage='sqlite:///file.db' (every trial is stored as it ends)",
    "rstate": "seed= an integer, e.g. seed=0 for np.random.default_rng(0)",
    "points_to_evaluate": "study.enqueue(point) for each point, on a study made with "
                          "hpo.create_study(...), then study.optimize(...); enqueue takes "
                          "natural values (convert fmin's index form with "
                          "hyperopt.space_eval(space, point))",
    "early_stop_fn": "callbacks=[hpo.stoppers.NoImprovementStop(20)] for "
                     "no_progress_loss(20), or " + _STOP_CALLBACK,
    "loss_threshold": "callbacks=[hpo.stoppers.ThresholdStop({value})]",
    "return_argmin": "nothing: the study is returned; study.best_params holds natural values "
                     "(what space_eval gives), study.best_trial.params the internal ones "
                     "(a choice's index, as return_argmin=True)",
    "show_progressbar": "show_progress_bar={value}",
    "max_queue_len": "n_jobs=N (parallel worker processes) or launcher=",
    "catch_eval_exceptions": "catch=(Exception,) (the exception types that fail a trial "
                             "without stopping the study)",
    "verbose": "the logging module: logging.getLogger('hpo_plugins').setLevel(logging.INFO)",
    "pass_expr_memo_ctrl": "nothing: not offered (the objective gets the natural values)",
    "allow_trials_fmin": "nothing: not needed",
}

#: Keras Tuner's tuner and ``search()`` arguments that ``keras_tune`` names otherwise (the
#: ``model.fit`` arguments that ``search()`` passes on go into ``fit_kwargs`` here).
KERAS_TUNER_ARGUMENTS: Mapping[str, str] = {
    "hypermodel": "the first argument, build_fn: a function params -> compiled model",
    "hyperparameters": "the second argument, space: hp.choice / hp.uniform ... of "
                       "hpo_plugins.hp, read in build_fn as params['units']",
    "directory": "storage='sqlite:///<directory>/hpo.db' (the trials) and logdir= (the "
                 "TensorBoard runs); each trial's files go to trial.log_dir",
    "project_name": "study_name=",
    "overwrite": "nothing: a study resumes by default (as overwrite=False); to start afresh, "
                 "hpo.delete_study(study_name, storage) first or give a new study_name",
    "max_consecutive_failed_trials": "study_callbacks=[hpo.stoppers.FailureStop({value})] "
                                     "with catch=(Exception,) (a trial's error is raised at "
                                     "once without catch=)",
    "max_retries_per_trial": "nothing for a trial that raised (it is recorded FAIL; "
                             "catch=(Exception,) goes on with the next); max_retries=N runs "
                             "again a trial whose worker process died",
    "executions_per_trial": "nothing: one fit per trial; to average several, write the "
                            "objective yourself (hpo.minimize) and return the mean",
    "tune_new_entries": "nothing: the space declares every parameter",
    "allow_new_entries": "nothing: the space declares every parameter",
    "num_initial_points": "sampler=hpo.samplers.TPESampler(n_startup_trials={value})",
    "max_epochs": "epochs={value}, with pruner=hpo.pruners.HyperbandPruner(max_resource="
                  "{value}) for Keras Tuner's Hyperband",
    "factor": "pruner=hpo.pruners.HyperbandPruner(reduction_factor={value})",
    "hyperband_iterations": "nothing: HyperbandPruner prunes asynchronously; set n_trials",
    "distribution_strategy": "a tf.distribute strategy made inside build_fn (one per trial); "
                             "n_jobs= or launcher= runs trials in parallel",
    "logger": "the logging module: logging.basicConfig(level=logging.INFO)",
    "oracle": "sampler= (hpo.samplers.TPESampler(), RandomSampler(), GridSampler()...): the "
              "sampler proposes the trials",
    "tuner_id": "nothing: workers need no id (n_jobs= or launcher= runs them; study_name= "
                "names the study)",
    "alpha": "nothing: the default TPESampler has no Gaussian-process noise",
    "beta": "nothing: the default TPESampler has no exploration factor to set",
    **{name: f"model.compile({name}=...) in build_fn (it returns the compiled model)"
       for name in ("optimizer", "loss", "metrics")},
    "max_model_size": "nothing: not offered (raise hpo.TrialPruned() in build_fn for a model "
                      "too large)",
    **{name: f"fit_kwargs={{'{name}': {{value}}}} (model.fit's other arguments go there)"
       for name in ("verbose", "shuffle", "class_weight", "sample_weight", "initial_epoch",
                    "steps_per_epoch", "validation_steps", "validation_batch_size",
                    "validation_freq")},
}

#: Samplers' arguments named otherwise in Hyperopt's ``tpe.suggest`` (Optuna's ``seed=`` has
#: its own message: see :meth:`hpo_plugins.samplers.Sampler.__new__`).
SAMPLER_ARGUMENTS: Mapping[str, str] = {
    "n_startup_jobs": "n_startup_trials={value}",
    "n_EI_candidates": "n_ei_candidates={value}",
    "num_initial_points": "n_startup_trials={value} (Keras Tuner's BayesianOptimization)",
    "linear_forgetting": "nothing: not offered (Hyperopt's default, 25, is used)",
}

#: Pruners' arguments named otherwise in Keras Tuner's ``Hyperband`` tuner.
PRUNER_ARGUMENTS: Mapping[str, str] = {
    "max_epochs": "max_resource={value} (and keras_tune(epochs={value}))",
    "factor": "reduction_factor={value}",
    "hyperband_iterations": "nothing: the pruner is asynchronous; set the study's n_trials",
}

#: ``hyperopt`` algorithms (``module.suggest``) and the sampler that replaces each one.
_HYPEROPT_ALGOS = {
    "hyperopt.tpe": "hpo.samplers.HyperoptTPESampler() (Hyperopt's own TPE) or "
                    "hpo.samplers.TPESampler() (ours, the default)",
    "hyperopt.rand": "hpo.samplers.RandomSampler()",
    "hyperopt.anneal": "hpo.samplers.AnnealSampler()",
    "hyperopt.atpe": "hpo.samplers.TPESampler() (there is no adaptive TPE)",
    "hyperopt.mix": "hpo.samplers.TPESampler() (there is no mixture of algorithms)",
}


def ported_arguments(renamed: Mapping[str, str], *, positional: str | None = None,
                     whose: str = "Hyperopt's or Optuna's") -> Callable[[_F], _F]:
    """Decorate a function so that a call with another library's arguments fails clearly.

    ``renamed``: argument name -> what to write instead, for names the function does not take.
    ``positional``: what to say when the call passes more positional arguments than the
    function takes (``fmin(fn, space, algo, max_evals)`` renamed). ``whose``: the library the
    names come from, for the message. Any other mistake of the call raises Python's own
    ``TypeError``, as without the decorator.
    """
    def decorate(function: _F) -> _F:
        signature = inspect.signature(function)

        name = function.__qualname__.removesuffix(".__init__")

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            _refuse_foreign(name, signature, kwargs, renamed, whose)
            if positional is not None:
                try:
                    signature.bind(*args, **kwargs)
                except TypeError as exc:
                    if "positional argument" in str(exc):
                        raise ForeignArgumentError(
                            f"{name}() takes its first arguments by position and the "
                            f"others by keyword: {positional}. Received {len(args)} "
                            f"positional arguments ({exc}).") from None
            return function(*args, **kwargs)

        return cast(_F, checked)

    return decorate


def check_constructor_call(cls: type, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                           renamed: Mapping[str, str], whose: str = "Hyperopt's") -> None:
    """Refuse, with the fix, a sampler's or pruner's construction that uses another library's
    argument names (``renamed``, for names ``cls`` does not take) or passes by position what
    ``cls`` takes by keyword only (Optuna's ``MedianPruner(5, 3)``). Called by the base
    classes' ``__new__``, before ``__init__``; any other mistake is left to ``__init__``."""
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    parameters = signature.parameters
    _refuse_foreign(cls.__name__, signature, kwargs, renamed, whose)
    if not args:
        return
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        if "positional argument" not in str(exc):
            return
        shown = [p.name if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else f"{p.name}=..."
                 for p in list(parameters.values())[1:]
                 if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                               inspect.Parameter.KEYWORD_ONLY)]
        raise ForeignArgumentError(
            f"{cls.__name__}() takes its options by keyword: {cls.__name__}({', '.join(shown)})."
            f" Received {len(args)} positional argument(s): "
            f"{', '.join(short_repr(a) for a in args)}. Name each option (Optuna's positional "
            f"order may differ from these names' order).") from None


def _refuse_foreign(name: str, signature: inspect.Signature, kwargs: Mapping[str, Any],
                    renamed: Mapping[str, str], whose: str) -> None:
    """Raise the error that names our replacement for each argument of ``kwargs`` that
    ``renamed`` knows and ``signature`` does not take; nothing when there is none."""
    foreign = [k for k in kwargs if k in renamed and k not in signature.parameters]
    if not foreign:
        return
    names = ", ".join(f"`{k}`" for k in foreign)
    given = ", ".join(f"{k}={short_repr(kwargs[k])}" for k in foreign)
    fixes = "; ".join(f"`{k}` -> {renamed[k].replace('{value}', short_repr(kwargs[k]))}"
                      for k in foreign)
    raise ForeignArgumentError(f"{name}() does not take {names} ({whose} name). Received: "
                             f"{given}. Write instead: {fixes}.")


def plugin_hint(obj: object, base: type) -> str:
    """What to pass instead of ``obj`` where an instance of ``base`` (``Sampler``, ``Pruner``)
    was expected; "" when there is nothing better to say than the expected type."""
    if isinstance(obj, type) and issubclass(obj, base):
        return f" Pass an instance, not the class: {obj.__name__}()."
    if isinstance(obj, functools.partial):  # partial(tpe.suggest, n_startup_jobs=5)
        obj = obj.func
    module = getattr(obj, "__module__", None) or ""
    if callable(obj) and getattr(obj, "__name__", "") == "suggest" and module in _HYPEROPT_ALGOS:
        return (f" {module}.suggest is a Hyperopt algorithm; the sampler that replaces it is "
                f"{_HYPEROPT_ALGOS[module]}.")
    if type(obj).__module__.startswith("optuna."):
        package = base.__module__.rsplit(".", 1)[0]  # hpo_plugins.samplers, .pruners
        name = type(obj).__name__
        ours = (f"{package}.{name}(...)" if hasattr(importlib.import_module(package), name)
                else f"one of {package}")
        return (f" Optuna's samplers and pruners do not run here (they ask Optuna's trial "
                f"for each parameter); use {ours}. See docs/guide.md, 'Coming from Optuna'.")
    return ""




def seed_hint(seed: object) -> str:
    """What to pass instead of a ``seed`` that is a random generator (Hyperopt's ``rstate``)."""
    kind = type(seed)
    if kind.__module__.startswith("numpy.random") or kind.__name__ in {"Random", "Generator",
                                                                       "RandomState"}:
        return (" A random generator is not a seed: pass the integer you would have seeded it "
                "with (np.random.default_rng(0), Hyperopt's rstate, becomes seed=0).")
    return ""


#: Attributes of Optuna's ``Study`` and Hyperopt's ``Trials`` that ``Study`` names otherwise.
STUDY_ATTRIBUTES: Mapping[str, str] = {
    "enqueue_trial": "study.enqueue(params), with the natural values of one point (Optuna's "
                     "enqueue_trial)",
    "add_trials": "study.add_trial(params, value) for each finished trial (Optuna's add_trials)",
    "best_trials": "study.best_trial: a study has one objective, so one best trial (Optuna's "
                   "best_trials)",
    "directions": "study.direction: a study has one objective (Optuna's directions)",
    "metric_names": "study.metric, the name of the reported value, set by "
                    "create_study(metric=...) (Optuna's metric_names)",
    "set_metric_names": "create_study(metric='val_loss'): the name is part of the study "
                        "(Optuna's set_metric_names)",
    "losses": "[t.value for t in study.trials] (Hyperopt's Trials.losses())",
    "results": "study.trials: each FrozenTrial has state, value, params and user_attrs "
               "(Hyperopt's Trials.results)",
    "statuses": "[t.state for t in study.trials] (Hyperopt's Trials.statuses())",
    "argmin": "study.best_params (natural values), or study.best_trial.params (Hyperopt's "
              "Trials.argmin)",
    "vals": "[t.params for t in study.trials] (Hyperopt's Trials.vals)",
}

#: Optuna's ``Trial`` methods that a running ``Trial`` has no equivalent of, or names otherwise.
TRIAL_ATTRIBUTES: Mapping[str, str] = {
    **{f"suggest_{kind}": "a parameter of the search space: the objective receives its value "
                          "in params (Optuna's define-by-run suggest_* has no equivalent; "
                          "see docs/guide.md, 'Coming from Optuna')"
       for kind in ("float", "int", "categorical", "uniform", "loguniform",
                    "discrete_uniform")},
    "distributions": "trial.study.space, the search space every trial is drawn from "
                     "(Optuna's distributions)",
}


def foreign_attribute(owner: object, name: str, renamed: Mapping[str, str]) -> Any:
    """``owner.name`` for a name that plain lookup did not find (``__getattr__``): an
    ``AttributeError`` that names our equivalent when ``name`` is another library's, else
    Python's own error. A name the class defines (a property whose getter raised
    ``AttributeError``, which ``__getattr__`` would hide behind "no attribute") is looked up
    again, so that the getter's own error surfaces: that runs the getter twice, on a path
    that is a bug anyway. ``hasattr`` and ``getattr(obj, name, default)`` behave as always."""
    if name in renamed:
        raise AttributeError(f"{type(owner).__name__!r} object has no attribute {name!r}: use "
                             f"{renamed[name]}.", name=name, obj=owner)
    if any(name in vars(klass) for klass in type(owner).__mro__):
        return object.__getattribute__(owner, name)
    raise AttributeError(f"{type(owner).__name__!r} object has no attribute {name!r}",
                         name=name, obj=owner)
