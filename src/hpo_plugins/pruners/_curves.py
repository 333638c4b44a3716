"""Curves indexed for the questions pruners ask, remembered between calls.

A pruner is asked after every report, with a fresh snapshot of every trial of the study. Read
naively, each question ("the best value up to step t", "the value at the first step >= r", "the
step before the last") scans a whole curve, so one decision costs the total length of all
curves: with 200 trials of 10,000 reports, 30 to 70 ms per report, many times the training step
it judges. A :class:`Curve` answers each question with a binary search; a :class:`CurveMemo`
keeps the curves of a study's trials between calls and, for a running trial whose curve only
grew since the last call, indexes only the new points.

Reusing a curve is safe because a trial's curve only grows at its end: :meth:`Trial.report
<hpo_plugins.Trial.report>` refuses steps that go back, and a second report at the last step
replaces only the last value. The memo checks, at every call, that the curve it holds is a
prefix of the trial's (same length and last point, or its last point found where the new points
begin); anything else (a shorter curve, a point added below the last step) is indexed afresh.
What it cannot see is a value *rewritten* below the last step of a running trial, which only a
direct storage write or a second handle of the same trial reporting an older step can make: a
pruner object that indexed that trial before keeps the old value (a copy of the pruner, or
another process, sees the new one).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import threading
from collections.abc import Mapping, Sequence

import numpy as np

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.storages._cache import ReadOnlyDict

__all__ = ["MEMO_ATTR", "Curve", "CurveMemo", "FinishedCurves", "curve_memo"]

#: The attribute under which a pruner keeps its memo (dropped when the pruner is pickled).
MEMO_ATTR = "_curve_memo"

_Key = tuple[int, int, "_dt.datetime | None"]


class Curve:
    """One trial's curve as sorted arrays, with the running best for each direction.

    Instances never change once built (the memo replaces them), so threads may share them.
    """

    __slots__ = ("_best", "source", "steps", "values")

    def __init__(self, source: Mapping[int, float], steps: np.ndarray, values: np.ndarray,
                 best: dict[Direction, np.ndarray] | None = None) -> None:
        self.source = source  # the mapping indexed: a finished trial's is shared and read-only
        self.steps = steps
        self.values = values
        self._best: dict[Direction, np.ndarray] = best or {}

    @classmethod
    def of(cls, points: Mapping[int, float]) -> Curve:
        """Index ``points`` (step -> value, in any order)."""
        steps = np.fromiter(points.keys(), dtype=np.int64, count=len(points))
        values = np.fromiter(points.values(), dtype=np.float64, count=len(points))
        if steps.size > 1 and not bool(np.all(steps[1:] > steps[:-1])):
            order = np.argsort(steps, kind="stable")
            steps, values = steps[order], values[order]
        return cls(points, steps, values)

    def __len__(self) -> int:
        return int(self.steps.size)

    @property
    def last_step(self) -> int | None:
        """The deepest step, or None for an empty curve."""
        return int(self.steps[-1]) if self.steps.size else None

    @property
    def previous_step(self) -> int:
        """The step of the report before the last one, or -1 if there is at most one."""
        return int(self.steps[-2]) if self.steps.size > 1 else -1

    def first_value_from(self, step: int) -> float | None:
        """The value at the first step ``>= step``, or None if the curve never got there."""
        index = int(np.searchsorted(self.steps, step, side="left"))
        return float(self.values[index]) if index < self.steps.size else None

    def best_up_to(self, step: int, direction: Direction) -> float:
        """The best non-NaN value at steps ``<= step``, or NaN if there is none."""
        index = int(np.searchsorted(self.steps, step, side="right")) - 1
        return math.nan if index < 0 else float(self._running_best(direction)[index])

    def _running_best(self, direction: Direction) -> np.ndarray:
        best = self._best.get(direction)
        if best is None:  # two threads may both compute it: the same array, harmless
            best = _accumulate(self.values, direction)
            self._best[direction] = best
        return best

    def grown_to(self, points: Mapping[int, float]) -> Curve | None:
        """This curve extended to ``points`` if ``points`` continues it, else None.

        ``points`` continues it when every point of this curve but the last is also the start
        of ``points`` in the same order and the new points come after this curve's last step
        (which may hold a new value). Only the start of ``points`` is compared by position: a
        curve only grows at its end (see the module docstring), so its earlier points are taken
        as they were.
        """
        size = self.steps.size
        if size == 0 or len(points) < size:
            return None
        last = int(self.steps[-1])
        tail = _tail(points, len(points) - size + 1)
        if tail[0][0] != last or any(b[0] <= a[0] for a, b in itertools.pairwise(tail)):
            return None
        if len(tail) == 1 and _same(tail[0][1], float(self.values[-1])):
            return Curve(points, self.steps, self.values, self._best)
        new_steps = np.fromiter((s for s, _ in tail), dtype=np.int64, count=len(tail))
        new_values = np.fromiter((v for _, v in tail), dtype=np.float64, count=len(tail))
        best = {}
        for direction, running in self._best.items():
            start = running[size - 2: size - 1]  # the best before the last point, if any
            tail_best = _accumulate(np.concatenate((start, new_values)), direction)
            best[direction] = np.concatenate((running[:size - 1], tail_best[start.size:]))
        return Curve(points, np.concatenate((self.steps[:size - 1], new_steps)),
                     np.concatenate((self.values[:size - 1], new_values)), best)


#: Steps a :class:`FinishedCurves` packs with its row number into one int64 (row << 32 | step).
_STEP_BITS = 32
_FINISHED = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL})


class FinishedCurves:
    """The curves of finished trials packed into flat arrays, to ask all of them at once.

    The percentile rule asks, at every report, "the best value up to step t" of every trial
    that reported at t: one binary search per trial, a Python loop that cost 29 ms per report
    with 10,000 finished trials. A finished trial's curve never changes, so each one is
    appended once, as a row, to arrays that hold every row's ``row << 32 | step`` keys in
    order (each curve's steps are sorted, rows follow each other) and their running bests:
    one ``searchsorted`` of all the rows' keys answers for every finished trial in C. Rows are
    appended in batches at the next question. A curve with a step outside ``[0, 2**32)`` is
    not packed (its trial is asked one by one). Not thread-safe: :class:`CurveMemo` locks.
    """

    def __init__(self) -> None:
        self.rows: dict[_Key, int] = {}
        self._keys = np.empty(0, dtype=np.int64)
        self._best: dict[Direction, np.ndarray] = {}
        self._curves: list[Curve] = []  # by row, for the running bests of a new direction
        self._packed = 0  # rows already in the arrays

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, key: _Key, curve: Curve) -> int | None:
        """Append ``curve`` as the next row; its row, or None when its steps cannot be packed."""
        if curve.steps.size and (int(curve.steps[0]) < 0
                                 or int(curve.steps[-1]) >= 1 << _STEP_BITS):
            return None
        row = len(self._curves)
        self._curves.append(curve)
        self.rows[key] = row
        return row

    def bests_at(self, rows: np.ndarray, step: int, direction: Direction) -> np.ndarray:
        """The best value up to ``step`` of each row in ``rows`` that has a point at exactly
        ``step`` (NaN where none is a number yet); rows without one are left out."""
        if not 0 <= step < 1 << _STEP_BITS or rows.size == 0:
            return np.empty(0)
        self._pack()
        best = self._best.get(direction)
        if best is None:
            best = self._best[direction] = _concat([c._running_best(direction)
                                                    for c in self._curves])
        wanted = (rows.astype(np.int64) << _STEP_BITS) | step
        index = np.searchsorted(self._keys, wanted, side="left")
        found = index < self._keys.size
        found[found] = self._keys[index[found]] == wanted[found]
        return best[index[found]]

    def _pack(self) -> None:
        """Append the rows added since the last question to the arrays."""
        new = self._curves[self._packed:]
        if not new:
            return
        keys = [(np.int64(row) << _STEP_BITS) | curve.steps
                for row, curve in enumerate(new, start=self._packed)]
        self._keys = _concat([self._keys, *keys])
        for direction, best in self._best.items():
            self._best[direction] = _concat([best, *(c._running_best(direction) for c in new)])
        self._packed = len(self._curves)


class CurveMemo:
    """The :class:`Curve` of each trial a pruner has seen, kept between its calls.

    Keyed by trial id, number and start time, so two studies (or storages) that share a pruner
    object do not mix their trials. Entries of trials no longer seen are dropped once the memo
    holds twice as many entries as the last population asked about. Not pickled: a pruner sent
    to another process starts with an empty memo.
    """

    def __init__(self) -> None:
        self._curves: dict[_Key, Curve] = {}
        self._last_steps: dict[_Key, int | None] = {}  # of COMPLETE trials
        self._finished = FinishedCurves()
        self._lock = threading.Lock()

    def curve(self, trial: FrozenTrial) -> Curve:
        """The indexed curve of ``trial``, reusing what is known of it.

        A trial without a start time was not read from a storage (one built by hand, in a
        test or a simulation, where any curve may come under the same number): it is indexed
        afresh at every call.
        """
        points = trial.intermediate_values
        if trial.datetime_start is None:
            return Curve.of(points)
        key = _key(trial)
        with self._lock:
            known = self._curves.get(key)
        if known is not None and known.source is points and isinstance(points, ReadOnlyDict):
            return known  # a finished trial's curve, shared by the storage: it cannot change
        curve = None if known is None else known.grown_to(points)
        if curve is None:
            curve = Curve.of(points)
        if curve is not known:
            with self._lock:
                self._curves[key] = curve
        return curve

    def bests_at(self, step: int, direction: Direction,
                 trials: Sequence[FrozenTrial]) -> np.ndarray:
        """The best value up to ``step`` (:meth:`Curve.best_up_to`) of each of ``trials`` that
        reported at exactly ``step``, NaN where none of its values is a number yet; in no
        particular order.

        Finished trials read from a storage are asked all at once (:class:`FinishedCurves`);
        running trials, and trials built by hand, one by one.
        """
        rows: list[int] = []
        alone: list[FrozenTrial] = []
        with self._lock:
            if len(self._finished) > 2 * len(trials) + 16:  # trials gone: start afresh
                self._finished = FinishedCurves()
            finished = self._finished
            known = finished.rows
            for trial in trials:
                if trial.state in _FINISHED and trial.datetime_start is not None:
                    row = known.get(_key(trial))
                    if row is not None:
                        rows.append(row)
                        continue
                alone.append(trial)
        values, added = [], []
        for trial in alone:
            curve = self.curve(trial)
            if step in trial.intermediate_values:
                values.append(curve.best_up_to(step, direction))
            if trial.state in _FINISHED and trial.datetime_start is not None:
                added.append((_key(trial), curve))  # packed from the next question on
        with self._lock:
            if finished is self._finished:
                for key, curve in added:
                    if key not in finished.rows:
                        finished.add(key, curve)
            packed = finished.bests_at(np.fromiter(rows, dtype=np.int64, count=len(rows)),
                                       step, direction)
        return np.concatenate((np.asarray(values, dtype=np.float64), packed))

    def longest_complete(self, trials: Sequence[FrozenTrial]) -> int | None:
        """The largest last step among the COMPLETE ``trials`` with a curve, or None.

        A COMPLETE trial never changes, so each one's last step is read once and kept: a call
        then costs a look-up per trial, not a curve per trial (successive halving's
        ``min_resource="auto"`` asks at every report). Trials without a start time (built by
        hand) are read at every call, as in :meth:`curve`.
        """
        complete = [t for t in trials if t.state is TrialState.COMPLETE]
        with self._lock:
            if len(self._last_steps) > 2 * len(complete) + 16:  # trials gone: start afresh
                self._last_steps = {}
            known = dict(self._last_steps)
        steps: list[int | None] = []
        new: dict[_Key, int | None] = {}
        for trial in complete:
            key = _key(trial)
            if trial.datetime_start is not None and key in known:
                steps.append(known[key])
                continue
            step = self.curve(trial).last_step
            steps.append(step)
            if trial.datetime_start is not None:
                new[key] = step
        if new:
            with self._lock:
                self._last_steps.update(new)
        return max((s for s in steps if s is not None), default=None)

    def forget_others(self, population: Sequence[FrozenTrial]) -> None:
        """Drop the curves of trials outside ``population`` when the memo has grown to more
        than twice its size (deleted studies, other studies sharing the pruner)."""
        with self._lock:
            if len(self._curves) <= 2 * len(population) + 16:
                return
            wanted = {_key(t) for t in population}
            self._curves = {k: c for k, c in self._curves.items() if k in wanted}


def curve_memo(owner: object) -> CurveMemo:
    """The memo of ``owner`` (a pruner), created on first use.

    Created lazily rather than in ``__init__``: a pruner's constructor only stores its
    arguments (see :class:`~hpo_plugins.pruners.Pruner`), and one rebuilt from them, or
    unpickled, starts without a memo.
    """
    memo = owner.__dict__.get(MEMO_ATTR)
    if memo is None:
        memo = owner.__dict__.setdefault(MEMO_ATTR, CurveMemo())
    return memo


def _key(trial: FrozenTrial) -> _Key:
    """The memo's key of a trial: its id, number and start time."""
    return (trial.trial_id, trial.number, trial.datetime_start)


def _concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """``np.concatenate``, also of no array (an empty float array)."""
    return np.concatenate(arrays) if arrays else np.empty(0)


def _accumulate(values: np.ndarray, direction: Direction) -> np.ndarray:
    """The running best of ``values``, NaN ignored (NaN until the first number)."""
    ufunc = np.fmin if direction is Direction.MINIMIZE else np.fmax
    return ufunc.accumulate(values) if values.size else values.copy()


def _tail(points: Mapping[int, float], count: int) -> list[tuple[int, float]]:
    """The last ``count`` items of ``points`` in order, reading only those from a dict."""
    if isinstance(points, dict):
        return list(itertools.islice(reversed(points.items()), count))[::-1]
    return list(itertools.islice(points.items(), len(points) - count, None))


def _same(a: float, b: float) -> bool:
    """Equal, NaN equal to NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))
