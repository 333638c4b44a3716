"""An in-process storage: fast, thread-safe, gone when the process ends."""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState, utcnow
from hpo_plugins.exceptions import (
    DuplicateParamsError,
)
from hpo_plugins.storages._base import (
    LIMIT_STATES,
    Storage,
    StudyInfo,
    check_attr_key,
    check_heartbeat_state,
    duplicate_study,
    finished_state,
    import_keys,
    json_copy,
    no_study_named,
    stale_after,
    stale_reason,
    study_not_found,
    trial_finished,
    trial_not_found,
)
from hpo_plugins.storages._cache import read_only_trial

__all__ = ["InMemoryStorage"]


@dataclasses.dataclass
class _Study:
    """A study and indexes that keep ``ask`` independent of how many trials are finished.

    ``trials`` holds the current record of each trial at the index of its number (numbers are
    gapless, in creation order). ``unfinished`` holds the numbers of WAITING and RUNNING trials,
    ``waiting`` those of WAITING ones, and ``counted`` how many trials count toward a limit:
    :meth:`InMemoryStorage._put` keeps all four in step with every change.
    """

    info: StudyInfo
    attrs: dict[str, Any]
    trials: list[FrozenTrial] = dataclasses.field(default_factory=list)
    dedup: dict[str, int] = dataclasses.field(default_factory=dict)
    unfinished: set[int] = dataclasses.field(default_factory=set)
    waiting: set[int] = dataclasses.field(default_factory=set)
    counted: int = 0


