"""One labelled distribution of a search space (:class:`Param`): sample it, check and
compare its values, describe it; the names of Hyperopt's expressions."""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo_plugins._numbers import close

__all__ = ["CHOICE_KINDS", "HP_ARGS", "HP_NAMES", "Condition", "Param", "format_args", "hp_name",
           "python_scalar", "same_value"]

#: Kinds whose internal value is the index of an option.
CHOICE_KINDS = frozenset({"choice", "pchoice"})

HP_ARGS = {
    "uniform": ("low", "high"),
    "quniform": ("low", "high", "q"),
    "loguniform": ("low", "high"),
    "qloguniform": ("low", "high", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
    "randint": ("low", "high"),
}
HP_NAMES = {  # what users typed, for messages
    "uniform": "hp.uniform", "quniform": "hp.quniform", "loguniform": "hp.loguniform",
    "qloguniform": "hp.qloguniform", "normal": "hp.normal", "qnormal": "hp.qnormal",
    "lognormal": "hp.lognormal", "qlognormal": "hp.qlognormal", "randint": "hp.randint",
    "choice": "hp.choice", "pchoice": "hp.pchoice",
}



def hp_name(param: Param) -> str:
    """The ``hp`` function a user wrote for ``param``, for messages: ``hp.uniformint`` is built
    by Hyperopt as an integer ``hp.quniform`` with step 1, and is named as written."""
    if param.kind == "quniform" and param.integer and param.args.get("q") == 1:
        return "hp.uniformint"
    return HP_NAMES[param.kind]


Condition = tuple[tuple[str, int], ...]
"""A conjunction of ``(choice_label, option_index)`` pairs; () means always active."""


@dataclass(frozen=True)
class Param:
    """One labelled hyperparameter.

    Attributes:
        label: The Hyperopt label, unique in the space; also the stable flat column name.
        kind: ``choice``, ``pchoice``, ``uniform``, ``quniform``, ``loguniform``, ``qloguniform``,
            ``normal``, ``qnormal``, ``lognormal``, ``qlognormal`` or ``randint``.
        args: The distribution's arguments as Hyperopt takes them (``loguniform`` bounds in log
            space, ``randint`` as ``low``/``high`` with ``high`` exclusive).
        conditions: Alternatives (OR) of conjunctions (AND) of ``(choice_label, index)``.
        options: For choices, a display value per option (the literal itself when every option
            is a str/int/float/bool literal of one type, else the option index; what the
            options hold then is in :meth:`SearchSpace.constants`).
        probabilities: For ``pchoice``, the probability of each option.
        integer: True when the objective receives an ``int`` (``randint``, ``uniformint``).
        by_index: For choices, True when ``options`` are the option indices (the options are
            not plain literals of one kind); not part of :meth:`describe`.
    """

    label: str
    kind: str
    args: Mapping[str, float] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ((),)
    options: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] = ()
    integer: bool = False
    by_index: bool = field(default=False, compare=False)

    @property
    def is_choice(self) -> bool:
        """True for ``hp.choice`` and ``hp.pchoice``."""
        return self.kind in CHOICE_KINDS

    @property
    def n_options(self) -> int:
        """Number of options of a choice (0 for numeric parameters)."""
        return len(self.options)

    @property
    def log(self) -> bool:
        """True when the parameter lives on a log scale."""
        return self.kind in ("loguniform", "qloguniform", "lognormal", "qlognormal")

    @property
    def q(self) -> float | None:
        """The quantisation step, or None."""
        q = self.args.get("q")
        return None if q is None else float(q)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """Natural-unit bounds ``(low, high)`` for bounded kinds, None for unbounded ones.

        ``randint`` gives ``(low, high - 1)``, the inclusive integer range; a choice gives the
        range of its option indices, ``(0, n_options - 1)``.
        """
        if self.kind in ("uniform", "quniform"):
            return float(self.args["low"]), float(self.args["high"])
        if self.kind in ("loguniform", "qloguniform"):
            return math.exp(self.args["low"]), math.exp(self.args["high"])
        if self.kind == "randint":
            return float(self.args["low"]), float(self.args["high"]) - 1.0
        if self.is_choice:
            return 0.0, float(self.n_options - 1)
        return None

    def is_active(self, flat: Mapping[str, Any]) -> bool:
        """Whether this parameter takes part in the configuration ``flat``."""
        return any(all(flat.get(lbl) == idx for lbl, idx in cond) for cond in self.conditions)

    def sample(self, rng: np.random.Generator) -> float | int:
        """Draw one internal value from the prior (Hyperopt's semantics, numpy Generator)."""
        a = self.args
        if self.kind == "choice":
            return int(rng.integers(self.n_options))
        if self.kind == "pchoice":
            p = np.asarray(self.probabilities)  # summed to 1 within 1e-5 (numpy asks 1e-8)
            return int(rng.choice(self.n_options, p=p / p.sum()))
        if self.kind == "randint":
            return int(rng.integers(int(a["low"]), int(a["high"])))
        if self.kind in ("uniform", "quniform"):
            x = float(rng.uniform(a["low"], a["high"]))
        elif self.kind in ("loguniform", "qloguniform"):
            x = math.exp(float(rng.uniform(a["low"], a["high"])))
        elif self.kind in ("normal", "qnormal"):
            x = float(rng.normal(a["mu"], a["sigma"]))
        else:  # lognormal, qlognormal
            x = math.exp(float(rng.normal(a["mu"], a["sigma"])))
        return self.quantize(x)

    def quantize(self, x: float) -> float:
        """Round ``x`` to the step ``q`` the way Hyperopt does (``round(x / q) * q``)."""
        q = self.q
        return float(x) if q is None else float(np.round(x / q) * q)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is an internal value this parameter can take.

        Choices and ``randint``: a whole number in range. Quantised kinds: a multiple of ``q``
        (up to rounding error) between the rounded bounds, as Hyperopt's ``round(x / q) * q``
        produces (``uniformint`` is ``q=1``). Log kinds: positive (zero allowed once quantised).
        Unbounded kinds: any finite number. A ``scope.int(...)`` wrapper does not make the
        value whole: the internal value is the one before ``int()``, applied when building.
        """
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.is_choice or self.kind == "randint":
            low, high = self.bounds or (0.0, 0.0)
            return v == int(v) and low <= v <= high
        q = self.q
        if q is not None and not _on_grid(v / q):
            return False
        bounds = self.bounds
        if bounds is not None:
            low, high = (self.quantize(b) for b in bounds) if q is not None else bounds
            return (low <= v or close(v, low)) and (v <= high or close(v, high))
        if self.log:
            return v >= 0 if q is not None else v > 0
        return True

    def support(self) -> str:
        """The values :meth:`contains` accepts, in words (for error messages).

        Example:
            >>> from hpo_plugins import hp
            >>> from hpo_plugins.space import SearchSpace
            >>> SearchSpace({"n": hp.quniform("n", 0, 10, 2)}).params["n"].support()
            'a multiple of 2 from 0 to 10'
        """
        if self.is_choice:
            return f"an option index from 0 to {self.n_options - 1}"
        if self.kind == "randint":
            low, high = self.bounds or (0.0, 0.0)
            return f"a whole number from {_num(low)} to {_num(high)}"
        q = self.q
        what = ("a number" if q is None else "a whole number" if q == 1
                else f"a multiple of {_num(q)}")
        bounds = self.bounds
        if bounds is not None:
            low, high = (self.quantize(b) for b in bounds) if q is not None else bounds
            return f"{what} from {_num(low)} to {_num(high)}"
        if self.log:
            return f"{what} {'at least 0' if q is not None else 'above 0'}"
        return f"{what} (finite)"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (stored with the study, shown by the CLI).

        Strict JSON has no infinity or NaN, so a non-finite float option is described by its
        text (``'inf'``, ``'-inf'``, ``'nan'``): tables show that text, while the objective still
        receives the float itself.
        """
        return {
            "label": self.label,
            "kind": self.kind,
            "args": {k: float(v) for k, v in self.args.items()},
            "conditions": [[list(c) for c in cond] for cond in self.conditions],
            "options": [_jsonable(o) for o in self.options],
            "probabilities": list(self.probabilities),
            "integer": self.integer,
        }


