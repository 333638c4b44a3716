"""Review 13 of the space: constants in the fingerprint and the resume check, non-finite
options, numpy numbers for choices, a shared parameter given two values, and the message of
``best_*`` when no trial completed."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._frozen import Direction
from hpo_plugins.exceptions import ConfigurationError, SpaceError
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.space import SearchSpace
from hpo_plugins.storages import Storage, get_storage


def _net_space(width: int, kind: str = "cnn") -> dict[str, Any]:
    return {"net": hp.choice("net", [{"kind": "mlp", "width": width}, {"kind": kind, "width": 32}]),
            "lr": hp.uniform("lr", 0, 1)}


class _Model:
    """An object whose default repr shows its memory address."""


# -- 1. constants in the fingerprint ---------------------------------------------------------


@pytest.mark.parametrize(("before", "after"), [
    (_net_space(64), _net_space(4096)),
    (_net_space(64), _net_space(64, kind="transformer")),
    ({"act": hp.choice("act", [math.tanh, math.sin])},
     {"act": hp.choice("act", [math.tanh, math.cos])}),
    ({"opt": hp.choice("opt", ["adam", None])}, {"opt": hp.choice("opt", ["sgd", None])}),
    ({"epochs": 10, "x": hp.uniform("x", 0, 1)}, {"epochs": 20, "x": hp.uniform("x", 0, 1)}),
    ({"x": hp.uniform("x", 0, 1) * 2}, {"x": hp.uniform("x", 0, 1) * 3}),
])
def test_editing_an_option_or_a_constant_changes_the_fingerprint(before: Any, after: Any) -> None:
    assert SearchSpace(before).fingerprint != SearchSpace(after).fingerprint


def test_a_space_of_parameters_only_keeps_the_fingerprint_of_earlier_versions() -> None:
    space = SearchSpace({
        "lr": hp.loguniform("lr", -5, 0), "net": hp.choice("net", ["mlp", "cnn"]),
        "opt": {"f": hp.pchoice("f", [(0.5, 8), (0.5, 16)])}, "n": hp.uniformint("n", 1, 4),
        "d": [hp.normal("d", 0, 1), hp.randint("r", 2, 5)], "q": hp.qloguniform("q", 0, 3, 1)})
    assert space.constants() == {}
    # what the code before constants were recorded gave: derived study names stay the same
    assert space.fingerprint == space.parameters_fingerprint == "64a7800cdac4e5b6"


def test_an_object_whose_repr_has_an_address_gives_the_same_fingerprint_every_time() -> None:
    def space() -> SearchSpace:
        return SearchSpace({"m": hp.choice("m", [_Model(), None]), "x": hp.uniform("x", 0, 1)})

    assert space().fingerprint == space().fingerprint
    assert space().constants()["in option 0 of hp.choice('m')"] == (
        f"<{__name__}._Model object>")


def test_minimize_starts_a_new_study_when_an_option_is_edited() -> None:
    store = get_storage(":memory:")

    def objective(params: dict[str, Any]) -> float:
        return float(params["lr"])

    first = hpo.minimize(objective, _net_space(64), n_trials=3, storage=store, seed=0)
    second = hpo.minimize(objective, _net_space(4096), n_trials=2, storage=store, seed=0)
    assert second.study_name != first.study_name
    assert len(second.trials) == 2
    assert {t.natural["net"]["width"] for t in second.trials} <= {4096, 32}


def test_resuming_a_named_study_with_an_edited_option_is_refused_naming_it() -> None:
    store = get_storage(":memory:")
    study = hpo.create_study(space=_net_space(64), study_name="s", storage=store, seed=0)
    study.optimize(lambda p: p["lr"], n_trials=2)
    with pytest.raises(ConfigurationError, match=(
            r"another search space \(constants changed: in option 0 of hp\.choice\('net'\): "
            r"\{'kind': 'mlp', 'width': 64\} -> \{'kind': 'mlp', 'width': 4096\}.*"
            r"restore it to resume this study.*another study_name")):
        hpo.create_study(space=_net_space(4096), study_name="s", storage=store)


def test_resuming_with_an_edited_constant_is_refused_also_by_load_study() -> None:
    store = get_storage(":memory:")
    hpo.create_study(space={"epochs": 10, "x": hp.uniform("x", 0, 1)}, study_name="s",
                     storage=store)
    edited = {"epochs": 20, "x": hp.uniform("x", 0, 1)}
    with pytest.raises(ConfigurationError, match=r"(?s)constants changed: at \['epochs'\]: 10 -> "
                                                 r"20.*changes from run to run by itself"):
        hpo.create_study(space=edited, study_name="s", storage=store)
    with pytest.raises(ConfigurationError, match=r"at \['epochs'\]: 10 -> 20.*pass that one"):
        hpo.load_study("s", store, space=edited)


def _legacy_study(store: Storage, space: SearchSpace, name: str = "old") -> None:
    """A study as the code before constants were recorded stored it."""
    store.create_study(name, Direction.MINIMIZE, {
        "space": space.describe(), "space_fingerprint": space.parameters_fingerprint})


def test_a_study_stored_without_a_record_of_its_constants_resumes_and_gets_one(
        tmp_path: Path) -> None:
    store = get_storage(f"sqlite:///{tmp_path / 'old.db'}")
    space = SearchSpace(_net_space(64))
    _legacy_study(store, space)
    assert hpo.load_study("old", store, space=space).space is space
    study = hpo.create_study(space=space, study_name="old", storage=store)
    study.optimize(lambda p: p["lr"], n_trials=1)
    attrs = store.get_study(study.study_id).attrs
    assert attrs["space_constants"] == space.constants()
    assert attrs["space_fingerprint"] == space.fingerprint
    with pytest.raises(ConfigurationError, match=r"64\} -> \{'kind': 'mlp', 'width': 4096\}"):
        hpo.create_study(space=_net_space(4096), study_name="old", storage=store)


def test_a_study_stored_without_a_record_still_refuses_changed_parameters() -> None:
    store = get_storage(":memory:")
    _legacy_study(store, SearchSpace(_net_space(64)))
    changed = {"net": _net_space(64)["net"], "lr": hp.uniform("lr", 0, 2)}
    with pytest.raises(ConfigurationError, match=r"changed: lr \(uniform\(low=0, high=1\) -> "
                                                 r"uniform\(low=0, high=2\)\)"):
        hpo.create_study(space=changed, study_name="old", storage=store)


# -- 2. non-finite float options -------------------------------------------------------------


@pytest.mark.parametrize("storage", [":memory:", "sqlite"])
def test_a_non_finite_float_option_works_and_the_objective_gets_the_float(
        storage: str, tmp_path: Path) -> None:
    store = get_storage(f"sqlite:///{tmp_path / 'inf.db'}" if storage == "sqlite" else storage)
    space = {"clip": hp.choice("clip", [float("inf"), 1.0, float("nan")])}
    study = hpo.create_study(space=space, study_name="inf", storage=store, seed=0)
    study.enqueue({"clip": float("inf")})
    seen: list[Any] = []
    study.optimize(lambda p: seen.append(p["clip"]) or 1.0, n_trials=1)
    assert isinstance(seen[0], float) and math.isinf(seen[0])
    assert study.space is not None and study.space.describe()[0]["options"] == [
        "inf", 1.0, "nan"]
    assert hpo.load_study("inf", store).best_params == {"clip": "inf"}


# -- 3. numpy numbers for choice options -----------------------------------------------------


def test_numpy_numbers_are_choice_options_in_enqueue_and_add_trial() -> None:
    space = {"bs": hp.choice("bs", [16, 32, 64]), "lr": hp.uniform("lr", 0.0, 1.0)}
    study = hpo.create_study(space=space, storage=":memory:", seed=0, sampler=RandomSampler())
    study.optimize(lambda p: p["lr"] + p["bs"] / 100, n_trials=3)
    row = study.trials_dataframe().iloc[0]
    flat = {"bs": row["params_bs"], "lr": row["params_lr"]}
    assert isinstance(flat["bs"], np.integer)
    assert study.enqueue(flat) is not None
    assert study.enqueue({"bs": np.int32(64), "lr": np.float32(0.5)}) is not None
    added = study.add_trial({"bs": np.int64(16), "lr": 0.25}, 1.0)
    assert study.natural_params(added)["bs"] == 16


def test_a_bool_is_not_the_number_option_it_equals() -> None:
    study = hpo.create_study(space={"n": hp.choice("n", [1, 2])}, storage=":memory:")
    with pytest.raises(SpaceError, match=r"True is not an option of hp\.choice\('n'\)"):
        study.enqueue({"n": True})


# -- 4. one parameter in several places, given two values ------------------------------------


def test_a_shared_parameter_given_two_values_is_named_with_its_places() -> None:
    u = hp.uniform("x", 0, 1)
    study = hpo.create_study(space={"a": u, "b": [u, u]}, storage=":memory:")
    with pytest.raises(SpaceError, match=(
            r"hp\.uniform\('x'\) is one parameter, used at \['a'\], \['b'\]\[0\] and "
            r"\['b'\]\[1\], and was given 0\.5, 0\.5 and 0\.6 there: give it the same value")):
        study.enqueue({"a": 0.5, "b": (0.5, 0.6)})
    assert study.enqueue({"a": 0.5, "b": (0.5, 0.5)}) is not None


def test_a_shared_choice_given_two_options_is_named_with_its_places() -> None:
    c = hp.choice("c", [1, 2])
    study = hpo.create_study(space={"a": c, "b": {"z": c}, "x": hp.uniform("x", 0, 1)},
                             storage=":memory:")
    with pytest.raises(SpaceError, match=r"hp\.choice\('c'\) is one parameter, used at \['a'\] "
                                         r"and \['b'\]\['z'\], and was given 1 and 2 there"):
        study.enqueue({"a": 1, "b": {"z": 2}, "x": 0.5})


# -- 5. best_* when no trial completed -------------------------------------------------------


@pytest.mark.parametrize("attr", ["best_trial", "best_value", "best_params"])
def test_best_counts_the_trials_by_state_when_none_completed(attr: str) -> None:
    study = hpo.create_study(space={"x": hp.uniform("x", -1, 1)}, storage=":memory:", seed=0)
    study.tell(study.ask(), state="FAIL")
    trial = study.ask()
    trial.report(0.1, 0)
    study.tell(trial, state="PRUNED")
    with pytest.raises(ConfigurationError, match=(
            r"no COMPLETE trial.*2 trials so far \(1 FAIL, 1 PRUNED\), none COMPLETE.*"
            r"study\.get_trials\('FAIL'\).*fail_reason")):
        getattr(study, attr)


def test_best_of_a_study_without_trials_says_to_run_some() -> None:
    study = hpo.create_study(space={"x": hp.uniform("x", -1, 1)}, storage=":memory:")
    with pytest.raises(ConfigurationError, match=r"no trial has run.*Run some trials first"):
        _ = study.best_trial


# -- 6. what the docstrings now say ----------------------------------------------------------


def test_labels_and_columns_are_in_sorted_key_order_not_written_order() -> None:
    space = {"lr": hp.uniform("lr", 0, 1), "batch": hp.choice("batch", [16, 32])}
    study = hpo.create_study(space=space, storage=":memory:", seed=0)
    assert study.space is not None and study.space.labels == ("batch", "lr")
    columns = [c for c in study.trials_dataframe().columns if c.startswith("params_")]
    assert columns == ["params_batch", "params_lr"]


def test_without_its_space_a_study_gives_int_keys_as_str_and_objects_as_repr(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nat.db'}"
    space = {"k": hp.choice("k", [{1: "a"}]), "f": hp.choice("f", [math.sin]),
             "x": hp.uniform("x", 0, 1)}
    study = hpo.create_study(space=space, study_name="s", storage=url, seed=0)
    study.optimize(lambda p: p["x"], n_trials=1)
    assert study.best_params["k"] == {1: "a"} and study.best_params["f"] is math.sin
    opened = hpo.load_study("s", url).best_params
    assert opened["k"] == {"1": "a"} and opened["f"] == repr(math.sin)


def test_numpy_bools_and_strings_of_a_dataframe_row_are_choice_options() -> None:
    space = {"bn": hp.choice("bn", [True, False]), "act": hp.choice("act", ["relu", "tanh"])}
    study = hpo.create_study(space=space, storage=":memory:", seed=0, sampler=RandomSampler())
    assert study.enqueue({"bn": np.True_, "act": np.str_("tanh")}) is not None
    assert study.ask().params == {"bn": True, "act": "tanh"}


_SEEDED_FINGERPRINT = """
import dataclasses, sys
sys.path.insert(0, {src!r})
from hpo_plugins import hp
from hpo_plugins.space import SearchSpace

