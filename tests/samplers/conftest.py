"""Shared fixtures of the sampler tests: spaces with every kind of parameter, trial records."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from hpo_plugins import hp
from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.space import SearchSpace

MakeTrial = Callable[..., FrozenTrial]


def _make_trial(number: int, state: TrialState = TrialState.COMPLETE, value: float | None = None,
                params: Mapping[str, Any] | None = None,
                intermediate: Mapping[int, float] | None = None) -> FrozenTrial:
    return FrozenTrial(trial_id=1000 + number, number=number, state=state, value=value,
                       params=dict(params or {}), intermediate_values=dict(intermediate or {}))


@pytest.fixture
def make_trial() -> MakeTrial:
    """``make_trial(number, state=COMPLETE, value=None, params=None, intermediate=None)``."""
    return _make_trial


@pytest.fixture
def full_space() -> SearchSpace:
    """A nested conditional space holding every kind of parameter Hyperopt has."""
    return SearchSpace({
        "model": hp.choice("model", [
            {"kind": "linear", "alpha": hp.loguniform("alpha", -5, 0),
             "l1": hp.pchoice("l1", [(0.3, 0.0), (0.7, 0.5)])},
            {"kind": "tree", "depth": hp.randint("depth", 1, 8),
             "leaves": hp.uniformint("leaves", 2, 10),
             "split": hp.choice("split", [
                 {"frac": hp.quniform("frac", 0, 1, 0.25)},
                 {"lr": hp.qloguniform("lr", math.log(0.05), 0, 0.05),
                  "seed": hp.randint("seed", 4)},
             ])},
        ]),
        "x": hp.uniform("x", -1, 1),
        "noise": hp.normal("noise", 0, 1),
        "shift": hp.qnormal("shift", 0, 2, 0.5),
        "scale": hp.lognormal("scale", 0, 0.5),
        "count": hp.qlognormal("count", 1, 0.5, 1),
    })


@pytest.fixture
def discrete_space() -> SearchSpace:
    """A nested conditional space of discrete kinds only (a grid exists)."""
    return SearchSpace({
        "model": hp.choice("model", [
            {"l1": hp.pchoice("l1", [(0.3, 0.0), (0.7, 0.5)])},
            {"depth": hp.randint("depth", 1, 4),
             "split": hp.choice("split", [
                 {"frac": hp.quniform("frac", 0, 1, 0.5)},
                 {"lr": hp.qloguniform("lr", math.log(0.1), math.log(0.3), 0.1)},
             ])},
        ]),
        "units": hp.uniformint("units", 1, 3),
    })
