"""A user's sampler or pruner: recorded with the study, rebuilt in another process or on a
resume, and refused or warned about with what to change (a plugin author's review)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import Direction, hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import NopPruner, Pruner
from hpo_plugins.samplers._base import describe_object
from hpo_plugins.storages import InMemoryStorage

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


class AtStepsPruner(Pruner):
    """Prunes a trial whose last report at one of ``steps`` is above ``threshold``."""

    def __init__(self, steps: tuple[int, ...] = (1,), threshold: float = 0.5,
                 options: dict[str, Any] | None = None) -> None:
        if not all(isinstance(s, int) for s in steps):
            raise TypeError(f"steps must hold integers, got {steps!r}")
        self.steps = steps
        self.threshold = threshold
        self.options = options

    def prune(self, study: Any, trial: Any) -> bool:
        step = trial.last_step
        return step in self.steps and trial.intermediate_values[step] > self.threshold


class Opaque:
    """A value that has no JSON form."""


def test_tuples_numpy_scalars_and_dicts_are_recorded_as_json_and_rebuilt() -> None:
    """A tuple argument (or a numpy scalar read from a dataframe) was recorded as its repr and
    rebuilt as that string in a child process: ``steps='(1, 3)'``, and the child crashed or
    pruned differently from the parent."""
    pruner = AtStepsPruner(steps=(1, 3), threshold=np.float64(0.25),
                           options={"depth": np.int64(2), "names": ["a", "b"]})
    record = describe_object(pruner)
    assert record["exact"] is True
    assert record["params"] == {"steps": [1, 3], "threshold": 0.25,
                                "options": {"depth": 2, "names": ["a", "b"]}}
    storage = InMemoryStorage()
    hpo.create_study(SPACE, storage=storage, study_name="s", pruner=pruner)
    rebuilt = hpo.load_study("s", storage).pruner  # what a child process does
    assert isinstance(rebuilt, AtStepsPruner)
    assert list(rebuilt.steps) == [1, 3] and rebuilt.threshold == 0.25
    assert type(rebuilt.threshold) is float and rebuilt.options == {"depth": 2,
                                                                    "names": ["a", "b"]}


def test_a_record_marked_inexact_is_never_called_with_its_reprs(
        caplog: pytest.LogCaptureFixture) -> None:
    storage = InMemoryStorage()
    record = {"class": f"{__name__}.AtStepsPruner",
              "params": {"steps": "(1, 3)", "threshold": 0.5}, "exact": False}
    storage.create_study("s", Direction.MINIMIZE, {"pruner": record})
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        pruner = hpo.load_study("s", storage).pruner
    assert isinstance(pruner, NopPruner)  # not AtStepsPruner(steps='(1, 3)'): its check raised
    assert (f"Could not rebuild {__name__}.AtStepsPruner from the study record (its record is "
            f"not exact") in caplog.text
    assert "using NopPruner(): trials here are not pruned" in caplog.text


def test_a_class_that_cannot_be_imported_is_named_with_the_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    storage = InMemoryStorage()
    for module in ("no_such_module_here", "__main__"):
        record = {"class": f"{module}.LastAbove", "params": {}, "exact": True}
        storage.create_study(module, Direction.MINIMIZE, {"pruner": record})
        with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
            assert isinstance(hpo.load_study(module, storage).pruner, NopPruner)
    assert "(cannot import it: ModuleNotFoundError: No module named 'no_such_module_here')" in (
        caplog.text)
    assert "a class defined in the launching script cannot be imported by another process: " \
           "define it in a module" in caplog.text


def test_an_argument_without_a_json_form_is_warned_about_at_creation() -> None:
    with pytest.warns(UserWarning, match=r"The pruner AtStepsPruner cannot be rebuilt from the "
                                         r"study's record \(options=\{'o': <.*Opaque object.*"
                                         r"is not a JSON value \(recorded as text\)\)"):
        hpo.create_study(SPACE, study_name="w", storage=":memory:",
                         pruner=AtStepsPruner(options={"o": Opaque()}))


def test_the_library_s_own_plugins_are_exact() -> None:
    for plugin in (hpo.samplers.TPESampler(), hpo.samplers.GridSampler(),
                   hpo.pruners.PatientPruner(hpo.pruners.MedianPruner(), patience=2),
                   hpo.pruners.HyperbandPruner()):
        assert describe_object(plugin)["exact"] is True, plugin


class DuckSampler:
    def sample(self, space: Any, history: Any, rng: Any) -> dict[str, Any]:
        return {"x": 0.5}


def test_a_duck_typed_plugin_is_told_what_to_subclass() -> None:
    with pytest.raises(ConfigurationError, match=r"Subclass hpo_plugins.samplers.Sampler and "
                                                 r"implement sample\(space, history, rng\)"):
        hpo.create_study(SPACE, storage=":memory:", sampler=DuckSampler())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"Subclass hpo_plugins.pruners.Pruner and "
                                                 r"implement prune\(trial, others, direction\)"):
        hpo.create_study(SPACE, storage=":memory:", pruner=DuckSampler())  # type: ignore[arg-type]


class _Returns(hpo.samplers.Sampler):
    """A sampler that returns ``value`` whatever it is asked (a plugin author's mistakes)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def sample(self, space: Any, history: Any, rng: Any) -> Any:
        return self.value


@pytest.mark.parametrize(("value", "why"), [
    ({"x": 5.0}, r"Value 5.0 is outside the support of hp.uniform"),
    (None, r"Expected a dict of parameters, not NoneType"),  # was a bare TypeError
    ({"y": 0.5}, r"Unknown parameter label"),
])
def test_a_sampler_s_proposal_that_does_not_fit_names_the_sampler_and_the_form(
        value: Any, why: str) -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=_Returns(value))
    with pytest.raises(hpo.exceptions.SpaceError,
                       match=rf"The sampler _Returns\(value=.*\) proposed .* for trial 0, which "
                             rf"does not fit the space: {why}.*A sampler returns flat internal "
                             rf"parameters"):
        study.ask()
    assert [t.state for t in study.trials] == [hpo.TrialState.FAIL]  # nothing left RUNNING


def test_a_built_in_that_wraps_an_inexact_plugin_is_warned_about() -> None:
    """PatientPruner(wrapped) was skipped as a built-in: a resume or a child process then
    replaced the whole pruner by NopPruner without a word at creation."""
    wrapped = hpo.pruners.PatientPruner(AtStepsPruner(options={"o": Opaque()}), patience=1)
    with pytest.warns(UserWarning, match=r"The pruner PatientPruner cannot be rebuilt .*"
                                         r"wrapped_pruner: options="):
        hpo.create_study(SPACE, storage=":memory:", pruner=wrapped)


def test_a_non_finite_argument_is_recorded_as_text_not_refused() -> None:
    """(0.0, inf) was recorded as a JSON list holding inf, which strict JSON refused: the whole
    study record, so create_study failed."""
    with pytest.warns(UserWarning, match=r"options=\{'band': \(0.0, inf\)\} is not a JSON"):
        study = hpo.create_study(SPACE, storage=":memory:",
                                 pruner=AtStepsPruner(options={"band": (0.0, float("inf"))}))
    assert study.storage.get_study(study.study_id).attrs["pruner"]["exact"] is False
