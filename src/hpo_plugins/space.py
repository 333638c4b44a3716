"""Hyperopt search spaces, read once into labelled distributions.

A user writes a space in Hyperopt's language (``hp.choice``, ``hp.uniform``, ...) nested in dicts,
lists and tuples. :class:`SearchSpace` reads it with ``hyperopt.pyll_utils.expr_to_config`` and
keeps, for every label, a :class:`Param`: its distribution with Hyperopt's own arguments (the
bounds of a log kind in log space; :attr:`Param.bounds` gives natural units) and the conditions
under which it is active. Everything else in the library works on *flat internal
parameters*: a dict ``label -> value`` holding only active labels, where a choice holds the index
of its option and every number is in natural units (exactly what Hyperopt stores in
``misc["vals"]``). :meth:`SearchSpace.build` turns that into the nested natural value the
objective receives, and :meth:`SearchSpace.flatten` goes back, for ``enqueue``.

Example:
    >>> from hpo_plugins import hp
    >>> space = SearchSpace({
    ...     "lr": hp.loguniform("lr", -5, 0),
    ...     "net": hp.choice("net", ["mlp", {"filters": hp.choice("f", [8, 16])}]),
    ... })
    >>> space.labels
    ('lr', 'net', 'f')
    >>> space.build({"lr": 0.01, "net": 1, "f": 0})
    {'lr': 0.01, 'net': {'filters': 8}}
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import logging
import math
import numbers
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np

from hpo_plugins._space_build import compile_builder
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import SpaceError

__all__ = ["CHOICE_KINDS", "INACTIVE", "Condition", "Param", "SearchSpace", "as_space"]

_logger = logging.getLogger(__name__)

#: Display value of a conditional parameter that is inactive in a trial, where a column needs a
#: value (TensorBoard's HParams); tables and CSV leave the cell empty (None / NaN) instead.
INACTIVE = "<inactive>"

#: Kinds whose internal value is the index of an option.
CHOICE_KINDS = frozenset({"choice", "pchoice"})

_ARGS = {
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
_HP_NAMES = {  # what users typed, for messages
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
    return _HP_NAMES[param.kind]


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
        if q is not None and not _close(v / q, round(v / q)):
            return False
        bounds = self.bounds
        if bounds is not None:
            low, high = (self.quantize(b) for b in bounds) if q is not None else bounds
            return (low <= v or _close(v, low)) and (v <= high or _close(v, high))
        if self.log:
            return v >= 0 if q is not None else v > 0
        return True

    def support(self) -> str:
        """The values :meth:`contains` accepts, in words (for error messages).

        Example:
            >>> from hpo_plugins import hp
            >>> SearchSpace({"n": hp.quniform("n", 0, 10, 2)}).params["n"].support()
            'a multiple of 2 from 0 to 10'
        """
        if self.is_choice:
            return f"an option index from 0 to {self.n_options - 1}"
        if self.kind == "randint":
            low, high = self.bounds or (0.0, 0.0)
            return f"a whole number from {low:g} to {high:g}"
        q = self.q
        what = ("a number" if q is None else "a whole number" if q == 1
                else f"a multiple of {q:g}")
        bounds = self.bounds
        if bounds is not None:
            low, high = (self.quantize(b) for b in bounds) if q is not None else bounds
            return f"{what} from {low:g} to {high:g}"
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


class SearchSpace:
    """A validated Hyperopt search space.

    Args:
        space: Any Hyperopt space: ``hp`` expressions nested at any depth in dicts, lists,
            tuples and choices, or a ``SearchSpace`` (returned as is by :func:`as_space`).

    Raises:
        SpaceError: The space has no hyperparameter, a duplicate label, a distribution whose
            arguments are themselves random or invalid, or an expression we cannot sample.
    """

    def __init__(self, space: Any) -> None:
        from hyperopt.pyll import as_apply

        self.space = space
        try:
            self._expr = as_apply(space)
        except Exception as exc:  # hyperopt raises bare TypeErrors on odd objects
            raise SpaceError(
                f"Expected a Hyperopt search space (hp expressions in dicts, lists and tuples). "
                f"Received: {space!r} (of type {type(space).__name__}), which Hyperopt cannot "
                f"read: {exc}"
            ) from exc
        self.params: dict[str, Param] = _read_params(self._expr)
        self._builder = compile_builder(self._expr)
        if not self.params:
            raise SpaceError(
                f"Expected a search space with at least one hyperparameter (hp.choice, "
                f"hp.uniform, ...). Received: {space!r}. Wrap the values to tune in hp "
                f"expressions, e.g. {{'lr': hp.loguniform('lr', -9, -2)}}."
            )
        self._constants = _read_constants(self._expr, self.params)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_builder"]  # closures: plain pickle cannot carry them; rebuilt on arrival
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._builder = compile_builder(self._expr)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label (the stable flat column names), in the order Hyperopt's graph holds them.

        That is depth first with the keys of every dict *sorted* (Hyperopt's ``as_apply`` sorts
        them), not the order the dict was written in: ``{"lr": ..., "batch": ...}`` gives
        ``('batch', 'lr')``. Tables (``params_<label>`` columns) use this order, and stored
        studies depend on it.
        """
        return tuple(self.params)

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(self.labels)})"

    def __len__(self) -> int:
        return len(self.params)

    def active(self, flat: Mapping[str, Any]) -> list[str]:
        """Labels active in the (possibly partial) configuration ``flat``."""
        return [lbl for lbl, p in self.params.items() if p.is_active(flat)]

    def prune_inactive(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Drop labels of ``flat`` that are inactive given its choices."""
        return {lbl: flat[lbl] for lbl in self.active(flat) if lbl in flat}

    def sample_prior(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw every parameter independently from its prior; keep the active ones."""
        return self.prune_inactive({lbl: p.sample(rng) for lbl, p in self.params.items()})

    def validate(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Check a flat internal configuration; return it with plain Python numbers.

        Raises:
            SpaceError: A label is unknown, an active label is missing, an inactive one is set, or
                a value is outside its distribution's support.
        """
        unknown = sorted(set(flat) - set(self.params))
        if unknown:
            raise SpaceError(
                f"Unknown parameter label(s) {unknown}. Expected labels of this space: "
                f"{list(self.labels)}."
            )
        active = self.active(flat)
        missing = [lbl for lbl in active if lbl not in flat]
        extra = sorted(set(flat) - set(active))
        if missing or extra:
            raise SpaceError(
                f"Expected values for exactly the active parameters {active}. Missing: "
                f"{missing}; inactive but given: {extra}. Received: {dict(flat)!r}."
            )
        out: dict[str, Any] = {}
        for lbl in active:
            p, v = self.params[lbl], flat[lbl]
            if not p.contains(v):
                raise SpaceError(
                    f"Value {v!r} is outside the support of {hp_name(p)}({lbl!r}, "
                    f"{_fmt_args(p)}): expected {p.support()}. Give such a value."
                )
            out[lbl] = int(v) if (p.is_choice or p.kind == "randint") else float(v)
        return out

    def build(self, flat: Mapping[str, Any]) -> Any:
        """The nested natural value for ``flat`` (what ``hyperopt.space_eval`` builds).

        Through the builder compiled once from the space (:mod:`hpo_plugins._space_build`),
        several times faster than ``space_eval``; spaces it does not cover, and flat
        parameters it cannot use, go to ``space_eval`` itself, so errors are Hyperopt's.
        """
        if self._builder is not None:
            try:
                return self._builder(flat)
            except Exception:  # let Hyperopt decide, and raise its own error
                _logger.debug("Compiled builder failed on %r; using space_eval", flat)
        from hyperopt import space_eval

        return space_eval(self.space, dict(flat))

    def flatten(self, value: Any) -> dict[str, Any]:
        """Inverse of :meth:`build`: the flat internal parameters for a natural value.

        ``value`` is either the nested natural value (``hp.choice`` given as the chosen option,
        nested choices included) or a flat dict ``{label: natural value}`` in which a choice is
        given by its option value.

        Raises:
            SpaceError: The value does not fit the space; the message says where.
        """
        ways = _first_distinct(_matches(self._expr, value, {}, self.params), 8)
        if 1 < len(ways) < 8 and self._all_build_alike(ways):
            ways = ways[:1]  # options that are equal (hp.choice("k", [1, 1, 2])): the same run
        ways = ways[:2]
        if len(ways) > 1:
            shown = self.display(ways[0])
            example = {lbl: shown[lbl] for lbl in ways[0]}
            raise SpaceError(
                f"{value!r} fits the search space in {len(ways)} ways, e.g. as {ways[0]} or as "
                f"{ways[1]} (flat internal values by label). Give a flat dict "
                f"{{label: value}} naming the parameters instead, e.g. {example!r}."
            )
        if ways:
            return self.validate(ways[0])
        loose = _first_distinct(_matches(self._expr, value, {}, {}), 8)
        if loose:  # the shape fits: validate says which value does not, in the reading
            # with the fewest values out of their support (the option the user meant)
            self.validate(min(loose, key=self._out_of_support))
        from hpo_plugins._space_explain import looks_flat

        flat_problem = None
        if looks_flat(value):
            try:
                return self.validate(self._from_flat_natural(self._without_blank_inactive(value)))
            except SpaceError as exc:
                flat_problem = str(exc)
        raise SpaceError(self._no_match(value, flat_problem))

    def _without_blank_inactive(self, value: Mapping[str, Any]) -> Mapping[str, Any]:
        """A flat dict without the blank values (None, NaN, ``pd.NA``) of labels that its other
        values make inactive: a row of ``trials_dataframe()`` holds every label, with NaN for
        the inactive ones. A blank of an active label is kept (None may be an option), for
        the checks that follow to judge."""
        blanks = {lbl for lbl, v in value.items() if lbl in self.params and _is_blank(v)}
        if not blanks:
            return value
        try:
            internal = self._from_flat_natural({k: v for k, v in value.items()
                                                if k not in blanks})
        except SpaceError:
            return value  # the other values do not fit: the caller explains that
        active = set(self.active(internal))
        return {k: v for k, v in value.items() if k not in blanks or k in active}

    def index_readings(self, value: Any) -> list[str]:
        """Labels of the choices in a flat dict ``value`` whose NumPy integer could be meant as
        an option index: Hyperopt's ``fmin`` returns ``best`` with each choice as the index of
        its option (``np.int64``), which a flat dict of natural values reads as the option of
        that value when there is one. Empty for anything else."""
        if not isinstance(value, Mapping):
            return []
        found = []
        for lbl, v in value.items():
            p = self.params.get(lbl) if isinstance(lbl, str) else None
            if (p is None or not p.is_choice or p.by_index or not isinstance(v, np.integer)
                    or not 0 <= int(v) < p.n_options):
                continue
            if any(_same(o, v) for o in p.options) and not _same(p.options[int(v)], v):
                found.append(lbl)
        return found

    def _all_build_alike(self, ways: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the flat readings in ``ways`` differ only in which of equal options a choice
        takes: the same labels, the same natural value for the objective (types included).
        Readings that set different parameters (``hp.choice("x", [hp.uniform("a", 0, 1),
        hp.uniform("b", 0, 2)])`` given 0.5) are different runs for the sampler."""
        if len({frozenset(way) for way in ways}) > 1:
            return False
        texts = {json.dumps(self.build(way), sort_keys=True, default=repr) for way in ways}
        return len(texts) == 1

    def _out_of_support(self, flat: Mapping[str, Any]) -> int:
        """How many values of a flat reading lie outside their parameter's support."""
        return sum(1 for lbl, v in flat.items()
                   if lbl in self.params and not self.params[lbl].contains(v))

    def _no_match(self, value: Any, flat_problem: str | None) -> str:
        """Why ``value`` fits the space neither as a nested value nor as a flat dict.

        Each reading the value may have meant says what does not fit: the nested one names
        the key missing, unknown or misspelled, or the value outside its parameter's support
        (:func:`_diagnose`); the flat one (``flat_problem``) the label or the value. A dict
        whose keys only labels explain (``mlp_layers``) is read as flat only, one whose keys
        only the nested value explains as nested only.
        """
        nested_only, flat_only = self._readings(value)
        if nested_only:
            flat_problem = None
        from hpo_plugins._space_explain import SHOWN_PROBLEMS, diagnose

        fit = None if flat_only else diagnose(self._expr, value, self.params, ())
        problems = [] if fit is None else [*fit.conflicts(self.params), *fit.problems]
        nested = "; ".join(problems[:SHOWN_PROBLEMS]) + (
            f" (and {len(problems) - SHOWN_PROBLEMS} more)"
            if len(problems) > SHOWN_PROBLEMS else "")
        flat = f" Read as a flat dict of labels: {flat_problem}" if flat_problem else ""
        return (
            f"Could not match {value!r} to the search space"
            f"{': ' + nested + '.' if nested else '.'}{flat} Expected either the nested value "
            f"the objective receives (choices given as the chosen option) or a flat dict "
            f"{{label: value}} with labels from {list(self.labels)}."
        )

    def _readings(self, value: Any) -> tuple[bool, bool]:
        """``(nested only, flat only)``: whether only one reading of ``value`` is plausible,
        from the keys that only a top-level key of the space, or only a label, explains (or,
        misspelled, most resembles)."""
        from hpo_plugins._space_explain import explained, looks_flat

        if not looks_flat(value):
            return True, False
        top = {key for key, _ in self._expr.named_args} if self._expr.name == "dict" else set()
        labels = set(self.params)
        by_label = explained(value, labels - top, top)
        by_key = explained(value, top - labels, labels)
        return by_key and not by_label, by_label and not by_key

    def _from_flat_natural(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """A flat dict ``{label: natural value}`` as flat internal values (choice indices).

        Raises:
            SpaceError: A key is no label of the space (with the closest label), or a choice
                is given a value that is not one of its options.
        """
        from hpo_plugins._space_explain import did_you_mean

        unknown = [lbl for lbl in value if lbl not in self.params]
        if unknown:
            raise SpaceError(
                f"Unknown parameter label {unknown[0]!r}"
                f"{did_you_mean(unknown[0], self.labels)}. Expected labels of this space: "
                f"{list(self.labels)}."
            )
        out: dict[str, Any] = {}
        for lbl, v in value.items():
            p = self.params[lbl]
            if not p.is_choice:
                out[lbl] = v
                continue
            matches = [i for i, o in enumerate(p.options) if _same(o, v)]
            if not matches and p.by_index:
                raise SpaceError(
                    f"Value {v!r} is not an option index of hp.choice({lbl!r}). Expected one of "
                    f"{list(p.options)}: its options are not plain literals of one kind (text, "
                    f"numbers or bools), so a flat dict, like tables and the CLI, gives the "
                    f"index of the option (space.constants() shows what each holds). Or give "
                    f"the nested natural value instead.")
            if not matches:
                index = (isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                         and 0 <= int(v) < p.n_options)
                raise SpaceError(
                    f"Value {v!r} is not an option of hp.choice({lbl!r}). Expected one of "
                    f"{list(p.options)}." + (
                        f" If {v!r} is the index of an option (hyperopt.fmin's `best`, "
                        f"Hyperopt's points_to_evaluate or misc['vals'] hold indices), convert "
                        f"the dict first: hyperopt.space_eval(space, best)." if index else "")
                )
            out[lbl] = matches[0]
        return out

    def display(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Flat column values for tables: choices shown by option, inactive ones as None."""
        out: dict[str, Any] = {}
        for lbl, p in self.params.items():
            if lbl not in flat:
                out[lbl] = None
            elif p.is_choice:
                out[lbl] = p.options[int(flat[lbl])]
            else:
                out[lbl] = int(flat[lbl]) if p.integer else float(flat[lbl])
        return out

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able description of every parameter."""
        return [p.describe() for p in self.params.values()]

    def constants(self) -> dict[str, str]:
        """What the space holds besides its parameters' distributions, by where it is.

        :meth:`describe` covers every parameter's distribution, and a choice's options only
        when they are plain literals of one type. This covers the rest: every value outside an
        ``hp`` expression (``{"epochs": 10}``), the content of each choice option that
        :meth:`describe` shows by its index (dicts, tuples, functions, None, mixed types), and
        the functions that compute on parameters (``hp.uniform(...) * 2``). Keys say where
        (``at ['epochs']``, ``in option 0 of hp.choice('net') at ['width']``); values are a
        stable text (:func:`_stable_text`), so the record is plain JSON and the same in every
        run. A space of parameters only (choices over plain literals) has none.

        Example:
            >>> from hpo_plugins import hp
            >>> space = SearchSpace({"epochs": 10, "lr": hp.uniform("lr", 0, 1),
            ...                      "net": hp.choice("net", [{"width": 64}, None])})
            >>> for where, text in space.constants().items():
            ...     print(where, "->", text)
            at ['epochs'] -> 10
            in option 0 of hp.choice('net') -> {'width': 64}
            in option 1 of hp.choice('net') -> None
        """
        return dict(self._constants)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short hash of the parameters and the constants: equal spaces have equal
        fingerprints, and editing a bound, an option or a constant changes it.

        A space without constants (see :meth:`constants`) keeps the fingerprint that earlier
        versions gave it (:attr:`parameters_fingerprint`), so the study names derived from it
        stay the same.
        """
        if not self._constants:
            return self.parameters_fingerprint
        return _digest({"params": self.describe(), "constants": self._constants})

    @property
    def parameters_fingerprint(self) -> str:
        """A short hash of :meth:`describe` only: what earlier versions called the fingerprint,
        and what a study stored by them recorded (constants were not covered)."""
        return _digest(self.describe())

    @functools.cached_property
    def earlier_fingerprints(self) -> tuple[tuple[str, str], ...]:
        """``(fingerprint, parameters_fingerprint)`` of this space as each version read it,
        this version's first, so studies stored by earlier versions still resume.

        Versions before session 15 took a choice of ``np.int64`` options, or of ints and floats
        mixed, for objects: shown by index, recorded as constants.
        """
        pairs = [(self.fingerprint, self.parameters_fingerprint)]
        token = _EARLIER_READING.set(True)
        try:
            earlier = SearchSpace(self._expr)
        finally:
            _EARLIER_READING.reset(token)
        if earlier.fingerprint != self.fingerprint:
            pairs.append((earlier.fingerprint, earlier.parameters_fingerprint))
        return tuple(pairs)


def as_space(space: Any) -> SearchSpace:
    """Return ``space`` as a :class:`SearchSpace` (no copy if it already is one)."""
    return space if isinstance(space, SearchSpace) else SearchSpace(space)


# ---------------------------------------------------------------------------------------------
# Reading the pyll graph


def _read_params(expr: Any) -> dict[str, Param]:
    from hyperopt.base import DuplicateLabel
    from hyperopt.pyll_utils import _expr_to_config

    hps: dict[str, Any] = {}
    try:
        # The public expr_to_config ends with a condition simplification that crashes on
        # hp.pchoice (it reads the probabilities as a literal, hyperopt 0.3.0); the walk itself is
        # all we need, since Param.is_active evaluates the unsimplified conditions exactly.
        _expr_to_config(expr, (), hps)
    except DuplicateLabel as exc:
        raise SpaceError(
            f"Duplicate label {exc.args[0]!r}: two different hyperparameters use it. Expected "
            f"unique labels; rename one (labels name columns and must identify one parameter)."
        ) from exc
    except AssertionError as exc:
        raise SpaceError(
            "Unsupported expression in the search space: Hyperopt could not read it as a tree "
            f"of hp expressions ({exc!r}). Expected hp.* expressions nested in dicts, lists, "
            "tuples and hp.choice options; a branch chosen by scope.switch on hp.randint (or "
            "by another pyll function) is not supported: use hp.choice(label, options) instead."
        ) from exc
    switches = _find_switches(expr)
    integer_labels = _integer_labels(expr)
    order = _label_order(expr)
    params = {}
    for label in sorted(hps, key=lambda lbl: order.get(lbl, len(order))):
        params[label] = _make_param(label, hps[label], switches, integer_labels)
    return params


def _walk(expr: Any) -> list[Any]:
    """Every node of the graph once, depth first, in declaration order."""
    seen: set[int] = set()
    out: list[Any] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        out.append(node)
        stack.extend(reversed(node.inputs()))
    return out


def _label_order(expr: Any) -> dict[str, int]:
    order: dict[str, int] = {}
    for node in _walk(expr):
        if node.name == "hyperopt_param":
            order.setdefault(node.arg["label"].obj, len(order))
    return order


def _find_switches(expr: Any) -> dict[str, list[Any]]:
    """choice label -> its option nodes."""
    out: dict[str, list[Any]] = {}
    for node in _walk(expr):
        if node.name == "switch":
            idx = node.inputs()[0]
            out[idx.arg["label"].obj] = list(node.inputs()[1:])
    return out


def _integer_labels(expr: Any) -> set[str]:
    """Labels the objective receives as int (``randint`` and ``uniformint`` wrap them in int)."""
    out = set()
    for node in _walk(expr):
        if node.name != "int":
            continue
        inner = node.inputs()[0]
        if inner.name == "float":
            inner = inner.inputs()[0]
        if inner.name == "hyperopt_param":
            out.add(inner.arg["label"].obj)
    return out


def _literal_args(label: str, node: Any) -> dict[str, float]:
    from hyperopt.pyll.base import Literal, MissingArgument

    args: dict[str, float] = {}
    for name, arg in node.arg.items():
        if name in ("rng", "size") or arg is MissingArgument:
            continue
        if not isinstance(arg, Literal):
            raise SpaceError(
                f"Unsupported expression for {label!r}: argument {name!r} of {node.name} is "
                f"itself an expression ({arg.name}). Expected plain numbers as distribution "
                f"arguments; use an hp.choice over fixed distributions instead."
            )
        if name == "p":
            continue
        value = arg.obj
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise SpaceError(
                f"Expected argument {name!r} of {label!r} to be a number. Received: {value!r}."
            )
        args[name] = float(value)
    return args


def _make_param(label: str, info: Mapping[str, Any], switches: Mapping[str, list[Any]],
                integer_labels: set[str]) -> Param:
    node = info["node"]
    conditions = _conditions(info["conditions"])
    if not label.strip():
        kind = "hp.choice" if label in switches else _HP_NAMES.get(node.name, node.name)
        raise SpaceError(
            f"Expected a non-empty label for every hyperparameter. Received: {label!r} in "
            f"{kind}. Labels name the columns of tables, CSV and TensorBoard: give it a name.")
    if label in switches:
        by_index = not _plain_options(switches[label])
        options = tuple(_option_display(switches[label]))
        if not options:
            raise SpaceError(
                f"Expected at least one option in hp.choice({label!r}, ...); received an empty "
                f"list. Give the options, or remove the choice."
            )
        if node.name == "categorical":
            from hyperopt.pyll import rec_eval

            p = np.asarray(rec_eval(node.arg["p"]), dtype=float)
            if not np.isclose(p.sum(), 1.0) or (p < 0).any():
                raise SpaceError(
                    f"Expected the probabilities of hp.pchoice({label!r}) to be non-negative "
                    f"and sum to 1. Received: {p.tolist()}."
                )
            return Param(label, "pchoice", {}, conditions, options, tuple(p.tolist()),
                         by_index=by_index)
        return Param(label, "choice", {}, conditions, options, by_index=by_index)
    if node.name not in _ARGS:
        raise SpaceError(
            f"Unsupported distribution {node.name!r} for label {label!r}. Expected one of "
            f"hp.{', hp.'.join(sorted(set(_ARGS) | CHOICE_KINDS | {'uniformint'}))}."
        )
    args = _literal_args(label, node)
    if node.name == "randint" and "high" not in args:
        args = {"low": 0.0, "high": args["low"]}
    param = Param(label, node.name, args, conditions, integer=label in integer_labels
                  or node.name == "randint")
    _check_args(param)
    return param


def _check_args(p: Param) -> None:
    a = p.args
    where = f"{hp_name(p)}({p.label!r}, {_fmt_args(p)})"
    infinite = [k for k, v in a.items() if not math.isfinite(v)]
    if infinite:
        raise SpaceError(
            f"Expected finite arguments in {where}; {', '.join(infinite)} "
            f"{'is' if len(infinite) == 1 else 'are'} not. Give finite bounds, mu, sigma and q "
            f"(for a wide positive range use hp.loguniform)."
        )
    if "low" in a and not a["low"] < a["high"]:
        raise SpaceError(f"Expected low < high in {where}. Swap or widen the bounds.")
    if "sigma" in a and not a["sigma"] > 0:
        raise SpaceError(f"Expected sigma > 0 in {where}. Give a positive spread.")
    if "q" in a and not a["q"] > 0:
        raise SpaceError(f"Expected a step q > 0 in {where}. Give a positive step.")
    _check_range(p, where)
    slip = (p.kind in ("loguniform", "qloguniform") and a["low"] > 0
            and a["high"] / a["low"] >= 10 and (a["high"] <= 1 or a["high"] >= _HUGE_EXPONENT))
    if slip:
        # the classic slip: hp.loguniform("lr", 1e-5, 1e-1) samples exp(1e-5)..exp(0.1),
        # bounds a decade or more apart as values, but within [1, e] as exponentials; and
        # hp.loguniform("C", 0.01, 100) samples up to exp(100) = 2.7e43
        warn_user(
            f"{where} samples values from {math.exp(a['low']):.6g} to "
            f"{math.exp(a['high']):.6g}: Hyperopt's log-uniform bounds are logarithms. For "
            f"values from {a['low']:g} to {a['high']:g} write {hp_name(p)}("
            f"{p.label!r}, math.log({a['low']:g}), math.log({a['high']:g}){_q_suffix(p)}).")


#: A log-uniform upper bound from which the values (``exp(40)`` = 2.4e17) are almost surely
#: values written as bounds: ``hp.loguniform("C", 0.01, 100)`` meant 0.01 to 100.
_HUGE_EXPONENT = 40.0

#: The largest and smallest exponents whose ``exp`` is a finite, non-zero float (about 1.8e308
#: and 5e-324, the smallest subnormal): a log-scale parameter samples ``exp`` of a number, and
#: past these it overflows (an OverflowError at the first trial) or underflows to 0.
_LOG_MAX = math.log(sys.float_info.max)
_LOG_MIN = math.log(math.ulp(0.0))
#: How many standard deviations from ``mu`` a (log)normal parameter must stay representable (a
#: draw beyond 8 has a chance of about 1e-15).
_SIGMAS = 8.0


def _check_range(p: Param, where: str) -> None:
    """Reject arguments that pass the basic checks but cannot be sampled: a range too wide for
    a float, a log-scale range whose exponentials overflow or underflow, ``randint`` bounds that
    are not whole numbers, and a step ``q`` so large that the parameter has one value only."""
    a = p.args
    if p.kind in ("uniform", "quniform") and not math.isfinite(a["high"] - a["low"]):
        raise SpaceError(
            f"Expected a range whose width high - low is a finite float in {where}; it "
            f"overflows. Narrow the bounds, or use hp.loguniform for a range over many orders "
            f"of magnitude.")
    if p.kind in ("normal", "qnormal") and not (math.isfinite(a["mu"] + _SIGMAS * a["sigma"])
                                               and math.isfinite(a["mu"] - _SIGMAS * a["sigma"])):
        raise SpaceError(
            f"Expected mu +- {_SIGMAS:g} * sigma to be finite floats in {where}; they overflow. "
            f"Give a smaller mu or sigma.")
    if p.kind in ("loguniform", "qloguniform"):
        low, high = a["low"], a["high"]
    elif p.kind in ("lognormal", "qlognormal"):
        low, high = a["mu"] - _SIGMAS * a["sigma"], a["mu"] + _SIGMAS * a["sigma"]
    else:
        low = high = 0.0
    if high > _LOG_MAX or low < _LOG_MIN:
        if p.kind in ("loguniform", "qloguniform"):
            spread = "low and high"
            hint = (f"Its bounds are logarithms: write math.log(value), e.g. "
                    f"{hp_name(p)}({p.label!r}, math.log(1e-5), math.log(1e-1)).")
        else:
            spread = f"mu +- {_SIGMAS:g} * sigma"
            hint = (f"mu and sigma are those of the value's logarithm, e.g. "
                    f"{hp_name(p)}({p.label!r}, math.log(1e-3), 1).")
        raise SpaceError(
            f"Expected log-scale arguments from {_LOG_MIN:.1f} to {_LOG_MAX:.1f} in {where}: "
            f"{hp_name(p)} samples exp() of a number between {spread}, and exp({low:g}) "
            f"to exp({high:g}) is not a finite, non-zero float. {hint}")
    if p.kind == "randint" and not (a["low"].is_integer() and a["high"].is_integer()):
        raise SpaceError(
            f"Expected whole numbers as the bounds of {where}. Round them, or use "
            f"hp.quniform / hp.uniform for a range that is not a whole-number one.")
    q = a.get("q")
    if q is not None and p.bounds is not None:
        low_value, high_value = (p.quantize(b) for b in p.bounds)
        if low_value == high_value:
            raise SpaceError(
                f"Expected a step q smaller than the range in {where}: every value it can "
                f"sample rounds to {low_value:g}. Use a smaller q, or a fixed value instead "
                f"of a hyperparameter.")


def _q_suffix(p: Param) -> str:
    return f", {p.args['q']:g}" if "q" in p.args else ""


def _is_blank(value: Any) -> bool:
    """Whether ``value`` stands for "no value" in a table: None, a float NaN, ``pd.NA``."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _fmt_args(p: Param) -> str:
    shown = {k: v for k, v in p.args.items() if not (k == "q" and hp_name(p) == "hp.uniformint")}
    return ", ".join(f"{k}={v:g}" for k, v in shown.items()) or f"{p.n_options} options"


def _conditions(raw: Any) -> tuple[Condition, ...]:
    conds = []
    for conj in raw:
        pairs = tuple(sorted((c.name, int(c.val)) for c in conj if c is not True))
        conds.append(pairs)
    return tuple(sorted(set(conds))) or ((),)


def _digest(value: Any) -> str:
    """A short, stable hash of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _option_display(options: Sequence[Any]) -> list[Any]:
    """The literals themselves (numpy scalars as Python's) when :func:`_plain_options`, else
    the option indices."""
    if _plain_options(options):
        return [_python_scalar(o.obj) for o in options]
    return list(range(len(options)))


def _plain_options(options: Sequence[Any]) -> bool:
    """Whether every option node is a str, int, float or bool literal, all of one kind: all
    text, all bools, or all numbers (ints and floats mixed, ``[1, 2.5, 4]``).

    A numpy scalar counts as its Python value (``np.arange(100, 600, 100)`` gives ints).
    Versions before session 15 read both differently (numpy scalars as objects, ints and
    floats as two kinds): :data:`_EARLIER_READING` reads as they did (see
    :attr:`SearchSpace.earlier_fingerprints`).
    """
    from hyperopt.pyll.base import Literal

    literal = [o.obj for o in options if isinstance(o, Literal)]
    earlier = _EARLIER_READING.get()
    if not earlier:
        literal = [_python_scalar(v) for v in literal]
    scalar = (str, int, float, bool)
    kinds = {float if type(v) is int and not earlier else type(v) for v in literal}
    return (len(literal) == len(options) and all(isinstance(v, scalar) for v in literal)
            and len(kinds) == 1)


def _python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (``np.int64(5)`` -> ``5``); else ``value``."""
    return value.item() if isinstance(value, np.generic) else value


#: Set while parsing a space as versions before session 15 did: numpy scalar options of a
#: choice, and options mixing ints and floats, were not "plain", so tables showed their index
#: and the fingerprint differed.
_EARLIER_READING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "_EARLIER_READING", default=False)


# ---------------------------------------------------------------------------------------------
# Matching a natural value to the graph (the inverse of space_eval)


def _matches(node: Any, value: Any, out: dict[str, Any],
             params: Mapping[str, Param]) -> Iterator[dict[str, Any]]:
    """Every way to explain ``value`` as an evaluation of ``node``, extending ``out``, lazily.

    Each way is a dict of internal values by label; a numeric value counts only where its
    parameter can take it (:meth:`Param.contains`), so a choice between ``uniformint(1, 10)``
    and ``uniform(0, 1)`` reads ``0.5`` as the second option, not as the first. The ways come
    one at a time (depth first), so a caller that needs two stops after two, however many
    there are.
    """
    name = node.name
    if name == "literal":
        if _same(node.obj, value):
            yield out
    elif name == "dict":
        kids = dict(node.named_args)
        if isinstance(value, Mapping) and set(value) == set(kids):
            yield from _match_all([kids[k] for k in value], list(value.values()), out, params)
    elif name == "pos_args":
        kids = node.pos_args
        if (not isinstance(value, (str, bytes, Mapping)) and isinstance(value, Sequence)
                and len(kids) == len(value)):
            yield from _match_all(kids, list(value), out, params)
    elif name == "switch":
        label = node.inputs()[0].arg["label"].obj
        for index, option in enumerate(node.inputs()[1:]):
            for start in _record(label, index, out, params):
                yield from _matches(option, value, start, params)
    elif name in ("float", "int"):
        if (name == "int" and params and isinstance(value, (float, np.floating))
                and not float(value).is_integer()):
            return  # scope.int(...) gives whole numbers: 61.5 is not one of its values
        yield from _matches(node.inputs()[0], value, out, params)
    elif name == "hyperopt_param":
        yield from _record(node.arg["label"].obj, value, out, params)
    # anything else is an arbitrary pyll function: its inverse is unknown


def _match_all(nodes: Sequence[Any], values: Sequence[Any], out: dict[str, Any],
               params: Mapping[str, Param]) -> Iterator[dict[str, Any]]:
    """The ways to explain ``values[i]`` by ``nodes[i]`` for every ``i`` at once.

    Depth first over the parts with a stack of iterators (no recursion per part, so a dict of
    thousands of entries is fine). When part ``k`` has no reading after the earlier parts'
    choices, it is tried once on its own: if it has none even then, no other choice of the
    earlier parts can help, and the search stops instead of trying every combination of them.
    """
    if not nodes:
        yield out
        return
    hopeless: dict[int, bool] = {}
    stack = [_matches(nodes[0], values[0], out, params)]
    produced = [False]  # whether the iterator at each depth gave anything yet
    while stack:
        depth = len(stack) - 1
        way = next(stack[-1], None)
        if way is None:
            stack.pop()
            if not produced.pop() and depth > 0:
                if depth not in hopeless:
                    hopeless[depth] = next(_matches(nodes[depth], values[depth], out, params),
                                           None) is None
                if hopeless[depth]:
                    return
            continue
        produced[-1] = True
        if depth + 1 == len(nodes):
            yield way
        else:
            stack.append(_matches(nodes[depth + 1], values[depth + 1], way, params))
            produced.append(False)


def _record(label: str, value: Any, out: dict[str, Any],
            params: Mapping[str, Param]) -> list[dict[str, Any]]:
    """``out`` with ``label = value`` if the parameter can take that value, else nothing.

    With ``params`` empty any number fits (to find where a value of the right shape fails).
    """
    if label in out:
        return [out] if out[label] == value else []
    if params and not params[label].contains(value):
        return []
    if not params and (isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                          np.floating))):
        return []
    return [{**out, label: value}]


def _first_distinct(ways: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` different ways (the same assignment may be reached along two paths)."""
    seen: list[dict[str, Any]] = []
    for way in ways:
        if way not in seen:
            seen.append(way)
            if len(seen) == n:
                break
    return seen


def _close(a: float, b: float) -> bool:
    """Equal up to floating-point rounding (a relative 1e-9)."""
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _same(a: Any, b: Any) -> bool:
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
    value = _python_scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(float(value))
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


# ---------------------------------------------------------------------------------------------
# The constants of a space (what describe() leaves out), for the fingerprint and resume check

#: A stored text longer than this is cut, with a hash of the whole, so the record stays small.
_MAX_TEXT = 300
#: A repr that shows a memory address changes on every run.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
#: Nodes that only shape a parameter's value (their content is in describe()).
_WRAPPERS = frozenset({"float", "int"})


def _read_constants(expr: Any, params: Mapping[str, Param]) -> dict[str, str]:
    """``where -> stable text`` for everything :meth:`Param.describe` does not cover (see
    :meth:`SearchSpace.constants`): constant parts of the graph, each rendered whole where no
    parameter lies below it, and the functions applied to parameters."""
    out: dict[str, str] = {}
    random = _random_nodes(expr)
    stack: list[tuple[Any, str, tuple[str, ...]]] = [(expr, "", ())]
    while stack:
        node, where, path = stack.pop()
        if id(node) not in random:
            out[_location(where, path)] = _shorten(_render(node))
        elif node.name == "switch":
            label = node.inputs()[0].arg["label"].obj
            if _plain_options(node.inputs()[1:]):
                continue  # describe() shows them
            kind = _HP_NAMES[params[label].kind]
            stack.extend((option, f"in option {i} of {kind}({label!r})", ())
                         for i, option in reversed(list(enumerate(node.inputs()[1:]))))
        elif node.name == "dict":
            stack.extend((kid, where, (*path, f"[{key!r}]"))
                         for key, kid in reversed(node.named_args))
        elif node.name == "pos_args":
            stack.extend((kid, where, (*path, f"[{i}]"))
                         for i, kid in reversed(list(enumerate(node.pos_args))))
        elif node.name != "hyperopt_param":
            if node.name not in _WRAPPERS:
                out[_location(where, path)] = f"{node.name}(...)"
            args = [*enumerate(node.pos_args), *node.named_args]
            stack.extend((kid, where, (*path, f" {node.name}() argument {key}"))
                         for key, kid in reversed(args))
    return out


def _random_nodes(expr: Any) -> set[int]:
    """The ids of the nodes with a hyperparameter at or below them."""
    memo: dict[int, bool] = {}
    for node in _post_order(expr):
        memo[id(node)] = node.name == "hyperopt_param" or any(
            memo[id(kid)] for kid in node.inputs())
    return {key for key, random in memo.items() if random}


def _post_order(expr: Any) -> list[Any]:
    """Every node once, each after all the nodes below it."""
    out: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            out.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((kid, False) for kid in node.inputs() if id(kid) not in seen)
    return out


def _location(where: str, path: tuple[str, ...]) -> str:
    """``at ['a'][0]``, ``in option 1 of hp.choice('net')`` or both joined."""
    at = f"at {''.join(path)}" if path else ""
    return " ".join(part for part in (where, at) if part) or "at the top level"


def _render(node: Any) -> str:
    """A constant part of the graph as text: dicts, lists (shown as tuples, as the objective
    gets them), literals and calls of pyll functions."""
    name = node.name
    if name == "literal":
        return _stable_text(node.obj)
    if name == "dict":
        return "{" + ", ".join(f"{key!r}: {_render(kid)}" for key, kid in node.named_args) + "}"
    items = [_render(kid) for kid in node.pos_args]
    if name == "pos_args":
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})"
    items += [f"{key}={_render(kid)}" for key, kid in node.named_args]
    return f"{name}({', '.join(items)})"


def _stable_text(value: Any) -> str:
    """A text for a constant that is the same in every run of the same code.

    Numbers, str, None and containers of them give their repr (numpy numbers as Python ones,
    sets sorted; a dataclass by its fields, each so rendered); functions and classes
    ``module.qualname`` (``math.tanh``), so editing a choice of activation functions is seen,
    though two lambdas of one scope look the same;
    ``functools.partial`` its function and arguments. Any other object gives its repr, unless
    that shows a memory address (``<Net object at 0x7f...>``, different in every run): then
    only its type's name, so such an object does not make every run a new study, at the cost
    that editing its attributes goes unseen.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_stable_text(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_stable_text(k)}: {_stable_text(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(_stable_text(v) for v in value)) + "}"
    if is_dataclass(value) and not isinstance(value, type):
        # its repr shows its fields' reprs, where a set's order changes between runs
        shown = ", ".join(f"{f.name}={_stable_text(getattr(value, f.name))}"
                          for f in fields(value) if f.repr)
        return f"{type(value).__module__}.{type(value).__qualname__}({shown})"
    if isinstance(value, functools.partial):
        args = [_stable_text(value.func), *(_stable_text(a) for a in value.args),
                *(f"{k}={_stable_text(v)}" for k, v in value.keywords.items())]
        return f"functools.partial({', '.join(args)})"
    if isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        return f"{getattr(value, '__module__', None) or ''}.{value.__qualname__}".lstrip(".")
    try:
        text = repr(value)
    except Exception:  # a broken __repr__: the type still says something
        text = " at 0x"
    if _ADDRESS.search(text):
        return f"<{type(value).__module__}.{type(value).__qualname__} object>"
    return text


def _shorten(text: str) -> str:
    """``text``, or its start and a hash of the whole when it is long (a large constant list)."""
    if len(text) <= _MAX_TEXT:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{text[:_MAX_TEXT // 2]}... ({len(text)} characters, sha256 {digest})"
