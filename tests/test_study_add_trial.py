"""``Study.add_trial`` (results from elsewhere) and the study's own user attributes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers import GridSampler, TPESampler

SPACE = {"x": hp.uniform("x", -2, 2),
         "net": hp.choice("net", [{"kind": "mlp", "width": hp.choice("width", [16, 32])},
                                  {"kind": "linear"}])}


def test_added_trials_are_finished_trials_the_sampler_and_pruner_see() -> None:
    study = hpo.create_study(SPACE, storage=":memory:", seed=0)
    added = study.add_trial({"x": 0.5, "net": {"kind": "mlp", "width": 32}}, 0.25,
                            intermediate_values={0: 1.0, 1: 0.5}, user_attrs={"from": "paper"})
    assert (added.state, added.value, added.params) == (TrialState.COMPLETE, 0.25,
                                                        {"x": 0.5, "net": 0, "width": 1})
    assert added.intermediate_values == {0: 1.0, 1: 0.5}
    assert added.user_attrs == {"from": "paper"} and added.system_attrs["added"] is True
    assert added.datetime_complete is not None
    pruned = study.add_trial({"x": 1.0, "net": {"kind": "linear"}}, state="PRUNED",
                             intermediate_values={0: 3.0})
    assert (pruned.state, pruned.value) == (TrialState.PRUNED, 3.0)
    failed = study.add_trial({"x": 1.5, "net": {"kind": "linear"}}, "diverged", state="FAIL")
    assert failed.state is TrialState.FAIL
    assert study.best_params == {"x": 0.5, "net": {"kind": "mlp", "width": 32}}
    history = study._history(number=None)
    assert [t.number for t in history.in_states(TrialState.COMPLETE)] == [0]


def test_a_curve_alone_completes_with_its_last_value_and_nan_fails() -> None:
    study = hpo.create_study(SPACE, storage=":memory:")
    assert study.add_trial({"x": 0.0, "net": {"kind": "linear"}},
                           intermediate_values={3: 0.7, 1: 0.9}).value == 0.7
    assert study.add_trial({"x": 0.1, "net": {"kind": "linear"}}, math.nan).state \
        is TrialState.FAIL


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "Expected `value` \\(or `intermediate_values`"),
    ({"value": "0.3"}, "`value` to be a number"),
    ({"value": 1.0, "intermediate_values": [1.0]}, "a dict \\{step: value\\}"),
    ({"value": 1.0, "intermediate_values": {-1: 1.0}}, "steps \\(integers from 0 to 2\\*\\*63"),
    ({"value": 1.0, "intermediate_values": {2**64: 1.0}}, "Received: 18446744073709551616: 1.0"),
    ({"value": 1.0, "intermediate_values": {0: "x"}}, "2\\*\\*63 - 1\\) to finite numbers"),
    ({"value": 1.0, "intermediate_values": {0: math.nan}}, "pass value=float\\('nan'\\)"),
    ({"value": 1.0, "state": "RUNNING"}, "COMPLETE, PRUNED or FAIL"),
])
def test_bad_input_is_refused_and_records_nothing(kwargs: dict[str, object],
                                                  message: str) -> None:
    study = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(ConfigurationError, match=message):
        study.add_trial({"x": 0.0, "net": {"kind": "linear"}}, **kwargs)  # type: ignore[arg-type]
    assert study.trials == []


class _Events:
    """An observer that records what it is told, as the TensorBoard one would draw it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def trial_started(self, study: hpo.Study, trial: hpo.Trial) -> None:
        self.events.append(("started", trial.number))

    def value_reported(self, study: hpo.Study, trial: hpo.Trial, step: int,
                       value: float) -> None:
        self.events.append(("reported", trial.number))

    def trial_finished(self, study: hpo.Study, frozen: hpo.FrozenTrial) -> None:
        self.events.append((f"finished {frozen.state.value}", frozen.number))


def test_an_add_trial_cut_short_tells_the_observers_the_trial_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An interruption (Ctrl-C) after the trial was created ends it FAIL in the storage; the
    observers were not told, so TensorBoard showed it as running for ever."""
    study = hpo.create_study(SPACE, storage=":memory:")
    events = _Events()
    study.observers.append(events)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(hpo.Trial, "report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        study.add_trial({"x": 0.0, "net": {"kind": "linear"}}, 1.0,
                        intermediate_values={0: 1.0})
    assert events.events == [("started", 0), ("finished FAIL", 0)]
    assert study.trials[0].fail_reason == ("add_trial stopped before it recorded the trial "
                                           "(KeyboardInterrupt)")


def test_a_grid_study_refuses_a_configuration_it_holds_and_skips_an_added_one() -> None:
    space = {"a": hp.choice("a", [1, 2, 3])}
    study = hpo.create_study(space, storage=":memory:", sampler=GridSampler())
    study.add_trial({"a": 2}, 0.5)
    with pytest.raises(ConfigurationError, match="runs each configuration once"):
        study.add_trial({"a": 2}, 0.7)
    study.optimize(lambda p: float(p["a"]))  # the grid runs the two points left
    assert sorted(t.params["a"] for t in study.trials) == [0, 1, 2]


def test_tpe_learns_from_added_results() -> None:
    """Ten added results around a minimum at x = 1 steer TPE's first proposal there: its
    start-up counts finished trials, added ones included. (The prior alone would put 30 % of
    first proposals within 3 of the minimum.)"""
    space = {"x": hp.uniform("x", -10, 10)}
    near = 0
    for seed in range(20):
        study = hpo.create_study(space, storage=":memory:", seed=seed,
                                 sampler=TPESampler(n_startup_trials=10))
        for i in range(10):
            x = -9.5 + 2 * i
            study.add_trial({"x": x}, (x - 1) ** 2)
        near += abs(study.ask().params["x"] - 1) < 3
    assert near >= 14, near


def test_study_user_attrs_are_stored_per_key_and_read_by_any_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/attrs.db"
    study = hpo.create_study(SPACE, storage=url, study_name="s")
    study.set_user_attr("dataset", "digits-v2")
    other = hpo.load_study("s", url)
    other.set_user_attr("notes", {"lr": "log scale"})
    assert study.user_attrs == {"dataset": "digits-v2", "notes": {"lr": "log scale"}}
    with pytest.raises(ConfigurationError, match="key of a study user attribute to be a str"):
        study.set_user_attr(3, "x")  # type: ignore[arg-type]
    resumed = hpo.create_study(SPACE, storage=url, study_name="s")  # no clash with settings
    assert resumed.user_attrs["dataset"] == "digits-v2"
    study.storage.close()
    other.storage.close()
    resumed.storage.close()


def test_a_live_trial_knows_when_it_started() -> None:
    study = hpo.create_study(SPACE, storage=":memory:")
    trial = study.ask()
    assert trial.datetime_start == study.trials[0].datetime_start is not None
