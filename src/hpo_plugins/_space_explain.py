"""Why a value does not fit a search space: the culprit named, for ``enqueue``'s error.

:meth:`hpo_plugins.space.SearchSpace.flatten` reads a user's value (the nested value the
objective receives, or a flat dict of labels) back into flat parameters. When no reading fits,
a bare "could not match" would leave the user to find the key that is missing, unknown or
misspelled, or the value outside its parameter's support, in a nested value by hand. This
module walks the value against the space once and says which, and where (``at ['opt']['lr']``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hpo_plugins._space_param import Param, format_args, hp_name, same_value

__all__ = ["SHOWN_PROBLEMS", "diagnose", "did_you_mean", "explained", "looks_flat"]


SHOWN_PROBLEMS = 3  # problems named in one message; the rest are counted


#: Where a parameter was read in the user's value: (path, what it was given, as shown).
_Place = tuple[tuple[Any, ...], Any, Any]


@dataclass
class _Fit:
    """How well a value fits a part of the space: the parts that fit, what does not, and
    what each parameter was given where (one parameter may sit in several places)."""

    matched: int = 0
    problems: list[str] = field(default_factory=list)
    given: dict[str, list[_Place]] = field(default_factory=dict)

    @property
    def score(self) -> int:
        """Higher for a closer fit: picks the option of a choice the user most likely meant."""
        return self.matched - len(self.problems)

    def add(self, other: _Fit) -> None:
        self.matched += other.matched
        self.problems.extend(other.problems)
        for label, places in other.given.items():
            self.given.setdefault(label, []).extend(places)

    def note(self, label: str, path: tuple[Any, ...], key: Any, shown: Any) -> _Fit:
        """Record that ``label`` was read as ``key`` at ``path``; returns self."""
        self.given.setdefault(label, []).append((path, key, shown))
        return self

    def conflicts(self, params: Mapping[str, Param]) -> list[str]:
        """One problem per parameter used in several places and given different values
        there: a value of the space has one value per parameter, so no reading fits it."""
        out = []
        for label, places in self.given.items():
            if all(same_value(places[0][1], key) for _, key, _ in places[1:]):
                continue
            where = _and([_subscript(path) or "the top level" for path, _, _ in places])
            values = _and([repr(shown) for _, _, shown in places])
            out.append(f"{hp_name(params[label])}({label!r}) is one parameter, used at "
                       f"{where}, and was given {values} there: give it the same value at "
                       f"every place (or use two parameters with their own labels)")
        return out


def looks_flat(value: Any) -> bool:
    """Whether ``value`` can be a flat dict ``{label: natural value}``: a non-empty dict of
    scalars (a choice's value in a flat dict is its option, a scalar or an index)."""
    return (isinstance(value, Mapping) and bool(value)
            and not any(_is_container(v) for v in value.values()))


def explained(value: Mapping[Any, Any], names: set[Any], others: set[Any]) -> bool:
    """Whether a key of ``value`` is one of ``names``, or is neither one of them nor of
    ``others`` but resembles one of ``names`` (a misspelling)."""
    candidates = sorted(name for name in names if isinstance(name, str))
    return any(key in names or (key not in others and _closest(key, candidates) is not None)
               for key in value)


def _is_container(value: Any) -> bool:
    return isinstance(value, Mapping) or (isinstance(value, Sequence)
                                          and not isinstance(value, (str, bytes)))


def diagnose(node: Any, value: Any, params: Mapping[str, Param],
              path: tuple[Any, ...]) -> _Fit:
    """What of ``value`` does not fit ``node`` (at ``path`` in the user's value), by part.

    The nested reading of ``SearchSpace.flatten``, walked once without backtracking: each
    problem names where it is (``['opt']['lr']``) and the culprit (a missing, unknown or
    misspelled key, a value outside its parameter's support, a literal that differs). A choice
    is read as its closest option. Used only to explain a value that no reading fits.
    """
    name = node.name
    if name == "literal":
        if same_value(node.obj, value):
            return _Fit(1)
        return _Fit(0, [f"{_where(path)}: expected {node.obj!r}, received {value!r}"])
    if name == "dict":
        return _diagnose_dict(dict(node.named_args), value, params, path)
    if name == "pos_args":
        return _diagnose_sequence(node.pos_args, value, params, path)
    if name == "switch":
        return _diagnose_choice(node, value, params, path)
    if name in ("float", "int"):
        if (name == "int" and isinstance(value, (float, np.floating))
                and not float(value).is_integer()):
            return _Fit(0, [f"{_where(path)}: expected a whole number (the space applies "
                            f"int() here), received {value!r}"])
        return diagnose(node.inputs()[0], value, params, path)
    if name == "hyperopt_param":
        label = node.arg["label"].obj
        return _diagnose_param(params[label], value, path).note(label, path, value, value)
    return _Fit(0, [f"{_where(path)}: the space computes this value with the function "
                    f"{name!r}, which cannot be inverted; give the parameters as a flat dict "
                    f"of labels instead"])


def _diagnose_dict(kids: Mapping[Any, Any], value: Any, params: Mapping[str, Param],
                   path: tuple[Any, ...]) -> _Fit:
    """Missing and unknown keys (an unknown one with the missing key it most resembles), then
    what does not fit under each key both have."""
    if not isinstance(value, Mapping):
        return _Fit(0, [f"{_where(path)}: expected a dict with keys {list(kids)}, received "
                        f"{value!r}"])
    missing = [k for k in kids if k not in value]
    fit = _Fit()
    for key in (k for k in value if k not in kids):
        close = _closest(key, [k for k in missing if isinstance(k, str)])
        hint = f" (did you mean {close!r}?)" if close is not None else ""
        fit.problems.append(f"unknown key {key!r} {_where(path)}{hint}")
        missing = [k for k in missing if k != close]  # named once, as the likely fix
    fit.problems.extend(f"missing key {k!r} {_where(path)}, for {_describe(kids[k], params)}"
                        for k in missing)
    for key in (k for k in value if k in kids):
        fit.matched += 1
        fit.add(diagnose(kids[key], value[key], params, (*path, key)))
    return fit


def _diagnose_sequence(kids: Sequence[Any], value: Any, params: Mapping[str, Param],
                       path: tuple[Any, ...]) -> _Fit:
    if not _is_container(value) or isinstance(value, Mapping) or len(value) != len(kids):
        return _Fit(0, [f"{_where(path)}: expected a list or tuple of {len(kids)} items, "
                        f"received {value!r}"])
    fit = _Fit(1)
    for index, (kid, item) in enumerate(zip(kids, value)):
        fit.add(diagnose(kid, item, params, (*path, index)))
    return fit


def _diagnose_choice(node: Any, value: Any, params: Mapping[str, Param],
                     path: tuple[Any, ...]) -> _Fit:
    """The closest option's problems; when no part of any option fits, the options."""
    label = node.inputs()[0].arg["label"].obj
    options = node.inputs()[1:]
    fits = [diagnose(option, value, params, path) for option in options]
    best = max(range(len(fits)), key=lambda i: fits[i].score)  # the first of equals
    fits[best].note(label, path, ("option", best), value)
    if not fits[best].problems:
        return fits[best]
    choice = f"{hp_name(params[label])}({label!r})"
    if not fits[best].matched:
        shown = [_describe(option, params) for option in options]
        either = ", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else shown[0]
        return _Fit(0, [f"{_where(path)}: {value!r} is not an option of {choice}: expected "
                        f"{either}"])
    note = f" (reading {_subscript(path) or 'the value'} as option {best} of {choice})"
    return _Fit(fits[best].matched, ["; ".join(fits[best].problems) + note], fits[best].given)


def _diagnose_param(param: Param, value: Any, path: tuple[Any, ...]) -> _Fit:
    if param.contains(value):
        return _Fit(1)
    what = f"{hp_name(param)}({param.label!r}, {format_args(param)})"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        reason = f"{value!r} (a {type(value).__name__}) is not a value of {what}"
    else:
        reason = f"{value!r} is outside the support of {what}"
    return _Fit(0, [f"{_where(path)}: {reason}: expected {param.support()}"])


def _describe(node: Any, params: Mapping[str, Param]) -> str:
    """What a part of the space holds, in a few words (for the options and missing keys)."""
    name = node.name
    if name == "literal":
        return repr(node.obj)
    if name == "dict":
        return f"a dict with keys {[k for k, _ in node.named_args]}"
    if name == "pos_args":
        return f"a list of {len(node.pos_args)} items"
    if name in ("float", "int"):
        return _describe(node.inputs()[0], params)
    if name in ("hyperopt_param", "switch"):
        label = (node if name == "hyperopt_param" else node.inputs()[0]).arg["label"].obj
        param = params[label]
        args = "" if param.is_choice else f", {format_args(param)}"
        return f"{hp_name(param)}({label!r}{args})"
    return f"the result of {name}"


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _where(path: tuple[Any, ...]) -> str:
    """Where ``path`` is in the user's value: ``at ['opt']['lr']``, or ``at the top level``."""
    return f"at {_subscript(path)}" if path else "at the top level"


def _subscript(path: tuple[Any, ...]) -> str:
    return "".join(f"[{key!r}]" for key in path)


def _closest(key: Any, candidates: Sequence[str]) -> str | None:
    """The candidate a misspelled ``key`` most likely meant (difflib), or None."""
    close = difflib.get_close_matches(key, candidates, n=1) if isinstance(key, str) else []
    return close[0] if close else None


def did_you_mean(key: Any, candidates: Sequence[str]) -> str:
    """`` (did you mean 'n'?)`` for the candidate closest to a misspelled key, or ''."""
    close = _closest(key, candidates)
    return f" (did you mean {close!r}?)" if close is not None else ""
