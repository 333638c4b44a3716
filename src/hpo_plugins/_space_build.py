"""Build a space's natural value from flat parameters without Hyperopt's graph evaluator.

``hyperopt.space_eval`` sorts the whole expression graph and evaluates it through
``pyll.rec_eval`` on every call: about 0.2 ms for a two-parameter space and 0.7 ms for ten, paid
at least twice per trial (the natural value stored at ``ask``, and ``trial.params``). Spaces are
almost always made of a handful of node kinds: literals, dicts, lists and tuples (``pos_args``),
``hp.choice`` (``switch``), the ``float``/``int`` casts Hyperopt wraps around distributions, and
the parameters themselves. :func:`compile_builder` turns such a graph once into nested Python
closures that compute exactly what ``space_eval`` computes for those kinds (tuples for lists and
tuples, only the chosen option of a ``switch`` evaluated). A graph with any other node (a user's
own ``pyll`` function, arithmetic on parameters) is not compiled; the caller then keeps using
``space_eval``, as it does when a compiled builder meets flat parameters it cannot handle, so
errors and unusual cases behave exactly as Hyperopt's.

Example:
    >>> from hyperopt import hp
    >>> from hyperopt.pyll import as_apply
    >>> build = compile_builder(as_apply({"x": hp.uniform("x", 0, 1),
    ...                                   "n": hp.choice("n", [[1, 2], "flat"])}))
    >>> build({"x": 0.5, "n": 0})
    {'n': (1, 2), 'x': 0.5}
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Builder", "compile_builder"]

Builder = Callable[[Mapping[str, Any]], Any]
"""Flat internal parameters -> the natural value (may raise on parameters it cannot use)."""


def compile_builder(node: Any) -> Builder | None:
    """A builder for the ``pyll`` graph ``node``, or None if it holds a node kind not handled."""
    name = node.name
    if name == "literal":
        obj = node.obj
        return lambda flat: obj
    if name == "hyperopt_param":
        label = node.arg["label"].obj
        return lambda flat: flat[label]
    if name in ("float", "int") and len(node.pos_args) == 1 and not node.named_args:
        inner = compile_builder(node.pos_args[0])
        if inner is None:
            return None
        cast = float if name == "float" else int
        return lambda flat: cast(inner(flat))
    if name == "dict" and not node.pos_args:
        named = [(key, compile_builder(child)) for key, child in node.named_args]
        if any(build is None for _, build in named):
            return None
        items = [(key, build) for key, build in named if build is not None]
        return lambda flat: {key: build(flat) for key, build in items}
    if name == "pos_args" and not node.named_args:
        return _sequence([compile_builder(child) for child in node.pos_args])
    if name == "switch" and not node.named_args:
        return _switch(node)
    return None


def _sequence(children: list[Builder | None]) -> Builder | None:
    if any(build is None for build in children):
        return None
    kids = [build for build in children if build is not None]
    return lambda flat: tuple(build(flat) for build in kids)


def _switch(node: Any) -> Builder | None:
    """``hp.choice``: only the chosen option is built (options of others may be inactive)."""
    index_node, *option_nodes = node.pos_args
    index = compile_builder(index_node)
    options = [compile_builder(option) for option in option_nodes]
    if index is None or any(build is None for build in options):
        return None
    chosen = [build for build in options if build is not None]

    def build(flat: Mapping[str, Any]) -> Any:
        position = operator.index(index(flat))  # a float index is an error, as in Hyperopt
        if position < 0:
            raise IndexError(f"option {position} of {len(chosen)}")
        return chosen[position](flat)

    return build
