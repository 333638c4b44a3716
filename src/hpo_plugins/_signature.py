"""Whether a user's function can be called the way the library will call it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["one_argument_problem", "two_argument_problem"]


def one_argument_problem(function: Callable[..., Any]) -> str | None:
    """Why ``function`` cannot be called with one positional argument, or None when it can.

    The text names the function with its signature and Python's reason, e.g.
    ``objective(params, data) (missing a required argument: 'data')``, for the caller's error
    (an objective gets the params, a Keras ``build_fn`` too). The callable itself is read, not
    what a ``functools.wraps`` decorator wraps: a decorator may supply an argument of the
    function it wraps. A function whose signature Python cannot read (some builtins) passes.
    """
    return _positional_problem(function, 1)


def two_argument_problem(function: Callable[..., Any]) -> str | None:
    """Why ``function`` cannot be called with two positional arguments, or None when it can.

    As :func:`one_argument_problem`, for functions the library calls with two arguments: a
    study callback gets ``(study, frozen_trial)``, e.g. ``<lambda>(t) (it takes 1 positional
    argument; it is called with 2)``.
    """
    return _positional_problem(function, 2)


def _positional_problem(function: Callable[..., Any], count: int) -> str | None:
    """Why ``function`` cannot take ``count`` positional arguments; None when it can, or when
    its signature cannot be read."""
    try:
        signature = inspect.signature(function, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*(object() for _ in range(count)))
    except TypeError as exc:
        name = getattr(function, "__qualname__", type(function).__name__)
        reason = str(exc)
        if reason == "too many positional arguments":  # Python's words blame the caller
            takes = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                        for p in signature.parameters.values())
            reason = (f"it takes {takes} positional argument{'s' * (takes != 1)}; it is "
                      f"called with {count}")
        return f"{name}{signature} ({reason})"
    return None
