"""The cache of finished trials and its read-only containers."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.storages._cache import (
    FinishedTrialCache,
    ReadOnlyDict,
    ReadOnlyList,
    read_only_trial,
)


def _trial(trial_id: int, state: TrialState = TrialState.COMPLETE) -> FrozenTrial:
    return FrozenTrial(trial_id, trial_id, state, 1.0, {"x": 1}, {"net": [1, {"k": "v"}]},
                       {0: 0.5}, {}, {"gpu": 0})


def test_read_only_trial_equals_and_serialises_like_the_original() -> None:
    trial = _trial(1)
    frozen = read_only_trial(trial)
    assert frozen == trial
    assert isinstance(frozen.natural["net"], ReadOnlyList)
    assert isinstance(frozen.natural["net"][1], ReadOnlyDict)
    assert json.dumps(frozen.natural) == json.dumps(trial.natural)
    for clone in (pickle.loads(pickle.dumps(frozen)), copy.deepcopy(frozen)):
        assert clone == trial
        assert type(clone.params) is dict and type(clone.natural["net"]) is list
        assert type(clone.natural["net"][1]) is dict
    assert type(frozen.params.copy()) is dict  # type: ignore[attr-defined]


CHANGES: dict[str, Callable[[Any], object]] = {
    "setitem": lambda d: d.__setitem__("y", 1),
    "delitem": lambda d: d.__delitem__("x"),
    "update": lambda d: d.update(y=1),
    "ior": lambda d: d.__ior__({"y": 1}),
    "pop": lambda d: d.pop("x"),
    "clear": lambda d: d.clear(),
    "setdefault": lambda d: d.setdefault("y", 1),
}
LIST_CHANGES: dict[str, Callable[[Any], object]] = {
    "append": lambda v: v.append(1),
    "extend": lambda v: v.extend([1]),
    "iadd": lambda v: v.__iadd__([1]),
    "setitem": lambda v: v.__setitem__(0, 2),
    "sort": lambda v: v.sort(),
    "pop": lambda v: v.pop(),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_read_only_dict_refuses_changes(change: str) -> None:
    params = read_only_trial(_trial(1)).params
    with pytest.raises(TypeError, match="This dict belongs to a finished trial.*read-only"):
        CHANGES[change](params)
    assert params == {"x": 1}


@pytest.mark.parametrize("change", sorted(LIST_CHANGES))
def test_read_only_list_refuses_changes(change: str) -> None:
    net = read_only_trial(_trial(1)).natural["net"]
    with pytest.raises(TypeError, match="This list belongs to a finished trial.*read-only"):
        LIST_CHANGES[change](net)
    assert net == [1, {"k": "v"}]


def test_cache_keeps_only_finished_trials() -> None:
    cache = FinishedTrialCache()
    cache.add(1, [_trial(1), _trial(2, TrialState.RUNNING), _trial(3, TrialState.WAITING)])
    assert list(cache.lookup(1, [1, 2, 3])) == [1]
    assert cache.lookup(2, [1]) == {}
    cache.drop(1)
    assert len(cache) == 0 and cache.lookup(1, [1]) == {}


def test_cache_drops_the_study_read_least_recently() -> None:
    cache = FinishedTrialCache(max_trials=4)
    cache.add(1, [_trial(1), _trial(2)])
    cache.add(2, [_trial(3), _trial(4)])
    cache.lookup(1, [1])  # study 1 is now the most recent
    cache.add(3, [_trial(5)])
    assert (set(cache.lookup(1, [1, 2])), cache.lookup(2, [3, 4])) == ({1, 2}, {})
    assert set(cache.lookup(3, [5])) == {5} and len(cache) == 3


def test_cache_keeps_at_most_max_trials_of_one_study() -> None:
    cache = FinishedTrialCache(max_trials=3)
    cache.add(1, [_trial(i) for i in range(5)])
    cache.add(1, [_trial(0), _trial(9)])
    assert set(cache.lookup(1, range(10))) == {0, 1, 2} and len(cache) == 3
