"""Stoppers: study callbacks that end a run after no progress, or at a good enough value."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.exceptions import ConfigurationError, TooManyFailuresError
from hpo_plugins.launchers import JoblibLauncher
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.stoppers import FailureStop, NoImprovementStop, ThresholdStop

SPACE = {"x": hp.uniform("x", 0, 1)}


def _run(values: Sequence[float | str], stopper: Callable[..., None], *,
         direction: str = "minimize", study: hpo.Study | None = None) -> list[hpo.FrozenTrial]:
    """Run trials whose objective gives ``values`` in turn ("prune", "fail" for those ends)."""
    study = study or hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler(),
                                      direction=direction)

    def objective(params: dict[str, Any]) -> float:
        value = values[hpo.current_trial().number]
        if value == "prune":
            raise hpo.TrialPruned()
        if value == "fail":
            raise ValueError("broken")
        return float(value)

    study.optimize(objective, n_trials=len(values), catch=(ValueError,), callbacks=[stopper])
    return study.trials


@pytest.mark.parametrize(("values", "stopper", "ran"), [
    ([5, 4, 4.5, 4.2, 4.1, 3, 2], NoImprovementStop(3), 5),  # 4.5, 4.2, 4.1 do not beat 4
    ([5, 4, 4.5, 3, 3.5, 3.2, 3.1, 1], NoImprovementStop(3), 7),  # the count restarts at 3
    ([5, 4.8, 4.6, 4.55, 1, 1], NoImprovementStop(3, min_delta=0.5), 4),  # 0.45 in all
    (["fail", "prune", 5, "prune", "fail", 9, 1], NoImprovementStop(3), 6),  # they count too
    (["fail", "fail", "fail", "fail", 2], NoImprovementStop(2), 5),  # not before a value
    ([5, 0.4, 0.09, 0.01], ThresholdStop(0.1), 3),
    (["fail", "fail", 1, "fail", "fail", "fail", 2], FailureStop(3, error=False), 6),
    (["fail", "prune", "fail", "fail", 3, "fail", 1], FailureStop(3, error=False), 7),  # ends
    (["fail"] * 5, FailureStop(1, error=False), 1),
])
def test_a_stopper_ends_the_run_when_its_rule_says(
        values: list[float | str], stopper: Callable[..., None], ran: int) -> None:
    trials = _run(values, stopper)
    assert len(trials) == ran
    assert all(t.state is not TrialState.RUNNING for t in trials)


def test_stoppers_follow_the_direction() -> None:
    assert len(_run([1, 2, 1.5, 1.9, 3], NoImprovementStop(2), direction="maximize")) == 4
    assert len(_run([1, 2, 3, 4], ThresholdStop(2.5), direction="maximize")) == 3
    assert len(_run([1, 2, 3, 4], ThresholdStop(2.5))) == 1  # minimising: 1 <= 2.5 at once


@pytest.mark.parametrize(("make", "message"), [
    (lambda: NoImprovementStop(0), r"Expected `patience` to be an integer >= 1"),
    (lambda: NoImprovementStop(5, min_delta=-1), r"Expected `min_delta` to be a number in "
                                                 r"\[0, inf\)"),
    (lambda: ThresholdStop("low"), r"Expected `value` to be a number"),
    (lambda: FailureStop(0), r"Expected `max_failures` to be an integer >= 1"),
    (lambda: FailureStop(3, error="yes"), r"Expected `error` to be True or False"),
])
def test_stopper_arguments_are_checked(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_hyperopts_early_stop_function_is_refused_with_ours_named() -> None:
    from hyperopt.early_stop import no_progress_loss

    study = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(ConfigurationError, match=r"Hyperopt's 'no_progress_loss.<locals>."
                                                 r"stop_fn'.*NoImprovementStop\(20\)"):
        study.optimize(lambda p: p["x"], n_trials=3, callbacks=[no_progress_loss(20)])
    assert study.trials == []


def test_failure_stop_raises_from_optimize_with_the_streak_and_the_last_reason() -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())
    with pytest.raises(TooManyFailuresError, match=r"^3 trials in a row failed \(trials 3, 4, "
                       r"5\), so the run stopped \(FailureStop\(3\)\); the last one: "
                       r"ValueError: broken\. Fix the cause") as raised:
        _run(["fail", 1, 2, "fail", "fail", "fail", 3, 4], FailureStop(3), study=study)
    assert raised.value.trial_numbers == [3, 4, 5]
    assert len(study.trials) == 6
    assert all(t.state is not TrialState.RUNNING for t in study.trials)


def test_failure_stop_without_error_warns_and_returns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        trials = _run(["fail", "fail", 1], FailureStop(2, error=False))
    assert len(trials) == 2
    warned = [r.getMessage() for r in caplog.records if "in a row failed" in r.getMessage()]
    assert len(warned) == 1 and "FailureStop(2, error=False)" in warned[0], warned


def test_failure_stop_reads_the_study_so_a_resumed_run_goes_on_after_a_success() -> None:
    """The streak lives in the study: a re-run stops at its first failure, goes on after a
    success (the documented behaviour of a stateless stopper)."""
    values = ["fail", "fail", "fail", 5, "fail", 6]  # by trial number, across the three calls
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())

    def objective(params: dict[str, Any]) -> float:
        value = values[hpo.current_trial().number]
        if value == "fail":
            raise ValueError("broken")
        return float(value)

    def run(n_trials: int) -> None:
        study.optimize(objective, n_trials=n_trials, catch=(ValueError,),
                       callbacks=[FailureStop(2)])

    with pytest.raises(TooManyFailuresError, match=r"^2 trials in a row failed"):
        run(3)
    with pytest.raises(TooManyFailuresError, match=r"^3 trials in a row failed"):
        run(3)  # trial 2 fails: the streak of the first call goes on
    assert len(study.trials) == 3
    run(3)  # trial 3 succeeds, so trial 4's failure starts a new streak
    assert [t.state for t in study.trials][3:] == [
        TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]


def test_stop_with_an_error_raises_it_after_the_run_and_only_the_first() -> None:
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())
    first, second = RuntimeError("first"), RuntimeError("second")

    def callback(study: hpo.Study, frozen: hpo.FrozenTrial) -> None:
        study.stop(error=first if frozen.number == 1 else second)

    with pytest.raises(RuntimeError, match="^first$"):
        study.optimize(lambda p: p["x"], n_trials=2 + 5, callbacks=[
            lambda s, f: None if f.number < 1 else callback(s, f)])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    study.optimize(lambda p: p["x"], n_trials=1)  # the next call starts without the error
    assert len(study.trials) == 3
    with pytest.raises(ConfigurationError, match=r"Expected `error` to be an exception.*"
                                                 r"Received: 'why' \(of type str\)"):
        study.stop(error="why")  # type: ignore[arg-type]


def _slow_first_else_fail(params: dict[str, Any]) -> float:
    if hpo.current_trial().number == 0:
        time.sleep(3.0)
        return 0.5
    raise ValueError("broken")


def test_failure_stop_lets_the_other_workers_trials_finish_before_raising(
        tmp_path: Path) -> None:
    """Parallel: trial 0 is still running when the streak of failures of the other worker
    reaches the limit; it finishes COMPLETE (raising in the callback would fail it), then the
    error is raised."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/fs.db",
                             sampler=RandomSampler())
    with pytest.raises(TooManyFailuresError, match=r"trials in a row failed \(trials 1, 2, "):
        study.optimize(_slow_first_else_fail, n_trials=40, catch=(ValueError,),
                       callbacks=[FailureStop(3)], launcher=JoblibLauncher(n_jobs=2))
    trials = study.trials
    assert trials[0].state is TrialState.COMPLETE and trials[0].value == 0.5, trials[0]
    assert all(t.state is TrialState.FAIL for t in trials[1:]), trials
    assert 4 <= len(trials) < 40, len(trials)  # stopped: the streak, and what was handed out
    study.storage.close()


