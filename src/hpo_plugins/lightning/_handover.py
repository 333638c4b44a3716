"""Carry a trial into the processes that Lightning starts (``strategy="ddp_spawn"``).

Spawned workers do not share this process's trial context, so the callback travels with a
hand-over note instead of the live :class:`~hpo_plugins.Trial`: the JSON of
:data:`hpo_plugins.TRIAL_ENV` (storage URL, study name, trial id). Rank 0 re-opens the trial
from the storage with it; the parent's trial reads the worker's reports and marks back from the
storage (:meth:`hpo_plugins.Trial.refresh`).
"""

from __future__ import annotations

import json
import multiprocessing.context
from typing import TYPE_CHECKING

from hpo_plugins.context import TRIAL_ENV, trial_env
from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = ["hand_over", "open_trial"]


def hand_over(trial: Trial | None) -> str | None:
    """The note that lets another process re-open ``trial``; None when there is no trial.

    Raises:
        ConfigurationError: The callback is being sent to a new process (its pickling happens
            inside ``multiprocessing``'s spawn) and the trial's storage lives in this process's
            memory, where that process cannot reach it.
    """
    if trial is None:
        return None
    try:
        return trial_env(trial)[TRIAL_ENV]
    except ConfigurationError as exc:
        if multiprocessing.context.get_spawning_popen() is None:
            return None  # pickled within this process (deepcopy does not come here): the
            # copy finds the current trial, if any, at setup
        raise ConfigurationError(
            f"HPOCallback cannot follow trial {trial.number} into the processes that Lightning "
            f"starts (strategy='ddp_spawn' and the like): {exc}"
        ) from None


def open_trial(note: str) -> Trial:
    """Re-open the trial that :func:`hand_over` described, from its storage."""
    from hpo_plugins.study import load_study

    data = json.loads(note)
    study = load_study(data["study"], storage=data["storage"])
    return study.trial(int(data["trial_id"]))
