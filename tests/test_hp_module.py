"""``from hpo_plugins import hp``: Hyperopt's expressions, with errors for ported code."""

from __future__ import annotations

import hyperopt
import pytest
from hyperopt.pyll import scope

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.exceptions import SpaceError
from hpo_plugins.space import SearchSpace


def test_the_expressions_are_hyperopts_own() -> None:
    for name in hp.__all__:
        if name != "uniformint":
            assert getattr(hp, name) is getattr(hyperopt.hp, name), name
    ours = SearchSpace({"n": hp.uniformint("n", 1, 5), "x": hp.uniform("x", 0, 1)})
    theirs = SearchSpace({"n": hyperopt.hp.uniformint("n", 1, 5),
                          "x": hyperopt.hp.uniform("x", 0, 1)})
    assert ours.fingerprint == theirs.fingerprint  # the same space, the same study name


def test_uniformint_with_a_step_is_refused_with_the_expressions_that_have_one() -> None:
    """Hyperopt replaces any q of uniformint with 1: hp.uniformint('units', 32, 512, q=32)
    drew 338, 459, 71... without a word."""
    for call in (lambda: hp.uniformint("units", 32, 512, q=32),
                 lambda: hp.uniformint("units", 32, 512, 32)):
        with pytest.raises(SpaceError, match=r"Expected hp.uniformint\('units', low, high\) "
                                             r"without a step.*Received q=32.*hp.choice\('units', "
                                             r"list\(range\(low, high \+ 1, 32\)\)\)"):
            call()
    study = hpo.create_study({"n": hp.uniformint("n", 1, 3, q=1)}, storage=":memory:", seed=0)
    assert {study.ask().params["n"] for _ in range(30)} == {1, 2, 3}
    scope.int(hp.quniform("units", 16, 272, 32))  # the ordered form the message names


@pytest.mark.parametrize(("name", "fix"), [
    ("Int", r"hp.uniformint\(label, low, high\).*\(Keras Tuner's hp.Int\)"),
    ("Boolean", r"hp.choice\(label, \[False, True\]\)"),
    ("suggest_categorical", r"hp.choice\(label, \[option, ...\]\) \(Optuna's"),
])
def test_other_libraries_space_functions_name_ours(name: str, fix: str) -> None:
    with pytest.raises(AttributeError, match=rf"hp has no '{name}': .*Write {fix}"):
        getattr(hp, name)
    with pytest.raises(AttributeError, match=r"has no attribute 'nothing'"):
        hp.nothing  # noqa: B018 - the attribute access is the test