class InMemoryStorage(Storage):
    """Keeps studies in this process's memory, guarded by one lock.

    Use it for tests, notebooks and throw-away runs. It cannot be shared with other processes:
    parallel launchers and child-process trials need a SQL storage.

    Example:
        >>> from hpo_plugins.storages import InMemoryStorage
        >>> storage = InMemoryStorage()
    """

    multiprocess = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[int, _Study] = {}
        self._trials: dict[int, FrozenTrial] = {}
        self._trial_study: dict[int, int] = {}
        self._dedup_key: dict[int, str] = {}
        # Ids are never reused, even after delete_study (as in the SQL storage).
        self._last_study_id = 0
        self._last_trial_id = 0

    def __getstate__(self) -> dict[str, Any]:
        from hpo_plugins.exceptions import StorageError

        raise StorageError(
            "InMemoryStorage cannot be sent to another process. Expected a storage that "
            "processes share; use storage='sqlite:///hpo.db' (or a PostgreSQL URL)."
        )

    # -- studies ------------------------------------------------------------------------------

    def create_study(self, name: str, direction: Direction,
                     attrs: Mapping[str, Any] | None = None) -> int:
        study_attrs = json_copy(dict(attrs or {}), "study attrs")
        with self._lock:
            return self._add_study(name, direction, study_attrs, utcnow()).info.study_id

    def _add_study(self, name: str, direction: Direction, attrs: dict[str, Any],
                   created: _dt.datetime) -> _Study:
        """Add an empty study (the lock held, ``attrs`` already copied)."""
        if any(s.info.name == name for s in self._studies.values()):
            raise duplicate_study(name)
        self._last_study_id += 1
        info = StudyInfo(self._last_study_id, name, Direction.parse(direction),
                         datetime_created=created)
        study = self._studies[self._last_study_id] = _Study(info, attrs)
        return study

    def import_study(self, name: str, direction: Direction, attrs: Mapping[str, Any],
                     trials: Sequence[FrozenTrial],
                     dedup_keys: Sequence[str | None] | None = None,
                     datetime_created: _dt.datetime | None = None) -> int:
        """See :meth:`Storage.import_study`: everything is validated and copied first, then
        the study is added under the lock in one step."""
        keys = import_keys(trials, dedup_keys)
        copies = [_imported(trial, number) for number, trial in enumerate(trials)]
        study_attrs = json_copy(dict(attrs), "study attrs")
        with self._lock:
            study = self._add_study(name, direction, study_attrs, datetime_created or utcnow())
            study_id = study.info.study_id
            for copied, key in zip(copies, keys):
                self._last_trial_id += 1
                copied = dataclasses.replace(copied, trial_id=self._last_trial_id)
                self._trial_study[copied.trial_id] = study_id
                study.trials.append(copied)
                self._claim_key(study, copied.trial_id, key)
                self._put(read_only_trial(copied) if copied.state.is_finished else copied, None)
            return study_id

    def get_study_id(self, name: str) -> int:
        with self._lock:
            for sid, study in self._studies.items():
                if study.info.name == name:
                    return sid
            names = sorted(s.info.name for s in self._studies.values())
            raise no_study_named(name, names, "this storage")

    def _study(self, study_id: int) -> _Study:
        try:
            return self._studies[study_id]
        except KeyError:
            raise study_not_found(study_id) from None

    def get_study(self, study_id: int) -> StudyInfo:
        with self._lock:
            study = self._study(study_id)
            trials = study.trials
            counts = {s: sum(t.state is s for t in trials) for s in TrialState}
            values = [t.value for t in trials if t.state is TrialState.COMPLETE
                      and t.value is not None]
            best = None
            if values:
                best = (min if study.info.direction is Direction.MINIMIZE else max)(values)
            return dataclasses.replace(study.info, attrs=copy.deepcopy(study.attrs),
                                       n_trials=counts, best_value=best)

    def list_studies(self) -> list[StudyInfo]:
        with self._lock:
            return [self.get_study(sid) for sid in sorted(self._studies)]

    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        check_attr_key(key, "study attribute")
        with self._lock:
            self._study(study_id).attrs[key] = json_copy(value, f"study attr {key!r}")

    def delete_study(self, study_id: int) -> None:
        with self._lock:
            study = self._studies.pop(study_id, None)
            if study is None:
                raise study_not_found(study_id)
            for trial in study.trials:
                self._trials.pop(trial.trial_id, None)
                self._trial_study.pop(trial.trial_id, None)
                self._dedup_key.pop(trial.trial_id, None)

    # -- trials -------------------------------------------------------------------------------

    def create_trial(self, study_id: int, *, state: TrialState = TrialState.RUNNING,
                     params: Mapping[str, Any] | None = None, natural: Any = None,
                     dedup_key: str | None = None,
                     system_attrs: Mapping[str, Any] | None = None,
                     heartbeat: bool = False, limit: int | None = None,
                     user_attrs: Mapping[str, Any] | None = None) -> FrozenTrial | None:
        for key in user_attrs or {}:
            check_attr_key(key, "trial attribute")
        with self._lock:
            study = self._study(study_id)
            if self._full(study, limit):
                return None
            self._claim_key(study, self._last_trial_id + 1, dedup_key)
            self._last_trial_id += 1
            trial_id = self._last_trial_id
            now = utcnow()
            trial = FrozenTrial(
                trial_id=trial_id, number=len(study.trials), state=TrialState(state),
                params=json_copy(dict(params or {}), "params"),
                natural=json_copy(natural, "natural params"),
                system_attrs=json_copy(dict(system_attrs or {}), "system attrs"),
                user_attrs=json_copy(dict(user_attrs or {}), "user attrs"),
                datetime_start=now if state is TrialState.RUNNING else None,
                last_heartbeat=now if heartbeat else None,
            )
            self._trial_study[trial_id] = study_id
            study.trials.append(trial)
            self._put(trial, None)
            return _copy_trial(trial)

    def _claim_key(self, study: _Study, trial_id: int, key: str | None) -> None:
        """Give ``key`` to the trial, freeing its previous key; None changes nothing."""
        if key is None:
            return
        holder = study.dedup.get(key)
        if holder is not None and holder != trial_id:
            raise DuplicateParamsError(
                f"Trial {self._trials[holder].number} already holds these parameters."
            )
        previous = self._dedup_key.get(trial_id)
        if previous is not None:
            del study.dedup[previous]
        study.dedup[key] = trial_id
        self._dedup_key[trial_id] = key

    def _put(self, trial: FrozenTrial, old: FrozenTrial | None) -> None:
        """Store ``trial`` (which replaces ``old``, None for a new one); keep the indexes."""
        study = self._studies[self._trial_study[trial.trial_id]]
        self._trials[trial.trial_id] = trial
        study.trials[trial.number] = trial
        number, state = trial.number, trial.state
        study.unfinished.discard(number)
        study.waiting.discard(number)
        if not state.is_finished:
            study.unfinished.add(number)
        if state is TrialState.WAITING:
            study.waiting.add(number)
        was_counted = old is not None and old.state in LIMIT_STATES
        study.counted += int(state in LIMIT_STATES) - int(was_counted)

    def _full(self, study: _Study, limit: int | None) -> bool:
        return limit is not None and study.counted >= limit

    def claim_waiting_trial(self, study_id: int, *, heartbeat: bool = False,
                            limit: int | None = None) -> FrozenTrial | None:
        with self._lock:
            study = self._study(study_id)
            if self._full(study, limit) or not study.waiting:
                return None
            old = study.trials[min(study.waiting)]
            now = utcnow()
            trial = dataclasses.replace(old, state=TrialState.RUNNING, datetime_start=now,
                                        last_heartbeat=now if heartbeat else None)
            self._put(trial, old)
            return _copy_trial(trial)

    def _live(self, trial_id: int) -> FrozenTrial:
        trial = self._get(trial_id)
        if trial.state.is_finished:
            raise trial_finished(trial.number, trial.state)
        return trial

    def _get(self, trial_id: int) -> FrozenTrial:
        try:
            return self._trials[trial_id]
        except KeyError:
            raise trial_not_found(trial_id) from None

    def set_trial_params(self, trial_id: int, params: Mapping[str, Any], natural: Any,
                         dedup_key: str | None = None) -> None:
        with self._lock:
            trial = self._live(trial_id)
            self._claim_key(self._studies[self._trial_study[trial_id]], trial_id, dedup_key)
            self._put(dataclasses.replace(trial, params=json_copy(dict(params), "params"),
                                          natural=json_copy(natural, "natural params")), trial)

    def set_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        with self._lock:
            trial = self._live(trial_id)
            # in place: an unfinished trial's record is never handed out (readers get copies),
            # and copying the whole curve at every report made a report cost its length
            trial.intermediate_values[int(step)] = float(value)  # type: ignore[index]

    def _set_attr(self, trial_id: int, field_name: str, key: str, value: Any) -> None:
        check_attr_key(key, "trial attribute")
        with self._lock:
            trial = self._live(trial_id)
            attrs: dict[str, Any] = dict(getattr(trial, field_name))
            attrs[key] = json_copy(value, f"attribute {key!r}")
            changes: dict[str, Any] = {field_name: attrs}
            self._put(dataclasses.replace(trial, **changes), trial)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(trial_id, "user_attrs", key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attr(trial_id, "system_attrs", key, value)

    def record_heartbeat(self, trial_id: int) -> None:
        with self._lock:
            trial = self._live(trial_id)
            check_heartbeat_state(trial.number, trial.state)
            self._put(dataclasses.replace(trial, last_heartbeat=utcnow()), trial)

    def finish_trial(self, trial_id: int, state: TrialState, value: float | None = None,
                     system_attrs: Mapping[str, Any] | None = None, *,
                     ended: _dt.datetime | None = None) -> FrozenTrial:
        return self._finish(trial_id, state, value, system_attrs, ended)

    def _finish(self, trial_id: int, state: TrialState, value: float | None,
                system_attrs: Mapping[str, Any] | None,
                ended: _dt.datetime | None) -> FrozenTrial:
        """:meth:`finish_trial`, ending the trial at ``ended`` (default: now)."""
        state = finished_state(state)
        with self._lock:
            trial = self._live(trial_id)
            attrs = dict(trial.system_attrs)
            attrs.update(json_copy(dict(system_attrs or {}), "system attrs"))
            start = trial.datetime_start or utcnow()
            done = dataclasses.replace(
                trial, state=state, value=None if value is None else float(value),
                system_attrs=attrs, datetime_complete=max(ended or utcnow(), start),
                datetime_start=start)
            self._put(read_only_trial(done), trial)
            return _copy_trial(done)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            return _copy_trial(self._get(trial_id))

    def get_all_trials(self, study_id: int,
                       states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        """See :meth:`Storage.get_all_trials`.

        Finished trials are immutable and stored read-only: they are shared, not copied (a deep
        copy of 1,000 trials took longer than a TPE step), and only the few unfinished ones are
        copied, found through the study's index rather than by looking at every trial.
        """
        with self._lock:
            study = self._study(study_id)
            trials = list(study.trials)
            for number in study.unfinished:
                trials[number] = _copy_trial(trials[number])
            if states is not None:
                wanted = set(states)
                trials = [t for t in trials if t.state in wanted]
            return trials

    def fail_stale_trials(self, study_id: int, grace_seconds: float) -> list[FrozenTrial]:
        with self._lock:
            now = utcnow()
            failed = []
            study = self._study(study_id)
            for number in sorted(study.unfinished):
                trial = study.trials[number]
                if trial.state is not TrialState.RUNNING or trial.last_heartbeat is None:
                    continue
                seconds = stale_after(trial.system_attrs, grace_seconds)
                if trial.last_heartbeat < now - _dt.timedelta(seconds=seconds):
                    failed.append(self._finish(trial.trial_id, TrialState.FAIL, None,
                                               stale_reason(seconds), trial.last_heartbeat))
            return failed

    def describe(self) -> str:
        return "in-memory storage (this process only)"


def _imported(trial: FrozenTrial, number: int) -> FrozenTrial:
    """A JSON-checked copy of ``trial`` with ``number`` (its id is set when it is stored)."""
    return dataclasses.replace(
        trial, trial_id=0, number=number, state=TrialState(trial.state),
        value=None if trial.value is None else float(trial.value),
        params=json_copy(dict(trial.params), "params"),
        natural=json_copy(trial.natural, "natural params"),
        intermediate_values={int(step): float(value)
                             for step, value in trial.intermediate_values.items()},
        user_attrs=json_copy(dict(trial.user_attrs), "user attrs"),
        system_attrs=json_copy(dict(trial.system_attrs), "system attrs"))


def _copy_trial(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` that shares nothing mutable with the stored record.

    The curve (int -> float, often thousands of points) is copied flat: ``copy.deepcopy`` visits
    every float and took 3 ms per 10,000 steps, paid for every running trial at every
    ``should_prune``. The other containers hold nested JSON values and are deep-copied.
    """
    return dataclasses.replace(
        trial, params=copy.deepcopy(trial.params), natural=copy.deepcopy(trial.natural),
        intermediate_values=dict(trial.intermediate_values),
        user_attrs=copy.deepcopy(trial.user_attrs),
        system_attrs=copy.deepcopy(trial.system_attrs))
