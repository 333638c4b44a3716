"""What the run loop tells a user who made a common mistake: a full study, an Optuna objective."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.samplers import RandomSampler

SPACE = {"x": hp.uniform("x", 0, 1)}


def test_a_study_full_of_finished_trials_warns_that_nothing_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler(), study_name="s")
    study.optimize(lambda p: p["x"], n_trials=5)
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study.optimize(lambda p: p["x"], n_trials=2, max_trials=3)
    assert len(study.trials) == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "already holds 5 finished trials, max_trials=3: this call runs none" in warnings[0]
    assert "n_trials=2" in warnings[0] and "Raise max_trials" in warnings[0]


def test_room_left_under_max_trials_runs_without_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())
    study.optimize(lambda p: p["x"], n_trials=2)
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study.optimize(lambda p: p["x"], n_trials=5, max_trials=4)
    assert len(study.trials) == 4
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_optuna_style_objective_is_told_how_to_read_params() -> None:
    def objective(trial: Any) -> float:
        return float(trial.suggest_float("x", 0, 1))

    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())
    with pytest.raises(AttributeError) as raised:
        study.optimize(objective, n_trials=1)
    note = " ".join(getattr(raised.value, "__notes__", []))
    assert "not with an Optuna-style trial" in note and "params['name']" in note
    failed = study.trials[0]
    assert failed.state is hpo.TrialState.FAIL
    assert "suggest_float" in (failed.fail_reason or "")
    assert "not with an Optuna-style trial" in (failed.fail_reason or "")


def test_other_attribute_errors_get_no_note() -> None:
    def objective(params: dict[str, Any]) -> float:
        return float(params.missing)  # type: ignore[attr-defined]

    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())
    with pytest.raises(AttributeError) as raised:
        study.optimize(objective, n_trials=1)
    assert not getattr(raised.value, "__notes__", [])


@pytest.mark.parametrize(("objective", "says"), [
    (lambda params, data: 1.0, "missing a required argument: 'data'"),
    (lambda: 1.0, r"<lambda>\(\) \(it takes 0 positional arguments; it is called with 1\)"),
])
def test_an_objective_that_cannot_take_the_params_is_refused_before_any_trial(
        objective: Any, says: str) -> None:
    storage = hpo.storages.InMemoryStorage()
    with pytest.raises(hpo.exceptions.ConfigurationError, match=says) as raised:
        hpo.minimize(objective, SPACE, n_trials=2, storage=storage)
    assert "functools.partial" in str(raised.value)
    assert storage.list_studies() == []  # refused before a study was created


def test_objectives_that_take_the_params_are_accepted() -> None:
    def with_default(params: dict[str, Any], scale: float = 1.0) -> float:
        return scale * params["x"]

    def variadic(*args: Any) -> float:
        return float(args[0]["x"])

    for objective in (with_default, variadic, functools.partial(lambda p, s: s * p["x"], s=2)):
        study = hpo.minimize(objective, SPACE, n_trials=1, storage=":memory:")
        assert study.trials[0].state is hpo.TrialState.COMPLETE


def test_a_sampler_given_a_seed_says_to_seed_the_study() -> None:
    from hpo_plugins.samplers import TPESampler

    with pytest.raises(hpo.exceptions.ConfigurationError,
                       match=r"no `seed` in TPESampler.*create_study\(space, seed=3"):
        TPESampler(seed=3)  # type: ignore[call-arg]


def test_a_decorator_that_supplies_an_argument_is_accepted() -> None:
    def with_data(function: Any) -> Any:
        @functools.wraps(function)
        def wrapper(params: dict[str, Any]) -> float:
            return float(function(params, 2.0))
        return wrapper

    @with_data
    def objective(params: dict[str, Any], scale: float) -> float:
        return scale * params["x"]

    study = hpo.minimize(objective, SPACE, n_trials=1, storage=":memory:")
    assert study.trials[0].state is hpo.TrialState.COMPLETE


def test_a_sampler_that_takes_keyword_arguments_may_take_a_seed() -> None:
    class Seeded(RandomSampler):
        def __init__(self, **options: Any) -> None:
            self.seed = options.pop("seed", None)

    assert Seeded(seed=4).seed == 4


def test_an_exhausted_grid_says_so_in_one_sentence(caplog: pytest.LogCaptureFixture) -> None:
    from hpo_plugins.samplers import GridSampler

    space = {"x": hp.choice("x", [1, 2])}
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        study = hpo.minimize(lambda p: float(p["x"]), space, n_trials=5, storage=":memory:",
                             sampler=GridSampler())
    assert len(study.trials) == 2
    done = [r.getMessage() for r in caplog.records if "No more trials" in r.getMessage()]
    assert len(done) == 1 and "GridSampler has nothing new to propose" in done[0]
    assert done[0].endswith("propose.") and not done[0].endswith("..")


def _diverges(params: dict[str, Any]) -> float:
    trial = hpo.current_trial()
    trial.report(1.0, 0)
    trial.report(float("nan"), 1)
    if trial.should_prune():  # True after a NaN report, whatever the pruner
        raise hpo.TrialPruned()
    return 1.0


def test_a_nan_report_then_trial_pruned_ends_fail_in_the_run_loop() -> None:
    study = hpo.minimize(_diverges, SPACE, n_trials=1, storage=":memory:")
    (trial,) = study.trials
    assert trial.state is hpo.TrialState.FAIL  # not PRUNED: it would rank among results
    assert trial.fail_reason == "reported a non-finite value (nan) at step 1"


def test_a_nan_report_then_trial_pruned_ends_fail_in_a_hand_run_block() -> None:
    study = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(hpo.TrialPruned), study.ask() as trial:
        _diverges(trial.params)
    assert study.trials[0].state is hpo.TrialState.FAIL
    assert study.trials[0].fail_reason == "reported a non-finite value (nan) at step 1"


def test_a_huge_exception_text_is_stored_shortened(caplog: pytest.LogCaptureFixture) -> None:
    """Keras embeds a whole array in some errors: hundreds of kilobytes per failed trial."""
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())

    def objective(params: Any) -> float:
        raise ValueError("start " + "0.123, " * 70_000 + "end")

    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study.optimize(objective, n_trials=2, catch=(ValueError,))
    for trial in study.trials:
        reason = trial.fail_reason or ""
        assert len(reason) < 2100
        assert reason.startswith("ValueError: start 0.123, ") and reason.endswith(" 0.123, end")
        assert "[... 488021 characters left out ...]" in reason
    assert max(len(record.getMessage()) for record in caplog.records) < 2100


def test_a_short_exception_text_is_stored_whole() -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())

    def objective(params: Any) -> float:
        raise ValueError("x" * 1900)

    study.optimize(objective, n_trials=1, catch=(ValueError,))
    assert study.trials[0].fail_reason == "ValueError: " + "x" * 1900


@pytest.mark.parametrize(("fails", "warned"), [(3, True), (2, False), (1, False)])
def test_a_run_whose_trials_all_failed_says_so_at_its_end(
        caplog: pytest.LogCaptureFixture, fails: int, warned: bool) -> None:
    """Under catch= every trial may fail and the call return as if it had worked."""
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())

    def objective(params: dict[str, Any]) -> float:
        if hpo.current_trial().number < fails:
            raise ValueError(f"no data for trial {hpo.current_trial().number}")
        return params["x"]

    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study.optimize(objective, n_trials=3 if fails > 1 else 1, catch=(ValueError,))
    ends = [r.getMessage() for r in caplog.records if "trials of this run failed" in
            r.getMessage()]
    assert ends == (["All 3 trials of this run failed; the last one: ValueError: no data for "
                     "trial 2. The study has no new result: try the objective alone (one "
                     "trial, n_jobs=1) to see its error, or read each trial's reason with "
                     "study.trials_dataframe() or hpo-plugins trials."] if warned else [])
