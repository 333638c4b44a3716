"""``minimize`` and ``maximize``: create (or resume) a study and optimise it in one call."""

from __future__ import annotations

import functools
import hashlib
import logging
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hpo_plugins._frozen import FrozenTrial
from hpo_plugins._optimize import launcher_for
from hpo_plugins._ported import FMIN_ARGUMENTS, ported_arguments
from hpo_plugins._process import refuse_in_importing_worker
from hpo_plugins._run_settings import RunSettings
from hpo_plugins._signature import one_argument_problem
from hpo_plugins._space_record import earlier_derived_name, earlier_fingerprints
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.launchers import Launcher
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.samplers._base import Sampler
from hpo_plugins.space import SearchSpace, as_space
from hpo_plugins.storages import Storage, get_storage
from hpo_plugins.study import Study, create_study

__all__ = ["check_run_args", "default_study_name", "maximize", "minimize", "optimize_study"]

_logger = logging.getLogger(__name__)


@ported_arguments(FMIN_ARGUMENTS, positional="minimize(objective, space, n_trials=..., "
                                                  "sampler=...)")
def minimize(objective: Callable[..., Any], space: Any, *, n_trials: int | None = None,
             max_trials: int | None = None, timeout: float | None = None,
             study_name: str | None = None, storage: Storage | str | None = None,
             sampler: Sampler | None = None, pruner: Pruner | None = None,
             seed: int | None = None,
             catch: Iterable[type[BaseException]] | type[BaseException] = (),
             callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
             show_progress_bar: bool | None = None, n_jobs: int = 1,
             launcher: Launcher | None = None,
             metric: str | None = None, logdir: str | None = None,
             heartbeat_interval: float | None = 30.0, grace_period: float | None = None,
             max_retries: int = 0) -> Study:
    """Minimise ``objective`` over ``space`` and return the study.

    The study is stored in ``storage`` (default: the SQLite file ``hpo.db``) under
    ``study_name``. Without a name, the name is derived from the objective (its qualified name,
    module and defining file's name, a lambda's line, the literal arguments of a
    ``functools.partial``, an ``hpo_study_key`` attribute; see docs/guide.md) and the space, so
    running the same script again resumes the same study: with ``max_trials`` it
    completes the study instead of adding to it, and completed trials never run again.

    With ``launcher=`` (or ``n_jobs`` other than 1: a ``JoblibLauncher``) the launcher checks
    the storage before the study is created (:meth:`~hpo_plugins.launchers.Launcher.check`), so
    a refused run stores no empty study.

    Example:
        >>> import hpo_plugins as hpo
        >>> study = hpo.minimize(lambda p: (p["x"] - 1) ** 2, {"x": hpo.hp.uniform("x", -3, 3)},
        ...                      n_trials=20, storage=":memory:", seed=0)
        >>> round(study.best_params["x"], 0)
        1.0

    See :meth:`Study.optimize` and :func:`create_study` for every argument.
    """
    return optimize_study("minimize", **locals())


@ported_arguments(FMIN_ARGUMENTS, positional="maximize(objective, space, n_trials=..., "
                                                  "sampler=...)")
def maximize(objective: Callable[..., Any], space: Any, *, n_trials: int | None = None,
             max_trials: int | None = None, timeout: float | None = None,
             study_name: str | None = None, storage: Storage | str | None = None,
             sampler: Sampler | None = None, pruner: Pruner | None = None,
             seed: int | None = None,
             catch: Iterable[type[BaseException]] | type[BaseException] = (),
             callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
             show_progress_bar: bool | None = None, n_jobs: int = 1,
             launcher: Launcher | None = None,
             metric: str | None = None, logdir: str | None = None,
             heartbeat_interval: float | None = 30.0, grace_period: float | None = None,
             max_retries: int = 0) -> Study:
    """Maximise ``objective`` over ``space``; the same arguments as :func:`minimize`."""
    return optimize_study("maximize", **locals())


