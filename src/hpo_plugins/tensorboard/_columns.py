"""HParams columns: how each parameter of a search space appears in TensorBoard.

TensorBoard's HParams plugin knows three column types (number, string, bool) and wants every
value of a column to have the column's type. A column is built from a parameter's stored
description (:meth:`hpo_plugins.space.Param.describe`), so a process that opened the study
without its space (``load_study(name)``) writes exactly the same columns as the one that created
it. The rules (documented in ``docs/exploring.md``):

========================================  ==========  ===========================  ===============
parameter                                 column      domain                       when inactive
========================================  ==========  ===========================  ===============
choice of strings or of booleans          string      the options (as text)        ``"<inactive>"``
choice of numbers                         number      the options                  NaN (blank)
choice of other objects (dicts, lists)    number      the option indices 0..n-1    NaN (blank)
randint with at most 16 values            number      the integers                 NaN (blank)
randint with more values, uniform, log-,  number      interval [low, high]         NaN (blank)
q-variants
normal, lognormal and their q-variants    number      none (unbounded)             NaN (blank)
========================================  ==========  ===========================  ===============

TensorBoard shows a NaN hyperparameter as an empty cell (it treats it as unset), so a numeric
column stays numeric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpo_plugins._text import clip
from hpo_plugins.space import CHOICE_KINDS, INACTIVE

__all__ = ["Column", "columns_from_description"]

#: A ``randint`` with at most this many values gets a discrete domain, else an interval.
MAX_DISCRETE_INTS = 16

_HP_NAMES = {"pchoice": "hp.pchoice", "choice": "hp.choice"}


@dataclass(frozen=True)
class Column:
    """One hyperparameter column of the HParams dashboard.

    Attributes:
        label: The parameter's label: its stable flat name, used as the column name.
        kind: ``"number"`` or ``"string"``.
        description: A one-line description (distribution, and when it is active).
        options: For choices, the value shown for each option index.
        discrete: The discrete domain, if the column has one.
        interval: The ``(low, high)`` interval domain, if the column has one.
        integer: True when values are whole numbers.
    """

    label: str
    kind: str
    description: str
    options: tuple[Any, ...] = ()
    discrete: tuple[Any, ...] | None = None
    interval: tuple[float, float] | None = None
    integer: bool = False

    def value(self, flat: Mapping[str, Any]) -> float | str:
        """The cell of a trial whose flat internal params are ``flat``.

        A choice shows its option (or its index when the options are not plain values); an
        inactive parameter is NaN in a number column and :data:`~hpo_plugins.space.INACTIVE`
        in a string column.
        """
        if self.label not in flat or flat[self.label] is None:
            return INACTIVE if self.kind == "string" else math.nan
        raw = flat[self.label]
        shown = self.options[int(raw)] if self.options else raw
        if self.kind == "string":
            return str(shown)
        return float(int(shown)) if self.integer else float(shown)


def columns_from_description(description: Sequence[Mapping[str, Any]],
                             constants: Mapping[str, str] | None = None) -> list[Column]:
    """The columns for a space description (the list stored in the study attrs), in its order
    (TensorBoard lists them by name), with ``constants`` (:meth:`SearchSpace.constants`) to say
    in a tooltip what each index of a choice shown by index holds."""
    return [_column(param, constants or {}) for param in description]


def _column(param: Mapping[str, Any], constants: Mapping[str, str]) -> Column:
    kind = str(param["kind"])
    where = _activity(param.get("conditions") or [[]])
    if kind in CHOICE_KINDS:
        return _choice_column(param, where, constants)
    args = {k: float(v) for k, v in (param.get("args") or {}).items()}
    shown = {k: (f"log({math.exp(v):.6g})" if kind in _LOG_BOUNDED and k in ("low", "high")
                 else f"{v:g}") for k, v in args.items()}
    text = f"hp.{kind}({', '.join(f'{k}={v}' for k, v in shown.items())}){where}"
    integer = bool(param.get("integer"))
    if kind == "randint":
        low, high = int(args.get("low", 0.0)), int(args["high"]) - 1
        if high - low + 1 <= MAX_DISCRETE_INTS:
            return Column(param["label"], "number", text,
                          discrete=tuple(float(i) for i in range(low, high + 1)), integer=True)
        return Column(param["label"], "number", text, interval=(low, high), integer=True)
    return Column(param["label"], "number", text, interval=_interval(kind, args),
                  integer=integer)


def _choice_column(param: Mapping[str, Any], where: str, constants: Mapping[str, str]) -> Column:
    options = tuple(param.get("options") or ())
    name = _HP_NAMES[str(param["kind"])]
    text = (f"{name} of {len(options)} options{where}"
            f"{_index_key(name, str(param['label']), len(options), constants)}")
    # a non-finite float option is described by its text ('inf', 'nan'), which neither a
    # number cell nor TensorBoard's JSON (no Infinity, no NaN) can hold: such a column is text
    if options and any(isinstance(o, (str, bool)) for o in options):
        shown = tuple(str(o) for o in options)
        domain = shown + ((INACTIVE,) if where else ())
        return Column(param["label"], "string", text, options=shown, discrete=domain)
    numbers = tuple(float(o) for o in options)
    integer = all(isinstance(o, int) for o in options)
    return Column(param["label"], "number", text, options=options, discrete=numbers,
                  integer=integer)


#: Kinds whose ``low`` and ``high`` are Hyperopt's log-space bounds (the tooltip shows them as
#: ``log(value)``, the way the space is written).
_LOG_BOUNDED = ("loguniform", "qloguniform")
#: The longest text shown for one option of a choice displayed by index.
_OPTION_CHARS = 60


def _index_key(name: str, label: str, n_options: int, constants: Mapping[str, str]) -> str:
    """For a choice whose cells show option indices (its options are dicts, lists...): what
    each index stands for, from the space's constants (``"; 0 = (1,), 1 = (1, 2)"``); "" for a
    choice of plain values (its cells show the values), or without the constants."""
    parts = []
    for index in range(n_options):
        where = f"in option {index} of {name}({label!r})"
        whole = constants.get(where)
        if whole is None:  # the option also holds hp expressions: its constant parts
            inner = [f"{key[len(where + ' at '):]}={text}" for key, text in constants.items()
                     if key.startswith(where + " at ")]
            whole = ", ".join(inner) or None
        if whole is not None:
            parts.append(f"{index} = {clip(whole, _OPTION_CHARS)}")
    return f"; {', '.join(parts)}" if parts else ""


def _interval(kind: str, args: Mapping[str, float]) -> tuple[float, float] | None:
    """Natural-unit bounds, widened to the values that rounding to ``q`` can produce."""
    if kind in ("uniform", "quniform"):
        low, high = args["low"], args["high"]
    elif kind in ("loguniform", "qloguniform"):
        low, high = math.exp(args["low"]), math.exp(args["high"])
    else:
        return None  # normal, lognormal and their q-variants are unbounded
    q = args.get("q")
    if q:
        low, high = min(low, round(low / q) * q), max(high, round(high / q) * q)
    return low, high


def _activity(conditions: Sequence[Sequence[Sequence[Any]]]) -> str:
    """``""`` for an always-active parameter, else ``", active when c=1 or c=2"``."""
    if any(len(conj) == 0 for conj in conditions):
        return ""
    alternatives = [" and ".join(f"{lbl}={idx}" for lbl, idx in conj) for conj in conditions]
    return f", active when {' or '.join(alternatives)}"
