"""How each kind of parameter becomes an HParams column, and what an inactive one shows."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from hpo_plugins import hp
from hpo_plugins.space import INACTIVE, SearchSpace
from hpo_plugins.tensorboard._columns import Column, columns_from_description


def _columns(space: Any) -> dict[str, Column]:
    return {c.label: c for c in columns_from_description(SearchSpace(space).describe())}


@pytest.mark.parametrize(("label", "kind", "discrete", "interval"), [
    ("c", "number", (0.0, 1.0, 2.0), None),          # options are dicts/lists: their index
    ("u", "number", None, (-1.0, 1.0)),
    ("qu", "number", None, (0.0, 10.0)),
    ("lu", "number", None, (math.exp(-3), 1.0)),      # natural units, not log space
    ("qlu", "number", None, (1.0, math.exp(3))),
    ("pc", "number", (0.0, 1.0), None),
    ("ri", "number", (2.0, 3.0, 4.0, 5.0, 6.0), None),
    ("r", "number", (0.0, 1.0, 2.0, 3.0, 4.0), None),
    ("ui", "number", None, (1.0, 8.0)),
    ("n", "number", None, None),                      # unbounded: no domain
    ("qln", "number", None, None),
])
def test_every_kind_gets_a_typed_column(every_kind_space: dict[str, Any], label: str, kind: str,
                                        discrete: tuple[float, ...] | None,
                                        interval: tuple[float, float] | None) -> None:
    column = _columns(every_kind_space)[label]
    assert (column.kind, column.discrete) == (kind, discrete)
    assert column.interval == (None if interval is None else pytest.approx(interval))


def test_choice_of_strings_is_a_string_column_with_the_marker_when_conditional() -> None:
    columns = _columns({"act": hp.choice("act", ["relu", "tanh"]),
                        "net": hp.choice("net", [{"opt": hp.choice("opt", ["sgd", "adam"])},
                                                 "none"])})
    assert (columns["act"].kind, columns["act"].discrete) == ("string", ("relu", "tanh"))
    assert columns["opt"].discrete == ("sgd", "adam", INACTIVE)
    assert columns["opt"].description.endswith("active when net=0")


def test_choice_of_booleans_is_a_string_column() -> None:
    column = _columns({"bias": hp.choice("bias", [True, False])})["bias"]
    assert (column.kind, column.discrete) == ("string", ("True", "False"))
    assert column.value({"bias": 1}) == "False"


@pytest.mark.parametrize("options", [[1.0, math.inf], [0.0, math.nan], [-math.inf, 0.5]])
def test_a_choice_with_a_non_finite_option_is_a_string_column(options: list[float]) -> None:
    """Its description holds the option's text ('inf'): it was read back as a number, so the
    experiment's domain held Infinity, which TensorBoard's JSON writer refuses (HTTP 500 for
    the whole HParams dashboard), and the trial's cell was a dropped non-finite number."""
    column = _columns({"clip": hp.choice("clip", options)})["clip"]
    assert column.kind == "string"
    assert column.discrete == tuple(str(o) for o in options)
    json.dumps(column.discrete, allow_nan=False)  # strict JSON, as protobuf writes it
    assert [column.value({"clip": i}) for i in range(2)] == [str(o) for o in options]


def test_randint_with_many_values_gets_an_interval() -> None:
    column = _columns({"seed": hp.randint("seed", 0, 1000)})["seed"]
    assert (column.discrete, column.interval, column.integer) == (None, (0, 999), True)


@pytest.mark.parametrize(("flat", "expected"), [
    ({"lr": 0.01, "net": 1, "cnn_filters": 2}, {"lr": 0.01, "net": 1.0, "cnn_filters": 64.0,
                                                "mlp_layers": math.nan, "mlp_dropout": math.nan}),
    ({"lr": 0.5, "net": 0, "mlp_layers": 3.0, "mlp_dropout": 0.25},
     {"lr": 0.5, "net": 0.0, "cnn_filters": math.nan, "mlp_layers": 3.0, "mlp_dropout": 0.25}),
])
def test_values_keep_the_column_type_and_inactive_numbers_are_nan(
        nested_space: dict[str, Any], flat: dict[str, Any], expected: dict[str, float]) -> None:
    values = {label: c.value(flat) for label, c in _columns(nested_space).items()}
    assert values == pytest.approx(expected, nan_ok=True)
    assert all(isinstance(v, float) for v in values.values())


def test_inactive_string_value_is_the_marker() -> None:
    column = _columns({"net": hp.choice("net", [{"opt": hp.choice("opt", ["sgd", "adam"])},
                                                "none"])})["opt"]
    assert column.value({"net": 1}) == INACTIVE
    assert column.value({"net": 0, "opt": 1}) == "adam"


def test_a_json_stored_description_gives_the_same_columns(nested_space: dict[str, Any]) -> None:
    description = SearchSpace(nested_space).describe()
    stored = json.loads(json.dumps(description))  # what a SQL storage gives back
    assert columns_from_description(stored) == columns_from_description(description)


def test_tooltips_say_what_each_index_stands_for_and_log_bounds_in_natural_units() -> None:
    """A choice of dicts or lists shows indices: the tooltip only said "hp.choice of 3
    options"; a log-uniform one showed Hyperopt's log-space numbers (low=-6.90776)."""
    space = SearchSpace({
        "lr": hp.loguniform("lr", math.log(1e-3), math.log(1e-1)),
        "opt": hp.choice("optimizer", [{"name": "adam", "beta": hp.uniform("beta", 0, 1)},
                                        {"name": "sgd"}]),
        "layers": hp.choice("n_layers", [[64], [64, 32]]),
        "act": hp.choice("act", ["relu", "tanh"]),
    })
    columns = {c.label: c for c in columns_from_description(space.describe(),
                                                              space.constants())}
    assert columns["lr"].description == "hp.loguniform(low=log(0.001), high=log(0.1))"
    assert columns["n_layers"].description == "hp.choice of 2 options; 0 = (64,), 1 = (64, 32)"
    assert columns["optimizer"].description == ("hp.choice of 2 options; 0 = ['name']='adam', "
                                                "1 = {'name': 'sgd'}")
    assert columns["act"].description == "hp.choice of 2 options"  # its cells show the values
    without = {c.label: c for c in columns_from_description(space.describe())}
    assert without["n_layers"].description == "hp.choice of 2 options"
