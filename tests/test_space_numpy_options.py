"""Choices of numpy scalars (``hp.choice("n", np.arange(100, 600, 100))``) and of ints and
floats mixed (``[1, 2.5, 4]``): stored, shown and given back as their values, and studies stored
by versions that read them as objects (by index) resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._space_read import EARLIER_READING
from hpo_plugins._space_record import earlier_fingerprints
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.space import SearchSpace

SPACE = {"n": hp.choice("n", np.arange(100, 600, 100)),
         "scale": hp.choice("scale", [np.float32(0.5), np.float32(2.0)]),
         "x": hp.uniform("x", 0, 1)}


def _objective(params: dict[str, Any]) -> float:
    assert isinstance(params["n"], np.integer)  # the objective still gets what space_eval gives
    return float(params["n"] * params["scale"] + params["x"])


def _as_earlier_versions(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``func`` reading numpy options as objects, as versions before this one did."""
    token = EARLIER_READING.set(True)
    try:
        return func(*args, **kwargs)
    finally:
        EARLIER_READING.reset(token)


def test_numpy_options_are_described_by_their_python_values() -> None:
    described = {p["label"]: p["options"] for p in SearchSpace(SPACE).describe()}
    assert described["n"] == [100, 200, 300, 400, 500]
    assert all(type(v) is int for v in described["n"])
    assert described["scale"] == [0.5, 2.0]
    assert SearchSpace(SPACE).constants() == {}


def test_tables_stored_values_and_a_reload_without_the_space_show_the_values(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    study = hpo.minimize(_objective, SPACE, n_trials=6, study_name="np", storage=url,
                         sampler=RandomSampler(), seed=0)
    frame = study.trials_dataframe()
    assert set(frame["params_n"]) <= {100, 200, 300, 400, 500}
    assert set(frame["params_scale"]) <= {0.5, 2.0}
    best = study.best_trial
    assert isinstance(best.natural["n"], int) and best.natural["n"] in range(100, 600, 100)
    study.storage.close()

    reloaded = hpo.load_study("np", storage=url)  # no space: what the CLI and exports see
    assert reloaded.best_params["n"] == best.natural["n"]
    assert type(reloaded.best_params["n"]) is int
    assert set(reloaded.trials_dataframe()["params_n"]) == set(frame["params_n"])
    reloaded.storage.close()
    shown = subprocess.run([sys.executable, "-m", "hpo_plugins.cli", "best", "--storage", url,
                            "--study", "np"],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(shown)["n"] == best.natural["n"]


def test_a_flat_enqueue_gives_a_numpy_choice_by_its_value() -> None:
    study = hpo.create_study(space=SPACE, storage=None, study_name="q")
    study.enqueue({"n": 300, "scale": 2.0, "x": 0.25})
    trial = study.ask()
    assert trial.params["n"] == 300 and trial.params["scale"] == 2.0


def test_a_study_stored_by_an_earlier_version_resumes_and_is_shown_by_values(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    old = _as_earlier_versions(hpo.minimize, _objective, SPACE, n_trials=2, study_name="old",
                               storage=url, sampler=RandomSampler(), seed=0)
    old.storage.close()
    resumed = hpo.minimize(_objective, SPACE, n_trials=2, study_name="old", storage=url,
                           sampler=RandomSampler(), seed=1)
    assert len(resumed.trials) == 4
    options = {p["label"]: p["options"] for p in resumed.storage.get_study(
        resumed.study_id).attrs["space"]}
    assert options["n"] == [100, 200, 300, 400, 500]  # recorded again, as this version reads it
    resumed.storage.close()


def test_a_derived_study_name_of_an_earlier_version_is_resumed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    old = _as_earlier_versions(hpo.minimize, _objective, SPACE, n_trials=2, storage=url)
    old.storage.close()
    from hpo_plugins._api import default_study_name

    assert default_study_name(_objective, SearchSpace(SPACE).fingerprint) != old.study_name
    again = hpo.minimize(_objective, SPACE, n_trials=1, storage=url)
    assert again.study_name == old.study_name and len(again.trials) == 3
    again.storage.close()


def test_earlier_fingerprints_are_those_an_earlier_version_computes() -> None:
    earlier = _as_earlier_versions(SearchSpace, SPACE)
    assert earlier_fingerprints(SearchSpace(SPACE)) == [earlier.fingerprint,
                                                        earlier.parameters_fingerprint]
    plain = SearchSpace({"n": hp.choice("n", [1, 2]), "x": hp.uniform("x", 0, 1)})
    assert earlier_fingerprints(plain) == []  # nothing numpy: one reading only


@pytest.mark.parametrize("options", [[np.int64(1), 2], [np.bool_(True), np.bool_(False)],
                                     [np.str_("relu"), "tanh"]])
def test_numpy_and_python_scalars_of_one_kind_are_plain_options(options: list[Any]) -> None:
    described = SearchSpace({"c": hp.choice("c", options)}).describe()[0]["options"]
    assert described == [o.item() if isinstance(o, np.generic) else o for o in options]


MIXED = {"scale": hp.choice("scale", [1, 2.5, 4]), "x": hp.uniform("x", 0, 1)}


def test_ints_and_floats_mixed_are_plain_options_and_a_flat_enqueue_reads_the_value() -> None:
    """The flat ``{"scale": 1}`` used to be read as the index 1, running 2.5, silently."""
    assert SearchSpace(MIXED).describe()[0]["options"] == [1, 2.5, 4]
    study = hpo.create_study(space=MIXED, storage=None)
    study.enqueue({"scale": 1, "x": 0.5})
    assert study.ask().params == {"scale": 1, "x": 0.5}


def test_a_study_of_mixed_options_stored_by_an_earlier_version_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hpo.db'}"

    def objective(params: dict[str, Any]) -> float:
        return float(params["scale"] * params["x"])

    old = _as_earlier_versions(hpo.minimize, objective, MIXED, n_trials=2, storage=url)
    old.storage.close()
    again = hpo.minimize(objective, MIXED, n_trials=1, storage=url)
    assert again.study_name == old.study_name and len(again.trials) == 3
    again.storage.close()


def test_a_flat_value_of_a_choice_shown_by_index_says_to_give_the_index() -> None:
    space = {"net": {"act": hp.choice("act", ["relu", None])}, "x": hp.uniform("x", 0, 1)}
    study = hpo.create_study(space=space, storage=None)
    with pytest.raises(hpo.exceptions.SpaceError,
                       match=r"Value 'relu' is not an option index of hp.choice\('act'\)\. "
                             r"Expected one of \[0, 1\]: its options are not plain literals"):
        study.enqueue({"act": "relu", "x": 0.5})
    study.enqueue({"act": 0, "x": 0.5})
    assert study.ask().params == {"net": {"act": "relu"}, "x": 0.5}


def test_a_flat_value_that_is_no_option_of_plain_options_names_the_options() -> None:
    """Plain options that look like indices ([False, True] == [0, 1]) are not shown by index:
    the message names them, without the advice about indices."""
    space = {"net": {"a": hp.choice("a", [False, True])}, "x": hp.uniform("x", 0, 1)}
    study = hpo.create_study(space=space, storage=None)
    with pytest.raises(hpo.exceptions.SpaceError,
                       match=r"Value 5 is not an option of hp.choice\('a'\)\. Expected one of "
                             r"\[False, True\]\. Expected either"):
        study.enqueue({"a": 5, "x": 0.5})