def format_args(p: Param) -> str:
    """``p``'s arguments as a message shows them (``low=0, high=1``; a choice: ``3 options``)."""
    shown = {k: v for k, v in p.args.items() if not (k == "q" and hp_name(p) == "hp.uniformint")}
    return ", ".join(f"{k}={_num(v)}" for k, v in shown.items()) or f"{p.n_options} options"


def python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.int64(5)`` -> ``5``); else ``value``."""
    return value.item() if isinstance(value, np.generic) else value




def same_value(a: Any, b: Any) -> bool:
    """Whether a literal of the space (``a``) and a given value (``b``) are the same option.

    Numbers compare by value whatever their type (``np.int64(32)`` from a dataframe is the
    option ``32``, ``3.0`` is ``3``), bools only with bools; anything else must have the same
    type and compare equal.
    """
    a = a.item() if isinstance(a, np.generic) else a  # np.True_, np.str_('relu') from a
    b = b.item() if isinstance(b, np.generic) else b  # dataframe row: their Python values
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    try:
        return bool(type(a) is type(b) and a == b)
    except Exception:  # e.g. numpy arrays: ambiguous truth value
        return a is b


def _is_number(value: Any) -> bool:
    """A real number that is not a bool (Python's, numpy's or any ``numbers.Real``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _jsonable(value: Any) -> Any:
    """``value`` when JSON can hold it, else its text (objects, and non-finite floats, which
    strict JSON cannot write)."""
    value = python_scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(float(value))
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


def _on_grid(steps: float) -> bool:
    """Whether ``value / q`` (``steps``) is a whole number of steps, up to the rounding error
    of the division: a tolerance that grows with ``steps`` only as float resolution does
    (a relative 1e-9 passed anything beyond 5e8 steps, half a step off included, and
    ``uniformint`` then cut 5000000004.9 to 5000000004). Not finite: not on the grid."""
    if not math.isfinite(steps):
        return False
    return abs(steps - round(steps)) <= max(1e-9, 8 * sys.float_info.epsilon * abs(steps))


def _num(value: float) -> str:
    """A bound or step for a message: a whole number in full (``1700000000001``), others with
    12 significant digits (``0.1234567``, ``0.0001`` for a bound read back from its log)."""
    if float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.12g}"
