"""The storage contract: the only state that workers share.

Every worker, in any process or on any machine, asks, reports, decides pruning and tells through a
:class:`Storage`. There is no coordinator, so the contract below is what makes parallel studies
correct. ``hpo_plugins.testing.StorageConformance`` checks it; a new storage is correct when it
passes that suite.

Contract:

* **Process safety.** Every method is atomic. Several threads (in-memory storage) or several
  processes and machines (SQL storages) may call any method at once; no call ever observes a
  half-written trial.
* **Unique numbers.** ``create_trial`` gives trials of one study the numbers 0, 1, 2, ... in
  creation order, without gaps or duplicates, whoever creates them.
* **Claiming.** ``claim_waiting_trial`` and ``start_trial`` hand each WAITING trial to exactly
  one caller.
* **Finished trials are immutable.** Once a trial is COMPLETE, PRUNED or FAIL, every method that
  would change it raises :class:`~hpo_plugins.exceptions.TrialFinishedError`.
* **Deduplication.** A trial may carry a ``dedup_key`` (samplers that must not repeat a
  configuration, such as the grid, set one). Two trials of one study never hold the same key;
  the second writer gets :class:`~hpo_plugins.exceptions.DuplicateParamsError`.
* **JSON only.** Parameters, attributes and study attributes are JSON values; nothing is pickled.
  Numpy scalars and arrays are accepted and stored as the Python values they hold (a metric
  computed with numpy must not fail its trial); anything else that is not JSON raises
  :class:`~hpo_plugins.exceptions.ConfigurationError` and writes nothing (:func:`json_copy`
  does both).
* **Fresh reads.** Reads reflect every write committed before them, from any process. No cache
  may hide another worker's trials. A storage may keep *finished* trials once read (they never
  change, and trial ids are never reused), but never an unfinished one.
* **Returned trials are snapshots.** Changing a returned trial's dicts never changes what the
  storage holds or returns to others: a storage returns copies (plain dicts for unfinished
  trials), or, for finished trials it shares between callers, read-only containers that
  raise ``TypeError`` (or, like ``types.MappingProxyType``, ``AttributeError``) when changed.
* **Errors and their words.** Raise the library's errors through the helpers that
  :mod:`hpo_plugins.storages` exports (``trial_finished``, ``study_not_found``,
  ``no_study_named``, ``duplicate_study``, ``trial_not_found``, ``finished_state``,
  ``check_attr_key``, ``check_heartbeat_state``; ``stale_after`` and ``stale_reason`` for
  heartbeats): the conformance suite matches their messages, which users read.
* **Heartbeats** belong to RUNNING trials: ``record_heartbeat`` refuses a WAITING trial (it has
  not started; ``claim_waiting_trial`` starts its clock), like a finished one.
* **Time.** Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import abc
import datetime as _dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import (
    ConfigurationError,
    DuplicateStudyError,
    StudyNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
)

__all__ = [
    "FINISHED_HINT",
    "LIMIT_STATES",
    "MAX_NAMES_SHOWN",
    "Storage",
    "StudyInfo",
    "check_attr_key",
    "check_heartbeat_state",
    "check_json_keys",
    "colliding_key",
    "duplicate_study",
    "finished_state",
    "import_keys",
    "json_copy",
    "names_for_message",
    "no_study_named",
    "params_key",
    "ranked_by_value",
    "stale_after",
    "stale_reason",
    "study_not_found",
    "trial_finished",
    "trial_not_found",
]

#: The states that count toward ``max_trials`` (a FAIL trial is retried, a WAITING one not run).
LIMIT_STATES = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class StudyInfo:
    """A study as stored: its identity, direction and attributes, and its trial counts."""

    study_id: int
    name: str
    direction: Direction
    attrs: Mapping[str, Any] = field(default_factory=dict)
    n_trials: Mapping[TrialState, int] = field(default_factory=dict)
    best_value: float | None = None
    datetime_created: _dt.datetime | None = None


def finished_state(state: TrialState | str) -> TrialState:
    """``state`` as a finished :class:`TrialState`: what ``finish_trial`` checks first.

    Raises:
        ConfigurationError: ``state`` is not COMPLETE, PRUNED or FAIL.
    """
    try:
        finished = TrialState(state)
    except ValueError:
        finished = None
    if finished is None or not finished.is_finished:
        shown = finished.value if finished is not None else state
        raise ConfigurationError(
            f"Expected `state` to be COMPLETE, PRUNED or FAIL. Received: state={shown!r}."
        )
    return finished


def check_heartbeat_state(number: int, state: TrialState) -> None:
    """Refuse a heartbeat for a WAITING trial (``record_heartbeat``, after the finished check).

    Raises:
        ConfigurationError: The trial is WAITING.
    """
    if state is TrialState.WAITING:
        raise ConfigurationError(
            f"Expected a RUNNING trial to record a heartbeat for. Received: trial {number}, "
            f"which is WAITING (it has not started; claim_waiting_trial starts its heartbeat)."
        )


class Storage(abc.ABC):
    """Base class of every storage. See the module docstring for the contract."""

    #: True when several processes can share this storage (SQL); False for in-memory. Such a
    #: storage must pickle into a handle that opens its own connections in the process that
    #: unpickles it (worker processes receive the study that way; see
    #: ``SQLStorage.__getstate__``).
    multiprocess: bool = False

    #: A URL that :func:`~hpo_plugins.storages.get_storage` opens in another process to reach
    #: the same data, or None (the default) when there is none. Two uses: a trial handed to a
    #: child process (``HPO_PLUGINS_TRIAL``: script mode, ``ddp_spawn``) is reopened there from
    #: it, and two storage objects with the same ``portable_url`` are taken for one database (a
    #: trial asked through one may be told through the other). Set it as an attribute, or
    #: override it with a property (as ``SQLStorage`` does; a storage that wraps a SQL storage
    #: returns the wrapped one's).
    portable_url: str | None = None

    # -- studies ------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_study(self, name: str, direction: Direction,
                     attrs: Mapping[str, Any] | None = None) -> int:
        """Create a study and return its id.

        Raises:
            DuplicateStudyError: A study of that name exists.
        """

    @abc.abstractmethod
    def get_study_id(self, name: str) -> int:
        """The id of the study called ``name``.

        Raises:
            StudyNotFoundError: No such study; the message lists the studies that exist.
        """

    @abc.abstractmethod
    def get_study(self, study_id: int) -> StudyInfo:
        """Name, direction, attributes and trial counts of one study."""

    @abc.abstractmethod
    def list_studies(self) -> list[StudyInfo]:
        """Every study in the storage, oldest first."""

    @abc.abstractmethod
    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        """Set one JSON attribute of a study (overwrites)."""

    @abc.abstractmethod
    def delete_study(self, study_id: int) -> None:
        """Delete a study and all its trials."""

    def import_study(self, name: str, direction: Direction, attrs: Mapping[str, Any],
                     trials: Sequence[FrozenTrial],
                     dedup_keys: Sequence[str | None] | None = None,
                     datetime_created: _dt.datetime | None = None) -> int:
        """Create study ``name`` holding copies of ``trials`` (read from any storage), in one
        atomic step, and return its id.

        The trials get the numbers 0, 1, 2, ... in the order given and keep everything else
        they hold (state, value, parameters, curve, attributes, the three timestamps); only
        their ids are new. No other caller sees the study before it holds every trial. Used by
        :func:`hpo_plugins.copy_study`.

        Args:
            dedup_keys: One key (or None) per trial, as in :meth:`create_trial`.
            datetime_created: The study's creation time; default: now.

        Raises:
            DuplicateStudyError: A study of that name exists; nothing is written.
            DuplicateParamsError: Two trials get the same ``dedup_key``; nothing is written.
            ConfigurationError: A value that is not JSON, or not one key per trial.
            NotImplementedError: This storage cannot import (the default, so that storages
                written before this method existed keep working for everything else).
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot import a study (copy_study): it does not implement "
            f"Storage.import_study. Copy into an InMemoryStorage or a SQL storage instead.")

    # -- trials -------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_trial(self, study_id: int, *, state: TrialState = TrialState.RUNNING,
                     params: Mapping[str, Any] | None = None, natural: Any = None,
                     dedup_key: str | None = None,
                     system_attrs: Mapping[str, Any] | None = None,
                     heartbeat: bool = False, limit: int | None = None,
                     user_attrs: Mapping[str, Any] | None = None) -> FrozenTrial | None:
        """Create a trial with the next number of its study and return it.

        Args:
            state: RUNNING (an ``ask``) or WAITING (``enqueue``, retries).
            params: Flat internal parameters, if already known.
            natural: The nested natural value, JSON form.
            dedup_key: See the contract; None for samplers that may repeat.
            system_attrs: Library attributes to store with it.
            heartbeat: Start the heartbeat clock now (trials run by the run loop).
            limit: If given, create nothing and return None when the study already holds
                ``limit`` trials that count toward a limit (RUNNING, COMPLETE and PRUNED); the
                check and the insert are one atomic step, so parallel workers never overshoot
                ``max_trials``.
            user_attrs: User attributes stored with it in the same step (``enqueue``), so no
                worker can claim the trial before they are there.

        Raises:
            DuplicateParamsError: ``dedup_key`` is held by another trial of the study.
        """

    @abc.abstractmethod
    def claim_waiting_trial(self, study_id: int, *, heartbeat: bool = False,
                            limit: int | None = None) -> FrozenTrial | None:
        """Atomically turn the oldest WAITING trial into RUNNING and return it, or None.

        ``limit`` works as in :meth:`create_trial`: nothing is claimed when the study already
        holds that many RUNNING, COMPLETE and PRUNED trials.
        """

    def start_trial(self, study_id: int, *, heartbeat: bool = False, limit: int | None = None,
                    system_attrs: Mapping[str, Any] | None = None
                    ) -> tuple[FrozenTrial, bool] | None:
        """Start the trial an ``ask`` runs: claim the oldest WAITING trial, else create one.

        Args:
            heartbeat: Start the trial's heartbeat clock now.
            limit: As in :meth:`create_trial`: None is returned when the study already holds
                ``limit`` trials that count toward a limit.
            system_attrs: Stored with a new trial; merged into a claimed trial's own.

        Returns:
            ``(trial, claimed)``: ``claimed`` is True for a WAITING trial now RUNNING (it
            carries its parameters), False for a new RUNNING trial without parameters. A trial
            enqueued while this call runs may be left for the next call.

        This default claims, then creates. A storage whose calls cost round trips overrides it
        to do the common case (nothing waiting) in one.
        """
        claimed = self.claim_waiting_trial(study_id, heartbeat=heartbeat, limit=limit)
        if claimed is not None:
            for key, value in (system_attrs or {}).items():
                self.set_trial_system_attr(claimed.trial_id, key, value)
            return (self.get_trial(claimed.trial_id) if system_attrs else claimed), True
        created = self.create_trial(study_id, heartbeat=heartbeat, limit=limit,
                                    system_attrs=system_attrs)
        return None if created is None else (created, False)

    @abc.abstractmethod
    def set_trial_params(self, trial_id: int, params: Mapping[str, Any], natural: Any,
                         dedup_key: str | None = None) -> None:
        """Record the parameters a sampler chose for a RUNNING trial.

        A ``dedup_key`` replaces the trial's previous key, which other trials may then take;
        None leaves the trial's key as it is.

        Raises:
            DuplicateParamsError: ``dedup_key`` is held by another trial of the study.
            TrialFinishedError: The trial is finished.
        """

    @abc.abstractmethod
    def set_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        """Record the value reported at ``step`` (a step already reported is overwritten)."""

    @abc.abstractmethod
    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Set one JSON user attribute of an unfinished trial."""

    @abc.abstractmethod
    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Set one JSON library attribute of an unfinished trial."""

    @abc.abstractmethod
    def record_heartbeat(self, trial_id: int) -> None:
        """Mark a RUNNING trial as alive now.

        Raises:
            ConfigurationError: The trial is WAITING (see the contract).
            TrialFinishedError: The trial is finished.
            TrialNotFoundError: No such trial.
        """

    @abc.abstractmethod
    def finish_trial(self, trial_id: int, state: TrialState, value: float | None = None,
                     system_attrs: Mapping[str, Any] | None = None, *,
                     ended: _dt.datetime | None = None) -> FrozenTrial:
        """Move a RUNNING (or WAITING) trial to a finished state, atomically.

        ``ended``: its ``datetime_complete`` (UTC; default: now), for a trial whose end was
        found later (a lost trial ends at its last heartbeat, so its duration is the time it
        ran); never before its start.

        Raises:
            ConfigurationError: ``state`` is not COMPLETE, PRUNED or FAIL (checked first, see
                :func:`finished_state`); nothing is changed.
            TrialFinishedError: The trial is already finished.
        """

    @abc.abstractmethod
    def get_trial(self, trial_id: int) -> FrozenTrial:
        """One trial.

        Raises:
            TrialNotFoundError: No such trial.
        """

    @abc.abstractmethod
    def get_all_trials(self, study_id: int,
                       states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        """Every trial of the study (optionally only those in ``states``), by number.

        Finished trials in the list may share read-only containers with other callers' lists
        (see the contract); copy a trial's dicts before changing them.
        """

    @abc.abstractmethod
    def fail_stale_trials(self, study_id: int, grace_seconds: float) -> list[FrozenTrial]:
        """Mark FAIL every RUNNING trial whose heartbeat is older than ``grace_seconds``, and
        than the grace period its own process recorded (:func:`stale_after`).

        Trials without a heartbeat (asked by hand) are never stale. Each stale trial is failed by
        exactly one caller, which receives it in the returned list. A failed trial ends at its
        last heartbeat (the last moment it was known to run), not when it was found.
        """

    # -- helpers shared by all storages -------------------------------------------------------

    def count_trials(self, study_id: int, states: Sequence[TrialState] | None = None) -> int:
        """How many trials of the study are in ``states`` (all states by default)."""
        return len(self.get_all_trials(study_id, states))

    def best_trial(self, study_id: int, direction: Direction) -> FrozenTrial | None:
        """The COMPLETE trial with the best value in ``direction`` (the lowest number among
        equal values), or None when none completed.

        This reads every COMPLETE trial; a storage whose database can pick the one trial (and
        read only its curve) overrides it.

        Raises:
            StudyNotFoundError: No such study.
        """
        ranked = ranked_by_value(self.get_all_trials(study_id, [TrialState.COMPLETE]),
                                 direction)
        return ranked[0] if ranked else None

    def describe(self) -> str:
        """A printable description of where data lives, with any password hidden."""
        return type(self).__name__

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the storage may not be used afterwards."""


#: How to fix a write to a finished trial (the end of every TrialFinishedError message).
FINISHED_HINT = ("Report, set attributes and tell while the trial runs; for another result, "
                 "ask a new trial (or enqueue the same parameters).")

#: At most this many study names in a "no study named" message.
MAX_NAMES_SHOWN = 20


# The errors every storage raises for the same mistakes, worded once (the storages must not
# drift apart: a conformance test matches their words).


def study_not_found(study_id: int) -> StudyNotFoundError:
    """A study id that names no study of this storage."""
    return StudyNotFoundError(
        f"No study with id {study_id} in this storage. Expected the id of an existing study "
        f"(storage.get_study_id(name) gives it; a deleted study's id is gone).")


def no_study_named(name: str, names: Sequence[str], where: str) -> StudyNotFoundError:
    """A study name that names no study in ``where`` (the storage's description), with the
    first :data:`MAX_NAMES_SHOWN` of the ``names`` there."""
    return StudyNotFoundError(
        f"No study named {name!r} in {where}. Existing studies: {names_for_message(names)}.")


def names_for_message(names: Sequence[str]) -> str:
    """``['a', 'b']``, or the first :data:`MAX_NAMES_SHOWN` names and how many more."""
    shown = list(names[:MAX_NAMES_SHOWN])
    more = len(names) - len(shown)
    return f"{shown}" + (f" (and {more} more)" if more > 0 else "")


def duplicate_study(name: str) -> DuplicateStudyError:
    """A study name already taken in this storage."""
    return DuplicateStudyError(
        f"A study named {name!r} already exists. Open it with hpo.load_study({name!r}, "
        f"storage) (or create_study(..., load_if_exists=True)), or choose another name.")


def trial_not_found(trial_id: int) -> TrialNotFoundError:
    """A trial id that names no trial of this storage."""
    return TrialNotFoundError(
        f"No trial with id {trial_id} in this storage. Expected the storage id of an existing "
        f"trial (FrozenTrial.trial_id, which is not its number in the study: study.tell and "
        f"study.trials go by number).")


def trial_finished(number: int, state: TrialState | str) -> TrialFinishedError:
    """A write to a finished trial."""
    shown = state.value if isinstance(state, TrialState) else state
    return TrialFinishedError(
        f"Trial {number} is already {shown}; finished trials are immutable. {FINISHED_HINT}")


def check_attr_key(key: object, what: str) -> None:
    """Refuse an attribute key that is not a ``str`` (stored attributes are JSON objects).

    Without this check a storage would keep ``3`` as ``3`` in memory and as ``"3"`` in SQL.

    Raises:
        ConfigurationError: ``key`` is not a ``str``.
    """
    if not isinstance(key, str):
        raise ConfigurationError(
            f"Expected the key of a {what} to be a str. Received: {key!r} (a "
            f"{type(key).__name__}). Use a string key, e.g. {str(key)!r}."
        )


def ranked_by_value(trials: Iterable[FrozenTrial], direction: Direction) -> list[FrozenTrial]:
    """The COMPLETE ``trials`` whose value is a number, best first, the lowest number first
    among equal values: how :meth:`Storage.best_trial` ranks them."""
    sign = direction.sign()
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None
            and not math.isnan(t.value)]
    return sorted(done, key=lambda t: (sign * float(t.value or 0.0), t.number))


def stale_after(system_attrs: Mapping[str, Any], grace_seconds: float) -> float:
    """Seconds without a heartbeat after which a trial with these ``system_attrs`` counts as
    lost: ``grace_seconds``, or the longer grace period its own process recorded
    (``system_attrs["grace_period"]``). A launcher with a short grace period (fast heartbeats)
    must not fail the trials of one that beats every 30 s: those are alive, and their results
    would be dropped."""
    from hpo_plugins._frozen import GRACE_ATTR

    recorded = system_attrs.get(GRACE_ATTR)
    if isinstance(recorded, (int, float)) and not isinstance(recorded, bool):
        return max(grace_seconds, float(recorded))
    return grace_seconds


def stale_reason(seconds: float) -> dict[str, Any]:
    """The system attributes of a trial failed for a missing heartbeat (a lost one)."""
    from hpo_plugins._frozen import LOST_ATTR

    return {"fail_reason": f"no heartbeat for more than {seconds:g} s (the worker died or hung)",
            LOST_ATTR: True}


def numpy_default(value: Any) -> Any:
    """``json.dumps``'s ``default``: numpy scalars and arrays as the Python values they hold
    (``np.float32(0.91)`` from a metric, ``np.int64`` from a dataframe), anything else refused.
    """
    import numpy as np

    if isinstance(value, (np.generic, np.ndarray)):
        return plain_number(value.tolist())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def plain_number(item: Any) -> Any:
    """What ``tolist()`` gave, with the numpy scalars it keeps (``np.longdouble``,
    ``np.clongdouble``: they have no Python equivalent) made a float or refused; handing them
    back to ``json.dumps`` unchanged made it recurse until RecursionError."""
    import numpy as np

    if isinstance(item, np.floating):
        return float(item)
    if isinstance(item, np.generic):
        raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
    return item


def colliding_key(value: Any, path: str = "") -> str | None:
    """Where, in ``value``, a dict holds two keys that JSON writes as the same text
    (``{1: a, '1': b}``, ``{True: a, 'true': b}``), at any depth; None if nowhere.

    JSON keys are text: ``1`` is stored as ``'1'`` (what a per-class dict keyed by int
    becomes, as in Optuna), and of two keys that become one text only the last was kept.
    """
    if isinstance(value, dict):
        seen: dict[str, object] = {}
        for key, item in value.items():
            text = key if isinstance(key, str) else json.dumps(key)  # 1 -> '1', None -> 'null'
            where = f"{path}[{key!r}]"
            if text in seen:
                return f"{path}[{seen[text]!r}] and {where}"
            seen[text] = key
            found = colliding_key(item, where)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = colliding_key(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def check_json_keys(value: Any, what: str) -> None:
    """Refuse a ``value`` with a dict whose keys JSON would merge (see :func:`colliding_key`).

    Raises:
        ConfigurationError: The path of the two keys, and the fix.
    """
    where = colliding_key(value)
    if where is not None:
        raise ConfigurationError(
            f"Expected {what} to hold dicts whose keys stay distinct as JSON text (a key "
            f"is stored as text: 1 as '1'). Received the keys {where}, which would become one "
            f"and lose a value. Rename one of them.")


def json_copy(value: Any, what: str) -> Any:
    """``value`` round-tripped through strict JSON (no NaN), so every storage accepts the same:
    numpy numbers become Python's (:func:`numpy_default`).

    Raises:
        ConfigurationError: ``value`` is not a JSON value; ``what`` names it in the message.
    """
    try:
        text = json.dumps(value, allow_nan=False, default=numpy_default)
    except (TypeError, ValueError) as exc:
        raise not_json(value, what, exc) from exc
    check_json_keys(value, what)
    return json.loads(text)


def not_json(value: Any, what: str, exc: Exception) -> ConfigurationError:
    """The error for a ``value`` (``what``) that strict JSON cannot hold, with the fix."""
    return ConfigurationError(
        f"Expected {what} to be a JSON value (str, number, bool, None, list, dict). "
        f"Received: {value!r} (of type {type(value).__name__}): {exc}. Convert it first "
        f"(float(x), str(x), a list), or store None or a text for a NaN.")


def params_key(params: Mapping[str, Any]) -> str:
    """The ``dedup_key`` of a configuration: a hash of its flat parameters, floats rounded to
    12 significant digits (so 0.3 and 3 * 0.1 are one configuration)."""
    rounded = {k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in params.items()}
    text = json.dumps(rounded, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def import_keys(trials: Sequence[FrozenTrial],
                dedup_keys: Sequence[str | None] | None) -> list[str | None]:
    """The checked ``dedup_keys`` of :meth:`Storage.import_study`: one per trial, no repeat.

    Raises:
        ConfigurationError: Not one key per trial.
        DuplicateParamsError: A key given twice.
    """
    from hpo_plugins.exceptions import DuplicateParamsError

    keys: list[str | None] = [None] * len(trials) if dedup_keys is None else list(dedup_keys)
    if len(keys) != len(trials):
        raise ConfigurationError(
            f"Expected one dedup key (or None) per trial. Received {len(keys)} keys for "
            f"{len(trials)} trials.")
    held: dict[str, int] = {}
    for trial, key in zip(trials, keys):
        if key is not None and key in held:
            raise DuplicateParamsError(
                f"Trial {held[key]} already holds these parameters (the key given again for "
                f"trial {trial.number}).")
        if key is not None:
            held[key] = trial.number
    return keys
