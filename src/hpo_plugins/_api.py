"""``minimize`` and ``maximize``: create (or resume) a study and optimise it in one call."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hpo_plugins._frozen import FrozenTrial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.samplers._base import Sampler
from hpo_plugins.space import as_space
from hpo_plugins.study import Study, create_study

__all__ = ["maximize", "minimize"]

_logger = logging.getLogger(__name__)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # the part of default reprs that changes per run


def minimize(objective: Callable[..., Any], space: Any, *, n_trials: int | None = None,
             max_trials: int | None = None, timeout: float | None = None,
             study_name: str | None = None, storage: Any = None,
             sampler: Sampler | None = None, pruner: Pruner | None = None,
             seed: int | None = None,
             catch: Iterable[type[BaseException]] | type[BaseException] = (),
             callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
             show_progress_bar: bool | None = None, n_jobs: int = 1, launcher: Any = None,
             metric: str = "val_loss", logdir: str | None = None,
             heartbeat_interval: float | None = 30.0, grace_period: float | None = None,
             max_retries: int = 0) -> Study:
    """Minimise ``objective`` over ``space`` and return the study.

    The study is stored in ``storage`` (default: the SQLite file ``hpo.db``) under
    ``study_name``. Without a name, the name is derived from the objective's qualified name and
    the space, so running the same script again resumes the same study: with ``max_trials`` it
    completes the study instead of adding to it, and completed trials never run again.

    Example:
        >>> import hpo_plugins as hpo
        >>> study = hpo.minimize(lambda p: (p["x"] - 1) ** 2, {"x": hpo.hp.uniform("x", -3, 3)},
        ...                      n_trials=20, storage=":memory:", seed=0)
        >>> round(study.best_params["x"], 0)
        1.0

    See :meth:`Study.optimize` and :func:`create_study` for every argument.
    """
    return _optimize("minimize", **locals())


def maximize(objective: Callable[..., Any], space: Any, *, n_trials: int | None = None,
             max_trials: int | None = None, timeout: float | None = None,
             study_name: str | None = None, storage: Any = None,
             sampler: Sampler | None = None, pruner: Pruner | None = None,
             seed: int | None = None,
             catch: Iterable[type[BaseException]] | type[BaseException] = (),
             callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
             show_progress_bar: bool | None = None, n_jobs: int = 1, launcher: Any = None,
             metric: str = "val_loss", logdir: str | None = None,
             heartbeat_interval: float | None = 30.0, grace_period: float | None = None,
             max_retries: int = 0) -> Study:
    """Maximise ``objective`` over ``space``; the same arguments as :func:`minimize`."""
    return _optimize("maximize", **locals())


def _optimize(direction: str, *, objective: Callable[..., Any], space: Any,
              n_trials: int | None, max_trials: int | None, timeout: float | None,
              study_name: str | None, catch: Any, callbacks: Any,
              show_progress_bar: bool | None, n_jobs: int, launcher: Any,
              **study_kwargs: Any) -> Study:
    check_run_args(objective, n_jobs, launcher)  # before a study is created for nothing
    parsed = as_space(space)
    name = study_name or default_study_name(objective, parsed.fingerprint)
    study = create_study(parsed, study_name=name, direction=direction, **study_kwargs)
    if study_name is None:
        earlier = len(study.trials)
        _logger.log(logging.WARNING if earlier else logging.INFO,
                    "Study %r: a name derived from the objective and the space, %s. Pass "
                    "study_name= to choose one.", name,
                    f"resumed with its {earlier} earlier trials" if earlier else "new")
    return study.optimize(objective, n_trials, max_trials=max_trials, timeout=timeout,
                          catch=catch, callbacks=callbacks,
                          show_progress_bar=show_progress_bar, n_jobs=n_jobs, launcher=launcher)


def default_study_name(objective: Callable[..., Any], fingerprint: str) -> str:
    """``<objective name>-<hash>``: stable across runs of a script, distinct between scripts.

    The hash covers the objective's module, the name of the file that module was loaded from
    (so two scripts with different file names that each define ``objective`` get two studies;
    the name only, not the folder, so a moved checkout or another machine's mount point gives
    the same study, and ``a/train.py`` and ``b/train.py`` share one), its
    qualified name, for a lambda the line it starts on (two lambdas of one file differ), what
    it is bound to (see :func:`_bound_state`) and the space's fingerprint.

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
    where = os.path.basename(source)
    code = getattr(target, "__code__", None)
    if "<lambda>" in qualname and code is not None:
        where = f"{where}:{code.co_firstlineno}"
    key = f"{module}:{where}:{qualname}:{fingerprint}{_bound_state(objective)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    short = qualname.replace("<", "").replace(">", "").split(".")[-1]
    return f"{short}-{digest}"


def _bound_state(objective: Any) -> str:
    """What makes two objectives of one code differ: a ``functools.partial``'s arguments, a
    bound method's object, a callable object's attributes (e.g. a script objective's command).

    Empty for plain functions, so their names are what they always were. Memory addresses in
    reprs are dropped, so the text is the same in every run.
    """
    parts: list[str] = []
    while isinstance(objective, functools.partial):
        parts.append(repr((objective.args, sorted(objective.keywords.items()))))
        objective = objective.func
    owner = getattr(objective, "__self__", None)  # a bound method's object
    if owner is not None and not isinstance(owner, types.ModuleType):
        parts.append(_state_text(owner))
    elif not isinstance(objective, (types.FunctionType, types.BuiltinFunctionType)):
        parts.append(_state_text(objective))
    text = _ADDRESS.sub("", "".join(parts))
    return f":{text}" if text else ""


def _state_text(obj: Any) -> str:
    """An object's own ``repr`` when its class wrote one (it says what the object is), else
    its attributes."""
    if type(obj).__repr__ is not object.__repr__:
        return repr(obj)
    return repr(sorted(vars(obj).items())) if hasattr(obj, "__dict__") else ""


def check_run_args(objective: Any, n_jobs: Any, launcher: Any) -> None:
    """Refuse a non-callable objective and conflicting or malformed launcher arguments.

    Raises:
        ConfigurationError: With what was expected, what came in and the fix.
    """
    if not callable(objective):
        raise ConfigurationError(
            f"Expected `objective` to be a function fn(params) -> float. Received: "
            f"{objective!r} (of type {type(objective).__name__}).")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int):
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
