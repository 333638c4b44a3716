"""Reading a Hyperopt space's graph into labelled distributions (:class:`Param`), refusing
the arguments that cannot be sampled before any trial."""

from __future__ import annotations

import contextvars
import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hpo_plugins._space_param import (
    CHOICE_KINDS,
    HP_ARGS,
    HP_NAMES,
    Condition,
    Param,
    format_args,
    hp_name,
    python_scalar,
)
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import SpaceError

__all__ = ["EARLIER_READING", "plain_options", "read_params"]


# ---------------------------------------------------------------------------------------------
# Reading the pyll graph


def read_params(expr: Any) -> dict[str, Param]:
    """Every ``hp`` expression of the space graph ``expr`` as a :class:`Param`, by label, in the
    order the labels appear (see :func:`_label_order`), with its conditions of activity.

    Raises:
        SpaceError: A duplicate label, an unsupported expression or an argument that cannot be
            sampled, named with its label.
    """
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
            f"unique labels; rename one (labels name columns and must identify one parameter). "
            f"To use one parameter in several places (Keras Tuner's units_0 shared by every "
            f"depth of a layer-count choice), make the expression once, e.g. "
            f"units = hp.choice({exc.args[0]!r}, [...]), and put that same object in each "
            f"place."
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
            convert = (" Convert it with float(x)." if isinstance(value, numbers.Real)
                       or type(value).__name__ == "Decimal" else "")
            raise SpaceError(
                f"Expected argument {name!r} of {label!r} to be an int or a float. Received: "
                f"{value!r} (of type {type(value).__name__}).{convert}"
            )
        try:
            args[name] = float(value)
        except OverflowError:
            raise SpaceError(
                f"Expected argument {name!r} of {label!r} to be a number that fits a float "
                f"(at most about 1.8e308). Received: an int of {len(str(abs(value)))} "
                f"digits.") from None
    return args


def _make_param(label: str, info: Mapping[str, Any], switches: Mapping[str, list[Any]],
                integer_labels: set[str]) -> Param:
    node = info["node"]
    conditions = _conditions(info["conditions"])
    if not label.strip():
        kind = "hp.choice" if label in switches else HP_NAMES.get(node.name, node.name)
        raise SpaceError(
            f"Expected a non-empty label for every hyperparameter. Received: {label!r} in "
            f"{kind}. Labels name the columns of tables, CSV and TensorBoard: give it a name.")
    if label in switches:
        by_index = not plain_options(switches[label])
        options = tuple(_option_display(switches[label]))
        if not options:
            raise SpaceError(
                f"Expected at least one option in hp.choice({label!r}, ...); received an empty "
                f"list. Give the options, or remove the choice."
            )
        if node.name == "categorical":
            from hyperopt.pyll import rec_eval

            raw = rec_eval(node.arg["p"])
            try:
                p = np.asarray(raw, dtype=float)
            except (TypeError, ValueError, OverflowError):
                p = np.asarray([np.nan])
            if p.ndim != 1 or not np.isfinite(p).all():
                raise SpaceError(
                    f"Expected the probabilities of hp.pchoice({label!r}) to be numbers, one "
                    f"per option: hp.pchoice(label, [(probability, value), ...]), the "
                    f"probability first. Received: {raw!r}.")
            if not np.isclose(p.sum(), 1.0) or (p < 0).any():
                raise SpaceError(
                    f"Expected the probabilities of hp.pchoice({label!r}) to be non-negative "
                    f"and sum to 1. Received: {p.tolist()}."
                )
            return Param(label, "pchoice", {}, conditions, options, tuple(p.tolist()),
                         by_index=by_index)
        return Param(label, "choice", {}, conditions, options, by_index=by_index)
    if node.name not in HP_ARGS:
        raise SpaceError(
            f"Unsupported distribution {node.name!r} for label {label!r}. Expected one of "
            f"hp.{', hp.'.join(sorted(set(HP_ARGS) | CHOICE_KINDS | {'uniformint'}))}."
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
    where = f"{hp_name(p)}({p.label!r}, {format_args(p)})"
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
    if p.kind == "randint" and not (a["low"] >= -2.0**63 and a["high"] <= 2.0**63):
        raise SpaceError(
            f"Expected bounds from -2**63 to 2**63 in {where}: the sampler draws 64-bit "
            f"integers. Use hp.quniform or hp.uniform for a wider range.")
    q = a.get("q")
    if q is not None and p.bounds is not None:
        low_value, high_value = (p.quantize(b) for b in p.bounds)
        if not (math.isfinite(low_value) and math.isfinite(high_value)):
            raise SpaceError(
                f"Expected a step q that the bounds divide into a finite number of steps in "
                f"{where}: with q={q!r} the values round to {low_value!r} and {high_value!r}. "
                f"Use a larger q.")
        if low_value == high_value:
            raise SpaceError(
                f"Expected a step q smaller than the range in {where}: every value it can "
                f"sample rounds to {low_value:g}. Use a smaller q, or a fixed value instead "
                f"of a hyperparameter.")


def _q_suffix(p: Param) -> str:
    return f", {p.args['q']:g}" if "q" in p.args else ""


def _conditions(raw: Any) -> tuple[Condition, ...]:
    conds = []
    for conj in raw:
        pairs = tuple(sorted((c.name, int(c.val)) for c in conj if c is not True))
        conds.append(pairs)
    return tuple(sorted(set(conds))) or ((),)


def _option_display(options: Sequence[Any]) -> list[Any]:
    """The literals themselves (numpy scalars as Python's) when :func:`plain_options`, else
    the option indices."""
    if plain_options(options):
        return [python_scalar(o.obj) for o in options]
    return list(range(len(options)))


def plain_options(options: Sequence[Any]) -> bool:
    """Whether every option node is a str, int, float or bool literal, all of one kind: all
    text, all bools, or all numbers (ints and floats mixed, ``[1, 2.5, 4]``).

    A numpy scalar counts as its Python value (``np.arange(100, 600, 100)`` gives ints).
    Versions before session 15 read both differently (numpy scalars as objects, ints and
    floats as two kinds): :data:`EARLIER_READING` reads as they did (see
    :attr:`SearchSpace.earlier_fingerprints`).
    """
    from hyperopt.pyll.base import Literal

    literal = [o.obj for o in options if isinstance(o, Literal)]
    earlier = EARLIER_READING.get()
    if not earlier:
        literal = [python_scalar(v) for v in literal]
    scalar = (str, int, float, bool)
    kinds = {float if type(v) is int and not earlier else type(v) for v in literal}
    return (len(literal) == len(options) and all(isinstance(v, scalar) for v in literal)
            and len(kinds) == 1)


#: Set while parsing a space as versions before session 15 did: numpy scalar options of a
#: choice, and options mixing ints and floats, were not "plain", so tables showed their index
#: and the fingerprint differed.
EARLIER_READING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "EARLIER_READING", default=False)
