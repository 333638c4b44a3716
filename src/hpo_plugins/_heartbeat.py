"""A running trial's heartbeat, sent from a thread, so that a trial whose process died is
found as lost once its heartbeat is older than the grace period."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from hpo_plugins.exceptions import (
    ConfigurationError,
    StudyNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
)

if TYPE_CHECKING:
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial


__all__ = ["Heartbeat"]

#: The run loop's logger: users (and the examples) quiet the per-trial lines by this name.
_logger = logging.getLogger("hpo_plugins._optimize")
#: What ``record_heartbeat`` raises when the trial's heartbeat is over for good: the trial is
#: finished (told, or failed elsewhere as stale), or gone with its study, or not RUNNING.
_TRIAL_OVER = (TrialFinishedError, TrialNotFoundError, StudyNotFoundError, ConfigurationError)


class Heartbeat:
    """Refreshes the trial's heartbeat from a daemon thread while the objective runs.

    A heartbeat that fails because the trial is over (finished, failed elsewhere as stale, its
    study deleted) stops the thread. Any other failure (a PostgreSQL connection dropped, a
    SQLite file locked for longer than its timeout) is taken as transient: it is logged once
    per trial at WARNING, and the thread beats again at the next interval. Stopping for good
    there would let another worker fail the still-running trial once its grace period passed.
    """

    def __init__(self, study: Study, trial: Trial) -> None:
        self._storage = study.storage
        self._trial_id = trial.trial_id
        self._number = trial.number
        self._grace = study.grace_period
        self._interval = study.heartbeat_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self._interval is not None:
            self._thread = threading.Thread(target=self._beat, daemon=True,
                                            name=f"hpo-heartbeat-{self._trial_id}")
            self._thread.start()
        return self

    def _beat(self) -> None:
        assert self._interval is not None
        failing = warned = False
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except _TRIAL_OVER as exc:  # told meanwhile, failed elsewhere, or deleted
                _logger.debug("Heartbeat of trial %d stopped: %s", self._number, exc)
                return
            except Exception as exc:  # the database blinked: beat again at the next interval
                failing = True
                if not warned:
                    warned = True
                    _logger.warning(
                        "Trial %d: recording its heartbeat failed (%s: %s); retrying every "
                        "%g s. If the storage stays unreachable for more than the grace period "
                        "(%s), other workers fail this trial as lost. (Logged once per trial.)",
                        self._number, type(exc).__name__, exc, self._interval,
                        "none set" if self._grace is None else f"{self._grace:g} s")
                continue
            if failing:
                failing = False
                _logger.info("Trial %d: its heartbeat is recorded again.", self._number)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
