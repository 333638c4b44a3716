"""Plain-text tables with aligned columns, and the cell formats the commands share."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

__all__ = ["format_cell", "format_duration", "format_table"]

#: What an empty cell shows (no value, or a parameter inactive in this trial).
EMPTY = "-"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Align ``rows`` under ``headers``: numbers to the right, text to the left.

    Example:
        >>> print(format_table(["name", "n"], [["a", 1], ["bb", 10]]))
        name   n
        a      1
        bb    10
    """
    cells = [[format_cell(v) for v in row] for row in rows]
    numeric = [all(_is_number(row[i]) or row[i] is None for row in rows) if rows else False
               for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [_line(list(headers), widths, numeric)]
    lines.extend(_line(r, widths, numeric) for r in cells)
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int], numeric: Sequence[bool]) -> str:
    parts = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, numeric)]
    return "  ".join(parts).rstrip()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_cell(value: Any) -> str:
    """A cell: ``-`` for None/NaN, floats with 6 significant digits, the rest as ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return EMPTY
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def format_duration(seconds: float | None) -> str:
    """``0.42s``, ``12.3s``, ``4m05s`` or ``2h03m``; ``-`` when unknown."""
    if seconds is None:
        return EMPTY
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
