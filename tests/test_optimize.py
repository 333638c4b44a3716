"""The run loop: return values, failures, catch, Ctrl-C, limits, callbacks, progress."""

from __future__ import annotations

import functools
import logging
import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._api import default_study_name
from hpo_plugins._optimize import run_one
from hpo_plugins._run_settings import RunSettings
from hpo_plugins.exceptions import (
    ConfigurationError,
    NoActiveTrialError,
    StorageError,
    TrialFinishedError,
)
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.storages import InMemoryStorage, SQLStorage, Storage

SPACE = {"x": hp.uniform("x", -2, 2)}


def _study(storage: Storage | str = ":memory:", **kwargs: Any) -> hpo.Study:
    kwargs.setdefault("sampler", RandomSampler())
    return hpo.create_study(space=SPACE, storage=storage, study_name="loop", seed=0, **kwargs)


@pytest.mark.parametrize(("result", "state", "value"), [
    (0.5, TrialState.COMPLETE, 0.5),
    (3, TrialState.COMPLETE, 3.0),
    ({"loss": 0.25, "status": "ok"}, TrialState.COMPLETE, 0.25),
    ({"value": 0.75}, TrialState.COMPLETE, 0.75),
    ({"loss": 1.0, "status": "fail"}, TrialState.FAIL, None),
    ({"accuracy": 1.0}, TrialState.FAIL, None),
    (math.nan, TrialState.FAIL, None),
    (math.inf, TrialState.FAIL, None),
    ("0.5", TrialState.FAIL, None),
    (None, TrialState.FAIL, None),
])
def test_objective_results_map_to_states(result: Any, state: TrialState,
                                         value: float | None) -> None:
    study = _study()
    study.optimize(lambda p: result, n_trials=2)
    assert [t.state for t in study.trials] == [state, state]
    assert study.trials[0].value == value
    if state is TrialState.FAIL:
        assert study.trials[0].fail_reason


def test_none_result_uses_the_last_reported_value() -> None:
    def objective(params: Any) -> None:
        trial = hpo.current_trial()
        for step, loss in enumerate((0.9, 0.4, 0.6)):
            trial.report(loss, step)

    study = _study()
    study.optimize(objective, n_trials=1)
    assert study.trials[0].value == 0.6


def test_exception_fails_the_trial_and_is_raised(storage: Storage) -> None:
    study = _study(storage)

    def objective(params: Any) -> float:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        study.optimize(objective, n_trials=5)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert trial.fail_reason == "ValueError: bad batch"
    assert "Traceback" in trial.system_attrs["traceback"]


def test_caught_exceptions_let_the_study_go_on(storage: Storage) -> None:
    calls = []

    def objective(params: Any) -> float:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("flaky")
        return params["x"]

    study = _study(storage)
    study.optimize(objective, n_trials=4, catch=(RuntimeError,))
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE] * 2


def test_keyboard_interrupt_fails_the_running_trial_and_stops(storage: Storage) -> None:
    study = _study(storage)

    def objective(params: Any) -> float:
        if len(study.trials) == 2:
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=10)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]
    assert "KeyboardInterrupt" in (study.trials[1].fail_reason or "")


def test_ctrl_c_turned_into_system_exit_fails_the_trial_and_stops(storage: Storage) -> None:
    """Lightning catches Ctrl-C in ``fit`` and calls ``sys.exit(1)``: the trial must not stay
    RUNNING (it did, until the heartbeat's grace period ran out)."""
    study = _study(storage)

    def objective(params: Any) -> float:
        if len(study.trials) == 2:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                sys.exit(1)
        return 1.0

    with pytest.raises(SystemExit):
        study.optimize(objective, n_trials=10)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert study.trials[1].fail_reason == (
        "interrupted by the user (KeyboardInterrupt, raised again as SystemExit(1))")


def test_ctrl_c_turned_into_system_exit_is_an_interrupt_at_a_prompt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """In a notebook the cell ended with 'SystemExit: 1' and IPython's "To exit: use 'exit'"
    in answer to pressing Interrupt (a notebook user's review)."""
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    study = _study(InMemoryStorage())

    def objective(params: Any) -> float:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.exit(1)

    with pytest.raises(KeyboardInterrupt) as raised:
        study.optimize(objective, n_trials=10)
    assert isinstance(raised.value.__cause__, SystemExit)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def test_system_exit_fails_the_trial_even_when_exceptions_are_caught(storage: Storage) -> None:
    study = _study(storage)

    def objective(params: Any) -> float:
        raise SystemExit

    with pytest.raises(SystemExit):
        study.optimize(objective, n_trials=3, catch=(Exception,))
    assert [(t.state, t.fail_reason) for t in study.trials] == [
        (TrialState.FAIL, "stopped by SystemExit")]


