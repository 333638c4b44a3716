"""Hyperopt-style result dicts: what the run loop keeps of them besides the value."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.storages import InMemoryStorage

SPACE = {"x": hp.uniform("x", 0, 1)}


def _run(result: dict[str, Any]) -> hpo.Study:
    return hpo.minimize(lambda params: result, SPACE, n_trials=1, storage=InMemoryStorage())


def test_other_keys_of_the_dict_are_stored_as_user_attrs() -> None:
    study = _run({"loss": 0.2, "status": "ok", "accuracy": np.float32(0.5),
                  "true_loss": 0.25, "per_class": [0.1, 0.2], "note": "ok"})
    trial = study.trials[0]
    assert (trial.state, trial.value) == (TrialState.COMPLETE, 0.2)
    assert trial.user_attrs == {"accuracy": 0.5, "true_loss": 0.25, "per_class": [0.1, 0.2],
                                "note": "ok"}
    assert "user_attrs_accuracy" in study.trials_dataframe().columns


def test_a_failed_status_keeps_its_other_keys_too() -> None:
    study = _run({"status": "fail", "error": "out of memory at batch 64"})
    trial = study.trials[0]
    assert trial.state is TrialState.FAIL
    assert trial.user_attrs == {"error": "out of memory at batch 64"}


def test_a_key_json_cannot_hold_is_left_out_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study = _run({"loss": 0.3, "model": object(), "epochs": 3})
    trial = study.trials[0]
    assert (trial.state, trial.value, trial.user_attrs) == (TrialState.COMPLETE, 0.3,
                                                            {"epochs": 3})
    assert any("the key 'model' of the returned dict was not stored" in r.getMessage()
               and "trial.log_dir" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("key", ["loss", "value"])
def test_a_dict_whose_value_is_none_says_so(key: str) -> None:
    study = _run({key: None, "status": "ok"})
    trial = study.trials[0]
    assert trial.state is TrialState.FAIL
    assert trial.fail_reason == (f"the objective returned a dict whose {key!r} is None; "
                                 f"expected a number")


def test_tell_reads_a_result_dict_as_the_run_loop_does() -> None:
    study = hpo.create_study(space=SPACE, storage=None)
    done = study.tell(study.ask(), {"loss": 0.3, "status": "ok", "accuracy": 0.9})
    assert (done.state, done.value, done.user_attrs) == (TrialState.COMPLETE, 0.3,
                                                         {"accuracy": 0.9})
    failed = study.tell(study.ask(), {"status": "fail", "error": "diverged"})
    assert failed.state is TrialState.FAIL
    assert failed.fail_reason == "the objective returned status 'fail' (error: diverged)"
    assert failed.user_attrs == {"error": "diverged"}
    pruned = study.tell(study.ask(), {"loss": 0.7, "status": "ok"}, state="PRUNED")
    assert (pruned.state, pruned.value) == (TrialState.PRUNED, 0.7)


def test_add_trial_takes_hyperopt_results() -> None:
    """``trials.results[i]`` of a Hyperopt run, as it is."""
    study = hpo.create_study(space=SPACE, storage=None)
    ok = study.add_trial({"x": 0.2}, {"loss": 0.04, "status": "ok", "eval_time": 1.5},
                         user_attrs={"source": "hyperopt"})
    assert (ok.state, ok.value) == (TrialState.COMPLETE, 0.04)
    assert ok.user_attrs == {"eval_time": 1.5, "source": "hyperopt"}
    failed = study.add_trial({"x": 0.9}, {"status": "fail"})
    assert failed.state is TrialState.FAIL


def test_a_dict_returned_for_a_trial_failed_elsewhere_is_dropped_and_the_run_goes_on() -> None:
    """Another process failed the trial meanwhile (its heartbeat looked stale): the extra keys
    cannot be stored, and the result is dropped as for a number, not raised."""
    study = hpo.create_study(space=SPACE, storage=None)

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        trial = hpo.current_trial()
        if trial.number == 0:
            study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None,
                                       {"fail_reason": "no heartbeat (elsewhere)"})
        return {"loss": params["x"], "accuracy": 0.5}

    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[1].user_attrs == {"accuracy": 0.5}


def test_add_trial_keeps_a_failed_result_s_reason_and_drops_what_json_cannot_hold(
        caplog: pytest.LogCaptureFixture) -> None:
    study = hpo.create_study(space=SPACE, storage=None)
    failed = study.add_trial({"x": 0.9}, {"status": "fail"})
    assert failed.fail_reason == "the objective returned status 'fail'"
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        ok = study.add_trial({"x": 0.3}, {"loss": 0.3, "status": "ok", "note": float("nan"),
                                          "epochs": 4})
    assert (ok.state, ok.user_attrs) == (TrialState.COMPLETE, {"epochs": 4})
    assert any("The key 'note' of the result dict was not stored" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(hpo.exceptions.ConfigurationError, match=r"Expected `user_attrs` to be "
                                                                r"a dict"):
        study.add_trial({"x": 0.4}, {"loss": 0.4, "epochs": 4}, user_attrs=["a"])


@pytest.mark.parametrize(("result", "reason", "attrs"), [
    ({"status": "fail", "loss": 3.0, "reason": "out of memory"},
     "the objective returned status 'fail' (reason: out of memory)",
     {"loss": 3.0, "reason": "out of memory"}),
    ({"status": "fail", "value": 2, "message": "  "}, "the objective returned status 'fail'",
     {"value": 2, "message": "  "}),
    ({"status": "fail", "loss": float("nan")}, "the objective returned status 'fail'", {}),
    ({"status": "fail", "loss": 10 ** 400}, "the objective returned status 'fail'", {}),
    ({"status": "fail", "loss": np.float32(2.5)}, "the objective returned status 'fail'",
     {"loss": 2.5}),
])
def test_a_failed_result_keeps_its_loss_and_says_why(
        result: dict[str, Any], reason: str, attrs: dict[str, Any]) -> None:
    """Hyperopt keeps a failed result whole (``trials.losses()`` shows its loss): a finite loss
    is kept as a user attribute, and a text that says why joins the trial's reason."""
    study = hpo.create_study(space=SPACE, storage=None)
    study.optimize(lambda params: result, n_trials=1)
    failed = study.trials[0]
    assert (failed.state, failed.value) == (TrialState.FAIL, None)
    assert (failed.fail_reason, failed.user_attrs) == (reason, attrs)


def test_maximising_hyperopts_loss_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """A ported objective keeps {"loss": -accuracy}; hpo.maximize would rank its worst first."""
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study = hpo.maximize(lambda p: {"loss": -p["x"], "status": "ok"}, SPACE, n_trials=3,
                             storage=":memory:")
        for _ in range(2):  # a loop of one-trial calls on the same study: still once
            study.optimize(lambda p: {"loss": -p["x"]}, n_trials=1)
        hpo.maximize(lambda p: {"value": p["x"]}, SPACE, n_trials=2, storage=":memory:")
        hpo.minimize(lambda p: {"loss": p["x"]}, SPACE, n_trials=2, storage=":memory:")
    warned = [r.getMessage() for r in caplog.records if "which Hyperopt minimises" in
              r.getMessage()]
    assert warned == [f"Study {study.study_name!r} maximises, and the objective returns a dict "
                      f"with 'loss', which Hyperopt minimises: here the largest 'loss' ranks "
                      f"best. If it holds a loss (or -accuracy), use hpo.minimize; to maximise "
                      f"a score, return it as {{'value': score}} or as a number."]
