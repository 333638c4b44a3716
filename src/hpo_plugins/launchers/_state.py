"""The parent's side of a parallel run, shared by every launcher."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.launchers._worker import Job

if TYPE_CHECKING:
    from hpo_plugins._optimize import RunSettings
    from hpo_plugins.study import Study

__all__ = ["RunState", "fail_orphans"]

_logger = logging.getLogger(__name__)


class RunState:
    """The parent's side of one parallel run: budget, results, callbacks, clean-up."""

    def __init__(self, study: Study, settings: RunSettings, job: Job) -> None:
        from hpo_plugins._optimize import progress

        self.study, self.settings, self.job = study, settings, job
        self.started = self.failed = 0
        self.clock = time.monotonic()
        self.done = threading.Event()
        self._bar = progress(study, settings)

    def __enter__(self) -> RunState:
        return self

    def take(self) -> bool:
        """Reserve one more trial of the budget; False when this run must start no more."""
        if self.exhausted():
            return False
        self.started += 1
        return True

    def exhausted(self) -> bool:
        """True when this run may start no more trials (without reserving one)."""
        elapsed = time.monotonic() - self.clock
        return self.done.is_set() or self.settings.should_stop(self.started, self.failed,
                                                               elapsed)

    def finished(self, frozen: FrozenTrial | None) -> None:
        """Record one task's result in the parent: progress bar and callbacks."""
        if frozen is None:
            self.done.set()  # the study is full or the grid exhausted
            return
        self.failed += frozen.state is TrialState.FAIL
        if self._bar is not None:
            self._bar.update(self.study, frozen)
        for callback in self.settings.callbacks:
            callback(self.study, frozen)

    def lost(self) -> None:
        """A worker died with its trial: it counts as failed."""
        self.failed += 1

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._bar is not None:
            self._bar.close()
        if exc_type is not None:
            reason = ("interrupted by the user (KeyboardInterrupt)"
                      if issubclass(exc_type, KeyboardInterrupt)
                      else f"stopped: the run ended with {exc_type.__name__}")
            fail_orphans(self.study, self.job.run_id, reason)


def fail_orphans(study: Study, run_id: str, reason: str) -> list[int]:
    """Mark FAIL the trials of ``run_id`` still RUNNING (their workers were stopped)."""
    numbers = []
    for trial in study.storage.get_all_trials(study.study_id, [TrialState.RUNNING]):
        if trial.system_attrs.get("run_id") != run_id:
            continue
        try:
            study.storage.finish_trial(trial.trial_id, TrialState.FAIL, None,
                                       {"fail_reason": reason})
            numbers.append(trial.number)
        except Exception:  # finished meanwhile by its worker
            continue
    if numbers:
        _logger.warning("Trials %s were stopped and marked FAIL: %s.", numbers, reason)
    return numbers