def test_trial_pruned_and_mark_pruned_end_as_pruned() -> None:
    def objective(params: Any) -> float:
        trial = hpo.current_trial()
        trial.report(0.5, 0)
        if trial.number == 0:
            raise hpo.TrialPruned
        trial.mark_pruned()
        return 0.1

    study = _study()
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert [t.value for t in study.trials] == [0.5, 0.5]


def test_mark_failed_wins_over_a_returned_value() -> None:
    def objective(params: Any) -> float:
        hpo.current_trial().mark_failed("metric 'val_acc' never logged")
        return 1.0

    study = _study()
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state is TrialState.FAIL
    assert study.trials[0].fail_reason == "metric 'val_acc' never logged"


def test_max_trials_caps_the_total_across_runs(storage: Storage) -> None:
    study = _study(storage)
    study.optimize(lambda p: 1.0, max_trials=3)
    study.optimize(lambda p: 1.0, max_trials=5, n_trials=10)
    assert len(study.trials) == 5
    study.optimize(lambda p: 1.0, max_trials=5)
    assert len(study.trials) == 5


def test_failed_trials_do_not_count_toward_max_trials() -> None:
    calls = []

    def objective(params: Any) -> float:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("once")
        return 1.0

    study = _study()
    study.optimize(objective, max_trials=3, catch=RuntimeError)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL] + [TrialState.COMPLETE] * 3


def test_an_always_failing_objective_cannot_loop_forever() -> None:
    def objective(params: Any) -> float:
        raise RuntimeError("always")

    study = _study()
    study.optimize(objective, max_trials=4, catch=RuntimeError)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4


def test_timeout_stops_starting_trials() -> None:
    study = _study()
    started = time.monotonic()
    study.optimize(lambda p: time.sleep(0.1) or 1.0, timeout=1.0)
    assert 3 <= len(study.trials) <= 11  # 10 at most in 1 s, and one started at its end
    assert time.monotonic() - started < 3


def test_callbacks_run_after_each_trial() -> None:
    seen: list[tuple[int, TrialState]] = []
    study = _study()
    study.optimize(lambda p: 1.0, n_trials=3,
                   callbacks=[lambda s, t: seen.append((t.number, t.state))])
    assert seen == [(0, TrialState.COMPLETE), (1, TrialState.COMPLETE), (2, TrialState.COMPLETE)]


