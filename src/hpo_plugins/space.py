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

import functools
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hpo_plugins._space_build import compile_builder
from hpo_plugins._space_constants import read_constants
from hpo_plugins._space_explain import (
    SHOWN_PROBLEMS,
    diagnose,
    did_you_mean,
    explained,
    looks_flat,
)
from hpo_plugins._space_match import first_distinct, matches
from hpo_plugins._space_param import (
    CHOICE_KINDS,
    Condition,
    Param,
    format_args,
    hp_name,
    same_value,
)
from hpo_plugins._space_read import EARLIER_READING, read_params
from hpo_plugins.exceptions import SpaceError

__all__ = ["CHOICE_KINDS", "INACTIVE", "Condition", "Param", "SearchSpace", "as_space"]

_logger = logging.getLogger(__name__)

#: Display value of a conditional parameter that is inactive in a trial, where a column needs a
#: value (TensorBoard's HParams); tables and CSV leave the cell empty (None / NaN) instead.
INACTIVE = "<inactive>"


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
        self.params: dict[str, Param] = read_params(self._expr)
        self._builder = compile_builder(self._expr)
        if not self.params:
            raise SpaceError(
                f"Expected a search space with at least one hyperparameter (hp.choice, "
                f"hp.uniform, ...). Received: {space!r}. Wrap the values to tune in hp "
                f"expressions, e.g. {{'lr': hp.loguniform('lr', -9, -2)}}."
            )
        self._constants = read_constants(self._expr, self.params)

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
                    f"{format_args(p)}): expected {p.support()}. Give such a value."
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
        ways = first_distinct(matches(self._expr, value, {}, self.params), 8)
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
        loose = first_distinct(matches(self._expr, value, {}, {}), 8)
        if loose:  # the shape fits: validate says which value does not, in the reading
            # with the fewest values out of their support (the option the user meant)
            self.validate(min(loose, key=self._out_of_support))

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
            if any(same_value(o, v) for o in p.options) and not same_value(p.options[int(v)], v):
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
        (:func:`hpo_plugins._space_explain.diagnose`); the flat one (``flat_problem``) the
        label or the value. A dict whose keys only labels explain (``mlp_layers``) is read as
        flat only, one whose keys only the nested value explains as nested only.
        """
        nested_only, flat_only = self._readings(value)
        if nested_only:
            flat_problem = None

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
            found = [i for i, o in enumerate(p.options) if same_value(o, v)]
            if not found and p.by_index:
                raise SpaceError(
                    f"Value {v!r} is not an option index of hp.choice({lbl!r}). Expected one of "
                    f"{list(p.options)}: its options are not plain literals of one kind (text, "
                    f"numbers or bools), so a flat dict, like tables and the CLI, gives the "
                    f"index of the option (space.constants() shows what each holds). Or give "
                    f"the nested natural value instead.")
            if not found:
                index = (isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                         and 0 <= int(v) < p.n_options)
                raise SpaceError(
                    f"Value {v!r} is not an option of hp.choice({lbl!r}). Expected one of "
                    f"{list(p.options)}." + (
                        f" If {v!r} is the index of an option (hyperopt.fmin's `best`, "
                        f"Hyperopt's points_to_evaluate or misc['vals'] hold indices), convert "
                        f"the dict first: hyperopt.space_eval(space, best)." if index else "")
                )
            out[lbl] = found[0]
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
        stable text (:func:`hpo_plugins._space_constants._stable_text`), so the record is plain
        JSON and the same in every run. A space of parameters only (choices over plain
        literals) has none.

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
        token = EARLIER_READING.set(True)
        try:
            earlier = SearchSpace(self._expr)
        finally:
            EARLIER_READING.reset(token)
        if earlier.fingerprint != self.fingerprint:
            pairs.append((earlier.fingerprint, earlier.parameters_fingerprint))
        return tuple(pairs)


def as_space(space: Any) -> SearchSpace:
    """Return ``space`` as a :class:`SearchSpace` (no copy if it already is one)."""
    return space if isinstance(space, SearchSpace) else SearchSpace(space)


def _is_blank(value: Any) -> bool:
    """Whether ``value`` stands for "no value" in a table: None, a float NaN, ``pd.NA``."""
    if value is None or type(value).__name__ == "NAType":
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _digest(value: Any) -> str:
    """A short, stable hash of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
