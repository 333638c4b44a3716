"""Argument checks of ``lightning_objective``, made before a trial runs where they can be.

A mistake in the objective's arguments (a misspelled Trainer argument, a space whose keys the
module does not take, a callback that is not one) would otherwise surface as a raw error inside
the first trial, or in every trial. Nothing here imports Lightning: a check that needs the
Trainer's signature runs when Lightning is already loaded (the user's module imports it), and
again in the trial with the Trainer that fits it.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hpo_plugins._callback_args import check_monitor
from hpo_plugins._numbers import is_integer
from hpo_plugins.exceptions import ConfigurationError

__all__ = ["LIGHTNING_ROOTS", "check_arguments", "check_data", "keyword_problem", "known_namespace",
           "module_class_namespace", "own_callbacks", "trainer_kwargs_problem"]

_NAMESPACES = ("lightning.pytorch", "pytorch_lightning")
#: Lightning's two top-level packages, and the namespace of each that holds the Trainer.
LIGHTNING_ROOTS = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}
_MAX_SEED = 2**32 - 1  # what seed_everything and NumPy accept


def check_arguments(module: object, *, datamodule: object, train_dataloaders: object,
                    monitor: object, trainer_kwargs: object, callbacks: object, result: object,
                    save_checkpoint: object, seed: object, resume_lost_trials: object) -> None:
    """Check every argument of ``lightning_objective`` that can be checked without Lightning.

    Raises:
        ConfigurationError: An argument has the wrong type or value; the message says which,
            what came in and how to fix it.
    """
    if not callable(module):
        raise ConfigurationError(
            f"Expected `module` to be a LightningModule class or a function params -> module. "
            f"Received: module={module!r} (of type {type(module).__name__}).")
    if isinstance(module, type) and module_class_namespace(module) is None:
        raise ConfigurationError(
            f"Expected `module` to be a LightningModule class (of lightning.pytorch or "
            f"pytorch_lightning) or a function params -> module. Received: the class "
            f"{module.__qualname__}, which is not a LightningModule. Subclass LightningModule, "
            f"or pass a function that builds one.")
    if not isinstance(module, type) and module_class_namespace(type(module)) is not None:
        name = type(module).__qualname__
        raise ConfigurationError(
            f"Expected `module` to be a LightningModule class or a function params -> module. "
            f"Received: an instance of {name}. Pass the class itself, module={name}: each "
            f"trial builds a fresh module from its params (a module trained by one trial must "
            f"not be the next one's start).")
    if datamodule is not None and train_dataloaders is not None:
        raise ConfigurationError(
            "Expected either `datamodule` or `train_dataloaders`, not both. Received both.")
    check_monitor(monitor)
    if trainer_kwargs is not None and not isinstance(trainer_kwargs, Mapping):
        raise ConfigurationError(
            f"Expected `trainer_kwargs` to be a dict of Trainer arguments. Received: "
            f"trainer_kwargs={trainer_kwargs!r}.")
    if result not in ("best", "last"):
        raise ConfigurationError(
            f'Expected `result` to be "best" or "last". Received: result={result!r}.')
    for name, flag in (("save_checkpoint", save_checkpoint),
                       ("resume_lost_trials", resume_lost_trials)):
        if not isinstance(flag, bool):
            raise ConfigurationError(
                f"Expected `{name}` to be True or False. Received: {name}={flag!r}.")
    if seed is not None and not (is_integer(seed) and 0 <= seed <= _MAX_SEED):
        raise ConfigurationError(
            f"Expected `seed` to be None or an integer from 0 to 2**32 - 1 (what "
            f"seed_everything accepts). Received: seed={seed!r}.")
    own_callbacks(callbacks, "callbacks")
    kwargs = dict(trainer_kwargs or {})
    if "callbacks" in kwargs:
        own_callbacks(kwargs["callbacks"], "trainer_kwargs['callbacks']")
    namespace = known_namespace(module)
    if namespace is not None:
        problem = trainer_kwargs_problem(sys.modules[namespace].Trainer, kwargs)
        if problem is not None:
            raise ConfigurationError(problem)


def own_callbacks(callbacks: object, name: str) -> list[Any]:
    """``callbacks`` as a list of Lightning callbacks: None, one callback, or a sequence of
    them (a list, a tuple, Hydra's ``ListConfig``: what ``Trainer(callbacks=...)`` takes).

    Raises:
        ConfigurationError: Something else, or an ``HPOCallback`` (the objective adds its own,
            and a second one would report every validation twice).
    """
    if callbacks is None:
        return []
    given = (list(callbacks) if isinstance(callbacks, Sequence)
             and not isinstance(callbacks, (str, bytes)) else [callbacks])
    for callback in given:
        if not _is_lightning_callback(callback):
            raise ConfigurationError(
                f"Expected `{name}` to be a Lightning callback or a list of them. Received: "
                f"{callback!r} (of type {type(callback).__name__}) in {name}={callbacks!r}. "
                f"Pass instances of lightning.pytorch.callbacks.Callback subclasses.")
        if _defined_in(type(callback), "HPOCallback", ("hpo_plugins",)):
            raise ConfigurationError(
                f"Expected no HPOCallback in `{name}`: lightning_objective adds its own to every "
                f"Trainer, and a second one would report each validation twice. Received: "
                f"{name}={callbacks!r}. Remove it (its monitor is lightning_objective's "
                f"`monitor=`).")
    return given


def check_data(module: object, datamodule: object, train_dataloaders: object) -> None:
    """Refuse a LightningModule class given no data it could train on (checked last: the
    other mistakes in the arguments are named first).

    Raises:
        ConfigurationError: No datamodule, no train_dataloaders, and the class defines no
            ``train_dataloader()`` (a factory's module cannot be seen before a trial).
    """
    if (datamodule is None and train_dataloaders is None and isinstance(module, type)
            and not _user_defines(module, "train_dataloader")):
        raise ConfigurationError(
            f"Expected training data: datamodule=..., or train_dataloaders=... (with "
            f"val_dataloaders=... for the monitored metric), or a module that defines "
            f"train_dataloader(). Received none, and {module.__qualname__} defines no "
            f"train_dataloader(), so every trial would fail in Trainer.fit.")


def _user_defines(cls: type, name: str) -> bool:
    """Whether ``cls`` overrides the LightningModule hook ``name`` (a user's class, or one of
    Lightning's demos such as ``LightningLSTM``, which define their own data)."""
    namespace = module_class_namespace(cls)
    if namespace is None or namespace not in sys.modules:
        return True  # cannot tell: let Lightning decide in the trial
    base = sys.modules[namespace].LightningModule
    return getattr(cls, name, None) is not getattr(base, name, None)


def module_class_namespace(cls: type) -> str | None:
    """``"lightning.pytorch"`` or ``"pytorch_lightning"`` for a LightningModule subclass, else
    None."""
    for base in cls.__mro__:
        root = base.__module__.split(".")[0]
        if base.__name__ == "LightningModule" and root in LIGHTNING_ROOTS:
            return LIGHTNING_ROOTS[root]
    return None


def known_namespace(module: object) -> str | None:
    """The Lightning namespace the trials will use, when it is known and already imported:
    the class's own, else the one the user's code loaded (a factory's module imports it).
    None when neither is loaded: nothing is imported just to check."""
    if isinstance(module, type):
        namespace = module_class_namespace(module)
        return namespace if namespace in sys.modules else None
    loaded = [namespace for namespace in _NAMESPACES if namespace in sys.modules]
    return loaded[0] if len(loaded) == 1 else None


def trainer_kwargs_problem(trainer: Callable[..., Any], kwargs: Mapping[str, Any]) -> str | None:
    """Why ``trainer(**kwargs)`` would refuse a keyword (a misspelled Trainer argument), with the
    closest argument, or None."""
    try:  # through the decorator of the Trainer's __init__, which passes everything on
        accepted = _keywords(inspect.signature(trainer))
    except (TypeError, ValueError):
        return None
    if accepted is None:
        return None
    unknown = sorted(key for key in kwargs if key not in accepted)
    if not unknown:
        return None
    hints = [_with_hint(key, accepted) for key in unknown]
    return (f"Expected `trainer_kwargs` to hold arguments of {trainer.__module__}."
            f"{trainer.__qualname__}. Received unknown {', '.join(hints)}. Fix the spelling, or "
            f"see the Trainer's documentation for its arguments.")


def keyword_problem(module: type, params: Any) -> str | None:
    """Why ``module(**params)`` would not take the trial's params, or None.

    The keys of a dict space are the module's keyword arguments (the ``hp`` labels inside only
    name the columns); a key the module does not take, or a required argument no key gives, is
    a mistake every trial would repeat.
    """
    name = module.__qualname__
    if not isinstance(params, Mapping):
        return (f"Expected the trial's params to be a dict of keyword arguments for {name}. "
                f"Received: {params!r}. Make the space a dict whose keys are {name}'s "
                f"arguments, or pass a factory params -> module instead of the class.")
    try:  # not what a decorator of __init__ wraps: it may supply some of its arguments
        signature = inspect.signature(module, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    accepted = _keywords(signature)
    unknown = sorted(str(k) for k in params if accepted is not None and k not in accepted)
    missing = sorted(p.name for p in signature.parameters.values()
                     if p.default is p.empty and p.name not in params
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    if not unknown and not missing:
        return None
    what = []
    if unknown:
        hints = ", ".join(_with_hint(k, accepted or set()) for k in unknown)
        what.append(f"keys {name} does not take: {hints}")
    if missing:
        what.append(f"no key for its required argument(s) {missing}")
    arguments = ", ".join(p.name for p in signature.parameters.values()
                          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return (f"Expected the keys of the space (the params dict) to be keyword arguments of "
            f"{name}({arguments}). Received params with keys {sorted(map(str, params))}: "
            f"{'; '.join(what)}. Make the keys of the space dict (not the hp labels inside) "
            f"the module's arguments, or pass a factory params -> module instead of the "
            f"class.")


def _keywords(signature: inspect.Signature) -> set[str] | None:
    """The keyword arguments a ``signature`` takes, or None when it takes any (``**kwargs``)."""
    parameters = signature.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _with_hint(key: str, accepted: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(accepted), n=1)
    return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)


def _is_lightning_callback(obj: object) -> bool:
    return _defined_in(type(obj), "Callback", tuple(LIGHTNING_ROOTS))


def _defined_in(cls: type, name: str, roots: Sequence[str]) -> bool:
    """Whether a class named ``name`` from a package in ``roots`` is in ``cls``'s MRO."""
    return any(base.__name__ == name and base.__module__.split(".")[0] in roots
               for base in cls.__mro__)
