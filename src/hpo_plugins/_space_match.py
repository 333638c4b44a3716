"""Matching a natural value back to flat parameters: the inverse of ``space_eval``, for
``enqueue`` and ``add_trial``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hpo_plugins._space_param import Param, same_value

__all__ = ["first_distinct", "matches"]


# ---------------------------------------------------------------------------------------------
# Matching a natural value to the graph (the inverse of space_eval)


def matches(node: Any, value: Any, out: dict[str, Any],
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
        if same_value(node.obj, value):
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
                yield from matches(option, value, start, params)
    elif name in ("float", "int"):
        if (name == "int" and params and isinstance(value, (float, np.floating))
                and not float(value).is_integer()):
            return  # scope.int(...) gives whole numbers: 61.5 is not one of its values
        yield from matches(node.inputs()[0], value, out, params)
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
    stack = [matches(nodes[0], values[0], out, params)]
    produced = [False]  # whether the iterator at each depth gave anything yet
    while stack:
        depth = len(stack) - 1
        way = next(stack[-1], None)
        if way is None:
            stack.pop()
            if not produced.pop() and depth > 0:
                if depth not in hopeless:
                    hopeless[depth] = next(matches(nodes[depth], values[depth], out, params),
                                           None) is None
                if hopeless[depth]:
                    return
            continue
        produced[-1] = True
        if depth + 1 == len(nodes):
            yield way
        else:
            stack.append(matches(nodes[depth + 1], values[depth + 1], way, params))
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


def first_distinct(ways: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Up to ``n`` different ways (the same assignment may be reached along two paths)."""
    seen: list[dict[str, Any]] = []
    for way in ways:
        if way not in seen:
            seen.append(way)
            if len(seen) == n:
                break
    return seen
