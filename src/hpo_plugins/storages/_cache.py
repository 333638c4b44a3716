"""A cache of finished trials, for storages whose reads are expensive (SQL).

Finished trials never change and trial ids are never reused, so a finished trial, once read, can
be kept and can never be stale. Nothing else is cached: unfinished trials are read afresh every
time, and the storage still asks the database, at every read, which trials exist and in which
state, so another process's writes are seen at once (the contract's "fresh reads").

Cached trials are handed out to every caller, so their containers are read-only: a caller that
mutates ``trial.params`` gets a ``TypeError`` instead of corrupting what the next caller sees.
The read-only containers are ``dict`` and ``list`` subclasses, so ``json.dumps``, equality with
plain containers, ``pickle`` and ``copy.deepcopy`` (both give plain, mutable containers) behave
as for a fresh trial.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, NoReturn

from hpo_plugins._frozen import FrozenTrial

__all__ = ["FinishedTrialCache", "ReadOnlyDict", "ReadOnlyList", "read_only_trial"]

#: Finished trials kept per storage object, over all its studies (about 3 KB each with ten
#: parameters: 100,000 trials take about 300 MB, as a snapshot of them would anyway).
MAX_CACHED_TRIALS = 100_000


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(
        f"This {type(self).__mro__[1].__name__} belongs to a finished trial that the storage "
        f"shares between callers, so it is read-only. Copy it first, e.g. dict(trial.params) "
        f"or copy.deepcopy(trial)."
    )


class ReadOnlyDict(dict[Any, Any]):
    """A ``dict`` that refuses changes; it pickles and copies as a plain ``dict``."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[type, tuple[dict[Any, Any]]]:
        return dict, (dict(self),)

    def copy(self) -> dict[Any, Any]:
        """A plain, mutable shallow copy (like ``dict.copy``)."""
        return dict(self)


class ReadOnlyList(list[Any]):
    """A ``list`` that refuses changes; it pickles and copies as a plain ``list``."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = clear = extend = insert = pop = remove = reverse = sort = _refuse

    def __reduce__(self) -> tuple[type, tuple[list[Any]]]:
        return list, (list(self),)

    def copy(self) -> list[Any]:
        """A plain, mutable shallow copy (like ``list.copy``)."""
        return list(self)


_CONTAINERS = (dict, list)


def _read_only(value: Any) -> Any:
    """A JSON value with every dict and list replaced by its read-only twin.

    Scalars are left where they are (most values are flat dicts of numbers): no call per item.
    """
    if isinstance(value, dict):
        frozen = ReadOnlyDict(value)
        for key, item in value.items():
            if isinstance(item, _CONTAINERS):
                dict.__setitem__(frozen, key, _read_only(item))
        return frozen
    if isinstance(value, list):
        return ReadOnlyList([_read_only(x) if isinstance(x, _CONTAINERS) else x for x in value])
    return value


def read_only_trial(trial: FrozenTrial) -> FrozenTrial:
    """``trial`` with read-only params, natural, intermediate values and attributes."""
    return FrozenTrial(
        trial.trial_id, trial.number, trial.state, trial.value, _read_only(trial.params),
        _read_only(trial.natural), ReadOnlyDict(trial.intermediate_values),
        _read_only(trial.user_attrs), _read_only(trial.system_attrs), trial.datetime_start,
        trial.datetime_complete, trial.last_heartbeat,
    )


class FinishedTrialCache:
    """Finished trials by study and trial id, thread-safe and bounded.

    When more than ``max_trials`` trials are kept, the studies read least recently are dropped;
    a study larger than the bound keeps its first ``max_trials`` trials (the rest are read from
    the database each time, which is slower but just as correct).
    """

    def __init__(self, max_trials: int = MAX_CACHED_TRIALS) -> None:
        self.max_trials = max_trials
        self._lock = threading.Lock()
        self._studies: OrderedDict[int, dict[int, FrozenTrial]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def lookup(self, study_id: int, trial_ids: Iterable[int]) -> dict[int, FrozenTrial]:
        """The cached trials among ``trial_ids`` of the study."""
        with self._lock:
            kept = self._studies.get(study_id)
            if not kept:
                return {}
            self._studies.move_to_end(study_id)
            return {tid: kept[tid] for tid in trial_ids if tid in kept}

    def add(self, study_id: int, trials: Iterable[FrozenTrial]) -> None:
        """Keep the finished trials among ``trials`` (already made read-only by the caller)."""
        finished = [t for t in trials if t.state.is_finished]
        if not finished:
            return
        with self._lock:
            kept = self._studies.setdefault(study_id, {})
            self._studies.move_to_end(study_id)
            while self._size + len(finished) > self.max_trials and len(self._studies) > 1:
                _, dropped = self._studies.popitem(last=False)
                self._size -= len(dropped)
            for trial in finished:
                if self._size >= self.max_trials:
                    break
                if trial.trial_id not in kept:
                    kept[trial.trial_id] = trial
                    self._size += 1

    def drop(self, study_id: int) -> None:
        """Forget a study (deleted, here or by another process)."""
        with self._lock:
            self._size -= len(self._studies.pop(study_id, {}))
