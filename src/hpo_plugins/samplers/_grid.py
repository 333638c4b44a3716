"""Grid search over a discrete, tree-structured Hyperopt space.

The grid of a conditional space is the union over its branches, not the product of every label:
``hp.choice("m", [{"a": hp.choice("a", [1, 2])}, {"b": hp.quniform("b", 0, 1, 0.5)}])`` has
2 + 3 = 5 points. The grid is never materialised: it is kept as a tree of products (a node's
labels and sub-choices vary independently) and unions (a choice's options), so that point ``i``
is decoded in time proportional to the number of labels, and the grid's size is known without
enumerating it.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_plugins._checks import check_bool
from hpo_plugins.exceptions import SearchSpaceExhausted, SpaceError
from hpo_plugins.samplers._base import History, Sampler
from hpo_plugins.space import Param, SearchSpace

__all__ = ["MAX_BRANCHES", "MAX_GRID_SIZE", "GridSampler"]

_logger = logging.getLogger(__name__)

#: Largest grid :class:`GridSampler` accepts: beyond it a grid search cannot finish.
MAX_GRID_SIZE = 10_000_000

#: Largest number of branches enumerated for spaces that share a label between branches.
MAX_BRANCHES = 10_000

_RANDOM_TRIES = 8  # uniform draws before scanning for a free point (the grid is mostly held)


class GridSampler(Sampler):
    """Try every point of a discrete search space once.

    The grid holds, for each branch of the space's choices, every combination of:

    * ``hp.choice`` / ``hp.pchoice``: every option (a choice whose options hold parameters
      contributes each option's own sub-grid); a grid ignores ``pchoice``'s probabilities, so
      an option of probability 0 is tried too (leave it out of the space to skip it);
    * ``hp.randint`` / ``hp.uniformint``: every integer in the range;
    * ``hp.quniform`` / ``hp.qloguniform``: every multiple of ``q`` that Hyperopt's rounding
      (``round(x / q) * q``) produces from ``x`` between the natural bounds, so a bound on a
      half step adds no point (``quniform(0.5, 10.5, 1)``: 1 to 10, as Hyperopt draws).

    Continuous (``uniform``, ``loguniform``, ``normal``, ``lognormal``) and unbounded
    (``qnormal``, ``qlognormal``) parameters have no grid: :meth:`check_space` rejects them, as
    it rejects grids of more than :data:`MAX_GRID_SIZE` points. A space that uses one ``hp``
    node in several branches is enumerated branch by branch, up to :data:`MAX_BRANCHES`
    combinations of its choices.

    A point is *held* once any trial of the study has its parameters, whatever the trial's state
    (COMPLETE, PRUNED, FAIL, RUNNING or WAITING), so a failed point is not retried.
    ``sample`` returns a point that no trial holds and raises
    :class:`~hpo_plugins.exceptions.SearchSpaceExhausted` when none is left; the study may then
    run without a trial limit (``finite``) and inserts each point at most once (``deduplicate``).

    Args:
        shuffle: When True (default) each trial takes a free point drawn with the trial's own
            ``rng``: reproducible for a seeded study, and parallel workers rarely reach for the
            same point. When False the points are taken in a fixed order: labels in the order
            of the space, the first varying slowest; options, integers and steps ascending.

    Raises:
        ConfigurationError: ``shuffle`` is not a bool.

    Example:
        >>> import numpy as np
        >>> from hpo_plugins import hp
        >>> from hpo_plugins import Direction
        >>> from hpo_plugins.samplers import GridSampler, History
        >>> from hpo_plugins.space import SearchSpace
        >>> space = SearchSpace({"n": hp.choice("n", [1, 2]), "x": hp.quniform("x", 0, 1, 0.5)})
        >>> sampler = GridSampler(shuffle=False)
        >>> sampler.grid_size(space)
        6
        >>> sampler.sample(space, History([], Direction.MINIMIZE), np.random.default_rng(0))
        {'n': 0, 'x': 0.0}
    """

    deduplicate = True
    finite = True

    def __init__(self, *, shuffle: bool = True) -> None:
        self.shuffle = check_bool("shuffle", shuffle)
        self._grids: dict[str, _Node] = {}  # space fingerprint -> grid; a pure function of it
        # the canonical key of each trial seen, so that an ask costs a look-up per trial, not a
        # key built afresh for each (a trial's params never change once it exists)
        self._held: dict[tuple[Any, ...], str] = {}

    def check_space(self, space: SearchSpace) -> None:
        """Raise :class:`SpaceError` unless ``space`` has a grid of at most MAX_GRID_SIZE."""
        self._grid(space)

    def grid_size(self, space: SearchSpace) -> int:
        """Number of points of the grid of ``space``.

        Raises:
            SpaceError: The space has no finite grid (see :meth:`check_space`).
        """
        return self._grid(space).size

    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        """A grid point no trial of ``history`` holds (see the class doc).

        Raises:
            SearchSpaceExhausted: Every grid point is held by a trial.
            SpaceError: The space has no finite grid.
        """
        grid = self._grid(space)
        held = self._held_keys(space, history)
        candidates = _random_order(grid.size, rng) if self.shuffle else iter(range(grid.size))
        for index in candidates:
            point = grid.point(index)
            if _canonical_text(space, point) not in held:
                return point
        raise SearchSpaceExhausted(
            f"All {grid.size} points of the grid are held by trials of this study (in any "
            f"state, failed ones included); GridSampler has nothing new to propose."
        )

    def _held_keys(self, space: SearchSpace, history: History) -> set[str]:
        """The canonical keys of the trials of ``history`` (as text, whose hash Python keeps),
        each built once per trial.

        A trial is known by its space, id, number and start time (as the pruners' curve memo
        knows it), so studies that share the sampler do not mix; a trial without a start time
        was not read from a storage (built by hand) and is keyed afresh. Keys of trials no
        longer seen are dropped once the memo holds twice as many as the history.
        """
        memo, keys = self._held, set()
        for trial in history.trials:
            if not trial.params:
                continue
            if trial.datetime_start is None:
                keys.add(_canonical_text(space, trial.params))
                continue
            ident = (space.fingerprint, trial.trial_id, trial.number, trial.datetime_start)
            key = memo.get(ident)
            if key is None:
                key = memo[ident] = _canonical_text(space, trial.params)
            keys.add(key)
        if len(memo) > 2 * len(history.trials) + 16:
            self._held = {}
        return keys

    def _grid(self, space: SearchSpace) -> _Node:
        key = space.fingerprint
        grid = self._grids.get(key)
        if grid is None:
            grid = _build_grid(space)
            _logger.debug("Grid of %d points for %r", grid.size, space)
            self._grids[key] = grid
        return grid

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_grids"] = {}  # rebuilt on demand; keeps pickles (child processes) small
        state["_held"] = {}
        return state


def _canonical_key(space: SearchSpace, params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable key equal for equal configurations (ints as int, floats to 12 digits)."""
    out: list[tuple[str, Any]] = []
    for label, value in params.items():
        param = space.params.get(label)
        if param is not None and (param.is_choice or param.kind == "randint"):
            out.append((label, int(value)))
        elif isinstance(value, (int, float, np.integer, np.floating)):
            out.append((label, float(f"{float(value):.12g}")))
        else:
            out.append((label, repr(value)))
    return tuple(sorted(out))


def _canonical_text(space: SearchSpace, params: Mapping[str, Any]) -> str:
    """:func:`_canonical_key` as text: a str keeps its hash, so a set of many is built fast."""
    return repr(_canonical_key(space, params))


def _random_order(size: int, rng: np.random.Generator) -> Iterator[int]:
    """A few uniform draws, then every index once from a random start (wrapping around).

    The draws give a uniform free point while most of the grid is free; the scan bounds the
    work when most of it is held.
    """
    if size == 0:
        return
    for _ in range(_RANDOM_TRIES):
        yield int(rng.integers(size))
    start = int(rng.integers(size))
    for offset in range(size):
        yield (start + offset) % size


# ---------------------------------------------------------------------------------------------
# The grid as a tree of products and unions


@dataclass(frozen=True)
class _Axis:
    """The values of one label: ``start + i`` (integers) or ``(start + i) * step``."""

    label: str
    start: int
    size: int
    step: float | None = None

    def value(self, i: int) -> int | float:
        k = self.start + i
        return k if self.step is None else float(k * self.step)  # as Param.quantize computes


class _Union:
    """A choice between sub-grids; ``label`` (if any) receives the option's index."""

    __slots__ = ("label", "offsets", "options", "size")

    def __init__(self, label: str | None, options: tuple[_Node, ...]) -> None:
        self.label = label
        self.options = options
        self.offsets = list(itertools.accumulate((n.size for n in options), initial=0))
        self.size: int = self.offsets[-1]

    def decode(self, index: int, out: dict[str, Any]) -> None:
        option = bisect.bisect_right(self.offsets, index) - 1
        if self.label is not None:
            out[self.label] = option
        self.options[option].decode(index - self.offsets[option], out)


_Factor = _Axis | _Union


class _Node:
    """The product of independent factors, with some labels fixed (fallback branches)."""

    __slots__ = ("factors", "fixed", "size")

    def __init__(self, factors: tuple[_Factor, ...],
                 fixed: tuple[tuple[str, int], ...] = ()) -> None:
        self.factors = factors
        self.fixed = fixed
        self.size: int = math.prod(f.size for f in factors)

    def point(self, index: int) -> dict[str, Any]:
        """Grid point number ``index`` as flat internal parameters."""
        out: dict[str, Any] = {}
        self.decode(index, out)
        return out

    def decode(self, index: int, out: dict[str, Any]) -> None:
        out.update(self.fixed)
        digits = []
        for factor in reversed(self.factors):  # the first factor varies slowest
            index, digit = divmod(index, factor.size)
            digits.append(digit)
        for factor, digit in zip(self.factors, reversed(digits)):  # labels in space order
            if isinstance(factor, _Axis):
                out[factor.label] = factor.value(digit)
            else:
                factor.decode(digit, out)


def _build_grid(space: SearchSpace) -> _Node:
    _check_discrete(space)
    structural = {c for p in space.params.values() for conj in p.conditions for c, _ in conj}
    axes = {lbl: _axis(p) for lbl, p in space.params.items() if lbl not in structural}
    grid = _tree_grid(space, structural, axes) or _branch_grid(space, structural, axes)
    if grid.size > MAX_GRID_SIZE:
        raise _too_large(f"{grid.size:,}")
    return grid


def _too_large(size: str) -> SpaceError:
    return SpaceError(
        f"The grid over this space has {size} points, more than GridSampler's limit of "
        f"{MAX_GRID_SIZE:,}. Use fewer values (a larger step q, narrower bounds, fewer options) "
        f"or a sampler that does not enumerate, such as HyperoptTPESampler."
    )


def _tree_grid(space: SearchSpace, structural: set[str],
               axes: Mapping[str, _Axis]) -> _Node | None:
    """The grid as nested products, when every label sits on exactly one branch path."""
    if any(len(p.conditions) != 1 for p in space.params.values()):
        return None
    by_path: dict[frozenset[tuple[str, int]], list[str]] = {}
    for label, p in space.params.items():
        by_path.setdefault(frozenset(p.conditions[0]), []).append(label)
    placed: list[str] = []

    def node(path: frozenset[tuple[str, int]]) -> _Node:
        factors: list[_Factor] = []
        for label in by_path.get(path, []):
            placed.append(label)
            if label not in structural:
                factors.append(axes[label])
                continue
            options = range(space.params[label].n_options)
            factors.append(_Union(label, tuple(node(path | {(label, i)}) for i in options)))
        return _Node(tuple(factors))

    root = node(frozenset())
    return root if len(placed) == len(space.params) else None


def _branch_grid(space: SearchSpace, structural: set[str],
                 axes: Mapping[str, _Axis]) -> _Node:
    """The grid as a union of products, one per assignment of the active structural choices.

    Used for spaces where a parameter is shared between branches (several activation
    conditions). Building it visits every branch, so the number of branches is capped.
    """
    choices = [p for p in space.params.values() if p.label in structural]
    branches: list[_Node] = []
    total = 0
    for assign in _assignments(choices, {}):
        if len(branches) == MAX_BRANCHES:
            raise SpaceError(
                f"The space shares hyperparameters between branches and has more than "
                f"{MAX_BRANCHES:,} combinations of its choices; GridSampler enumerates such "
                f"spaces branch by branch and stops there. Give each branch its own labels, or "
                f"use fewer nested choices."
            )
        active = [lbl for lbl in space.active(assign) if lbl not in structural]
        branches.append(_Node(tuple(axes[lbl] for lbl in active), tuple(assign.items())))
        total += branches[-1].size
        if total > MAX_GRID_SIZE:
            raise _too_large(f"more than {MAX_GRID_SIZE:,}")
    return _Node((_Union(None, tuple(branches)),))


def _assignments(choices: list[Param], assign: dict[str, int]) -> Iterator[dict[str, int]]:
    """Every assignment of the choices that are active (depth first, options ascending)."""
    pending = next((p for p in choices if p.label not in assign and p.is_active(assign)), None)
    if pending is None:
        yield assign
        return
    for option in range(pending.n_options):
        yield from _assignments(choices, {**assign, pending.label: option})


# ---------------------------------------------------------------------------------------------
# One label's values


_CONTINUOUS_FIX = {
    "uniform": "hp.quniform({label!r}, {low:g}, {high:g}, q)",
    "loguniform": "hp.qloguniform({label!r}, {low:g}, {high:g}, q)",
    "normal": "hp.quniform({label!r}, low, high, q)",
    "lognormal": "hp.qloguniform({label!r}, low, high, q)",
    "qnormal": "hp.quniform({label!r}, low, high, {q:g})",
    "qlognormal": "hp.qloguniform({label!r}, low, high, {q:g})",
}


def _check_discrete(space: SearchSpace) -> None:
    problems = [_problem(p) for p in space.params.values() if p.kind in _CONTINUOUS_FIX]
    if problems:
        raise SpaceError(
            "GridSampler needs a finite set of values for every parameter. "
            + " ".join(problems)
        )


def _problem(p: Param) -> str:
    what = "is continuous" if p.q is None else "is unbounded"
    fix = _CONTINUOUS_FIX[p.kind].format(label=p.label, **p.args)
    return (
        f"{p.label!r} (hp.{p.kind}) {what}: use {fix} with a step q, or "
        f"hp.choice({p.label!r}, [...]) with the values to try."
    )


def _axis(p: Param) -> _Axis:
    if p.is_choice:
        return _Axis(p.label, 0, p.n_options)
    if p.kind == "randint":
        start, stop = int(p.args["low"]), int(p.args["high"])
        return _Axis(p.label, start, stop - start)
    low, high = p.bounds or (0.0, 0.0)  # quniform, qloguniform: natural bounds
    q = p.q or 1.0
    # Hyperopt draws x in [low, high) and gives round(x / q) * q: the multiple k * q is drawn
    # when (k - 1/2, k + 1/2) meets [low / q, high / q) in more than a point. So a bound on a
    # half step adds nothing: quniform(0.5, 10.5, 1) gives 1 to 10, and quniform(0, 14, 4)
    # gives 0 to 12 (rounding the bounds gave 0 to 10, and 0 to 16).
    # (a relative 1e-9 absorbs the rounding of bounds that binary floats cannot hold: 0.15
    # / 0.1 is 1.4999999999999998, which would add 0.1)
    first = math.floor(low / q - 0.5 + 1e-9) + 1
    last = math.ceil(high / q + 0.5 - 1e-9) - 1
    return _Axis(p.label, first, max(last - first + 1, 1), q)
