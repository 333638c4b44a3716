"""The checks and value rules of ``ask``, ``tell``, ``enqueue`` and ``add_trial``: states,
trial ids, told values, curves, JSON-able params; pure functions of their arguments."""

from __future__ import annotations

import enum
import json
import logging
import math
import numbers
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hpo_plugins._frozen import (
    FrozenTrial,
    TrialState,
)
from hpo_plugins._numbers import read_number, read_step
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import (
    ConfigurationError,
)
from hpo_plugins.space import SearchSpace
from hpo_plugins.storages import (
    Storage,
)
from hpo_plugins.trial import Trial

__all__ = ["added_curve", "as_state", "as_trial_id", "check_ask", "check_user_attrs",
           "json_natural", "last_report", "marked_state", "no_best_message", "non_finite_number",
           "non_finite_reason", "parse_state", "require_frozen", "same_storage", "told_number",
           "warn_index_readings"]

#: The study module's logger: these functions were part of it, and users filter by name.
_logger = logging.getLogger("hpo_plugins.study")


def as_state(state: TrialState | str) -> TrialState:
    """A state from its enum member or its name in any case; a member of another library's
    enum (Optuna's ``TrialState``, whose values are numbers) by its name."""
    if isinstance(state, enum.Enum) and not isinstance(state, TrialState):
        state = state.name
    try:
        return TrialState(state.upper() if isinstance(state, str) else state)
    except ValueError:
        raise ConfigurationError(
            f"Expected trial states among {[s.value for s in TrialState]} (any case). "
            f"Received: {state!r}.") from None


def marked_state(trial: Trial) -> TrialState:
    """The state ``tell`` gives a trial when none is named: what its marks say, else COMPLETE.

    Without this an ask/tell user who passes ``HPOCallback(trial=...)`` and then calls
    ``tell(trial, value)`` stored a pruned trial, or one whose metric was never logged, as
    COMPLETE (the run loop has always followed the marks).
    """
    if trial.fail_reason is not None:
        _logger.info("Trial %d was marked failed (%s): told FAIL.", trial.number,
                     trial.fail_reason)
        return TrialState.FAIL
    if trial.pruned:
        _logger.info("Trial %d was marked pruned: told PRUNED.", trial.number)
        return TrialState.PRUNED
    return TrialState.COMPLETE


def parse_state(state: TrialState | str) -> TrialState:
    """The finished state named by ``tell(state=...)``; anything else is refused."""
    try:
        final: TrialState | None = as_state(state)
    except ConfigurationError:
        final = None
    if final is None or not final.is_finished:
        raise ConfigurationError(
            f"Expected `state` to be COMPLETE, PRUNED or FAIL. Received: state={state!r}."
        )
    return final


def as_trial_id(trial_id: Any) -> int:
    """``trial_id`` as an int (numpy integers too), or the error that says what a trial id is:
    a str such as ``"1"`` would otherwise be looked up as is and not found."""
    if isinstance(trial_id, bool) or not isinstance(trial_id, numbers.Integral):
        convert = (f" Convert it first: study.trial(int({trial_id!r}))."
                   if isinstance(trial_id, str) and trial_id.strip().isdigit() else "")
        raise ConfigurationError(
            f"Expected `trial_id` to be an int, the storage id of a trial (Trial.trial_id or "
            f"FrozenTrial.trial_id, not its number). Received: trial_id={trial_id!r} (of type "
            f"{type(trial_id).__name__}).{convert}"
        )
    return int(trial_id)


def require_frozen(frozen: Any, name: str, method: str) -> None:
    """Refuse anything but a stored trial where a method reads one (not a number or an id)."""
    if not isinstance(frozen, FrozenTrial):
        raise ConfigurationError(
            f"Expected `{name}` to be a FrozenTrial, a stored trial such as study.best_trial "
            f"or an item of study.trials. Received: {name}={frozen!r} (of type "
            f"{type(frozen).__name__}). For trial number n, pass "
            f"study.{method}(study.trials[n])."
        )


