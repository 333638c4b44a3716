"""``enqueue`` names the culprit of a value that does not fit: the key missing, unknown or
misspelled, or the value outside its parameter's support, wherever it is nested."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.exceptions import SpaceError
from hpo_plugins.space import SearchSpace

SPACE = {
    "x": hp.uniform("x", 0, 1),
    "n": hp.quniform("n", 1, 5, 1),
    "opt": hp.choice("opt", [{"name": "adam", "lr": hp.loguniform("lr", -5, 0)},
                             {"name": "sgd"}]),
}


@pytest.fixture
def study() -> hpo.Study:
    return hpo.create_study(space=SPACE, storage=":memory:")


@pytest.mark.parametrize(("value", "message"), [
    ({"x": 0.5, "opt": {"name": "sgd"}, "n": "3"},
     r"at \['n'\]: '3' \(a str\) is not a value of hp.quniform\('n', .*expected a whole number "
     r"from 1 to 5"),
    ({"x": 0.5, "opt": {"name": "adam"}, "n": 3},
     r"missing key 'lr' at \['opt'\], for hp.loguniform\('lr'.*option 0 of hp.choice\('opt'\)"),
    ({"x": 0.5, "opt": {"name": "sgd"}, "nn": 3},
     r"unknown key 'nn' at the top level \(did you mean 'n'\?\)"),
    ({"x": 0.5, "opt": {"name": "adam", "lrr": 0.1}, "n": 3},
     r"unknown key 'lrr' at \['opt'\] \(did you mean 'lr'\?\)"),
    ({"x": 0.5, "opt": {"name": "sdg"}, "n": 3},
     r"at \['opt'\]\['name'\]: expected 'sgd', received 'sdg'"),
    ({"x": 0.5, "opt": "sgd", "n": 3},
     r"at \['opt'\]: 'sgd' is not an option of hp.choice\('opt'\): expected a dict with keys "
     r"\['lr', 'name'\] or a dict with keys \['name'\]"),
    ({"x": 0.5, "opt": {"name": "adam", "lr": 5.0}, "n": 3},
     r"Value 5.0 is outside the support of hp.loguniform\('lr'"),
])
def test_enqueue_names_the_culprit(study: hpo.Study, value: dict[str, Any],
                                   message: str) -> None:
    with pytest.raises(SpaceError, match=message) as caught:
        study.enqueue(value)
    assert "is not an option of hp.choice('opt')" not in str(caught.value) or "'sgd'" in message
    assert study.trials == []


def test_a_dict_value_is_not_read_as_a_flat_choice_option(study: hpo.Study) -> None:
    """The old message blamed the choice: "Value {'name': 'sgd'} is not an option"."""
    with pytest.raises(SpaceError) as caught:
        study.enqueue({"x": 0.5, "opt": {"name": "sgd"}, "n": "3"})
    assert "{'name': 'sgd'} is not an option" not in str(caught.value)


def test_a_misspelled_label_of_a_flat_dict_is_named() -> None:
    space = SearchSpace({"lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
                         "net": hp.choice("net", [{"layers": hp.quniform("layers", 1, 4, 1)},
                                                  {"filters": hp.choice("filters", [16, 32])}])})
    with pytest.raises(SpaceError, match=r"Unknown parameter label 'layrs' \(did you mean "
                                         r"'layers'\?\)") as caught:
        space.flatten({"lr": 0.01, "net": 0, "layrs": 2})
    assert "at the top level" not in str(caught.value)  # no nested reading of a flat dict
    with pytest.raises(SpaceError, match=r"at \['net'\]\['filters'\]: 48 is not an option of "
                                         r"hp.choice\('filters'\): expected 16 or 32"):
        space.flatten({"lr": 0.01, "net": {"filters": 48}})
    assert space.flatten({"lr": 0.01, "net": 1, "filters": 32}) == {"lr": 0.01, "net": 1,
                                                                     "filters": 1}


def test_the_top_level_shape_and_int_wrappers_are_explained() -> None:
    from hyperopt.pyll import scope

    space = SearchSpace({"units": scope.int(hp.uniform("u", 1, 100)), "k": hp.uniform("k", 0, 1)})
    with pytest.raises(SpaceError, match=r"at the top level: expected a dict with keys "
                                         r"\['k', 'units'\], received 5"):
        space.flatten(5)
    with pytest.raises(SpaceError, match=r"at \['units'\]: expected a whole number .*61.5"):
        space.flatten({"units": 61.5, "k": 0.5})
    with pytest.raises(SpaceError, match=r"Could not match .*\(and 1 more\)"):
        space.flatten({"a": 1, "b": 2})  # 2 unknown and 2 missing keys: three named


def test_a_value_outside_its_support_is_blamed_in_the_reading_the_user_meant() -> None:
    """``{"x": 1.5, "n": 0.5}``: 0.5 fits option 1 of the choice (``f``), so the culprit is
    ``x``, not ``k`` of option 0."""
    space = SearchSpace({"x": hp.uniform("x", 0, 1),
                         "n": hp.choice("n", [hp.uniformint("k", 1, 10), hp.uniform("f", 0, 1)])})
    with pytest.raises(SpaceError, match=r"Value 1.5 is outside the support of hp.uniform\('x'"):
        space.flatten({"x": 1.5, "n": 0.5})
    with pytest.raises(SpaceError, match=r"Value 30 is outside the support of hp.uniformint\('k'"):
        space.flatten({"x": 0.5, "n": 30})


def test_a_finished_trial_is_enqueued_as_its_own_configuration() -> None:
    """frozen.params holds a choice's index: read as a flat natural dict, index 1 of [1, 2, 4]
    would run the option 1; the trial itself runs its configuration again."""
    space = {"layers": hp.choice("layers", [1, 2, 4]), "x": hp.uniform("x", 0, 1)}
    study = hpo.create_study(space, storage=":memory:", seed=0,
                             sampler=hpo.samplers.RandomSampler())
    study.optimize(lambda p: p["layers"] + p["x"], n_trials=12)
    frozen = next(t for t in study.trials if t.params["layers"] == 1)  # the option 2
    again = study.enqueue(frozen)
    assert again is not None
    assert again.params == frozen.params and again.natural == frozen.natural
    assert again.natural["layers"] == 2
    by_natural = study.enqueue(frozen.natural)
    assert by_natural is not None and by_natural.params == frozen.params


def test_fmins_best_read_as_options_warns_and_an_index_that_is_no_option_says_how() -> None:
    """hyperopt.fmin's ``best`` gives each choice as the index of its option (np.int64)."""
    import warnings

    import numpy as np
    from hyperopt import Trials, fmin, space_eval, tpe

    space = {"layers": hp.choice("layers", [1, 2, 4]), "lr": hp.uniform("lr", 0, 1)}
    best = fmin(lambda p: -p["layers"], space, algo=tpe.suggest, max_evals=5, trials=Trials(),
                rstate=np.random.default_rng(0), show_progressbar=False)
    assert best["layers"] == 2  # index 2: the option 4, as space_eval says
    study = hpo.create_study(space=space, storage=":memory:")
    with pytest.warns(UserWarning, match=r"read layers=np.int64\(2\) as the option 2 \(not the "
                                         r"option at index 2, 4\).*hyperopt.space_eval"):
        study.enqueue(best)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        study.enqueue(space_eval(space, best))  # the natural value: no warning
        study.enqueue({"layers": 2, "lr": 0.5})  # typed by hand: a plain int is an option
    assert [t.natural["layers"] for t in study.trials] == [2, 4, 2]
    with pytest.raises(SpaceError, match=r"Value 0 is not an option of hp.choice\('layers'\)"
                                         r".*If 0 is the index of an option .*"
                                         r"hyperopt.space_eval\(space, best\)"):
        study.enqueue({"layers": 0, "lr": 0.5})