def test_a_running_trial_between_two_failures_breaks_the_streak() -> None:
    """In a parallel run a failure beyond a trial still running is not "in a row" with the
    ones before it: that trial may yet succeed (they stopped a run whose every other trial
    completed)."""
    study = hpo.create_study(SPACE, storage=":memory:", sampler=RandomSampler())
    first, running, third = study.ask(), study.ask(), study.ask()
    study.tell(first, state="FAIL")
    study.tell(third, state="FAIL")
    assert [t.number for t in FailureStop.failures_in_a_row(study.trials)] == [2]
    study.tell(running, state="FAIL")
    assert [t.number for t in FailureStop.failures_in_a_row(study.trials)] == [0, 1, 2]
    study.tell(study.ask(), 1.0)  # trial 3 completes: the next failure starts afresh
    study.tell(study.ask(), state="FAIL")
    assert [t.number for t in FailureStop.failures_in_a_row(study.trials)] == [4]


def _slow_odd_fast_failing_even(params: dict[str, Any]) -> float:
    if hpo.current_trial().number % 2:
        time.sleep(1.0)
        return 0.5
    raise ValueError("broken")


def test_alternating_failures_do_not_stop_a_parallel_run(tmp_path: Path) -> None:
    """Run one by one, no two failures are in a row; two workers must not see a streak
    through the slow successes still running."""
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/alt.db",
                             sampler=RandomSampler())
    study.optimize(_slow_odd_fast_failing_even, n_trials=6, catch=(ValueError,),
                   callbacks=[FailureStop(2)], launcher=JoblibLauncher(n_jobs=2))
    states = [t.state for t in study.trials]
    assert len(states) == 6 and states.count(TrialState.COMPLETE) == 3, states
    study.storage.close()


def test_trials_that_a_stop_of_the_run_failed_are_not_failures_in_a_row(tmp_path: Path) -> None:
    """Two Ctrl-C'd runs and one stopped by SIGTERM left three FAIL trials: the next run,
    whose every trial failed, stopped at its first failure (3 "in a row") although the
    set-up had failed once. A stop of the run says nothing about the set-up."""
    from hpo_plugins.cli._base import Terminated

    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/stops.db",
                             sampler=RandomSampler())

    def stopped(params: dict[str, Any]) -> float:
        raise KeyboardInterrupt if hpo.current_trial().number < 2 else Terminated("SIGTERM")

    for _ in range(3):
        with pytest.raises((KeyboardInterrupt, Terminated)):
            study.optimize(stopped, n_trials=1)

    def broken(params: dict[str, Any]) -> float:
        raise ValueError("a wrong data path")

    with pytest.raises(TooManyFailuresError, match=r"trials in a row failed \(trials 3, 4, 5\)"):
        study.optimize(broken, n_trials=10, catch=(ValueError,), callbacks=[FailureStop(3)])
    reasons = [t.fail_reason or "" for t in study.trials]
    assert [r.split(" (")[0] for r in reasons[:3]] == ["interrupted by the user"] * 2 + [
        "stopped by SIGTERM"]
    assert len(reasons) == 6 and all("a wrong data path" in r for r in reasons[3:])
    study.storage.close()
