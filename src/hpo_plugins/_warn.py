"""Warnings that point at the user's line, not at the framework code that called ours.

A ``UserWarning`` from ``HPOCallback`` reaches us through Lightning's or Keras' loops, so a
fixed ``stacklevel`` names a line inside Lightning (``.../trainer/call.py``), which tells the
user nothing. :func:`warn_user` walks out of this package's frames and then out of the frames
of the frameworks that call back into it (Lightning, torch, Keras, TensorFlow, joblib, Dask,
Hyperopt, and the standard library's threading and import machinery) and of ours that they
call in turn, by module name, and points at the first other frame: the user's own code,
wherever it lives (a script, a notebook cell, ``python -c``, a package of theirs installed in
site-packages).
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

__all__ = ["issued_here", "warn_user"]

_OWN = "hpo_plugins"
#: Top-level packages whose frames sit between the user's call and ours.
_FRAMEWORKS = frozenset({
    "lightning", "pytorch_lightning", "lightning_fabric", "lightning_utilities", "torch",
    "keras", "tensorflow", "tf_keras", "joblib", "distributed", "dask", "tornado", "hyperopt",
    "threading", "concurrent", "asyncio", "runpy", "contextlib", "functools", "importlib",
})


#: The texts of the warnings issued lately, oldest first (a dict as an ordered set).
_ISSUED: dict[str, None] = {}
_ISSUED_KEPT = 64


def _package(frame: FrameType) -> str:
    """The top-level package of the module ``frame`` runs in ('' when unknown)."""
    name = frame.f_globals.get("__name__")
    return name.partition(".")[0] if isinstance(name, str) else ""


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the nearest frame of user code.

    Where no frame above ours is the user's (a worker thread or process running our loop),
    the warning names the first frame of ours met beyond a framework's frames (the objective
    of ours that called the framework, ``lightning_objective`` calling ``fit``), else the
    first frame outside this package.
    """
    frame: FrameType | None = sys._getframe(1)
    level = 2  # stacklevel=2: the caller of warn_user
    while frame is not None and _package(frame) == _OWN:
        frame, level = frame.f_back, level + 1
    fallback = level
    called_back = False
    # a framework may call back into this package (contextlib running one of our context
    # managers, joblib one of our workers): its frames and ours are skipped alike
    while frame is not None and (_package(frame) in _FRAMEWORKS or _package(frame) == _OWN):
        if _package(frame) == _OWN and not called_back:
            called_back, fallback = True, level
        frame, level = frame.f_back, level + 1
    _ISSUED[message] = None
    while len(_ISSUED) > _ISSUED_KEPT:
        _ISSUED.pop(next(iter(_ISSUED)))
    warnings.warn(message, category, stacklevel=level if frame is not None else fallback)


def issued_here(message: object) -> bool:
    """Whether ``message`` (a warning shown) is one that :func:`warn_user` issued lately: how
    the command line tells this package's warnings from other libraries' (its own words for
    ours, Python's format for theirs), whatever file a warning is attributed to."""
    return str(message) in _ISSUED