def test_progress_bar_shows_the_best_value(capsys: pytest.CaptureFixture[str]) -> None:
    study = _study()
    study.optimize(lambda p: abs(p["x"]), n_trials=3, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "3/3" in err and f"best={study.best_value:.6g}" in err


def test_the_progress_bar_shows_the_best_including_the_trial_it_counts(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Each redraw's best includes the trial just counted: the bar read best=5 at 2/3 after
    a trial of 3, one trial behind."""
    study = _study()
    values = iter([5.0, 3.0, 1.0])

    def objective(params: Any) -> float:
        time.sleep(0.15)  # past tqdm's minimum interval between redraws
        return next(values)

    study.optimize(objective, n_trials=3, show_progress_bar=True)
    drawn = {re.search(r"(\d)/3", line).group(1): line  # type: ignore[union-attr]
             for line in capsys.readouterr().err.split("\r") if re.search(r"\d/3", line)}
    assert "best=5" in drawn["1"] and "best=3" in drawn["2"] and "best=1" in drawn["3"], drawn


def test_a_resumed_max_trials_run_counts_the_trials_already_there(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A re-run that adds the missing trial of a ``max_trials`` study ends at 5/5, not at 1/5
    (which reads as an aborted run)."""
    study = _study()
    study.optimize(lambda p: abs(p["x"]), max_trials=4)
    study.tell(study.ask(), state=TrialState.FAIL)  # does not count toward max_trials
    capsys.readouterr()
    study.optimize(lambda p: abs(p["x"]), max_trials=5, show_progress_bar=True)
    err = capsys.readouterr().err
    assert "5/5" in err and "1/5" not in err


def test_a_max_trials_bar_does_not_count_failed_trials(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Failures do not count toward max_trials, but each advanced the bar: it passed 4/4 with
    three trials counted and ended as "5trial" without a total."""
    study = _study()

    def objective(params: Any) -> float:
        if hpo.current_trial().number == 1:
            raise ValueError("flaky")
        return abs(params["x"])

    study.optimize(objective, max_trials=4, catch=(ValueError,), show_progress_bar=True)
    err = capsys.readouterr().err
    assert len(study.trials) == 5 and "4/4" in err, err
    # a bar that lost its total shows "5trial [..."; a rate such as "2.5trial/s" is no sign
    assert "5/4" not in err and not re.search(r"(?<![\d.])5trial \[", err), err


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "Expected a limit"),
    ({"n_trials": -1}, "Expected `n_trials` to be an integer >= 0"),
    ({"n_trials": 2.5}, "Expected `n_trials`"),
    ({"timeout": 0}, "Expected `timeout`"),
    ({"n_trials": 1, "catch": [ValueError, "oops"]}, "Expected `catch` to be an exception class"),
    ({"n_trials": 1, "callbacks": print}, "wrap it in a list: callbacks=\\[...\\]"),
    ({"n_trials": 1, "callbacks": [1]}, "to hold functions .*Received: 1 \\(a int\\)"),
    ({"n_trials": 1, "show_progress_bar": "no"}, "Expected `show_progress_bar` to be True"),
])
def test_optimize_rejects_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _study().optimize(lambda p: 1.0, **kwargs)


@pytest.mark.parametrize(("callback", "shown"), [
    (lambda t: None, r"<lambda>\(t\) \(it takes 1 positional argument; it is called with 2\)"),
    (lambda s, t, extra: None, r"<lambda>\(s, t, extra\) \(missing a required argument"),
])
def test_a_callback_of_the_wrong_signature_is_refused_before_any_trial(
        callback: Callable[..., None], shown: str) -> None:
    study = _study()
    with pytest.raises(ConfigurationError, match=r"callable with two arguments, "
                                                 r"fn\(study, frozen_trial\).*" + shown):
        study.optimize(lambda p: 1.0, n_trials=3, callbacks=[callback])
    assert study.trials == []


def test_callbacks_of_any_fitting_or_unreadable_signature_are_accepted() -> None:
    seen: list[int] = []
    study = _study()
    study.optimize(lambda p: 1.0, n_trials=1,
                   callbacks=[lambda *args: seen.append(len(args)),
                              functools.partial(lambda tag, s, t: seen.append(tag), 9),
                              _Unreadable(seen)])
    assert seen == [2, 9, -1]


class _Unreadable:
    """A callable whose signature ``inspect`` cannot read: it must not be refused."""

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    @property
    def __signature__(self) -> Any:
        raise ValueError("no signature")

    def __call__(self, *args: Any) -> None:
        self.seen.append(-1)


def test_minimize_and_maximize_find_the_optimum() -> None:
    low = hpo.minimize(lambda p: (p["x"] - 1) ** 2, SPACE, n_trials=40, storage=":memory:",
                       seed=0)
    high = hpo.maximize(lambda p: -((p["x"] + 1) ** 2), SPACE, n_trials=40, storage=":memory:",
                        seed=0)
    assert abs(low.best_params["x"] - 1) < 0.3
    assert abs(high.best_params["x"] + 1) < 0.3


def test_current_trial_outside_a_trial_says_how_to_get_one() -> None:
    with pytest.raises(NoActiveTrialError, match="with study.ask\\(\\) as trial"):
        hpo.current_trial()


def test_with_trial_makes_it_current_and_nests() -> None:
    study = _study()
    outer, inner = study.ask(), study.ask()
    with outer:
        assert hpo.current_trial() is outer
        with inner:
            assert hpo.current_trial() is inner
        assert hpo.current_trial() is outer
    with pytest.raises(NoActiveTrialError):
        hpo.current_trial()


SCRIPT = """
import hpo_plugins as hpo
from hpo_plugins import hp

def objective(params):
    return {offset} + params["x"]

study = hpo.minimize(objective, {{"x": hp.uniform("x", -2, 2)}}, n_trials=2, seed=0,
                     storage="sqlite:///shared.db")
print(study.study_name)
"""


def test_default_names_tell_scripts_and_lambdas_apart(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    names = []
    for offset in (0, 100):  # two scripts, each with its own `objective`, one database
        script = tmp_path / f"tune_{offset}.py"
        script.write_text(SCRIPT.format(offset=offset))
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, check=True,
                              capture_output=True, text=True)
        names.append(done.stdout.split()[-1])
    assert names[0] != names[1] and all(n.startswith("objective-") for n in names)
    first = lambda p: p["x"]  # noqa: E731
    second = lambda p: 100 + p["x"]  # noqa: E731
    assert default_study_name(first, "f") != default_study_name(second, "f")
    storage = f"sqlite:///{tmp_path}/lambdas.db"
    a = hpo.minimize(first, SPACE, n_trials=2, storage=storage, seed=0)
    b = hpo.minimize(second, SPACE, n_trials=2, storage=storage, seed=0)
    assert a.study_name != b.study_name and len(b.trials) == 2 and b.best_value > 90
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        again = hpo.minimize(first, SPACE, n_trials=1, storage=storage, seed=0)
    assert again.study_name == a.study_name and len(again.trials) == 3
    assert "resumed with its 2 earlier trials. Pass study_name=" in caplog.text


# -- the launcher checks the storage before the study exists ---------------------------------


class _CheckedLauncher(hpo.launchers.SequentialLauncher):
    """The sequential launcher, recording each storage its ``check`` saw; refuses on demand."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.checked: list[Storage] = []

    def check(self, storage: Storage) -> None:
        self.checked.append(storage)
        if self.refuse:
            raise ConfigurationError(f"Expected another storage. Received: {storage.describe()}.")


@pytest.mark.parametrize("given", ["default", "url", "object"])
def test_minimize_checks_the_launcher_with_the_storage_it_then_uses(tmp_path: Path,
                                                                   given: str) -> None:
    """One Storage: resolved once (None: the default file), checked, then given the study."""
    from hpo_plugins.storages import SQLStorage

    url = f"sqlite:///{tmp_path}/checked.db"
    passed: Any = {"default": None, "url": url, "object": SQLStorage(url)}[given]
    launcher = _CheckedLauncher()
    study = hpo.minimize(lambda p: p["x"], SPACE, n_trials=2, storage=passed, launcher=launcher)
    study.storage.close()
    assert len(launcher.checked) == 1 and launcher.checked[0] is study.storage
    if given == "object":
        assert study.storage is passed
    expected = tmp_path / ("hpo.db" if given == "default" else "checked.db")
    assert study.storage.describe() == f"sqlite:///{expected}"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_a_refused_launcher_check_stores_no_study(tmp_path: Path) -> None:
    """A launcher that refuses the storage does so before the study is created: the database
    keeps only the studies it held (it used to keep an empty one per refused run)."""
    from hpo_plugins.storages import SQLStorage

    url = f"sqlite:///{tmp_path}/refused.db"
    hpo.create_study(SPACE, study_name="earlier", storage=url).storage.close()
    launcher = _CheckedLauncher(refuse=True)
    with pytest.raises(ConfigurationError, match="Expected another storage"):
        hpo.minimize(lambda p: p["x"], SPACE, n_trials=2, study_name="refused", storage=url,
                     launcher=launcher)
    store = SQLStorage(url)
    assert [info.name for info in store.list_studies()] == ["earlier"]
    store.close()


def test_a_launcher_without_check_still_runs(tmp_path: Path) -> None:
    """Any object with ``run`` is a launcher; ``check`` is optional."""

    class RunOnly:
        def run(self, study: hpo.Study, objective: Any, settings: Any) -> None:
            hpo.launchers.SequentialLauncher().run(study, objective, settings)

    study = hpo.minimize(lambda p: p["x"], SPACE, n_trials=2, storage=":memory:",
                         launcher=RunOnly())
    assert len(study.trials) == 2


@pytest.mark.parametrize("then", ["returns", "raises"])
def test_a_trial_ended_elsewhere_while_it_ran_keeps_that_end_and_the_run_goes_on(
        then: str, caplog: pytest.LogCaptureFixture) -> None:
    """The process was judged dead (stopped, its heartbeat went stale) and its trial failed by
    another; when it comes back, its result is dropped instead of the run failing on it."""

    def objective(params: dict[str, float]) -> float:
        trial = hpo.current_trial()
        if trial.number == 0:
            trial.study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None,
                                             {"fail_reason": "stale heartbeat (test)"})
            if then == "raises":
                trial.report(0.5, 0)  # TrialFinishedError: the trial is no longer running
        return params["x"]

    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:")
    with caplog.at_level(logging.WARNING):
        study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert first.state is TrialState.FAIL and first.fail_reason == "stale heartbeat (test)"
    assert first.value is None and second.state is TrialState.COMPLETE
    assert "Trial 0 was failed elsewhere while this process ran it (stale heartbeat " \
           "(test)" in caplog.text and "this process's result is dropped." in caplog.text
    assert "Trial 0 failed:" not in caplog.text  # not reported as the objective's failure
    assert ("its objective then raised TrialFinishedError" in caplog.text) == (then == "raises")


def test_an_objective_that_tells_its_own_trial_is_an_error_not_a_lost_trial() -> None:
    def objective(params: dict[str, float]) -> float:
        trial = hpo.current_trial()
        trial.study.tell(trial, 0.5)  # the loop tells it: this is a mistake to report
        return params["x"]

    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:")
    with pytest.raises(TrialFinishedError, match="already COMPLETE"):
        study.optimize(objective, n_trials=1)


class _BlinkingStorage(SQLStorage):
    """A SQLite storage whose first two heartbeats fail like a dropped database connection
    (a fake of the network only; everything else is the real storage)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.beats: list[tuple[float, bool]] = []  # (time, recorded)
        self.calls = 0

    def record_heartbeat(self, trial_id: int) -> None:
        self.calls += 1
        if len(self.beats) < 2:
            self.beats.append((time.monotonic(), False))
            raise StorageError("server closed the connection unexpectedly")
        super().record_heartbeat(trial_id)
        self.beats.append((time.monotonic(), True))


def test_a_heartbeat_that_fails_once_goes_on_beating(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A transient storage error used to stop the heartbeat for good, and another worker
    failed the still-running trial once its grace period had passed."""
    storage = _BlinkingStorage(f"sqlite:///{tmp_path}/blink.db")
    study = _study(storage, heartbeat_interval=0.05, grace_period=1.0)
    seen = []

    def objective(params: dict[str, float]) -> float:
        time.sleep(2.0)  # twice the grace period: it survives only if the beats go on
        seen.append(study.storage.fail_stale_trials(study.study_id, 1.0))  # another worker
        return params["x"]

    with caplog.at_level(logging.INFO, logger="hpo_plugins._optimize"):
        study.optimize(objective, n_trials=1)
    assert seen == [[]] and study.trials[0].state is TrialState.COMPLETE
    assert [recorded for _, recorded in storage.beats[:3]] == [False, False, True]
    assert sum(recorded for _, recorded in storage.beats) >= 5  # it kept the interval
    warnings = [r for r in caplog.records if "recording its heartbeat failed" in r.message]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # once, not per beat
    assert "server closed the connection" in warnings[0].message
    assert "Trial 0: its heartbeat is recorded again." in caplog.text
    storage.close()


def test_a_heartbeat_stops_when_its_trial_was_failed_elsewhere(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = _BlinkingStorage(f"sqlite:///{tmp_path}/over.db")
    storage.beats.extend([(0.0, True)] * 2)  # no blinking here
    study = _study(storage, heartbeat_interval=0.05, grace_period=0.3)
    tries: list[int] = []

    def objective(params: dict[str, float]) -> float:
        trial = hpo.current_trial()
        study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None,
                                   {"fail_reason": "failed elsewhere"})
        before = storage.calls
        time.sleep(0.4)  # eight intervals
        tries.append(storage.calls - before)
        return params["x"]

    with caplog.at_level(logging.WARNING, logger="hpo_plugins._optimize"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].fail_reason == "failed elsewhere"
    assert tries[0] <= 1  # one try met TrialFinishedError, and the thread stopped
    assert "recording its heartbeat failed" not in caplog.text
    storage.close()


def _waits(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("The study holds max_trials")]


def test_a_re_run_that_waits_for_a_dead_run_s_trial_says_so_as_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A command-line user sees warnings only: a wait of up to a grace period (minutes) was
    announced at INFO, and the run looked hung."""
    study = _study(f"sqlite:///{tmp_path}/rerun.db", heartbeat_interval=0.1, grace_period=0.4)
    study.ask(heartbeat=True)  # the crashed run's trial: its heartbeat is no longer refreshed
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        study.optimize(lambda p: p["x"], max_trials=2)
    (wait,) = _waits(caplog)  # once
    assert wait.levelno == logging.WARNING
    assert "1 of them still RUNNING (trials 0)" in wait.getMessage()
    assert [t.state for t in study.trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 2


def test_a_worker_waiting_for_its_siblings_last_trials_says_so_at_info(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The usual end of a parallel run: a worker finds the study full while the other workers
    of its run finish their trials; not worth a warning."""
    # the sibling's beats keep it alive well past its tell (a loaded machine may be late)
    study = _study(f"sqlite:///{tmp_path}/end.db", heartbeat_interval=0.5, grace_period=2.0)
    run = {"run_id": "r1"}
    sibling = study.ask(heartbeat=True, system_attrs=run)
    finish = threading.Timer(0.3, lambda: study.tell(sibling, 1.0))  # it finishes soon
    finish.start()
    settings = RunSettings.build(study, n_trials=None, max_trials=1, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=False)
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        assert run_one(study, lambda p: p["x"], settings, system_attrs=run) is None
    finish.join()
    (wait,) = _waits(caplog)
    assert wait.levelno == logging.INFO


def _diverging(kind: str) -> Callable[[Any], Any]:
    """An objective that ends its trial FAIL in the way ``kind`` names."""

    def objective(params: Any) -> Any:
        trial = hpo.current_trial()
        trial.report(1.0, 0)
        if kind == "reported nan":
            trial.report(math.nan, 1)
            return None
        if kind == "raised":
            raise ValueError("a passing fault, maybe")
        return {"returned inf": math.inf, "returned nan in a dict": {"loss": math.nan},
                "returned status fail": {"status": "fail"}}[kind]

    return objective


@pytest.mark.parametrize(("kind", "diverged"), [
    ("reported nan", True), ("returned inf", True), ("returned nan in a dict", True),
    ("raised", False), ("returned status fail", False)])
def test_a_trial_failed_by_a_non_finite_value_is_marked_diverged(kind: str,
                                                                 diverged: bool) -> None:
    """The mark lets the samplers learn from a diverged trial (a learning rate too high); the
    other failures may be passing faults and carry none."""
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    study.optimize(_diverging(kind), n_trials=1, catch=(ValueError,))
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert trial.system_attrs.get("diverged", False) is diverged
    told = study.ask()
    assert study.tell(told, math.nan).system_attrs["diverged"] is True  # ask and tell too
    told = study.ask()  # the state given, as for a run known to have diverged
    assert study.tell(told, math.inf, state="FAIL").system_attrs["diverged"] is True
    added = study.add_trial({"x": 0.5}, math.nan, state="FAIL")
    assert added.system_attrs["diverged"] is True


def test_a_ctrl_c_outside_the_objective_leaves_no_trial_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C while the run loop reads the result (or starts the heartbeat) left the trial
    RUNNING; the next run then failed it as lost and re-queued it under max_retries."""
    from hpo_plugins import _optimize

    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(_optimize, "tell_result", interrupted)
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=None, max_retries=1)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(lambda p: p["x"], n_trials=2)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert trial.fail_reason == "interrupted by the user (KeyboardInterrupt)"


def test_a_ctrl_c_while_sampling_is_recorded_as_an_interruption() -> None:
    class Interrupted(RandomSampler):
        def sample(self, *args: Any, **kwargs: Any) -> Any:
            raise KeyboardInterrupt

    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=None,
                             sampler=Interrupted())
    with pytest.raises(KeyboardInterrupt):
        study.optimize(lambda p: p["x"], n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert trial.fail_reason == ("interrupted by the user (KeyboardInterrupt) while its "
                                 "parameters were sampled")


def test_a_lost_trial_never_re_queued_is_re_queued_by_the_next_run() -> None:
    """A run that failed a stale trial and was killed before it re-queued it (a second
    write, a moment later) left the trial without its retry: the next run re-queues it."""
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=None,
                             max_retries=1, grace_period=0.01, heartbeat_interval=0.005)
    lost = study.ask(heartbeat=True)
    time.sleep(0.05)
    (failed,) = study.storage.fail_stale_trials(study.study_id, 0.01)  # and no requeue_lost
    assert failed.system_attrs["lost"] is True
    study.optimize(lambda p: p["x"], n_trials=1)
    retry = study.trials[1]
    assert retry.system_attrs["retry_of"] == lost.number and retry.params == lost.params
    assert retry.state is TrialState.COMPLETE
    study.optimize(lambda p: p["x"], n_trials=1)  # re-queued once only
    assert [t.system_attrs.get("retry_of") for t in study.trials] == [None, 0, None]


def test_a_study_deleted_during_its_run_stops_it_with_that_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gone.db'}"

    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        trial.report(0.5, 0)
        if trial.number == 1:
            hpo.delete_study("gone", url)
        trial.report(0.4, 1)
        return float(params["x"])

    with pytest.raises(hpo.exceptions.StudyNotFoundError,
                       match=r"Study 'gone' was deleted from .* while this run ran its trial 1: "
                             r"the run stopped"):
        hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=3, storage=url,
                     study_name="gone", catch=Exception)


def test_a_lost_trial_is_re_queued_once_whoever_re_queues_it() -> None:
    """Two processes may both find a lost trial without retry (two runs starting at once):
    the retry's key lets only one copy in."""
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=None, max_retries=2)
    dead = study.tell(study.ask(), state="FAIL", system_attrs={"lost": True})
    assert study.requeue_lost(dead) is not None
    assert study.requeue_lost(dead) is None
    assert [t.system_attrs.get("retry_of") for t in study.trials] == [None, 0]


def test_a_re_run_waits_for_the_grace_period_the_lost_trial_recorded() -> None:
    """The crashed run's trial recorded a longer grace period than the re-run's: the re-run
    waits that long for it to be failed, and completes the study, instead of giving up."""
    storage = InMemoryStorage()
    space = {"x": hp.uniform("x", 0, 1)}
    crashed = hpo.create_study(space, study_name="s", storage=storage,
                               heartbeat_interval=0.3, grace_period=1.0)
    crashed.ask(heartbeat=True)  # its process dies here
    rerun = hpo.create_study(space, study_name="s", storage=storage,
                             heartbeat_interval=0.05, grace_period=0.2)
    rerun.optimize(lambda p: p["x"], max_trials=2)
    states = [t.state for t in rerun.trials]
    assert states.count(TrialState.COMPLETE) == 2 and TrialState.RUNNING not in states


def test_optunas_trial_pruned_raised_by_a_ported_objective_prunes_the_trial() -> None:
    """The objective keeps Optuna's idiom: report, should_prune(), raise optuna.TrialPruned."""
    import optuna

    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:",
                             sampler=RandomSampler(), seed=0)

    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        trial.report(params["x"], 0)
        if trial.number % 2:
            raise optuna.TrialPruned()
        return params["x"]

    study.optimize(objective, n_trials=4)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED] * 2
    assert all(t.fail_reason is None for t in study.trials)


def test_optunas_max_trials_callback_stops_the_run_at_its_count() -> None:
    """Optuna's own callback: ``get_trials(deepcopy=False, states=(optuna's COMPLETE,))``, then
    ``study.stop()``."""
    import optuna

    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:",
                             sampler=RandomSampler(), seed=0)

    def objective(params: dict[str, Any]) -> float:
        if hpo.current_trial().number % 2:
            raise optuna.TrialPruned()
        return params["x"]

    study.optimize(objective, n_trials=20, callbacks=[optuna.study.MaxTrialsCallback(
        3, states=(optuna.trial.TrialState.COMPLETE,))])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED] * 2 + [
        TrialState.COMPLETE]
    assert len(study.get_trials(optuna.trial.TrialState.PRUNED)) == 2
    with pytest.raises(ConfigurationError, match=r"Received: 1\."):
        study.get_trials([1])  # a bare number is no state


def test_optunas_trial_pruned_leaving_a_hand_run_trial_block_prunes_it() -> None:
    import optuna

    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    with pytest.raises(optuna.TrialPruned), study.ask() as trial:
        trial.report(0.5, 0)
        raise optuna.TrialPruned()
    assert study.trials[0].state is TrialState.PRUNED