def optimize_study(direction: str, *, objective: Callable[..., Any], space: Any,
                   n_trials: int | None, max_trials: int | None, timeout: float | None,
                   study_name: str | None, catch: Any, callbacks: Any,
                   show_progress_bar: bool | None, n_jobs: int, launcher: Any, storage: Any,
                   derive_name: Callable[[str], str] | None = None,
                   derived_from: str = "the objective and the space", **study_kwargs: Any) -> Study:
    """The body of :func:`minimize` and :func:`maximize`.

    ``derive_name`` and ``derived_from`` are for adapters that derive the study name from
    their own arguments (``keras_tune``: from ``build_fn``): the name used without
    ``study_name``, made from a space fingerprint, and what the logged message says it is
    derived from.
    """
    check_run_args(objective, n_jobs, launcher)  # before a study is created for nothing
    launcher = launcher_for(n_jobs, launcher)  # built here: it checks the storage first
    sampler = study_kwargs.get("sampler")
    # a study resumed without sampler= may hold a finite one (a grid): build() then decides
    settings = RunSettings.check(
        n_trials=n_trials, max_trials=max_trials, timeout=timeout, catch=catch,
        callbacks=callbacks, show_progress_bar=show_progress_bar,
        finite=sampler is None or bool(getattr(sampler, "finite", False)))
    parsed = as_space(space)
    derive = derive_name or functools.partial(default_study_name, objective)
    name = derive(parsed.fingerprint) if study_name is None else study_name  # "" is refused
    earlier = [] if study_name is not None else [derive(f) for f in earlier_fingerprints(parsed)]
    study = _create_checked(parsed, launcher, storage, study_name=name, earlier_names=earlier,
                            direction=direction, **study_kwargs)
    if study_name is None:
        _log_derived_name(study, derived_from)
    # the checked values: a one-shot iterable given as catch= or callbacks= is read once
    try:
        return study.optimize(objective, settings.n_trials, max_trials=settings.max_trials,
                              timeout=settings.timeout, catch=settings.catch,
                              callbacks=list(settings.callbacks),
                              show_progress_bar=settings.show_progress_bar, launcher=launcher)
    except BaseException:
        if study.storage is not storage:  # opened here from a URL: nobody else can close it
            study.storage.close()  # its pooled connections (a server's) would leak otherwise
        raise


def _log_derived_name(study: Study, derived_from: str) -> None:
    """Say that the study's name was derived from ``derived_from``: a WARNING when it resumed
    earlier trials, since a re-run after a change the name does not cover (the data, the body
    of the objective) would otherwise add to the old trials without a word; INFO when new."""
    earlier = len(study.trials)
    _logger.log(logging.WARNING if earlier else logging.INFO,
                "Study %r: a name derived from %s, %s. Pass study_name= to choose one.",
                study.study_name, derived_from,
                f"resumed with its {earlier} earlier trials" if earlier else "new")


def _create_checked(space: SearchSpace, launcher: Any, storage: Any, *,
                    earlier_names: Sequence[str] = (), **study_kwargs: Any) -> Study:
    """``create_study`` on a storage that ``launcher`` accepts, so a refused run stores nothing.

    The storage is resolved once (None: the default SQLite file) and that Storage object goes
    to ``launcher.check`` (when the launcher has one: any object with ``run`` is accepted) and
    then to ``create_study``, so a URL is not opened twice. A storage opened here is closed
    again when the check or the creation fails; a Storage passed in stays open.
    ``earlier_names``: what earlier versions derived for this space, one of which is resumed
    instead of the derived ``study_name`` (see :func:`earlier_derived_name`).
    """
    store = get_storage(storage)
    try:
        check = getattr(launcher, "check", None)
        if callable(check):
            check(store)
        if earlier_names:
            study_kwargs["study_name"] = earlier_derived_name(
                store, study_kwargs["study_name"], earlier_names, space)
        return create_study(space, storage=store, **study_kwargs)
    except BaseException:
        if store is not storage:
            store.close()
        raise


