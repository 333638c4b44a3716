"""Reading a number out of what users hand us: Python, numpy and torch scalars alike.

Objectives return, and trials report, whatever their framework produced: a float, a numpy
scalar, a 0-d array or tensor, sometimes by mistake a whole array or an int too large for a
float. One function reads all of them, so the objective's value, a reported value and a told
value are accepted and refused by the same rule, with a reason that says what came in.
"""

from __future__ import annotations

import numbers
from typing import Any, TypeGuard

from hpo_plugins._text import short_repr
from hpo_plugins.exceptions import ConfigurationError

__all__ = ["close", "optional_count", "read_number", "read_step"]

_MAX_STEP = 2 ** 63 - 1  # SQL INTEGER columns hold 64-bit signed values


def read_number(value: Any) -> tuple[float | None, str]:
    """``(float(value), "")`` for a real number or a one-element array/tensor, else
    ``(None, why)`` where ``why`` says what ``value`` is (e.g. "an array of 2 elements").

    NaN and infinities are numbers here; callers decide what they mean.

    Example:
        >>> import numpy as np
        >>> read_number(np.float32(0.5)), read_number(np.array([1.0, 2.0]))[1]
        ((0.5, ''), 'an array of 2 elements (of type ndarray)')
        >>> read_number("0.5")[1], read_number(10 ** 400)[1]
        ("'0.5' (of type str)", 'an integer too large for a float')
    """
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, bool):
        size = _size(value)
        if size is not None and size != 1:
            return None, f"an array of {size} elements (of type {type(value).__name__})"
        try:
            value = value.item()
        except Exception as exc:  # an object whose item() is something else
            return None, (f"{short_repr(value)} (of type {type(value).__name__}; item() raised "
                          f"{exc})")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        convert = ("; convert it with float(x)" if type(value).__name__ == "Decimal" else "")
        return None, f"{short_repr(value)} (of type {type(value).__name__}{convert})"
    try:
        return float(value), ""
    except OverflowError:
        return None, "an integer too large for a float"


def is_integer(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is an integer of any kind (Python or numpy), but not a bool.

    Typed as a guard for ``int``: numpy integers do what the callers do with ints (compare,
    ``int()``, arithmetic), which typeshed's ``numbers.Integral`` does not let mypy see.

    Example:
        >>> import numpy as np
        >>> is_integer(np.int64(3)), is_integer(True), is_integer(3.0)
        (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def read_step(step: Any) -> int | None:
    """``int(step)`` for an integer (Python or numpy) in ``[0, 2**63 - 1]``, else None.

    Example:
        >>> import numpy as np
        >>> read_step(np.int64(3)), read_step(-1), read_step(2 ** 70), read_step(1.0)
        (3, None, None, None)
    """
    if not is_integer(step):
        return None
    step = int(step)
    return step if 0 <= step <= _MAX_STEP else None


def optional_count(name: str, value: Any) -> int | None:
    """``value`` as an int (Python or numpy integer, not bool) ``>= 0``, or None; else a
    ConfigurationError naming argument ``name``.

    Example:
        >>> optional_count("n_trials", None), optional_count("lag", 3)
        (None, 3)
    """
    if value is None:
        return None
    if not is_integer(value) or value < 0:
        raise ConfigurationError(
            f"Expected `{name}` to be an integer >= 0 or None. Received: {name}={value!r}.")
    return int(value)


def _size(value: Any) -> int | None:
    """Elements in an array or tensor; None for a scalar without a size."""
    size = getattr(value, "size", None)
    if callable(size):  # torch: size() is the shape; numel() the count
        numel = getattr(value, "numel", None)
        return int(numel()) if callable(numel) else None
    return int(size) if isinstance(size, numbers.Integral) else None


def close(a: float, b: float) -> bool:
    """Equal up to floating-point rounding (a relative 1e-9): a value on a ``q`` grid, a
    bound, or a sum a database added in its own order."""
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