def told_number(trial: Trial, value: Any, state: TrialState, study_name: str) -> float:
    """``value`` as a float (NaN and infinities included: ``tell`` fails the trial for them);
    anything that is not a number is refused, the trial left RUNNING to be told again."""
    number, what = read_number(value)
    if number is None:
        verb = "prune" if state is TrialState.PRUNED else "complete"
        raise ConfigurationError(
            f"Expected a finite number to {verb} trial {trial.number} of study "
            f"{study_name!r}. Received: {what}. The trial is still RUNNING: tell it again with "
            f"a number, or with state='FAIL' for a trial without a valid value.")
    return number


def last_report(trial: Trial, study_name: str) -> float:
    """The value a COMPLETE ``tell`` without one stores: the trial's last report, as the run
    loop does for an objective that returns None."""
    last = trial.last_value
    if last is None:
        raise ConfigurationError(
            f"Expected a finite number to complete trial {trial.number} of study "
            f"{study_name!r}. Received: no value, and the trial reported none. The trial is "
            f"still RUNNING: pass value= (tell(trial, value)), or call trial.report(value) "
            f"first, or tell state='FAIL'.")
    return last


def non_finite_number(value: Any) -> bool:
    """Whether ``value`` is a NaN or an infinity (a diverged run's value)."""
    number, _ = read_number(value)
    return number is not None and not math.isfinite(number)


def non_finite_reason(number: float) -> str:
    """The FAIL reason of a NaN or infinite value told by hand. (The run loop never tells one:
    ``_optimize._interpret`` fails such a trial with "the objective returned nan".)"""
    return f"the value told was {number!r}"


def added_curve(curve: Mapping[int, float] | None) -> dict[int, float]:
    """``add_trial``'s ``intermediate_values`` as ``{int step: value}``, checked up front so
    that no half-recorded trial is created for a malformed curve."""
    if curve is None:
        return {}
    if not isinstance(curve, Mapping):
        raise ConfigurationError(
            f"Expected `intermediate_values` to be a dict {{step: value}}. Received: "
            f"{curve!r} (of type {type(curve).__name__}).")
    steps = {}
    for step, value in curve.items():
        number, what = read_number(value)
        checked = read_step(step)
        if checked is None or number is None or not math.isfinite(number):
            raise ConfigurationError(
                f"Expected `intermediate_values` to map steps (integers from 0 to 2**63 - 1) "
                f"to finite numbers. Received: {step!r}: {what or value!r}. For a run that "
                f"diverged, leave the point out and pass value=float('nan') (it is recorded "
                f"FAIL, as diverged, which the samplers learn from).")
        steps[checked] = number
    return steps


def same_storage(a: Storage, b: Storage) -> bool:
    """Whether two storage objects reach the same database (a worker's copy is another
    object on the same file)."""
    if a is b:
        return True
    url_a, url_b = getattr(a, "portable_url", None), getattr(b, "portable_url", None)
    return url_a is not None and url_a == url_b


def check_ask(heartbeat: Any, system_attrs: Any) -> None:
    """Refuse bad ``ask`` arguments before a trial is started."""
    if not isinstance(heartbeat, bool):
        raise ConfigurationError(
            f"Expected `heartbeat` to be True or False. Received: heartbeat={heartbeat!r}.")
    if system_attrs is not None and not isinstance(system_attrs, Mapping):
        raise ConfigurationError(
            f"Expected `system_attrs` to be a dict or None. Received: {system_attrs!r}.")


def json_natural(value: Any) -> Any:
    """The natural value as strict JSON: tuples become lists, numpy scalars and arrays their
    Python values (``np.int64(500)`` from ``hp.choice(.., np.arange(...))`` is stored as
    ``500``), non-finite floats their text (``'inf'``: strict JSON has no infinity) and other
    objects their repr."""
    return _finite(json.loads(json.dumps(_text_keys(value), default=_json_default)))


def _json_default(value: Any) -> Any:
    """What JSON cannot write itself: numpy values as Python's, anything else as its repr."""
    if isinstance(value, (np.generic, np.ndarray)):
        item = value.tolist()
        return float(item) if isinstance(item, np.floating) else (
            repr(item) if isinstance(item, np.generic) else item)  # np.longdouble & co.
    return repr(value)


