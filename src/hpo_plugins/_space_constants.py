"""A stable text for everything a space holds besides its distributions (constants, objects,
functions), for the study's fingerprint and the resume check."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from hpo_plugins._space_param import HP_NAMES, Param
from hpo_plugins._space_read import plain_options

__all__ = ["read_constants"]


# ---------------------------------------------------------------------------------------------
# The constants of a space (what describe() leaves out), for the fingerprint and resume check

#: A stored text longer than this is cut, with a hash of the whole, so the record stays small.
_MAX_TEXT = 300
#: A repr that shows a memory address changes on every run.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
#: Nodes that only shape a parameter's value (their content is in describe()).
_WRAPPERS = frozenset({"float", "int"})


def read_constants(expr: Any, params: Mapping[str, Param]) -> dict[str, str]:
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
            if plain_options(node.inputs()[1:]):
                continue  # describe() shows them
            kind = HP_NAMES[params[label].kind]
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
