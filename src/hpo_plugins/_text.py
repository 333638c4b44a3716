"""Small text helpers for messages: cut a text or a repr to a readable length, list a few
items and count the rest. One place, so every message cuts the same way."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["clip", "few", "short_repr"]


def clip(text: object, most: int = 80) -> str:
    """``str(text)``, or its first ``most - 3`` characters and ``...``."""
    shown = str(text)
    return shown if len(shown) <= most else shown[:max(most - 3, 0)] + "..."


def short_repr(value: object, most: int = 80) -> str:
    """``repr(value)``, cut to one readable line of at most ``most`` characters."""
    return clip(repr(value), most)


def few(items: Sequence[str], most: int = 5, sep: str = ", ") -> str:
    """The first ``most`` items joined by ``sep``, then ``and N more``."""
    shown = sep.join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")