def default_study_name(objective: Callable[..., Any], fingerprint: str) -> str:
    """``<objective name>-<hash>``: stable across runs of a script, distinct between scripts.

    The hash covers the objective's module, the name of the file that module was loaded from
    (so two scripts with different file names that each define ``objective`` get two studies;
    the name only, not the folder, so a moved checkout or another machine's mount point gives
    the same study, and ``a/train.py`` and ``b/train.py`` share one), its
    qualified name, for a lambda the line it starts on (two lambdas of one file differ), what
    it is bound to where that is safe to read (see :func:`_bound_state`) and the space's
    fingerprint (:attr:`~hpo_plugins.space.SearchSpace.fingerprint`: its parameters and its
    constants, so editing a bound, a choice option's content or a value outside the ``hp``
    expressions starts a new study instead of mixing the old trials into the edited space).

    Example:
        >>> import functools
        >>> def objective(params, data=0):
        ...     return params["x"]
        >>> default_study_name(objective, "f00d").startswith("objective-")
        True
        >>> a = default_study_name(functools.partial(objective, data=1), "f00d")
        >>> b = default_study_name(functools.partial(objective, data=2), "f00d")
        >>> a.startswith("objective-") and a != b
        True
    """
    target = objective
    while isinstance(target, functools.partial):
        target = target.func
    qualname = getattr(target, "__qualname__", type(target).__qualname__)
    module = getattr(target, "__module__", "") or ""
    source = getattr(sys.modules.get(module), "__file__", None) or ""
    if not source and module == "__main__":  # a notebook's main has no file: name it instead
        from hpo_plugins._interactive import notebook_name

        source = notebook_name() or ""
    where = os.path.basename(source)
    code = getattr(target, "__code__", None)
    if "<lambda>" in qualname and code is not None:
        where = f"{where}:{code.co_firstlineno}"
    key = f"{module}:{where}:{qualname}:{fingerprint}{_bound_state(objective)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    short = qualname.replace("<", "").replace(">", "").split(".")[-1]
    return f"{short}-{digest}"


def _bound_state(objective: Any) -> str:
    """What tells two objectives of one code apart, when it is safe to read: each plain-literal
    argument of a ``functools.partial`` (numbers, strings, None, and lists, tuples and dicts
    of them; other arguments are left out), and an objective's own ``hpo_study_key`` (a str;
    ``ScriptObjective`` gives its command, ``lightning_objective`` its monitor and result).
    Empty otherwise, so plain functions, callable objects and bound methods keep the names
    they always had.

    Anything else an objective holds (a parsed argv with ``--n-trials``, a logger, a dataset,
    a temporary folder) may change from run to run without making it another experiment, and a
    name that moved with it would silently stop resuming: pass ``study_name=`` to tell such
    objectives apart.
    """
    parts: list[str] = []
    while isinstance(objective, functools.partial):  # each literal argument on its own
        bound = [*enumerate(objective.args), *sorted(objective.keywords.items())]
        parts.extend(repr(item) for item in bound if _is_literal(item[1]))
        objective = objective.func
    key = getattr(objective, "hpo_study_key", None)
    if isinstance(key, str):
        parts.append(key)
    return f":{''.join(parts)}" if parts else ""


def _is_literal(value: Any, budget: list[int] | None = None) -> bool:
    """Whether ``value`` is made of plain literals only (and small: at most 1,000 of them)."""
    budget = [1000] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v, budget) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v, budget) for k, v in value.items())
    return False


def check_run_args(objective: Any, n_jobs: Any, launcher: Any) -> None:
    """Refuse a non-callable objective and conflicting or malformed launcher arguments.

    Raises:
        ConfigurationError: With what was expected, what came in and the fix.
    """
    refuse_in_importing_worker("the run")
    if not callable(objective):
        raise ConfigurationError(
            f"Expected `objective` to be a function fn(params) -> float. Received: "
            f"{objective!r} (of type {type(objective).__name__}).")
    _check_objective_signature(objective)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise ConfigurationError(
            f"Expected `n_jobs` to be an int (1: this process; more: worker processes). "
            f"Received: n_jobs={n_jobs!r}.")
    if launcher is not None:
        if isinstance(launcher, type) or not callable(getattr(launcher, "run", None)):
            raise ConfigurationError(
                f"Expected `launcher` to be a launcher object such as JoblibLauncher(n_jobs=4) "
                f"(from hpo_plugins.launchers). Received: {launcher!r}.")
        if n_jobs != 1:
            raise ConfigurationError(
                f"Expected either `n_jobs` or `launcher`, not both: the launcher sets the "
                f"number of workers. Received: n_jobs={n_jobs} with launcher={launcher!r}; "
                f"pass the workers to the launcher, e.g. JoblibLauncher(n_jobs={n_jobs}).")


def _check_objective_signature(objective: Callable[..., Any]) -> None:
    """Refuse, before any trial, an objective that cannot be called with one argument (the
    params): one that needs two (``objective(params, data)``, a method of the wrong object) or
    none. An objective whose signature Python cannot read (some builtins) is let through.

    Raises:
        ConfigurationError: What the objective asks for, and how to bind the rest.
    """
    problem = one_argument_problem(objective)
    if problem is not None:
        raise ConfigurationError(
            f"Expected `objective` to be callable with one argument, the sampled params "
            f"(fn(params) -> float). Received: {problem}. Bind other arguments first, e.g. "
            f"functools.partial(objective, data=data), or read them from a closure.")
