"""A study's sampler and pruner, recorded as descriptions and rebuilt from them on resume."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from hpo_plugins._ported import plugin_hint
from hpo_plugins.exceptions import (
    ConfigurationError,
)
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.samplers._base import Sampler, describe_object, is_description
from hpo_plugins.storages import (
    Storage,
)

__all__ = ["check_plugin", "inherit", "rebuild"]

#: The study module's logger: these functions were part of it, and users filter by name.
_logger = logging.getLogger("hpo_plugins.study")


def inherit(store: Storage, study_id: int, name: str, stored: Any, base: type,
            default: Any) -> Any:
    """The sampler or pruner a resume keeps: rebuilt from the study's record when the rebuild
    is exact (same class and arguments); else ``default``, recorded and announced."""
    rebuilt = rebuild(stored, base)
    exact = isinstance(stored, Mapping) and stored.get("exact", True)  # older records: compare
    if rebuilt is not None and exact and _identity(describe_object(rebuilt)) == _identity(stored):
        return rebuilt
    key = "sampler" if base is Sampler else "pruner"
    what = stored.get("class") if isinstance(stored, Mapping) else stored
    _logger.warning("Study %r: its stored %s %s cannot be rebuilt exactly here (a class that "
                    "is not importable, or arguments it does not keep); this run uses %r and "
                    "records it. Pass %s= to choose.", name, key, what, default, key)
    store.set_study_attr(study_id, key, describe_object(default))
    return default


def _identity(description: Mapping[str, Any]) -> Any:
    """Class and arguments of a recorded sampler or pruner, as JSON reads them back."""
    return json.loads(json.dumps([description.get("class"), description.get("params")],
                                 default=repr))


def check_plugin(obj: object, base: type, name: str) -> None:
    """Refuse a ``sampler`` or ``pruner`` that is not an instance of ``base``, with what to
    pass instead (Hyperopt's ``tpe.suggest``, a class, an Optuna sampler)."""
    if not isinstance(obj, base):
        raise ConfigurationError(
            f"Expected `{name}` to be an instance of {base.__name__}. Received: {name}={obj!r} "
            f"(of type {type(obj).__name__}).{plugin_hint(obj, base)}"
        )


def rebuild(description: Any, base: type | tuple[type, ...]) -> Any:
    """Rebuild a sampler or pruner from ``describe_object`` output; None if impossible."""
    if not isinstance(description, Mapping) or "class" not in description:
        return None
    import importlib

    module_name, _, qualname = str(description["class"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            # a record names a class to call: never call anything but a sampler or pruner
            _logger.warning("The study record names %s, which is not a %s; using the default.",
                            description["class"], _base_names(base))
            return None
        params = dict(description.get("params") or {})
        for key, value in params.items():
            if is_description(value):  # a wrapped sampler or pruner
                params[key] = rebuild(value, (Sampler, Pruner))
                if params[key] is None:
                    return None
        obj = cls(**params)
    except Exception:  # a user class that is not importable here, or repr'd params
        _logger.warning("Could not rebuild %s from the study record; using the default.",
                        description["class"])
        return None
    return obj if isinstance(obj, base) else None


def _base_names(base: type | tuple[type, ...]) -> str:
    return " or ".join(b.__name__ for b in (base if isinstance(base, tuple) else (base,)))