def _text_keys(value: Any) -> Any:
    """``value`` with dict keys that JSON cannot write (a tuple, say: Hyperopt takes any
    hashable key) as their repr; JSON raised TypeError for them, at every ask."""
    if isinstance(value, dict):
        return {_text_key(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_text_keys(v) for v in value]
    return value


def _text_key(key: Any) -> Any:
    """A dict key as JSON can write it: numpy scalars as Python's, tuples and other objects
    as their repr."""
    if isinstance(key, np.generic):
        key = key.item()
    return key if isinstance(key, (str, int, float, bool)) or key is None else repr(key)


def _finite(value: Any) -> Any:
    """``value`` (read from JSON) with its non-finite floats replaced by their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def no_best_message(study_name: str, trials: Sequence[FrozenTrial], *,
                    command_line: bool = False, storage_option: str = "") -> str:
    """Why a study has no best trial: none ran yet, or how many ended in which state, with
    where to look (the failed trials' reasons) and what to do: in Python, or, for
    ``command_line``, with ``hpo-plugins`` commands (``storage_option``: the ``--storage
    URL`` the user gave, so the command shown reads the same storage)."""
    if not trials:
        how = ("hpo-plugins run ..., or study.optimize in Python" if command_line
               else "study.optimize or ask/tell")
        return (f"Study {study_name!r} has no COMPLETE trial yet (no trial has run), so it "
                f"has no best trial. Run some trials first ({how}).")
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.value] = counts.get(trial.state.value, 0) + 1
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    listed = f"hpo-plugins trials{storage_option} --study {shlex.quote(study_name)} --state"
    hints = []
    if counts.get("FAIL"):
        hints.append(f"see why they failed with {listed} FAIL" if command_line else
                     "see why they failed in study.get_trials('FAIL') (each trial's "
                     "fail_reason, also in trials_dataframe()['fail_reason'])")
    if counts.get("PRUNED"):
        hints.append(f"pruned trials are not candidates: {listed} PRUNED shows them"
                     if command_line else
                     "pruned trials are not candidates: their curves are in "
                     "study.get_trials('PRUNED') (intermediate_values)")
    if counts.get("RUNNING") or counts.get("WAITING"):
        hints.append("wait for the running and waiting trials to finish")
    hints.append("run more trials once the cause is fixed")
    return (f"Study {study_name!r} has no COMPLETE trial, so it has no best trial: "
            f"{len(trials)} trial{'s' if len(trials) != 1 else ''} so far ({by_state}), none "
            f"COMPLETE. Expected at least one COMPLETE trial with a value; "
            f"{'; '.join(hints)}.")


def check_user_attrs(user_attrs: Any) -> None:
    """Refuse ``user_attrs`` that are not a mapping (enqueue, add_trial)."""
    if user_attrs is not None and not isinstance(user_attrs, Mapping):
        raise ConfigurationError(
            f"Expected `user_attrs` to be a dict of JSON values, e.g. "
            f"user_attrs={{'source': 'paper'}}. Received: {user_attrs!r} (of type "
            f"{type(user_attrs).__name__}).")


def warn_index_readings(space: SearchSpace, params: Any, flat: Mapping[str, Any]) -> None:
    """Warn when a choice of ``params`` was read as an option but its NumPy integer may be an
    option index, as in ``hyperopt.fmin``'s ``best``: with ``hp.choice("layers", [1, 2, 4])``,
    ``best["layers"] == 2`` means 4 there, and would silently run 2 here."""
    labels = space.index_readings(params)
    if not labels:
        return
    read = ", ".join(f"{lbl}={params[lbl]!r} as the option {space.params[lbl].options[flat[lbl]]!r}"
                     f" (not the option at index {int(params[lbl])}, "
                     f"{space.params[lbl].options[int(params[lbl])]!r})" for lbl in labels)
    warn_user(f"study.enqueue read {read}. If these params come from hyperopt.fmin (its `best` "
              f"holds the index of each choice's option), enqueue "
              f"hyperopt.space_eval(space, best) instead. (A row of trials_dataframe() holds "
              f"options, as read here: take it with df.to_dict('records'), whose plain numbers "
              f"raise no warning.)")
