"""A study's sampler and pruner, recorded as descriptions and rebuilt from them on resume."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from hpo_plugins._ported import plugin_hint
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import (
    ConfigurationError,
)
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.samplers._base import (
    Sampler,
    describe_object,
    inexact_reasons,
    is_description,
)
from hpo_plugins.storages import (
    Storage,
)

__all__ = ["check_plugin", "inherit", "rebuild", "warn_if_inexact"]

#: The study module's logger: these functions were part of it, and users filter by name.
_logger = logging.getLogger("hpo_plugins.study")


def inherit(store: Storage, study_id: int, name: str, stored: Any, base: type,
            default: Any) -> Any:
    """The sampler or pruner a resume keeps: rebuilt from the study's record when the rebuild
    is exact (same class and arguments); else ``default``, recorded and announced."""
    rebuilt, reason = _rebuild(stored, base)
    if rebuilt is not None and _identity(describe_object(rebuilt)) != _identity(stored):
        rebuilt, reason = None, "the rebuilt object records other arguments"
    reason = reason or "the study holds no record of it"
    if rebuilt is not None:
        return rebuilt
    key = "sampler" if base is Sampler else "pruner"
    what = stored.get("class") if isinstance(stored, Mapping) else stored
    _logger.warning("Study %r: its stored %s %s cannot be rebuilt here (%s); this run uses %r "
                    "and records it. Pass %s= to choose.", name, key, what, reason, default,
                    key)
    store.set_study_attr(study_id, key, describe_object(default))
    return default


def _identity(description: Mapping[str, Any]) -> Any:
    """Class and arguments of a recorded sampler or pruner, as JSON reads them back."""
    return json.loads(json.dumps([description.get("class"), description.get("params")],
                                 default=repr))


def check_plugin(obj: object, base: type, name: str) -> None:
    """Refuse a ``sampler`` or ``pruner`` that is not an instance of ``base``, with what to
    pass instead (Hyperopt's ``tpe.suggest``, a class, an Optuna sampler); warn about one of
    the user's own whose record would not rebuild it (see :func:`warn_if_inexact`)."""
    if not isinstance(obj, base):
        hint = plugin_hint(obj, base) or (
            f" Subclass {base.__module__.rsplit('.', 1)[0]}.{base.__name__} and implement "
            f"{_METHOD[base.__name__]}.")
        raise ConfigurationError(
            f"Expected `{name}` to be an instance of {base.__name__}. Received: {name}={obj!r} "
            f"(of type {type(obj).__name__}).{hint}"
        )
    warn_if_inexact(obj, name)


#: The method a subclass of each base implements, for the refusal of a duck-typed plugin.
_METHOD = {"Sampler": "sample(space, history, rng)", "Pruner": "prune(trial, others, direction)"}


def warn_if_inexact(obj: object, name: str) -> None:
    """Warn when a sampler or pruner of the user's own would not be rebuilt
    from its record: a resume would replace it by the default, and a child process that
    reports to the trial (script mode, ``HPO_PLUGINS_TRIAL``, ``ddp_spawn``) would not prune
    with it. Said at creation, where the author can still fix the class."""
    cls = type(obj)
    reasons = inexact_reasons(obj)  # the built-ins are exact, unless they wrap one that is not
    if reasons:
        warn_user(f"The {name} {cls.__qualname__} cannot be rebuilt from the study's record "
                  f"({'; '.join(reasons)}): a resumed study replaces it by the default, and "
                  f"a child process that reports to its trials runs without it. Keep each "
                  f"constructor argument as an attribute of the same name holding a JSON "
                  f"value (numbers, strings, lists, dicts), or give the class a get_params() "
                  f"that returns them.")


def rebuild(description: Any, base: type | tuple[type, ...],
            instead: str = "the default") -> Any:
    """Rebuild a sampler or pruner from ``describe_object`` output; None if impossible, after
    a warning that says why and what is used ``instead``."""
    obj, reason = _rebuild(description, base)
    if obj is None and reason is not None:
        _logger.warning("Could not rebuild %s from the study record (%s); using %s.",
                        description["class"], reason, instead)
    return obj


def _rebuild(description: Any, base: type | tuple[type, ...]) -> tuple[Any, str | None]:
    """``(object, None)``, or ``(None, why not)``; ``(None, None)`` when there is no record.

    A record marked inexact (``"exact": false``) is not called: its arguments hold reprs, and
    ``Class(**params)`` would build another object than the one recorded, or fail later.
    """
    if not isinstance(description, Mapping) or "class" not in description:
        return None, None
    if description.get("exact", True) is False:  # records older than the flag: try
        return None, ("its record is not exact: the class does not keep its constructor "
                      "arguments as JSON attributes of the same name")
    import importlib

    module_name, _, qualname = str(description["class"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except Exception as exc:  # a user class that is not importable here
        where = (" (a class defined in the launching script cannot be imported by another "
                 "process: define it in a module)" if module_name in ("__main__", "__mp_main__")
                 else "")
        return None, f"cannot import it: {type(exc).__name__}: {exc}{where}"
    if not (isinstance(cls, type) and issubclass(cls, base)):
        # a record names a class to call: never call anything but a sampler or pruner
        return None, f"it is not a {_base_names(base)}"
    params = dict(description.get("params") or {})
    for key, value in params.items():
        if is_description(value):  # a wrapped sampler or pruner
            params[key], reason = _rebuild(value, (Sampler, Pruner))
            if params[key] is None:
                return None, f"its {key} {value['class']}: {reason}"
    try:
        obj = cls(**params)
    except Exception as exc:
        return None, f"its constructor failed: {type(exc).__name__}: {exc}"
    if not isinstance(obj, base):
        return None, f"it did not build a {_base_names(base)}"
    return obj, None


def _base_names(base: type | tuple[type, ...]) -> str:
    return " or ".join(b.__name__ for b in (base if isinstance(base, tuple) else (base,)))
