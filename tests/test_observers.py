"""A user's observer (``study.observers``): it hears of every trial in parallel runs too (worker
processes received none: a plugin author's review saw 9 events serially and 0 with n_jobs=2)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.samplers import RandomSampler

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


class FileObserver:
    """Appends one line per event, from whichever process, to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _write(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()} {line}\n")

    def trial_started(self, study: Any, trial: Any) -> None:
        self._write(f"started {trial.number}")

    def value_reported(self, study: Any, trial: Any, step: int, value: float) -> None:
        self._write(f"reported {trial.number}@{step}")

    def trial_finished(self, study: Any, frozen: Any) -> None:
        self._write(f"finished {frozen.number} {frozen.state.value}")


def _objective(params: dict[str, float]) -> float:
    trial = hpo.current_trial()
    trial.report(params["x"], 0)
    return params["x"]


def _events(path: Path) -> tuple[set[str], set[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.split(" ", 1)[1] for line in lines}, {line.split(" ", 1)[0] for line in lines}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_user_observer_hears_every_trial_serially_and_in_workers(tmp_path: Path,
                                                                   n_jobs: int) -> None:
    log = tmp_path / "events.txt"
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/o.db", sampler=RandomSampler())
    study.observers.append(FileObserver(str(log)))
    study.optimize(_objective, n_trials=4, n_jobs=n_jobs)
    events, pids = _events(log)
    assert events == {line for n in range(4)
                      for line in (f"started {n}", f"reported {n}@0", f"finished {n} COMPLETE")}
    assert (os.getpid() in map(int, pids)) is (n_jobs == 1)  # workers ran the trials
    assert isinstance(study.observers[0], FileObserver)  # the parent's stays in place


class Unsendable(FileObserver):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.lock = threading.Lock()


def test_an_observer_that_cannot_be_pickled_stays_here_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/u.db", sampler=RandomSampler())
    study.observers.append(Unsendable(str(tmp_path / "events.txt")))
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study.optimize(_objective, n_trials=2, n_jobs=2)
    assert [t.state for t in study.trials] == [hpo.TrialState.COMPLETE] * 2
    assert "cannot be sent to worker processes (TypeError: cannot pickle '_thread.lock'" in (
        caplog.text)
    assert "it hears only of the trials run in this process" in caplog.text


def test_an_observer_that_holds_its_study_is_sent(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Checking that the observer pickles pickled the study, whose state checked the observer
    again, until the recursion limit: then it was said not to pickle."""
    class HoldsItsStudy(FileObserver):  # local, so pickled by value, as in a script's main
        """The common shape ``Observer(study)``: it refers to the study it observes."""

        def __init__(self, path: str, study: Any) -> None:
            super().__init__(path)
            self.study = study

    log = tmp_path / "events.txt"
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/h.db", sampler=RandomSampler())
    study.observers.append(HoldsItsStudy(str(log), study))
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        copy = cloudpickle.loads(cloudpickle.dumps(study))  # what a worker receives
        study.optimize(_objective, n_trials=2, n_jobs=2)
    assert "cannot be sent" not in caplog.text
    assert copy.observers[0].study is copy
    events, _ = _events(log)
    assert {"finished 0 COMPLETE", "finished 1 COMPLETE"} <= events
