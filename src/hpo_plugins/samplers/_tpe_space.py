"""The model space of :class:`~hpo_plugins.samplers.TPESampler`: encodings and parameter groups.

**Encodings.** Each numeric parameter is modelled on a coordinate ``z`` in which its prior is
simple and its geometry natural:

==================================  =====================================================
kind                                ``z``
==================================  =====================================================
``uniform``, ``quniform``           ``(x - low) / (high - low)``, on ``[0, 1]``
``loguniform``, ``qloguniform``     ``(log x - low) / (high - low)`` (Hyperopt's log bounds)
``randint``                         ``(x - low + 1/2) / (high - low)``: each integer owns a
                                    cell of width ``1 / (high - low)``
``normal``, ``qnormal``             ``1/2 + (x - mu) / (sigma * sqrt(12))``, unbounded
``lognormal``, ``qlognormal``       the same on ``log x``
==================================  =====================================================

Bounded coordinates have a uniform prior on ``[0, 1]``; unbounded ones the declared normal,
which in ``z`` is centred on 1/2 with the standard deviation of the unit uniform
(``1/sqrt(12)``), so one bandwidth scale fits every kind. A proposal is decoded back to natural
units, rounded to ``q`` (quantised kinds) or to an integer (``randint``) and clipped into the
support, exactly the values Hyperopt's own prior can produce. The quantisation step, in ``z``
units, is also the smallest bandwidth the kernels may take. Choices (``choice``, ``pchoice``)
are categorical: an option index with a uniform (or the declared) prior.

**Groups.** The declared tree says which parameters are active together: parameters with the
same activation condition (the same alternatives of ``choice == option`` conjunctions) are
active in exactly the same trials. They form a :class:`Group`, modelled jointly on the trials
where it is active. Groups are ordered so that every choice a condition mentions is sampled
before the groups it gates (top-down through the tree).

Example:
    >>> from hpo_plugins import hp
    >>> from hpo_plugins.space import SearchSpace
    >>> space = SearchSpace({"m": hp.choice("m", [{"a": hp.uniform("a", 0, 1)},
    ...                                           {"b": hp.randint("b", 5)}])})
    >>> [g.labels for g in groups(space, multivariate=True)]
    [('m',), ('a',), ('b',)]
    >>> enc = encoding(space.params["b"])
    >>> enc.decode(enc.encode(np.array([0.0, 4.0]))).tolist()
    [0.0, 4.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hpo_plugins.samplers._tpe_kernels import Dims
from hpo_plugins.space import Condition, Param, SearchSpace

__all__ = ["Encoding", "Group", "dims_of", "encoding", "groups"]

#: Standard deviation of the unit uniform; unbounded priors get the same spread in ``z``.
PRIOR_SD = 1.0 / math.sqrt(12.0)
_TINY = 1e-300  # log of a zero produced by a quantised log kind


@dataclass(frozen=True)
class Encoding:
    """How one parameter is modelled (see the module doc).

    Attributes:
        param: The parameter.
        offset: ``z = (t(x) - offset) / scale`` where ``t`` is ``log`` for log kinds.
        scale: See ``offset``.
        bounded: Whether ``z`` lives on ``[0, 1]``.
        step: The quantisation step in ``z`` units (0 when continuous or log-quantised).
    """

    param: Param
    offset: float
    scale: float
    bounded: bool
    step: float

    @property
    def categorical(self) -> bool:
        """True for choices."""
        return self.param.is_choice

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Natural values to ``z`` (bounded ones clipped into ``[0, 1]``)."""
        t = np.log(np.maximum(x, _TINY)) if self.param.log else np.asarray(x, dtype=float)
        z = (t - self.offset) / self.scale
        return np.clip(z, 0.0, 1.0) if self.bounded else z

    def decode(self, z: np.ndarray) -> np.ndarray:
        """``z`` to natural values the parameter can take (rounded and clipped)."""
        t = self.offset + self.scale * z
        x = np.exp(t) if self.param.log else t
        p = self.param
        if p.kind == "randint":
            return np.clip(np.round(x), p.args["low"], p.args["high"] - 1.0)
        if p.q is not None:
            return np.round(x / p.q) * p.q
        bounds = p.bounds
        return x if bounds is None else np.clip(x, *bounds)


