"""Hyperopt's ``hp`` expressions, as ``from hpo_plugins import hp`` gives them.

Every function is Hyperopt's own (``hp.choice``, ``hp.uniform``, ``hp.loguniform``...), so a
space written with ``from hyperopt import hp`` is the same space. Two additions, for code
ported from elsewhere:

* ``hp.uniformint(label, low, high, q=32)`` is refused: Hyperopt's ``uniformint`` replaces any
  ``q`` with 1 without a word, so a step silently vanished. The message gives the expression
  with a step.
* Keras Tuner's and Optuna's names (``hp.Int``, ``hp.Float``, ``hp.Choice``, ``hp.Boolean``,
  ``hp.Fixed``, ``suggest_int``...) raise an ``AttributeError`` that names the expression to
  write instead of Python's bare "has no attribute".
"""

from __future__ import annotations

from typing import Any

from hyperopt.hp import (
    choice,
    lognormal,
    loguniform,
    normal,
    pchoice,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from hyperopt.hp import uniformint as _hyperopt_uniformint

from hpo_plugins.exceptions import SpaceError

__all__ = ["choice", "lognormal", "loguniform", "normal", "pchoice", "qlognormal",
           "qloguniform", "qnormal", "quniform", "randint", "uniform", "uniformint"]

#: Other libraries' space functions and the ``hp`` expression to write instead.
_FOREIGN = {
    "Int": "hp.uniformint(label, low, high) for every integer, or, with a step, "
           "hp.choice(label, list(range(low, high + 1, step))) (Keras Tuner's hp.Int)",
    "Float": "hp.uniform(label, low, high), or hp.loguniform(label, math.log(low), "
             "math.log(high)) for sampling='log' (Keras Tuner's hp.Float)",
    "Choice": "hp.choice(label, [option, ...]) (Keras Tuner's hp.Choice)",
    "Boolean": "hp.choice(label, [False, True]) (Keras Tuner's hp.Boolean)",
    "Fixed": "the plain value itself in the space (Keras Tuner's hp.Fixed)",
    "suggest_int": "hp.uniformint(label, low, high), or hp.choice(label, "
                   "list(range(low, high + 1, step))) with a step (Optuna's suggest_int)",
    "suggest_float": "hp.uniform(label, low, high), or hp.loguniform(label, math.log(low), "
                     "math.log(high)) for log=True (Optuna's suggest_float)",
    "suggest_categorical": "hp.choice(label, [option, ...]) (Optuna's suggest_categorical)",
}


def uniformint(label: str, *args: Any, **kwargs: Any) -> Any:
    """Hyperopt's ``hp.uniformint(label, low, high)``: an integer in ``[low, high]``, each value
    as likely (the two ends half as likely, as Hyperopt rounds a uniform draw).

    Raises:
        SpaceError: A ``q`` other than 1, which Hyperopt would silently replace with 1.
    """
    q = kwargs.get("q", args[2] if len(args) > 2 else 1)
    if q != 1:
        raise SpaceError(
            f"Expected hp.uniformint({label!r}, low, high) without a step: Hyperopt replaces "
            f"any q with 1. Received q={q!r}. For integers on a grid of {q!r}, write "
            f"hp.choice({label!r}, list(range(low, high + 1, {q!r}))) (each value as likely), "
            f"or scope.int(hp.quniform({label!r}, low - {q!r} / 2, high + {q!r} / 2, {q!r})) "
            f"for an ordered range (from hyperopt.pyll import scope).")
    kwargs.pop("q", None)
    return _hyperopt_uniformint(label, *args[:2], **kwargs)


def __getattr__(name: str) -> Any:
    if name in _FOREIGN:
        raise AttributeError(
            f"hp has no {name!r}: spaces are written in Hyperopt's language. Write "
            f"{_FOREIGN[name]}; see docs/guide.md, 'Search spaces'.")
    raise AttributeError(f"module 'hpo_plugins.hp' has no attribute {name!r}")
