"""Warnings that point at the user's line, not at the framework code that called ours.

A ``UserWarning`` from ``HPOCallback`` reaches us through Lightning's or Keras' loops, so a
fixed ``stacklevel`` names a line inside Lightning (``.../trainer/call.py``), which tells the
user nothing. :func:`warn_user` walks out of every frame of this package, of installed
packages and of the standard library, and points at the first frame of the user's own code
(their script's ``trainer.fit(...)`` or ``hpo.minimize(...)`` line).
"""

from __future__ import annotations

import os
import sys
import sysconfig
import warnings
from types import FrameType

__all__ = ["warn_user"]

_OWN = os.path.dirname(os.path.abspath(__file__)) + os.sep
_LIBRARIES = tuple({os.path.abspath(path) + os.sep for key in ("stdlib", "platstdlib",
                                                               "purelib", "platlib")
                    if (path := sysconfig.get_paths().get(key))})


def _library(filename: str) -> bool:
    """Whether ``filename`` is ours, an installed package's or the standard library's (or
    generated code such as ``<frozen runpy>``)."""
    if filename.startswith("<"):
        return True
    path = os.path.abspath(filename)
    return (path.startswith(_OWN) or path.startswith(_LIBRARIES)
            or f"{os.sep}site-packages{os.sep}" in path)


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the nearest frame of user code.

    Where every frame is library code (a worker process's loop), the warning names the
    direct caller of the function that called this, as ``stacklevel=2`` would.
    """
    frame: FrameType | None = sys._getframe(1)
    level = 2  # stacklevel=2: the caller of warn_user
    while frame is not None and _library(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 3)
