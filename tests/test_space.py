"""The search space reader: labels, conditions, natural values, flattening, validation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hyperopt import space_eval
from hyperopt.pyll import scope

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.exceptions import SpaceError
from hpo_plugins.space import SearchSpace


def test_labels_kinds_and_natural_bounds(nested_space: dict[str, Any]) -> None:
    space = SearchSpace(nested_space)
    assert set(space.labels) == {"lr", "net", "mlp_layers", "mlp_dropout", "cnn_filters"}
    lr = space.params["lr"]
    assert lr.kind == "loguniform" and lr.log
    assert lr.bounds == pytest.approx((1e-4, 1e-1))
    assert space.params["cnn_filters"].options == (16, 32, 64)
    assert space.params["net"].options == (0, 1)  # dict options are shown by index
    assert space.params["mlp_layers"].conditions == ((("net", 0),),)
    assert space.params["cnn_filters"].conditions == ((("net", 1),),)


@pytest.mark.parametrize(("flat", "active"), [
    ({"net": 0}, ["lr", "net", "mlp_dropout", "mlp_layers"]),
    ({"net": 1}, ["lr", "net", "cnn_filters"]),
])
def test_active_labels_follow_choices(nested_space: dict[str, Any], flat: dict[str, int],
                                      active: list[str]) -> None:
    assert SearchSpace(nested_space).active(flat) == active


def test_every_kind_samples_valid_values_and_builds_like_space_eval(
        every_kind_space: dict[str, Any]) -> None:
    space = SearchSpace(every_kind_space)
    assert len(space) == 13
    rng = np.random.default_rng(1)
    for _ in range(200):
        flat = space.sample_prior(rng)
        assert space.validate(flat) == flat
        assert space.build(flat) == space_eval(every_kind_space, flat)
        assert space.flatten(space.build(flat)) == space.validate(flat)


def test_integer_params_reach_the_objective_as_int(every_kind_space: dict[str, Any]) -> None:
    space = SearchSpace(every_kind_space)
    value = space.build(space.sample_prior(np.random.default_rng(0)))
    assert isinstance(value["ui"], int) and isinstance(value["r"], int)
    assert space.params["ui"].integer and space.params["r"].integer


def test_flatten_accepts_nested_value_and_flat_labels(nested_space: dict[str, Any]) -> None:
    space = SearchSpace(nested_space)
    nested = {"lr": 0.01, "net": {"kind": "cnn", "filters": 32}}
    assert space.flatten(nested) == {"lr": 0.01, "net": 1, "cnn_filters": 1}
    flat = {"lr": 0.01, "net": 0, "mlp_layers": 2.0, "mlp_dropout": 0.1}
    assert space.flatten(flat) == flat


@pytest.mark.parametrize(("value", "message"), [
    ({"lr": 0.01, "net": {"kind": "cnn", "filters": 48}}, "Could not match"),
    ({"lr": 5.0, "net": {"kind": "cnn", "filters": 32}}, "outside the support"),
    ({"lr": 0.01}, "Missing: \\['net'\\]"),
    ({"bogus": 1}, "Could not match"),
])
def test_flatten_rejects_values_outside_the_space(nested_space: dict[str, Any], value: Any,
                                                  message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        SearchSpace(nested_space).flatten(value)


def test_flatten_picks_the_choice_option_whose_range_holds_the_value() -> None:
    space = SearchSpace({"x": hp.choice("x", [hp.uniformint("n", 1, 10), hp.uniform("f", 0, 1)])})
    assert space.flatten({"x": 0.5}) == {"x": 1, "f": 0.5}  # not n = 0.5, outside 1..10
    assert space.flatten({"x": 3}) == {"x": 0, "n": 3.0}  # 3 is outside f's 0..1
    split = SearchSpace({"x": hp.choice("x", [hp.uniform("lo", 0, 1), hp.uniform("hi", 10, 20)])})
    assert split.flatten({"x": 15.0}) == {"x": 1, "hi": 15.0}


def test_scope_int_wrappers_keep_their_float_internal_values() -> None:
    space = SearchSpace({"units": scope.int(hp.uniform("u", 1, 100)),
                         "half": scope.int(hp.quniform("h", 0, 10, 0.5))})
    rng = np.random.default_rng(0)
    for _ in range(50):  # what the samplers propose passes validation
        flat = space.sample_prior(rng)
        assert space.validate(flat) == flat
    assert space.validate({"u": 61.96, "h": 3.5}) == {"u": 61.96, "h": 3.5}
    assert space.build({"u": 61.96, "h": 3.5}) == {"units": 61, "half": 3}
    assert space.flatten({"units": 61, "half": 3}) == {"u": 61.0, "h": 3.0}
    for half_a_unit in (61.5, np.float32(61.5)):
        with pytest.raises(SpaceError, match="Could not match"):
            space.flatten({"units": half_a_unit, "half": 3})  # int() never gives 61.5


def test_matching_a_value_with_many_ambiguous_choices_stays_fast() -> None:
    space = SearchSpace({f"c{i}": hp.choice(f"c{i}", [hp.uniform(f"a{i}", 0, 1),
                                                      hp.uniform(f"b{i}", 0, 1)])
                         for i in range(30)})
    with pytest.raises(SpaceError, match="fits the search space in 2 ways"):
        space.flatten({f"c{i}": 0.5 for i in range(30)})  # 2**30 readings: stops at the 2nd
    with pytest.raises(SpaceError, match="outside the support"):  # one part fits nothing
        space.flatten({**{f"c{i}": 0.5 for i in range(29)}, "c29": 5.0})
    deep, value = hp.uniform("x", 0, 1), 0.5
    for i in range(40):  # nested dicts: the search must not grow with 2 ** depth
        deep, value = {"k": deep, f"c{i}": hp.choice(f"c{i}", [1, 2])}, {"k": value, f"c{i}": 2}
    assert SearchSpace(deep).flatten(value)["x"] == 0.5
    wide = SearchSpace({f"p{i}": hp.uniform(f"p{i}", 0, 1) for i in range(3000)})
    assert len(wide.flatten({f"p{i}": 0.5 for i in range(3000)})) == 3000  # no deep recursion


def test_flatten_refuses_a_value_that_fits_two_options() -> None:
    space = SearchSpace({"x": hp.choice("x", [hp.uniform("a", 0, 1), hp.uniform("b", 0, 2)])})
    with pytest.raises(SpaceError, match="fits the search space in 2 ways.*flat dict"):
        space.flatten({"x": 0.5})
    assert space.flatten({"x": 1, "b": 0.5}) == {"x": 1, "b": 0.5}  # the flat form says which


@pytest.mark.parametrize(("value", "expected"), [
    ({"n": 0.5}, "a whole number from 1 to 10"),
    ({"n": 11}, "a whole number from 1 to 10"),
    ({"q": 3.0}, "a multiple of 2 from 0 to 10"),
    ({"q": 1000.0}, "a multiple of 2 from 0 to 10"),
    ({"l": -7.0}, "a whole number from 1 to 7"),
    ({"ln": 0.0}, "a number above 0"),
    ({"qln": 0.25}, "a multiple of 0.5 at least 0"),
])
def test_quantised_integer_and_log_values_are_checked(value: dict[str, float],
                                                      expected: str) -> None:
    space = SearchSpace({"n": hp.uniformint("n", 1, 10), "q": hp.quniform("q", 0, 10, 2),
                         "l": hp.qloguniform("l", 0, 2, 1), "ln": hp.lognormal("ln", 0, 1),
                         "qln": hp.qlognormal("qln", 0, 1, 0.5)})
    good = {"n": 3.0, "q": 4.0, "l": 7.0, "ln": 0.1, "qln": 0.0}
    assert space.validate(good) == good
    with pytest.raises(SpaceError, match=f"expected {expected}"):
        space.validate({**good, **value})


def test_validate_reports_inactive_and_unknown_labels(nested_space: dict[str, Any]) -> None:
    space = SearchSpace(nested_space)
    with pytest.raises(SpaceError, match="inactive but given: \\['cnn_filters'\\]"):
        space.validate({"lr": 0.01, "net": 0, "mlp_layers": 1.0, "mlp_dropout": 0.1,
                        "cnn_filters": 0})
    with pytest.raises(SpaceError, match="Unknown parameter label"):
        space.validate({"nope": 1})


def test_display_shows_options_and_marks_inactive_as_none(nested_space: dict[str, Any]) -> None:
    shown = SearchSpace(nested_space).display({"lr": 0.01, "net": 1, "cnn_filters": 2})
    assert shown == {"lr": 0.01, "net": 1, "mlp_dropout": None, "mlp_layers": None,
                     "cnn_filters": 64}


@pytest.mark.parametrize(("bad", "message"), [
    ({"a": hp.uniform("x", 0, 1), "b": hp.uniform("x", 0, 2)},
     "Duplicate label 'x'.*make the expression once"),
    ({"a": 1, "b": [2, 3]}, "at least one hyperparameter"),
    ({"a": hp.uniform("x", 1, 0)}, "low < high"),
    ({"a": hp.normal("x", 0, -1)}, "sigma > 0"),
    ({"a": hp.quniform("x", 0, 1, 0)}, "step q > 0"),
    ({"a": hp.uniform("x", 0, hp.uniform("y", 1, 2))}, "itself an expression"),
    ({"a": hp.pchoice("x", [(0.5, 1), (0.6, 2)])}, "sum to 1"),
    (object(), "at least one hyperparameter"),
    ({"a": hp.choice("x", [1, {"b": hp.choice("y", [])}])}, "one option in hp.choice\\('y'"),
    ({"a": hp.uniform("x", 0, math.inf)}, "finite arguments .*high is not"),
    ({"a": hp.normal("x", math.nan, 1)}, "finite arguments .*mu is not"),
    ({"a": scope.switch(hp.randint("i", 2), "p", "q")}, "use hp.choice\\(label, options\\)"),
    # accepted by the checks above, but the first trial would overflow or misbehave
    ({"a": hp.loguniform("lr", 0, 1000)}, "exp\\(0\\) to exp\\(1000\\) is not a finite.*"
                                          "math.log\\(value\\)"),
    ({"a": hp.qloguniform("lr", -750, 0, 1)}, "log-scale arguments from -744.4 to 709.8"),
    ({"a": hp.lognormal("v", 700, 2)}, "exp\\(684\\) to exp\\(716\\).*value's logarithm"),
    ({"a": hp.uniform("x", -1e308, 1e308)}, "width high - low is a finite float"),
    ({"a": hp.normal("x", 0, 1e308)}, "mu \\+- 8 \\* sigma to be finite"),
    ({"a": hp.randint("n", 2.5)}, "whole numbers as the bounds of hp.randint"),
    ({"a": hp.quniform("n", 0, 1, 5)}, "every value it can sample rounds to 0"),
    ({"a": hp.qloguniform("n", 0, 1, 10)}, "every value it can sample rounds to 0"),
    ({"a": hp.uniform("", 0, 1)}, "non-empty label .*'' in hp.uniform"),
    ({"a": hp.choice(" ", [1, 2])}, "non-empty label .*' ' in hp.choice"),
])
def test_malformed_spaces_fail_at_creation(bad: Any, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        SearchSpace(bad)


@pytest.mark.parametrize("edge", [
    hp.loguniform("x", -740, 700), hp.quniform("x", 0, 1, 0.6), hp.randint("x", 1),
    hp.qloguniform("x", math.log(16), math.log(512), 16), hp.lognormal("x", 0, 21),
    hp.lognormal("x", 0, 75), hp.normal("x", 0, 1e306),
])
def test_wide_but_sampleable_ranges_are_accepted(edge: Any) -> None:
    space = SearchSpace({"x": edge})
    rng = np.random.default_rng(0)
    values = [space.sample_prior(rng)["x"] for _ in range(50)]
    assert all(space.params["x"].contains(v) for v in values)


def test_shared_node_is_one_parameter() -> None:
    shared = hp.uniform("s", 0, 1)
    space = SearchSpace({"a": shared, "b": [shared]})
    assert space.labels == ("s",)
    assert space.build({"s": 0.5}) == {"a": 0.5, "b": (0.5,)}  # space_eval makes tuples


def test_pyll_functions_in_the_space_are_evaluated_but_not_inverted() -> None:
    space = SearchSpace({"units": scope.int(hp.quniform("u", 8, 64, 8)) * 2})
    assert space.build({"u": 16.0}) == {"units": 32}
    with pytest.raises(SpaceError, match="Could not match"):
        space.flatten({"units": 32})
    assert space.flatten({"u": 16.0}) == {"u": 16.0}  # flat labels still work


def test_fingerprint_is_stable_and_sensitive(nested_space: dict[str, Any]) -> None:
    assert SearchSpace(nested_space).fingerprint == SearchSpace(nested_space).fingerprint
    other = dict(nested_space, lr=hp.loguniform("lr", math.log(1e-5), math.log(1e-1)))
    assert SearchSpace(other).fingerprint != SearchSpace(nested_space).fingerprint


@pytest.mark.parametrize("expr", [hp.loguniform("lr", 1e-5, 1e-1),
                                  hp.qloguniform("n", 0.01, 1, 0.1),
                                  hp.loguniform("C", 0.01, 100),  # up to exp(100) = 2.7e43
                                  hp.qloguniform("batch", 16, 512, 16)])
def test_log_bounds_given_as_values_warn_with_the_fix(expr: Any) -> None:
    with pytest.warns(UserWarning, match=r"bounds are logarithms\. For values from .* write "
                                         r"hp\.q?loguniform\(.*math\.log\("):
        SearchSpace({"p": expr})


def test_log_bounds_as_logarithms_do_not_warn() -> None:
    SearchSpace({"lr": hp.loguniform("lr", math.log(1e-5), math.log(1e-1)),  # warnings: errors
                 "n": hp.qloguniform("n", math.log(1), math.log(1e9), 1),
                 "w": hp.loguniform("w", math.log(2), math.log(1e15))})


def test_pchoice_probabilities_summing_to_one_within_the_check_are_sampled() -> None:
    """Thirds written to 7 digits pass the space check (1e-5) but not numpy's (1e-8): the
    sampler normalises them instead of failing every trial."""
    import numpy as np

    space = SearchSpace({"a": hp.pchoice("a", [(0.3333333, "x"), (0.3333333, "y"),
                                               (0.3333333, "z")])})
    rng = np.random.default_rng(0)
    assert {space.params["a"].sample(rng) for _ in range(60)} == {0, 1, 2}


def test_a_value_that_equal_options_both_hold_is_taken_not_refused() -> None:
    """``hp.choice("k", [1, 1, 2])`` given 1: both readings run the same; the refusal's advice
    (a flat dict) was the very value given."""
    space = SearchSpace({"k": hp.choice("k", [1, 1, 2]), "y": hp.uniform("y", 0, 1)})
    assert space.flatten({"k": 1, "y": 0.1}) == {"k": 0, "y": 0.1}
    both = SearchSpace({"x": hp.choice("x", [hp.uniformint("n", 1, 10), hp.uniform("f", 0, 2)])})
    with pytest.raises(SpaceError, match=r"fits the search space in 2 ways"):
        both.flatten({"x": 1})  # 1 and 1.0: two different runs


def test_messages_name_uniformint_as_written() -> None:
    """Hyperopt builds hp.uniformint as an integer hp.quniform with step 1; messages name it as
    the user wrote it."""
    study = hpo.create_study({"depth": hp.uniformint("depth", 1, 8),
                              "units": hp.quniform("units", 16, 64, 16)}, storage=":memory:")
    with pytest.raises(SpaceError, match=r"outside the support of hp\.uniformint\('depth', "
                                         r"low=1, high=8\): expected a whole number"):
        study.enqueue({"depth": 3.5, "units": 32})
    with pytest.raises(SpaceError, match=r"hp\.quniform\('units', low=16, high=64, q=16\)"):
        study.enqueue({"depth": 3, "units": 40})