@dataclasses.dataclass(frozen=True)
class Augment:
    ops: frozenset
    scale: float = 1.0

space = {{"aug": Augment(frozenset({{"flip", "crop", "rotate", "blur", "noise"}})),
          "x": hp.uniform("x", 0, 1)}}
print(SearchSpace(space).fingerprint)
"""


def test_a_dataclass_holding_a_set_gives_one_fingerprint_whatever_the_hash_seed() -> None:
    """Its repr lists the set in hash order, which PYTHONHASHSEED changes between runs."""
    import subprocess
    import sys

    src = str(Path(hpo.__file__).parent.parent)
    prints = {subprocess.run([sys.executable, "-c", _SEEDED_FINGERPRINT.format(src=src)],
                             env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True,
                             text=True, check=True).stdout for seed in ("1", "2", "3", "4")}
    assert len(prints) == 1, prints


def test_a_study_named_by_an_earlier_version_is_resumed_under_its_name(tmp_path: Path) -> None:
    """Before constants counted, a space with constants had its parameters' fingerprint: the
    study that name holds goes on, and gets its constants recorded (so an edit later gets a
    new study)."""
    from hpo_plugins._api import default_study_name

    def objective(params: Any) -> float:
        return float(params["x"])

    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    space = {"epochs": 10, "x": hp.uniform("x", 0, 1)}
    parsed = SearchSpace(space)
    old_name = default_study_name(objective, parsed.parameters_fingerprint)
    store = get_storage(url)
    _legacy_study(store, parsed, old_name)
    store.close()

    study = hpo.minimize(objective, space, n_trials=2, storage=url)
    assert study.study_name == old_name and len(study.trials) == 2
    study.storage.close()
    edited = hpo.minimize(objective, {"epochs": 20, "x": hp.uniform("x", 0, 1)}, n_trials=1,
                          storage=url)
    assert edited.study_name not in (old_name, study.study_name)  # a new study, not refused
    assert len(edited.trials) == 1
    edited.storage.close()
