"""Odd values found by fuzzing: numpy's long double, dict keys that JSON cannot keep, a space
with tuple keys, huge values for quantised parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.exceptions import ConfigurationError, SpaceError

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return ":memory:" if request.param == "memory" else f"sqlite:///{tmp_path}/v.db"


def test_a_long_double_is_stored_as_a_float(url: str) -> None:
    """np.longdouble(x).tolist() is an np.longdouble: the JSON hook handed it back to json,
    which recursed until RecursionError (a user attr, a result dict, a choice option)."""
    study = hpo.create_study({"c": hp.choice("c", [np.longdouble(0.5), 1.0])}, storage=url,
                             seed=0)
    trial = study.ask()
    trial.set_user_attr("acc", np.longdouble(0.25))
    trial.set_user_attr("curve", np.array([0.5, 0.75], dtype=np.longdouble))
    study.tell(trial, {"loss": 0.1, "status": "ok", "extra": np.longdouble(2.0)})
    stored = study.trials[0]
    assert stored.user_attrs == {"acc": 0.25, "curve": [0.5, 0.75], "extra": 2.0}
    assert type(stored.user_attrs["acc"]) is float
    for _ in range(6):  # both options, the long double one included
        study.tell(study.ask(), 0.5)
    assert {t.natural["c"] for t in study.trials} == {0.5, 1.0}


@pytest.mark.parametrize("value", [{1: "cat", "1": "dog"}, {"per_class": {True: 1, "true": 2}},
                                   [{"k": {None: 1, "null": 2}}]])
def test_keys_that_json_would_merge_are_refused_not_lost(url: str, value: object) -> None:
    """JSON writes 1 as '1' and kept one of {1: 'cat', '1': 'dog'}: 'cat' was lost silently."""
    study = hpo.create_study(SPACE, storage=url)
    trial = study.ask()
    with pytest.raises(ConfigurationError, match=r"keys stay distinct as JSON text .*Received "
                                                 r"the keys .* and .*, which would become one"):
        trial.set_user_attr("v", value)
    with pytest.raises(ConfigurationError, match="keys stay distinct"):
        study.set_user_attr("v", value)
    study.tell(trial, 0.5)


def test_int_keys_are_stored_as_text_as_json_does(url: str) -> None:
    """A per-class dict keyed by int is stored (its keys as text), not refused: refusing it
    failed the trial of an objective that worked before."""
    study = hpo.create_study(SPACE, storage=url)
    trial = study.ask()
    trial.set_user_attr("per_class", {0: 0.91, 1: 0.85})
    study.tell(trial, {"loss": 0.5, "status": "ok", "recall": {0: 0.5}})
    assert study.trials[0].state is hpo.TrialState.COMPLETE
    assert study.trials[0].user_attrs["per_class"] == {"0": 0.91, "1": 0.85}
    assert study.trials[0].user_attrs["recall"] == {"0": 0.5}


def test_a_space_with_tuple_keys_runs(url: str) -> None:
    """Hyperopt takes any hashable key; every ask failed with a bare TypeError from json."""
    space = {(1, 2): hp.uniform("x", 0.0, 1.0), (3, 4): 3}  # keys Hyperopt can sort
    study = hpo.create_study(space, storage=url, seed=0)
    trial = study.ask()
    assert trial.params[(3, 4)] == 3  # the objective gets Hyperopt's value
    study.tell(trial, 0.5)
    assert study.trials[0].state is hpo.TrialState.COMPLETE
    assert set(study.trials[0].natural) == {"(1, 2)", "(3, 4)"}  # stored: the keys' repr


@pytest.mark.parametrize(("space", "bad", "good"), [
    ({"x": hp.quniform("x", 0, 10, 0.5)}, 1e308, 6.5),  # v / q overflowed: OverflowError
    ({"x": hp.uniformint("x", 0, 10**10)}, 5_000_000_004.9, 5_000_000_004),  # was cut by int()
    ({"x": hp.quniform("x", 0, 1000, 1e-7)}, 512.00000000004, 512.0000001),  # 0.4 q off
])
def test_a_value_off_the_grid_is_refused_however_large(space: dict[str, object], bad: float,
                                                       good: float) -> None:
    study = hpo.create_study(space, storage=":memory:")
    with pytest.raises(SpaceError, match="outside the support"):
        study.enqueue({"x": bad})
    study.enqueue({"x": good})
    assert study.ask().params["x"] == good


@pytest.mark.parametrize(("expression", "message"), [
    (lambda: hp.uniform("x", 0, 10**400), r"'high' of 'x' to be a number that fits a float"),
    (lambda: hp.pchoice("c", [("a", 0.5), ("b", 0.5)]),  # (value, probability): swapped
     r"probabilities of hp.pchoice\('c'\) to be numbers.*the probability first"),
    (lambda: hp.pchoice("c", [((0.5, 0.5), "a")]), r"probabilities of hp.pchoice\('c'\)"),
    (lambda: hp.randint("n", 2**64), r"bounds from -2\*\*63 to 2\*\*63"),
    (lambda: hp.quniform("x", 0, 1, 1e-310), r"a finite number of steps"),
])
def test_arguments_that_break_the_first_trial_are_refused_at_creation(
        expression: object, message: str) -> None:
    """They were bare OverflowError, ValueError or TypeError at create_study, or a first
    trial that always failed (numpy's 'high is out of bounds for int64')."""
    with pytest.raises(SpaceError, match=message):
        hpo.create_study({"p": expression()}, storage=":memory:")  # type: ignore[operator]


def test_a_decimal_is_told_to_be_converted() -> None:
    from decimal import Decimal
    from fractions import Fraction

    study = hpo.create_study(SPACE, storage=":memory:")
    trial = study.ask()
    with pytest.raises(ConfigurationError, match=r"Decimal\('0.25'\) \(of type Decimal; "
                                                 r"convert it with float\(x\)\)"):
        trial.report(Decimal("0.25"), 0)
    with pytest.raises(SpaceError, match=r"an int or a float. Received: Fraction\(1, 2\) .*"
                                         r"Convert it with float\(x\)"):
        hpo.create_study({"x": hp.uniform("x", 0, Fraction(1, 2))}, storage=":memory:")


def test_a_study_name_with_a_nul_is_refused_at_creation() -> None:
    """Accepted before, then the first trial directory failed: 'embedded null byte'."""
    with pytest.raises(ConfigurationError, match="without a NUL character"):
        hpo.create_study(SPACE, study_name="a\x00b", storage=":memory:")


def test_bounds_in_messages_are_not_rounded_to_six_digits() -> None:
    """"expected a whole number from 1e+06 to 1e+06" said nothing, and refused 0.1234568
    beside an upper bound shown as 0.123457."""
    study = hpo.create_study({"n": hp.uniformint("n", 1_000_000, 1_000_005),
                              "x": hp.uniform("x", 0, 0.1234567)}, storage=":memory:")
    with pytest.raises(SpaceError, match=r"expected a whole number from 1000000 to 1000005"):
        study.enqueue({"n": 1_000_006, "x": 0.1})
    with pytest.raises(SpaceError, match=r"expected a number from 0 to 0.1234567\."):
        study.enqueue({"n": 1_000_001, "x": 0.1234568})


def test_an_in_memory_study_run_again_with_a_logdir_is_told_why(tmp_path: Path) -> None:
    """The error named the same study on both sides, with two timestamps, and not why (a
    notebook cell run again with storage=':memory:')."""
    def run() -> None:
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=1, storage=":memory:", study_name="nb",
                     logdir=str(tmp_path / "runs"), show_progress_bar=False)

    run()
    with pytest.raises(ConfigurationError, match=r"another study of the same name .*a "
                                                 r"notebook cell run again with storage="):
        run()
