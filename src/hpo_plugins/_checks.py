"""The argument checks every constructor shares (samplers, pruners, stoppers), so that each
reports a bad argument the same way: the argument, what was expected, what was received."""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal, overload

import numpy as np

from hpo_plugins.exceptions import ConfigurationError

__all__ = ["check_bool", "check_int", "check_real"]


@overload
def check_int(name: str, value: Any, *, minimum: int, auto: Literal[False] = False) -> int: ...


@overload
def check_int(name: str, value: Any, *, minimum: int, auto: Literal[True]) -> int | str: ...


def check_int(name: str, value: Any, *, minimum: int, auto: bool = False) -> int | str:
    """``value`` as a Python int (NumPy integers too) if it is ``>= minimum``, or ``"auto"``
    where ``auto`` allows it.

    ``bool`` is refused although it is an ``int``: ``True`` is never a meaningful count.

    Raises:
        ConfigurationError: Names the argument, the expectation and the received value.
    """
    if auto and isinstance(value, str) and value == "auto":
        return value
    if (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and int(value) >= minimum):
        return int(value)
    expected = f"an integer >= {minimum}" + (' or "auto"' if auto else "")
    raise ConfigurationError(f"Expected `{name}` to be {expected}. Received: {name}={value!r}.")


def check_real(name: str, value: Any, *, low: float, high: float = math.inf,
               open_low: bool = False, open_high: bool = True) -> float:
    """Return ``value`` as a float if it lies in the interval, else raise.

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        low: Lower end of the interval.
        high: Upper end of the interval.
        open_low: Whether ``low`` itself is excluded.
        open_high: Whether ``high`` itself is excluded.

    Raises:
        ConfigurationError: Names the argument, the interval and the received value.
    """
    number = _as_float(value)
    above = number is not None and (number > low if open_low else number >= low)
    below = number is not None and (number < high if open_high else number <= high)
    if not (above and below):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ConfigurationError(
            f"Expected `{name}` to be a number in {interval}. Received: {name}={value!r}."
        )
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``, else raise a :class:`ConfigurationError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigurationError(
            f"Expected `{name}` to be True or False. Received: {name}={value!r} "
            f"(of type {type(value).__name__})."
        )
    return bool(value)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    number = float(value)
    return number if not math.isnan(number) else None
