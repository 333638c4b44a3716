"""Wrong arguments to the study API get a ConfigurationError that names them and the fix."""

from __future__ import annotations

from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.storages import InMemoryStorage

SPACE = {"x": hp.uniform("x", 0, 1)}


def _objective(params: dict[str, Any]) -> float:
    return float(params["x"])


def test_catch_given_as_text_says_to_pass_the_class() -> None:
    with pytest.raises(ConfigurationError, match=r"Received the text catch='ValueError': pass "
                                                 r"the class itself"):
        hpo.minimize(_objective, SPACE, n_trials=1, storage=InMemoryStorage(),
                     catch="ValueError")  # type: ignore[arg-type]


def test_an_empty_study_name_is_refused_by_minimize_as_by_create_study() -> None:
    storage = InMemoryStorage()
    with pytest.raises(ConfigurationError, match=r"non-empty str.*Received: study_name=''"):
        hpo.minimize(_objective, SPACE, n_trials=1, storage=storage, study_name="")
    assert storage.list_studies() == []  # refused before anything was stored


@pytest.mark.parametrize("states", [1, 2.5])
def test_get_trials_with_something_that_is_not_a_state(states: Any) -> None:
    study = hpo.create_study(space=SPACE, storage=None)
    with pytest.raises(ConfigurationError, match=r"Expected `states` to be a trial state or a "
                                                 r"list of them.*Received: " + str(states)):
        study.get_trials(states)


@pytest.mark.parametrize("name", [None, 5])
def test_load_study_with_a_name_that_is_not_a_str(name: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"the name of a study \(a str\)\. Received: "
                                                 rf"study_name={name}"):
        hpo.load_study(name, storage=InMemoryStorage())


@pytest.mark.parametrize("method", ["enqueue", "add_trial"])
def test_user_attrs_that_are_not_a_dict(method: str) -> None:
    study = hpo.create_study(space=SPACE, storage=None)
    kwargs = {"value": 0.5} if method == "add_trial" else {}
    with pytest.raises(ConfigurationError, match=r"Expected `user_attrs` to be a dict of JSON "
                                                 r"values.*Received: \[1\] \(of type list\)"):
        getattr(study, method)({"x": 0.5}, user_attrs=[1], **kwargs)
    assert study.trials == []


def test_an_objective_that_tells_its_own_trial_is_told_to_return_the_value() -> None:
    study = hpo.create_study(space=SPACE, storage=None)

    def objective(params: dict[str, Any]) -> float:
        study.tell(hpo.current_trial(), params["x"])
        return float(params["x"])

    with pytest.raises(hpo.exceptions.TrialFinishedError,
                       match=r"Trial 0 was already finished \(COMPLETE, value .*\) when its "
                             r"objective returned.*remove the study.tell\(\.\.\.\) call"):
        study.optimize(objective, n_trials=2, catch=Exception)
    assert [t.state for t in study.trials] == [hpo.TrialState.COMPLETE]  # its tell stands
