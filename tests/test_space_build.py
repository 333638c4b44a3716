"""The compiled builder gives exactly what ``hyperopt.space_eval`` gives."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest
from hyperopt import space_eval
from hyperopt.pyll import as_apply, scope

from hpo_plugins import hp
from hpo_plugins._space_build import compile_builder
from hpo_plugins.space import SearchSpace

SPACES: dict[str, Any] = {
    "flat": {"lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
             "units": hp.quniform("units", 16, 128, 16), "depth": hp.uniformint("depth", 1, 5),
             "seed": hp.randint("seed", 10), "off": hp.randint("off", 3, 9),
             "mu": hp.normal("mu", 0, 1), "qn": hp.qnormal("qn", 0, 5, 1),
             "ln": hp.lognormal("ln", 0, 1), "qln": hp.qlognormal("qln", 0, 1, 1),
             "qlu": hp.qloguniform("qlu", 0, 3, 1)},
    "nested": {"net": hp.choice("net", [
        {"kind": "mlp", "layers": [hp.quniform(f"u{i}", 1, 4, 1) for i in range(2)],
         "act": hp.pchoice("act", [(0.3, "relu"), (0.7, "tanh")])},
        {"kind": "cnn", "filters": hp.choice("filters", [16, 32, (64, 128)]),
         "deep": hp.choice("deep", [None, {"extra": hp.uniform("extra", 0, 1)}])},
        "linear",
    ]), "tuple": (1, hp.uniform("t", 0, 1), [2, "three"])},
    "top_choice": hp.choice("top", [{"a": hp.uniform("a", 0, 1)}, [hp.uniform("b", 0, 1)]]),
    "bare": hp.uniform("x", -1, 1),
}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_matches_space_eval_on_prior_samples(name: str) -> None:
    space = SearchSpace(SPACES[name])
    assert space._builder is not None
    rng = np.random.default_rng(0)
    for _ in range(200):
        flat = space.sample_prior(rng)
        ours, theirs = space.build(flat), space_eval(SPACES[name], dict(flat))
        assert ours == theirs
        assert repr(ours) == repr(theirs)  # same types: tuples, ints, floats


def test_other_pyll_functions_are_left_to_space_eval() -> None:
    expr = {"double": scope.mul(hp.uniform("x", 0, 1), 2)}
    assert compile_builder(as_apply(expr)) is None
    space = SearchSpace({"y": hp.uniform("y", 0, 1), **expr})
    assert space.build({"x": 0.25, "y": 0.5}) == {"double": 0.5, "y": 0.5}


def test_parameters_it_cannot_use_get_hyperopts_own_error() -> None:
    space = SearchSpace({"c": hp.choice("c", ["a", "b"])})
    assert space.build({"c": np.int64(1)}) == {"c": "b"}
    with pytest.raises(TypeError):
        space.build({"c": 1.0})  # Hyperopt refuses a float option index
    with pytest.raises(IndexError):
        space.build({"c": 2})


def test_survives_plain_pickle() -> None:
    space = pickle.loads(pickle.dumps(SearchSpace(SPACES["nested"])))
    assert space._builder is not None
    flat = space.sample_prior(np.random.default_rng(1))
    assert space.build(flat) == space_eval(SPACES["nested"], dict(flat))
