"""Observers: side outputs (TensorBoard, ...) that follow a study's trials as they happen.

The study calls every observer at three moments: a trial started (``ask``), a value was reported
(``Trial.report``), a trial finished (``tell``), each in the process that runs the trial. A
launcher adds a fourth, optional one, ``trial_recovered`` (see :data:`OPTIONAL_EVENTS`), for a
trial whose worker died after telling the storage but perhaps before telling its observers.
Observers must never break a study: an exception inside one is logged and the study goes on.

An observer of your own is any object with these methods, appended to ``study.observers``.
Worker processes receive a copy of it with the study (it must pickle; one that cannot is
warned about and hears only of the trials of the process that holds it), so state kept in
its attributes is per process: write to a file or a service, not to a list, to see every
trial. A trial handed to a child process (script mode, ``HPO_PLUGINS_TRIAL``) reports there
without the parent's observers.

Example:
    >>> import hpo_plugins as hpo
    >>> class Printer:
    ...     def trial_started(self, study, trial): pass
    ...     def value_reported(self, study, trial, step, value): pass
    ...     def trial_finished(self, study, frozen):
    ...         print(frozen.number, frozen.state.value, frozen.value)
    >>> study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:", seed=0)
    >>> study.observers.append(Printer())
    >>> _ = study.tell(study.ask(), 0.5)
    0 COMPLETE 0.5
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from hpo_plugins._frozen import FrozenTrial

if TYPE_CHECKING:
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial

__all__ = ["OPTIONAL_EVENTS", "TrialObserver", "notify"]

_logger = logging.getLogger(__name__)


class TrialObserver(Protocol):
    """What a study tells its observers."""

    def trial_started(self, study: Study, trial: Trial) -> None:
        """``trial`` was just asked (it is RUNNING, its params are set)."""

    def value_reported(self, study: Study, trial: Trial, step: int, value: float) -> None:
        """``trial`` reported ``value`` at ``step``."""

    def trial_finished(self, study: Study, frozen: FrozenTrial) -> None:
        """A trial was told: ``frozen`` is its final record."""


#: Events an observer may leave out. ``trial_recovered(study, frozen)``: ``frozen`` ended in a
#: worker that died before its result came back, so that worker may or may not have called the
#: observers' ``trial_finished``.
OPTIONAL_EVENTS = frozenset({"trial_recovered"})


def notify(study: Study, event: str, *args: object) -> None:
    """Call ``event`` on every observer of ``study`` (skipping those that leave out an
    optional one); log and swallow their errors."""
    for observer in study.observers:
        if event in OPTIONAL_EVENTS and not hasattr(observer, event):
            continue
        try:
            getattr(observer, event)(study, *args)
        except OSError as exc:  # the file system said no: its message names the path and why
            _logger.error("Observer %r could not write in %s (%s: %s); the study goes on "
                          "without it for this event.", observer, event, type(exc).__name__,
                          exc)
        except Exception:  # a bug: its traceback is what finds it
            _logger.exception("Observer %r failed in %s; the study goes on.", observer, event)