def test_a_row_of_the_trials_dataframe_is_enqueued_with_its_blank_inactive_labels() -> None:
    """The table holds every label, NaN (or <NA>) where a label was inactive."""
    space = {"model": hp.choice("model", [{"kind": "svm", "C": hp.uniform("C", 0, 1)},
                                          {"kind": "rf", "trees": hp.quniform("trees", 1, 9, 1)}])}
    study = hpo.create_study(space=space, storage=":memory:", seed=0)
    study.optimize(lambda p: 1.0, n_trials=6)
    assert {t.natural["model"]["kind"] for t in study.trials} == {"svm", "rf"}
    frame = study.trials_dataframe()
    for row in frame.to_dict("records"):
        params = {k.removeprefix("params_"): v for k, v in row.items()
                  if k.startswith("params_")}
        trial = study.enqueue(params)
        assert trial is not None and trial.natural == study.trials[row["number"]].natural
    row = {"layers": np.int64(2)}  # a cell read as is: NumPy's integer, as fmin's index
    layers = hpo.create_study({"layers": hp.choice("layers", [1, 2, 4])}, storage=":memory:")
    with pytest.warns(UserWarning, match=r"take it with df.to_dict\('records'\)"):
        layers.enqueue(row)
    with pytest.raises(SpaceError, match=r"hp.quniform\('trees'"):  # blank but active
        study.enqueue({"model": 1, "C": math.nan, "trees": math.nan})
