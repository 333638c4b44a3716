"""Plain-text tables with aligned columns, and the cell formats the commands share."""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Sequence
from typing import Any

from hpo_plugins._text import clip

__all__ = ["NumberText", "format_cell", "format_duration", "format_table", "short_reason"]

#: What an empty cell shows (no value, or a parameter inactive in this trial).
EMPTY = "-"
_LINE_CHARS = 200  # each line of a reason shown at most this long


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
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [_line(list(headers), widths, numeric)]
    lines.extend(_line(r, widths, numeric) for r in cells)
    return "\n".join(lines)


class NumberText(str):
    """A cell's text that is a number with a note (a running trial's ``0.231 @12``): its
    column stays aligned to the right, as a column of plain numbers."""


def _line(cells: Sequence[str], widths: Sequence[int], numeric: Sequence[bool]) -> str:
    parts = [(" " * (w - _width(c)) + c) if right else (c + " " * (w - _width(c)))
             for c, w, right in zip(cells, widths, numeric)]
    return "  ".join(parts).rstrip()


def _width(text: str) -> int:
    """The columns ``text`` takes in a terminal: two for a wide character (CJK), none for a
    mark drawn on the one before it (an accent written as its own code point, a Thai or
    Devanagari vowel sign) or an invisible format character (a zero-width space or joiner),
    else one."""
    return sum(0 if unicodedata.category(ch) in ("Mn", "Me", "Cf") else
               2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, NumberText)) and not isinstance(value, bool)


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


def short_reason(reason: str | None, lines: int = 3, width: int | None = None) -> str:
    """A failed trial's reason on one line: its first line and, when more follow (a script-mode
    command's stderr tail), the last ``lines`` non-empty ones, where the error usually is.

    ``width``: the most characters shown. When the whole does not fit, the first line is
    shortened first (to no less than a third of the width), so that the end of the stderr tail, the
    cause, stays visible: a reason clipped from its end would show only
    ``ScriptFailed: command exited with status 1; stderr tail: ...``.

    Example:
        >>> short_reason("ScriptFailed: command exited with status 1; stderr tail:\\n"
        ...              "Traceback (most recent call last):\\nValueError: lr < 0", lines=1)
        'ScriptFailed: command exited with status 1; stderr tail: ValueError: lr < 0'
        >>> short_reason("ScriptFailed: command exited with status 1; stderr tail:\\n"
        ...              "ValueError: lr < 0", lines=1, width=45)
        'ScriptFailed: command... | ValueError: lr < 0'
    """
    shown = [clip(" ".join(line.split()), _LINE_CHARS)
             for line in (reason or "").splitlines() if line.strip()]
    if not shown:
        return "no reason stored"
    head, tail = shown[0], " | ".join(shown[1:][-lines:] if lines > 0 else [])
    if not tail:
        text = f"{head} (empty)" if head.endswith(":") and len(shown) == 1 else head
        return text if width is None else clip(text, width)
    sep = " " if head.endswith(":") else " | "
    if width is None or len(head) + len(sep) + len(tail) <= width:
        return head + sep + tail
    room = max(width - len(" | ") - len(tail), min(len(head), width // 3))
    sep = sep if room >= len(head) else " | "  # a clipped head no longer ends with ":"
    return clip(head, room) + sep + _clip_middle(tail, width - min(room, len(head)) - len(sep))


def _clip_middle(text: str, most: int) -> str:
    """``text`` cut to ``most`` characters in its middle: an error line's start names the
    error, its end often the cause (``... [Errno 2] No such file or directory``).

    Example:
        >>> _clip_middle("python: can't open file 'nosuch.py': [Errno 2] No such file", 40)
        "python: can'...': [Errno 2] No such file"
    """
    if len(text) <= most:
        return text
    if most <= 3:
        return clip(text, most)
    start = (most - 3) // 3
    return text[:start] + "..." + text[len(text) - (most - 3 - start):]