def encoding(param: Param) -> Encoding:
    """The :class:`Encoding` of a numeric (or, trivially, categorical) parameter."""
    a = param.args
    if param.is_choice:
        return Encoding(param, 0.0, 1.0, True, 0.0)
    if param.kind == "randint":
        width = a["high"] - a["low"]
        return Encoding(param, a["low"] - 0.5, width, True, 1.0 / width)
    if "low" in a:
        width = a["high"] - a["low"]
        step = 0.0 if param.q is None or param.log else param.q / width
        return Encoding(param, a["low"], width, True, step)
    scale = a["sigma"] * math.sqrt(12.0)
    step = 0.0 if param.q is None or param.log else param.q / scale
    return Encoding(param, a["mu"] - 0.5 * scale, scale, False, step)


@dataclass(frozen=True)
class Group:
    """Parameters active in exactly the same trials, modelled jointly.

    Attributes:
        labels: The parameters, numeric ones first then choices, each in space order.
        numeric: The encodings of the numeric parameters.
        categorical: The choices.
        condition: The shared activation condition (alternatives of conjunctions).
    """

    labels: tuple[str, ...]
    numeric: tuple[Encoding, ...]
    categorical: tuple[Param, ...]
    condition: tuple[Condition, ...]

    def is_active(self, flat: Mapping[str, object]) -> bool:
        """Whether the group is active given the choices made so far."""
        return any(all(flat.get(lbl) == idx for lbl, idx in conj) for conj in self.condition)


def groups(space: SearchSpace, *, multivariate: bool) -> list[Group]:
    """The space's groups, top-down (see the module doc); one per parameter if not
    ``multivariate``."""
    by_condition: dict[tuple[Condition, ...], list[Param]] = {}
    for param in space.params.values():
        by_condition.setdefault(param.conditions, []).append(param)
    members = list(by_condition.values())
    if not multivariate:
        members = [[p] for ps in members for p in ps]
    made = [_group(ps) for ps in members]
    depth = _depths(space)
    return sorted(made, key=lambda g: depth[g.labels[0]])


def _group(params: Sequence[Param]) -> Group:
    numeric = tuple(encoding(p) for p in params if not p.is_choice)
    categorical = tuple(p for p in params if p.is_choice)
    labels = tuple(e.param.label for e in numeric) + tuple(p.label for p in categorical)
    return Group(labels, numeric, categorical, params[0].conditions)


def _depths(space: SearchSpace) -> dict[str, int]:
    """Label -> nesting depth: one more than the deepest choice its condition mentions."""
    depth: dict[str, int] = {}

    def of(label: str) -> int:
        if label not in depth:
            refs = {lbl for conj in space.params[label].conditions for lbl, _ in conj}
            depth[label] = 1 + max((of(r) for r in refs), default=-1)
        return depth[label]

    for label in space.params:
        of(label)
    return depth


def dims_of(group: Group) -> Dims:
    """The :class:`~hpo_plugins.samplers._tpe_kernels.Dims` of a group."""
    bounded = np.array([e.bounded for e in group.numeric], dtype=bool)
    return Dims(
        low=np.where(bounded, 0.0, -np.inf),
        high=np.where(bounded, 1.0, np.inf),
        prior_sd=np.where(bounded, np.nan, PRIOR_SD),
        n_options=tuple(p.n_options for p in group.categorical),
        cat_prior=tuple(_cat_prior(p) for p in group.categorical),
    )


def _cat_prior(param: Param) -> np.ndarray:
    if param.kind == "pchoice":
        probs = np.asarray(param.probabilities, dtype=float)
        return probs / probs.sum()
    return np.full(param.n_options, 1.0 / param.n_options)
