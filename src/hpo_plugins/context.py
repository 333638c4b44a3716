"""The current trial: an implicit context with an explicit way beside it.

The run loop pushes each trial before it calls the objective, and ``with trial:`` does the same for
ask/tell users, so code deep inside a training script (a Lightning or Keras callback) finds its
trial with :func:`current_trial` without being handed it.

Across a process boundary the launcher hands the trial over in one environment variable,
:data:`TRIAL_ENV`, holding JSON ``{"storage": URL, "study": NAME, "trial_id": ID}`` (and, from a
database server's storage, its ``reconnect_timeout``: the child waits as long for a server that
went away, since its parent reached it). :func:`current_trial` reads it when no trial is pushed in
this process, so a child script's ``HPOCallback()`` reports to the same storage as its parent
and pruning works across processes.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from hpo_plugins.exceptions import ConfigurationError, NoActiveTrialError

if TYPE_CHECKING:
    from types import TracebackType

    from hpo_plugins.trial import Trial

__all__ = ["TRIAL_ENV", "current_trial", "current_trial_or_none", "trial_env"]

#: Environment variable that hands a trial to a child process (see the module docstring).
TRIAL_ENV = "HPO_PLUGINS_TRIAL"

_stack: contextvars.ContextVar[tuple[Trial, ...]] = contextvars.ContextVar(
    "hpo_plugins_trials", default=()
)
_from_env: dict[str, Trial] = {}


#: The trials pushed in any context of this process (another thread's too), with how many
#: times each is pushed now: what :func:`pushed_elsewhere` reads.
_pushed: dict[Trial, int] = {}
_pushed_lock = threading.Lock()


def push(trial: Trial) -> contextvars.Token[tuple[Trial, ...]]:
    """Make ``trial`` the current trial until :func:`pop` is called with the token."""
    token = _stack.set((*_stack.get(), trial))
    with _pushed_lock:
        _pushed[trial] = _pushed.get(trial, 0) + 1
    return token


def pop(token: contextvars.Token[tuple[Trial, ...]]) -> None:
    """Undo the matching :func:`push`."""
    stack = _stack.get()
    _stack.reset(token)
    if not stack:
        return
    with _pushed_lock:
        left = _pushed.pop(stack[-1], 1) - 1
        if left:
            _pushed[stack[-1]] = left


def pushed_trial_or_none() -> Trial | None:
    """The trial pushed in this context (by the run loop or ``with trial:``), or None; unlike
    :func:`current_trial_or_none` it never reads :data:`TRIAL_ENV`, which every thread sees."""
    stack = _stack.get()
    return stack[-1] if stack else None


def pushed_elsewhere() -> list[Trial]:
    """The trials current in other contexts of this process (another thread's objective) but
    not in this one: an adapter that finds no trial here, while one of these runs, was most
    likely called from a thread the objective started, which the context does not reach."""
    here = set(_stack.get())
    with _pushed_lock:
        return [trial for trial in _pushed if trial not in here]


def current_trial() -> Trial:
    """The trial being run in this context (or handed to this process).

    Raises:
        NoActiveTrialError: No trial is running here. The message says how to get one.
    """
    trial = current_trial_or_none()
    if trial is None:
        raise NoActiveTrialError(
            "No trial is active. Expected a call inside an objective run by hpo.minimize(), "
            "hpo.maximize() or study.optimize(); inside `with study.ask() as trial:`; or in a "
            f"process started with the {TRIAL_ENV} environment variable (the launchers set "
            "it). Pass the trial explicitly where none of these applies."
        )
    return trial


def current_trial_or_none() -> Trial | None:
    """Like :func:`current_trial`, but None when no trial is active (adapters use this)."""
    stack = _stack.get()
    if stack:
        return stack[-1]
    raw = os.environ.get(TRIAL_ENV)
    if not raw:
        return None
    if raw not in _from_env:
        _from_env[raw] = _load_from_env(raw)
    return _from_env[raw]


def trial_env(trial: Trial) -> dict[str, str]:
    """The environment entries that hand ``trial`` to a child process.

    From then on ``trial`` reads its reports and marks back from the storage
    (:meth:`~hpo_plugins.trial.Trial.refresh`), so the run loop sees what the child did.

    Raises:
        ConfigurationError: The trial's storage lives in this process's memory only.
    """
    storage = trial.study.storage
    url = storage.portable_url or getattr(storage, "url", None)  # url: storages before it
    if not storage.multiprocess or url is None:
        lacks = ("it is not multiprocess (one process's memory)" if not storage.multiprocess
                 else "it has no portable_url, the URL the child process opens it from")
        raise ConfigurationError(
            "Expected a storage that other processes can open to hand a trial to a child "
            f"process. Received: {storage.describe()}: {lacks}. Create the study with "
            "storage='sqlite:///hpo.db' (the default) or a PostgreSQL URL"
            + (", or give the storage a portable_url (see hpo_plugins.storages.Storage)."
               if storage.multiprocess else ".")
        )
    payload: dict[str, Any] = {"storage": url, "study": trial.study.study_name,
                               "trial_id": trial.trial_id}
    timeout = getattr(storage, "reconnect_timeout", None)
    if timeout is not None and not url.startswith("sqlite"):  # a server's only: see below
        payload["reconnect_timeout"] = timeout
    trial._handed_over = True
    return {TRIAL_ENV: json.dumps(payload)}


def _load_from_env(raw: str) -> Trial:
    from hpo_plugins.study import load_study

    try:
        data: dict[str, Any] = json.loads(raw)
        url, name, trial_id = data["storage"], data["study"], int(data["trial_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f'Expected {TRIAL_ENV} to hold JSON {{"storage": URL, "study": NAME, "trial_id": '
            f"ID}}. Received: {raw!r}. Unset it, or let a launcher set it."
        ) from exc
    storage: Any = url
    timeout = data.get("reconnect_timeout")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        from hpo_plugins.storages._sql import reached_storage

        # the parent reached this database: a server away now (a restart) is waited for, as
        # in the parent, instead of failing the trial at the child's first call
        storage = reached_storage(url, float(timeout))
    study = load_study(study_name=name, storage=storage)
    trial = study.trial(trial_id)
    _prune_on_uncaught_trial_pruned(trial)
    return trial


def _prune_on_uncaught_trial_pruned(trial: Trial) -> None:
    """In a child process: an uncaught :class:`~hpo_plugins.TrialPruned` marks ``trial`` pruned.

    A script run by :class:`~hpo_plugins.launchers.ScriptObjective` stops a hopeless trial the
    way an objective does, ``raise hpo_plugins.TrialPruned()``; the exception ends the process
    with a non-zero status, and this mark tells the parent that the trial was pruned, not broken.
    """
    from hpo_plugins.exceptions import is_trial_pruned

    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        pruned = is_trial_pruned(exc)  # ours, or Optuna's in a script ported from Optuna
        if pruned and trial.fail_reason is not None:
            # should_prune() said stop after a NaN report: the trial failed, not pruned
            sys.stderr.write(f"Trial {trial.number} failed: {trial.fail_reason}.\n")
            return
        if pruned:
            trial.mark_pruned()
            sys.stderr.write(f"Trial {trial.number} pruned ({kind.__name__}).\n")
            return
        previous(kind, exc, tb)

    sys.excepthook = hook
