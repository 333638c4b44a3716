"""The storage conformance suite: a storage is correct when it passes these tests.

Subclass :class:`StorageConformance` in a test module and override its ``storage`` fixture; pytest
then runs every ``test_*`` method below against that storage. Each test states one clause of the
contract in :mod:`hpo_plugins.storages._base`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import math
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState, utcnow
from hpo_plugins.exceptions import (
    ConfigurationError,
    DuplicateParamsError,
    DuplicateStudyError,
    StudyNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
)
from hpo_plugins.storages._base import Storage

__all__ = ["StorageConformance"]

#: An id that no storage under test holds.
MISSING_ID = 424242
#: Threads used by the concurrency tests.
N_THREADS = 8

Mutator = Callable[[Storage, int], object]

#: Every method that changes a trial, called on trial id ``t`` with valid arguments.
MUTATORS: dict[str, Mutator] = {
    "set_trial_params": lambda s, t: s.set_trial_params(t, {"x": 2}, {"x": 2}),
    "set_intermediate_value": lambda s, t: s.set_intermediate_value(t, 7, 0.5),
    "set_trial_user_attr": lambda s, t: s.set_trial_user_attr(t, "k", "v"),
    "set_trial_system_attr": lambda s, t: s.set_trial_system_attr(t, "k", "v"),
    "record_heartbeat": lambda s, t: s.record_heartbeat(t),
    "finish_trial": lambda s, t: s.finish_trial(t, TrialState.COMPLETE, 1.0),
}

#: Every method that takes a study id, called on study id ``i`` with valid arguments.
STUDY_READERS: dict[str, Mutator] = {
    "get_study": lambda s, i: s.get_study(i),
    "set_study_attr": lambda s, i: s.set_study_attr(i, "k", 1),
    "delete_study": lambda s, i: s.delete_study(i),
    "create_trial": lambda s, i: s.create_trial(i),
    "claim_waiting_trial": lambda s, i: s.claim_waiting_trial(i),
    "start_trial": lambda s, i: s.start_trial(i),
    "start_trial with limit": lambda s, i: s.start_trial(i, limit=5),
    "get_all_trials": lambda s, i: s.get_all_trials(i),
    "count_trials": lambda s, i: s.count_trials(i),
    "fail_stale_trials": lambda s, i: s.fail_stale_trials(i, 60.0),
}

NOT_JSON = object()

#: Every write of a JSON value, given a study id ``i`` and a RUNNING trial id ``t``.
JSON_WRITERS: dict[str, Callable[[Storage, int, int], object]] = {
    "study attrs": lambda s, i, t: s.create_study("other", Direction.MINIMIZE, {"x": NOT_JSON}),
    "study attr": lambda s, i, t: s.set_study_attr(i, "x", {1, 2}),
    "create params": lambda s, i, t: s.create_trial(i, params={"x": NOT_JSON}),
    "create natural": lambda s, i, t: s.create_trial(i, natural={"x": float("nan")}),
    "create system attrs": lambda s, i, t: s.create_trial(i, system_attrs={"x": b"raw"}),
    "params": lambda s, i, t: s.set_trial_params(t, {"x": NOT_JSON}, None),
    "natural": lambda s, i, t: s.set_trial_params(t, {"x": 1}, {"x": float("inf")}),
    "user attr": lambda s, i, t: s.set_trial_user_attr(t, "x", NOT_JSON),
    "system attr": lambda s, i, t: s.set_trial_system_attr(t, "x", NOT_JSON),
    "finish system attrs": lambda s, i, t: s.finish_trial(t, TrialState.COMPLETE, 1.0,
                                                          {"x": NOT_JSON}),
    "import study attrs": lambda s, i, t: s.import_study("copy", Direction.MINIMIZE,
                                                         {"x": NOT_JSON}, []),
    "import user attrs": lambda s, i, t: s.import_study("copy", Direction.MINIMIZE, {}, [
        FrozenTrial(trial_id=1, number=0, state=TrialState.COMPLETE, value=1.0,
                    user_attrs={"x": NOT_JSON})]),
}

FINISHED = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]


def _skip_without_import(storage: Storage) -> None:
    """Skip a test of ``import_study``, which a storage may leave out (``copy_study`` into it
    then says so): the contract calls it optional."""
    if type(storage).import_study is Storage.import_study:
        pytest.skip(f"{type(storage).__name__} does not implement the optional import_study")


def _finished(storage: Storage, study_id: int, state: TrialState,
              value: float | None = None) -> FrozenTrial:
    """A new trial of the study, finished in ``state``."""
    trial = storage.create_trial(study_id)
    assert trial is not None
    return storage.finish_trial(trial.trial_id, state, value)


def _running(storage: Storage, study_id: int, **kwargs: Any) -> FrozenTrial:
    trial = storage.create_trial(study_id, **kwargs)
    assert trial is not None
    return trial


def _is_utc(moment: _dt.datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == _dt.timedelta(0)


def _in_threads(work: Callable[[], list[Any]]) -> list[Any]:
    """Run ``work`` in N_THREADS threads started together; concatenate what they return."""
    barrier = threading.Barrier(N_THREADS)

    def start() -> list[Any]:
        barrier.wait()
        return work()

    with ThreadPoolExecutor(N_THREADS) as pool:
        futures = [pool.submit(start) for _ in range(N_THREADS)]
        return [item for future in futures for item in future.result()]


class StorageConformance:
    """Every clause of the storage contract, as pytest tests.

    Subclass it and override the ``storage`` fixture with a fresh, empty storage (close it after
    the test so that no connection leaks)::

        class TestSQLStorage(StorageConformance):
            @pytest.fixture
            def storage(self, tmp_path):
                store = SQLStorage(f"sqlite:///{tmp_path}/s.db")
                yield store
                store.close()
    """

    @pytest.fixture
    def storage(self) -> Storage:
        """A fresh, empty storage. Subclasses must override this fixture."""
        raise NotImplementedError(
            f"{type(self).__name__} must override the `storage` fixture to return a fresh "
            f"storage."
        )

    @pytest.fixture
    def study_id(self, storage: Storage) -> int:
        """A minimising study called "s"."""
        return storage.create_study("s", Direction.MINIMIZE)

    @pytest.fixture
    def other(self, storage: Storage) -> Iterator[Storage]:
        """A second handle on the same data, as another worker process would hold it.

        For a storage that processes share (``multiprocess``) it is a pickled copy, which opens
        its own connections and keeps its own caches; otherwise it is ``storage`` itself.
        Override it if a pickled copy is not how your storage reaches other processes.
        """
        if not storage.multiprocess:
            yield storage
            return
        clone = pickle.loads(pickle.dumps(storage))
        yield clone
        clone.close()

    # -- studies ------------------------------------------------------------------------------

    def test_create_and_get_study(self, storage: Storage) -> None:
        before = utcnow()
        study_id = storage.create_study("s", Direction.MAXIMIZE, {"seed": 3})
        info = storage.get_study(study_id)
        assert storage.get_study_id("s") == study_id == info.study_id
        assert (info.name, info.direction, dict(info.attrs)) == ("s", Direction.MAXIMIZE,
                                                                 {"seed": 3})
        assert info.n_trials == dict.fromkeys(TrialState, 0)
        assert info.best_value is None
        assert _is_utc(info.datetime_created)
        assert info.datetime_created is not None and before <= info.datetime_created

    def test_duplicate_study_name_raises(self, storage: Storage, study_id: int) -> None:
        with pytest.raises(DuplicateStudyError, match="'s' already exists"):
            storage.create_study("s", Direction.MAXIMIZE)
        assert [info.name for info in storage.list_studies()] == ["s"]

    def test_missing_study_name_lists_existing_names(self, storage: Storage) -> None:
        storage.create_study("alpha", Direction.MINIMIZE)
        storage.create_study("beta", Direction.MINIMIZE)
        with pytest.raises(StudyNotFoundError, match=r"'gamma'.*'alpha', 'beta'"):
            storage.get_study_id("gamma")

    @pytest.mark.parametrize("method", sorted(STUDY_READERS))
    def test_missing_study_id_raises(self, storage: Storage, study_id: int,
                                     method: str) -> None:
        with pytest.raises(StudyNotFoundError, match=str(MISSING_ID)):
            STUDY_READERS[method](storage, MISSING_ID)

    def test_list_studies_oldest_first(self, storage: Storage) -> None:
        for name in ("b", "a", "c"):
            storage.create_study(name, Direction.MINIMIZE)
        assert [info.name for info in storage.list_studies()] == ["b", "a", "c"]

    def test_study_attrs_round_trip_and_overwrite(self, storage: Storage) -> None:
        attrs = {"space": {"lr": [0.1, 1.0], "net": {"kind": "mlp"}}, "seed": 3}
        study_id = storage.create_study("s", Direction.MINIMIZE, attrs)
        storage.set_study_attr(study_id, "seed", 4)
        storage.set_study_attr(study_id, "note", "ünïcode ✓")
        expected = {**attrs, "seed": 4, "note": "ünïcode ✓"}
        assert storage.get_study(study_id).attrs == expected
        assert storage.list_studies()[0].attrs == expected

    def test_delete_study_removes_its_trials_only(self, storage: Storage,
                                                  study_id: int) -> None:
        doomed = _running(storage, study_id)
        storage.set_intermediate_value(doomed.trial_id, 0, 1.0)
        other = storage.create_study("other", Direction.MINIMIZE)
        kept = _running(storage, other)
        storage.delete_study(study_id)
        with pytest.raises(TrialNotFoundError, match=str(doomed.trial_id)):
            storage.get_trial(doomed.trial_id)
        with pytest.raises(StudyNotFoundError, match="'s'"):
            storage.get_study_id("s")
        assert [t.trial_id for t in storage.get_all_trials(other)] == [kept.trial_id]
        assert [info.name for info in storage.list_studies()] == ["other"]

    def test_ids_stay_unique_after_delete(self, storage: Storage) -> None:
        first = storage.create_study("a", Direction.MINIMIZE)
        second = storage.create_study("b", Direction.MINIMIZE)
        storage.delete_study(first)
        third = storage.create_study("c", Direction.MINIMIZE)
        assert third not in (first, second)
        assert storage.get_study(second).name == "b"
        assert storage.get_study_id("c") == third

    def test_trial_ids_stay_unique_after_delete(self, storage: Storage) -> None:
        doomed = storage.create_study("a", Direction.MINIMIZE)
        old = {_running(storage, doomed).trial_id for _ in range(3)}
        storage.delete_study(doomed)
        study_id = storage.create_study("b", Direction.MINIMIZE)
        new = {_running(storage, study_id).trial_id for _ in range(3)}
        assert not old & new

    # -- creating trials ----------------------------------------------------------------------

    def test_new_trial_defaults(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id)
        assert (trial.number, trial.state, trial.value) == (0, TrialState.RUNNING, None)
        assert (trial.params, trial.natural, trial.intermediate_values) == ({}, None, {})
        assert (trial.user_attrs, trial.system_attrs) == ({}, {})
        assert _is_utc(trial.datetime_start)
        assert (trial.datetime_complete, trial.last_heartbeat) == (None, None)
        assert storage.get_trial(trial.trial_id) == trial

    def test_numbers_count_per_study(self, storage: Storage, study_id: int) -> None:
        other = storage.create_study("other", Direction.MINIMIZE)
        numbers = [_running(storage, sid).number for sid in (study_id, other, study_id,
                                                             study_id, other)]
        assert numbers == [0, 0, 1, 2, 1]

    def test_heartbeat_starts_on_request(self, storage: Storage, study_id: int) -> None:
        assert _is_utc(_running(storage, study_id, heartbeat=True).last_heartbeat)
        assert _running(storage, study_id).last_heartbeat is None

    def test_waiting_trial_has_not_started(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id, state=TrialState.WAITING, params={"x": 1})
        assert (trial.state, trial.datetime_start) == (TrialState.WAITING, None)
        assert storage.get_trial(trial.trial_id).params == {"x": 1}

    def test_params_and_natural_round_trip(self, storage: Storage, study_id: int) -> None:
        params = {"lr": 0.01, "net": 1, "layers": 3.0, "flag": True}
        natural = {"net": {"kind": "cnn", "sizes": (16, 32)}, "none": None, "s": "é"}
        as_json = {"net": {"kind": "cnn", "sizes": [16, 32]}, "none": None, "s": "é"}
        created = _running(storage, study_id, params=params, natural=natural)
        assert (created.params, created.natural) == (params, as_json)
        later = _running(storage, study_id)
        storage.set_trial_params(later.trial_id, params, natural)
        stored = storage.get_trial(later.trial_id)
        assert (stored.params, stored.natural) == (params, as_json)

    @pytest.mark.parametrize("writer", sorted(JSON_WRITERS))
    def test_only_json_values_are_accepted(self, storage: Storage, study_id: int,
                                           writer: str) -> None:
        if writer.startswith("import "):
            _skip_without_import(storage)
        trial = _running(storage, study_id)
        with pytest.raises(ConfigurationError, match="JSON value"):
            JSON_WRITERS[writer](storage, study_id, trial.trial_id)
        assert storage.get_all_trials(study_id) == [trial]  # nothing was written
        assert [info.name for info in storage.list_studies()] == ["s"]
        assert storage.get_study(study_id).attrs == {}

    def test_user_attrs_can_be_set_when_the_trial_is_created(self, storage: Storage,
                                                             study_id: int) -> None:
        trial = storage.create_trial(study_id, state=TrialState.WAITING,
                                     user_attrs={"source": "paper", "n": [1, 2]})
        assert trial is not None and trial.user_attrs == {"source": "paper", "n": [1, 2]}
        assert storage.get_trial(trial.trial_id).user_attrs == {"source": "paper", "n": [1, 2]}
        with pytest.raises(ConfigurationError, match="JSON value"):
            storage.create_trial(study_id, user_attrs={"x": NOT_JSON})
        with pytest.raises(ConfigurationError, match="key of a trial attribute to be a str"):
            storage.create_trial(study_id, user_attrs={1: "x"})  # type: ignore[dict-item]
        assert [t.trial_id for t in storage.get_all_trials(study_id)] == [trial.trial_id]

    @pytest.mark.parametrize("key", [3, None, ("a",)])
    def test_attribute_keys_must_be_strings(self, storage: Storage, study_id: int,
                                            key: Any) -> None:
        trial = _running(storage, study_id)
        for write in (storage.set_trial_user_attr, storage.set_trial_system_attr):
            with pytest.raises(ConfigurationError, match="key of a trial attribute to be a str"):
                write(trial.trial_id, key, "v")
        with pytest.raises(ConfigurationError, match="key of a study attribute to be a str"):
            storage.set_study_attr(study_id, key, "v")
        stored = storage.get_trial(trial.trial_id)
        assert (stored.user_attrs, stored.system_attrs) == ({}, {})
        assert storage.get_study(study_id).attrs == {}

    def test_returned_trials_are_snapshots(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id, params={"x": 1})
        snapshot = storage.get_trial(trial.trial_id)
        assert isinstance(snapshot.params, dict)
        snapshot.params["x"] = 99
        storage.set_intermediate_value(trial.trial_id, 0, 1.0)
        assert snapshot.intermediate_values == {}
        assert storage.get_trial(trial.trial_id).params == {"x": 1}

    # -- changing trials ----------------------------------------------------------------------

    def test_intermediate_values_overwrite(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id)
        for step, value in ((0, 1.0), (2, 0.5), (0, 0.75)):
            storage.set_intermediate_value(trial.trial_id, step, value)
        values = storage.get_trial(trial.trial_id).intermediate_values
        assert values == {0: 0.75, 2: 0.5}
        assert all(type(k) is int and type(v) is float for k, v in values.items())
        assert storage.get_all_trials(study_id)[0].intermediate_values == values

    def test_user_and_system_attrs(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id, system_attrs={"gpu": 0})
        storage.set_trial_user_attr(trial.trial_id, "a", 1)
        storage.set_trial_user_attr(trial.trial_id, "b", {"n": [1, None]})
        storage.set_trial_user_attr(trial.trial_id, "a", 2)
        storage.set_trial_system_attr(trial.trial_id, "log_dir", "runs/0")
        stored = storage.get_trial(trial.trial_id)
        assert stored.user_attrs == {"a": 2, "b": {"n": [1, None]}}
        assert stored.system_attrs == {"gpu": 0, "log_dir": "runs/0"}

    def test_snapshots_follow_a_running_curve_however_it_is_written(
            self, storage: Storage, study_id: int) -> None:
        """Each snapshot holds every point written so far: new steps, the last step written
        again, and a step below the last one written or rewritten through the storage API
        (which ``Trial.report`` refuses, but a storage accepts). A storage that reads only what is
        new since its last read must still get these right."""
        trial = _running(storage, study_id)
        other = _running(storage, study_id)
        expected: dict[int, float] = {}

        def write(step: int, value: float) -> None:
            storage.set_intermediate_value(trial.trial_id, step, value)
            expected[step] = value

        def snapshot() -> dict[int, float]:
            mine = next(t for t in storage.get_all_trials(study_id)
                        if t.trial_id == trial.trial_id)
            return dict(mine.intermediate_values)

        for step in range(5):
            write(step, float(step))
        assert snapshot() == expected
        write(4, 40.0)  # the last step again
        write(6, 6.0)
        assert snapshot() == expected
        write(5, 5.0)  # below the last step
        storage.set_intermediate_value(other.trial_id, 0, 1.0)
        assert snapshot() == expected
        write(2, 22.0)  # a point below the last one, written again: same count of points
        assert snapshot() == expected
        got = storage.get_all_trials(study_id)[0]
        got.intermediate_values[99] = 9.0  # type: ignore[index]  # a caller's change is its own
        write(7, 7.0)
        assert snapshot() == expected
        storage.finish_trial(trial.trial_id, TrialState.COMPLETE, 7.0)
        assert snapshot() == expected

    def test_numpy_values_of_attributes_are_stored_as_python_values(
            self, storage: Storage, study_id: int) -> None:
        """A metric computed with numpy (``np.float32``) is stored, not refused: refusing it
        from inside an objective would fail the trial and lose its result."""
        import numpy as np

        trial = _running(storage, study_id)
        storage.set_trial_user_attr(trial.trial_id, "acc", np.float32(0.5))
        storage.set_trial_user_attr(trial.trial_id, "sizes", np.arange(3))
        storage.set_trial_system_attr(trial.trial_id, "n", np.int64(7))
        storage.set_study_attr(study_id, "k", np.int64(4))
        stored = storage.get_trial(trial.trial_id)
        assert stored.user_attrs == {"acc": 0.5, "sizes": [0, 1, 2]}
        assert type(stored.user_attrs["acc"]) is float and type(stored.system_attrs["n"]) is int
        assert type(storage.get_study(study_id).attrs["k"]) is int
        with pytest.raises(ConfigurationError, match=r"JSON value.*Convert it first"):
            storage.set_trial_user_attr(trial.trial_id, "bad", np.float64("nan"))

    def test_finish_trial(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id, system_attrs={"gpu": 0})
        storage.set_intermediate_value(trial.trial_id, 1, 2.0)
        done = storage.finish_trial(trial.trial_id, TrialState.COMPLETE, 0.25, {"note": "ok"})
        assert (done.state, done.value) == (TrialState.COMPLETE, 0.25)
        assert done.system_attrs == {"gpu": 0, "note": "ok"}
        assert done.intermediate_values == {1: 2.0}
        assert _is_utc(done.datetime_complete) and _is_utc(done.datetime_start)
        assert done.datetime_start is not None and done.datetime_complete is not None
        assert done.datetime_start <= done.datetime_complete
        assert storage.get_trial(trial.trial_id) == done

    def test_finish_trial_at_a_given_end(self, storage: Storage, study_id: int) -> None:
        """``ended`` (a lost trial's last heartbeat) is its end; never before its start."""
        trial = _running(storage, study_id)
        assert trial.datetime_start is not None
        later = trial.datetime_start + _dt.timedelta(seconds=2)
        done = storage.finish_trial(trial.trial_id, TrialState.FAIL, ended=later)
        assert done.datetime_complete == later
        assert storage.get_trial(trial.trial_id).datetime_complete == later
        early = _running(storage, study_id)
        assert early.datetime_start is not None
        before = early.datetime_start - _dt.timedelta(seconds=5)
        done = storage.finish_trial(early.trial_id, TrialState.FAIL, None, {"why": "lost"},
                                    ended=before)
        assert done.datetime_complete == early.datetime_start

    def test_waiting_trial_can_be_finished(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id, state=TrialState.WAITING)
        done = storage.finish_trial(trial.trial_id, TrialState.FAIL)
        assert done.state is TrialState.FAIL and _is_utc(done.datetime_start)

    @pytest.mark.parametrize("state", [TrialState.RUNNING, TrialState.WAITING, "DONE"])
    def test_finish_needs_a_finished_state(self, storage: Storage, study_id: int,
                                           state: TrialState | str) -> None:
        trial = _running(storage, study_id)
        shown = getattr(state, "value", state)
        with pytest.raises(ConfigurationError, match=f"COMPLETE, PRUNED or FAIL.*'{shown}'"):
            storage.finish_trial(trial.trial_id, state, 1.0)  # type: ignore[arg-type]
        assert storage.get_trial(trial.trial_id) == trial
        with pytest.raises(ConfigurationError, match="COMPLETE, PRUNED or FAIL"):
            storage.finish_trial(MISSING_ID, TrialState.RUNNING)  # the state is checked first

    @pytest.mark.parametrize("state", FINISHED)
    @pytest.mark.parametrize("mutator", sorted(MUTATORS))
    def test_finished_trials_are_immutable(self, storage: Storage, study_id: int,
                                           state: TrialState, mutator: str) -> None:
        trial = _running(storage, study_id, params={"x": 1}, heartbeat=True)
        storage.set_intermediate_value(trial.trial_id, 0, 1.0)
        done = storage.finish_trial(trial.trial_id, state, 1.0)
        with pytest.raises(TrialFinishedError, match=f"already {state.value}.*immutable"):
            MUTATORS[mutator](storage, trial.trial_id)
        assert storage.get_trial(trial.trial_id) == done

    @pytest.mark.parametrize("mutator", sorted(MUTATORS))
    def test_missing_trial_raises(self, storage: Storage, study_id: int,
                                  mutator: str) -> None:
        with pytest.raises(TrialNotFoundError, match=str(MISSING_ID)):
            MUTATORS[mutator](storage, MISSING_ID)
        with pytest.raises(TrialNotFoundError, match=str(MISSING_ID)):
            storage.get_trial(MISSING_ID)

    # -- WAITING trials and limits ------------------------------------------------------------

    def test_claim_takes_oldest_waiting_first(self, storage: Storage, study_id: int) -> None:
        first = _running(storage, study_id, state=TrialState.WAITING, params={"i": 0})
        _running(storage, study_id)
        second = _running(storage, study_id, state=TrialState.WAITING, params={"i": 1})
        claimed = storage.claim_waiting_trial(study_id, heartbeat=True)
        assert claimed is not None
        assert (claimed.trial_id, claimed.state, claimed.params) == (
            first.trial_id, TrialState.RUNNING, {"i": 0})
        assert _is_utc(claimed.datetime_start) and _is_utc(claimed.last_heartbeat)
        again = storage.claim_waiting_trial(study_id)
        assert again is not None and again.trial_id == second.trial_id
        assert again.last_heartbeat is None
        assert storage.claim_waiting_trial(study_id) is None
        assert storage.get_trial(first.trial_id) == claimed

    def test_limit_counts_running_complete_and_pruned(self, storage: Storage,
                                                      study_id: int) -> None:
        _running(storage, study_id)
        for state in FINISHED:
            _finished(storage, study_id, state)
        _running(storage, study_id, state=TrialState.WAITING)
        assert storage.create_trial(study_id, limit=3) is None
        assert storage.claim_waiting_trial(study_id, limit=3) is None
        created = storage.create_trial(study_id, limit=4)
        assert created is not None and created.number == 5  # the refusals used no number
        assert storage.claim_waiting_trial(study_id, limit=4) is None
        claimed = storage.claim_waiting_trial(study_id, limit=5)
        assert claimed is not None and claimed.number == 4

    def test_start_trial_creates_when_nothing_waits(self, storage: Storage,
                                                    study_id: int) -> None:
        _finished(storage, study_id, TrialState.COMPLETE, 1.0)
        started = storage.start_trial(study_id, heartbeat=True, system_attrs={"worker": 3})
        assert started is not None
        trial, claimed = started
        assert not claimed
        assert (trial.number, trial.state, trial.params) == (1, TrialState.RUNNING, {})
        assert trial.system_attrs == {"worker": 3}
        assert _is_utc(trial.datetime_start) and _is_utc(trial.last_heartbeat)
        assert storage.get_trial(trial.trial_id) == trial
        plain = storage.start_trial(study_id)
        assert plain is not None and plain[0].last_heartbeat is None

    def test_start_trial_claims_the_oldest_waiting_first(self, storage: Storage,
                                                         study_id: int) -> None:
        first = _running(storage, study_id, state=TrialState.WAITING, params={"i": 0},
                         system_attrs={"retry_of": 7})
        second = _running(storage, study_id, state=TrialState.WAITING, params={"i": 1})
        started = storage.start_trial(study_id, heartbeat=True, system_attrs={"worker": 3})
        assert started is not None
        trial, claimed = started
        assert claimed and trial.trial_id == first.trial_id
        assert (trial.state, trial.params) == (TrialState.RUNNING, {"i": 0})
        assert trial.system_attrs == {"retry_of": 7, "worker": 3}
        assert _is_utc(trial.last_heartbeat)
        assert storage.get_trial(first.trial_id) == trial
        again = storage.start_trial(study_id)
        assert again is not None and again[1] and again[0].trial_id == second.trial_id
        new = storage.start_trial(study_id)
        assert new is not None and not new[1] and new[0].number == 2

    def test_start_trial_respects_the_limit(self, storage: Storage, study_id: int) -> None:
        _running(storage, study_id)
        _finished(storage, study_id, TrialState.FAIL)  # not counted
        _running(storage, study_id, state=TrialState.WAITING, params={"i": 0})
        assert storage.start_trial(study_id, limit=1) is None
        started = storage.start_trial(study_id, limit=2)
        assert started is not None and started[1] and started[0].number == 2
        assert storage.start_trial(study_id, limit=2) is None
        created = storage.start_trial(study_id, limit=3)
        assert created is not None and not created[1] and created[0].number == 3  # no gap

    # -- deduplication ------------------------------------------------------------------------

    def test_dedup_key_held_once_per_study(self, storage: Storage, study_id: int) -> None:
        holder = _running(storage, study_id, dedup_key="x=1")
        with pytest.raises(DuplicateParamsError, match="already holds"):
            storage.create_trial(study_id, dedup_key="x=1")
        assert _running(storage, study_id).number == 1  # no number was used up
        other = storage.create_study("other", Direction.MINIMIZE)
        assert _running(storage, other, dedup_key="x=1").number == 0
        assert storage.count_trials(study_id) == 2 and holder.number == 0

    def test_dedup_key_in_set_trial_params(self, storage: Storage, study_id: int) -> None:
        holder = _running(storage, study_id)
        storage.set_trial_params(holder.trial_id, {"x": 1}, None, dedup_key="x=1")
        storage.set_trial_params(holder.trial_id, {"x": 1}, None, dedup_key="x=1")  # own key
        later = _running(storage, study_id)
        with pytest.raises(DuplicateParamsError, match="already holds"):
            storage.set_trial_params(later.trial_id, {"x": 1}, None, dedup_key="x=1")
        assert storage.get_trial(later.trial_id).params == {}
        with pytest.raises(DuplicateParamsError, match="already holds"):
            storage.create_trial(study_id, dedup_key="x=1")

    def test_new_dedup_key_frees_the_old_one(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id, dedup_key="x=1")
        storage.set_trial_params(trial.trial_id, {"x": 2}, None, dedup_key="x=2")
        storage.set_trial_params(trial.trial_id, {"x": 2}, None)  # None keeps the key
        with pytest.raises(DuplicateParamsError, match="already holds"):
            storage.create_trial(study_id, dedup_key="x=2")
        assert _running(storage, study_id, dedup_key="x=1").number == 1

    # -- importing ----------------------------------------------------------------------------

    def test_import_study_keeps_everything_but_the_ids(self, storage: Storage) -> None:
        _skip_without_import(storage)
        start = _dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=_dt.timezone.utc)
        pruned = FrozenTrial(
            trial_id=MISSING_ID, number=41, state=TrialState.PRUNED, value=0.25,
            params={"lr": 0.01, "net": 1}, natural={"lr": 0.01, "net": {"kind": "cnn"}},
            intermediate_values={0: 0.9, 5: 0.5, 10: 0.25}, user_attrs={"note": "ünï"},
            system_attrs={"log_dir": "/runs/41", "gpu": 0},
            datetime_start=start, datetime_complete=start + _dt.timedelta(seconds=90),
            last_heartbeat=start + _dt.timedelta(seconds=80))
        running = FrozenTrial(trial_id=MISSING_ID, number=3, state=TrialState.RUNNING,
                              datetime_start=start, last_heartbeat=start)
        waiting = FrozenTrial(trial_id=MISSING_ID, number=4, state=TrialState.WAITING,
                              params={"lr": 0.1})
        created = start - _dt.timedelta(days=1)
        study_id = storage.import_study("copy", Direction.MAXIMIZE, {"seed": 3},
                                        [pruned, running, waiting], datetime_created=created)
        info = storage.get_study(study_id)
        assert (info.name, info.direction, dict(info.attrs)) == ("copy", Direction.MAXIMIZE,
                                                                 {"seed": 3})
        assert info.datetime_created == created
        assert info.n_trials[TrialState.PRUNED] == info.n_trials[TrialState.RUNNING] == 1
        stored = storage.get_all_trials(study_id)
        assert [t.number for t in stored] == [0, 1, 2]
        assert MISSING_ID not in {t.trial_id for t in stored}
        for copy, source in zip(stored, (pruned, running, waiting)):
            assert dataclasses.replace(copy, trial_id=MISSING_ID,
                                       number=source.number) == source
            assert storage.get_trial(copy.trial_id) == copy
        assert _running(storage, study_id).number == 3  # numbering goes on after the copies
        claimed = storage.claim_waiting_trial(study_id)  # the WAITING copy can be claimed
        assert claimed is not None and claimed.number == 2 and claimed.params == {"lr": 0.1}
        with pytest.raises(TrialFinishedError):
            storage.set_trial_user_attr(stored[0].trial_id, "k", "v")

    def test_import_study_is_all_or_nothing(self, storage: Storage, study_id: int) -> None:
        _skip_without_import(storage)
        done = FrozenTrial(trial_id=1, number=0, state=TrialState.COMPLETE, value=2.0)
        with pytest.raises(DuplicateStudyError, match="'s' already exists"):
            storage.import_study("s", Direction.MINIMIZE, {}, [done])
        assert storage.count_trials(study_id) == 0
        with pytest.raises(DuplicateParamsError, match="already holds"):
            storage.import_study("copy", Direction.MINIMIZE, {}, [done, done], ["k", "k"])
        with pytest.raises(ConfigurationError, match="one dedup key"):
            storage.import_study("copy", Direction.MINIMIZE, {}, [done, done], ["k"])
        bad = FrozenTrial(trial_id=2, number=1, state=TrialState.FAIL, params={"x": NOT_JSON})
        with pytest.raises(ConfigurationError):
            storage.import_study("copy", Direction.MINIMIZE, {}, [done, bad])
        assert [info.name for info in storage.list_studies()] == ["s"]
        copy = storage.import_study("copy", Direction.MINIMIZE, {}, [done, done], ["k", None])
        with pytest.raises(DuplicateParamsError, match="already holds"):
            storage.create_trial(copy, dedup_key="k")  # the copies hold their keys
        assert storage.get_study(copy).best_value == 2.0

    def test_an_empty_study_can_be_imported(self, storage: Storage) -> None:
        _skip_without_import(storage)
        study_id = storage.import_study("empty", Direction.MINIMIZE, {}, [])
        assert storage.get_all_trials(study_id) == []
        assert _running(storage, study_id).number == 0

    # -- heartbeats ---------------------------------------------------------------------------

    def test_stale_trials_fail_once(self, storage: Storage, study_id: int) -> None:
        stale = _running(storage, study_id, heartbeat=True)
        by_hand = _running(storage, study_id)
        done = _running(storage, study_id, heartbeat=True)
        storage.finish_trial(done.trial_id, TrialState.COMPLETE, 1.0)
        time.sleep(0.05)
        failed = storage.fail_stale_trials(study_id, grace_seconds=0.01)
        assert [t.trial_id for t in failed] == [stale.trial_id]
        assert failed[0].state is TrialState.FAIL and "heartbeat" in (failed[0].fail_reason
                                                                       or "")
        assert storage.get_trial(stale.trial_id) == failed[0]
        assert storage.get_trial(by_hand.trial_id).state is TrialState.RUNNING
        assert storage.fail_stale_trials(study_id, grace_seconds=0.01) == []

    def test_a_trial_is_stale_only_past_the_grace_period_its_own_process_recorded(
            self, storage: Storage, study_id: int) -> None:
        """A launcher with a short grace period must not fail the live trials of one with a
        long one (their results would be dropped); a lost trial ends at its last heartbeat,
        so its duration is the time it ran, not the time until someone noticed."""
        patient = _running(storage, study_id, heartbeat=True,
                           system_attrs={"grace_period": 60.0})
        plain = _running(storage, study_id, heartbeat=True)
        short = _running(storage, study_id, heartbeat=True, system_attrs={"grace_period": 0.01})
        time.sleep(0.05)
        failed = storage.fail_stale_trials(study_id, grace_seconds=0.01)
        assert sorted(t.trial_id for t in failed) == [plain.trial_id, short.trial_id]
        assert storage.get_trial(patient.trial_id).state is TrialState.RUNNING
        for trial in failed:
            assert trial.datetime_complete == storage.get_trial(trial.trial_id).last_heartbeat
            assert storage.get_trial(trial.trial_id).datetime_complete == trial.datetime_complete
        assert failed[0].fail_reason == ("no heartbeat for more than 0.01 s (the worker died "
                                         "or hung)")
        assert storage.fail_stale_trials(study_id, grace_seconds=0.01) == []  # patient lives

    def test_heartbeat_of_waiting_trial_is_refused(self, storage: Storage,
                                                   study_id: int) -> None:
        trial = _running(storage, study_id, state=TrialState.WAITING)
        with pytest.raises(ConfigurationError, match="RUNNING trial.*trial 0, which is WAITING"):
            storage.record_heartbeat(trial.trial_id)
        assert storage.get_trial(trial.trial_id) == trial
        claimed = storage.claim_waiting_trial(study_id)
        assert claimed is not None and claimed.last_heartbeat is None
        storage.record_heartbeat(trial.trial_id)
        assert _is_utc(storage.get_trial(trial.trial_id).last_heartbeat)

    def test_recent_heartbeat_is_not_stale(self, storage: Storage, study_id: int) -> None:
        trial = _running(storage, study_id, heartbeat=True)
        time.sleep(0.02)
        storage.record_heartbeat(trial.trial_id)
        beat = storage.get_trial(trial.trial_id).last_heartbeat
        assert _is_utc(beat)
        assert beat is not None and trial.last_heartbeat is not None
        assert beat > trial.last_heartbeat
        assert storage.fail_stale_trials(study_id, grace_seconds=60.0) == []

    # -- reading ------------------------------------------------------------------------------

    def test_get_all_trials_by_number_and_state(self, storage: Storage, study_id: int) -> None:
        states = [TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED, TrialState.FAIL]
        for state in states:
            if state.is_finished:
                _finished(storage, study_id, state, 1.0)
            else:
                _running(storage, study_id)
        assert [t.number for t in storage.get_all_trials(study_id)] == [0, 1, 2, 3]
        wanted = [TrialState.PRUNED, TrialState.COMPLETE]
        assert [t.number for t in storage.get_all_trials(study_id, wanted)] == [0, 2]
        assert storage.get_all_trials(study_id, [TrialState.WAITING]) == []
        assert storage.count_trials(study_id) == 4
        assert storage.count_trials(study_id, [TrialState.FAIL]) == 1

    @pytest.mark.parametrize(("direction", "best"), [(Direction.MINIMIZE, 1.0),
                                                     (Direction.MAXIMIZE, 3.0)])
    def test_study_counts_and_best_value(self, storage: Storage, direction: Direction,
                                         best: float) -> None:
        study_id = storage.create_study("s", direction)
        for value in (3.0, 1.0, 2.0):
            _finished(storage, study_id, TrialState.COMPLETE, value)
        _finished(storage, study_id, TrialState.PRUNED, 0.5)  # never the best
        _finished(storage, study_id, TrialState.FAIL)
        _running(storage, study_id)
        _running(storage, study_id, state=TrialState.WAITING)
        info = storage.get_study(study_id)
        assert info.best_value == best
        assert info.n_trials == {TrialState.COMPLETE: 3, TrialState.PRUNED: 1,
                                 TrialState.FAIL: 1, TrialState.RUNNING: 1,
                                 TrialState.WAITING: 1}
        assert storage.list_studies()[0].n_trials == info.n_trials

    @pytest.mark.parametrize(("direction", "number"), [(Direction.MINIMIZE, 1),
                                                       (Direction.MAXIMIZE, 0)])
    def test_best_trial_is_the_first_complete_one_of_the_best_value(
            self, storage: Storage, direction: Direction, number: int) -> None:
        study_id = storage.create_study("s", direction)
        assert storage.best_trial(study_id, direction) is None  # none completed yet
        trials = [_running(storage, study_id) for _ in range(5)]
        for trial, value in zip(trials, (3.0, 1.0, 2.0, 1.0, 3.0), strict=True):
            storage.set_intermediate_value(trial.trial_id, 0, value + 0.5)
            storage.set_intermediate_value(trial.trial_id, 7, value)
            storage.finish_trial(trial.trial_id, TrialState.COMPLETE, value)
        _finished(storage, study_id, TrialState.PRUNED, 0.5)  # never the best
        _finished(storage, study_id, TrialState.PRUNED, 9.0)
        _finished(storage, study_id, TrialState.FAIL)
        _finished(storage, study_id, TrialState.COMPLETE, math.nan)  # written by hand: no best
        _running(storage, study_id)
        best = storage.best_trial(study_id, direction)
        assert best is not None and best.number == number  # the first among equal values
        assert best.state is TrialState.COMPLETE and best.value == (1.0 if number else 3.0)
        assert best.intermediate_values == {0: best.value + 0.5, 7: best.value}
        assert best == storage.get_trial(best.trial_id)

    def test_best_trial_of_a_missing_study_raises(self, storage: Storage) -> None:
        with pytest.raises(StudyNotFoundError):
            storage.best_trial(12345, Direction.MINIMIZE)

    def test_changing_returned_trials_changes_nothing(self, storage: Storage,
                                                      study_id: int) -> None:
        trial = _running(storage, study_id, params={"x": 1}, natural={"x": [1, {"y": 2}]},
                         system_attrs={"gpu": 0})
        storage.set_intermediate_value(trial.trial_id, 0, 1.0)
        storage.finish_trial(trial.trial_id, TrialState.COMPLETE, 1.0)
        expected = storage.get_trial(trial.trial_id)
        changes: list[Callable[[FrozenTrial], object]] = [
            lambda t: t.params.update(x=9),  # type: ignore[attr-defined]
            lambda t: t.natural["x"].append(3),
            lambda t: t.natural["x"][1].clear(),
            lambda t: t.intermediate_values.pop(0),  # type: ignore[attr-defined]
            lambda t: t.system_attrs.setdefault("new", 1),  # type: ignore[attr-defined]
        ]
        for change in changes:
            for returned in (storage.get_all_trials(study_id)[0], storage.get_trial(
                    trial.trial_id), storage.get_all_trials(study_id, FINISHED)[0]):
                # read-only, as a storage may share finished trials between callers: TypeError,
                # or AttributeError from a types.MappingProxyType (it has no update, pop...)
                with contextlib.suppress(TypeError, AttributeError):
                    change(returned)
        assert storage.get_all_trials(study_id) == [expected]
        assert storage.get_trial(trial.trial_id) == expected

    def test_describe_is_text(self, storage: Storage) -> None:
        assert isinstance(storage.describe(), str) and storage.describe()

    # -- several handles (other processes, for storages that processes share) ----------------

    def test_trials_finished_elsewhere_are_seen(self, storage: Storage, other: Storage,
                                                study_id: int) -> None:
        _finished(storage, study_id, TrialState.COMPLETE, 1.0)
        assert len(storage.get_all_trials(study_id)) == 1
        theirs = _finished(other, study_id, TrialState.PRUNED, 2.0)
        assert storage.get_all_trials(study_id)[1] == theirs
        assert [t.number for t in storage.get_all_trials(study_id, [TrialState.PRUNED])] == [1]

    def test_trial_seen_running_then_finished_elsewhere(self, storage: Storage,
                                                        other: Storage, study_id: int) -> None:
        done = _finished(storage, study_id, TrialState.COMPLETE, 1.0)
        trial = _running(storage, study_id, heartbeat=True)
        assert [t.state for t in storage.get_all_trials(study_id)] == [TrialState.COMPLETE,
                                                                       TrialState.RUNNING]
        assert storage.get_all_trials(study_id, [TrialState.RUNNING]) == [trial]
        other.set_intermediate_value(trial.trial_id, 3, 0.5)
        other.set_trial_user_attr(trial.trial_id, "note", "elsewhere")
        assert storage.get_all_trials(study_id)[1].intermediate_values == {3: 0.5}
        finished = other.finish_trial(trial.trial_id, TrialState.FAIL)
        assert storage.get_all_trials(study_id) == [done, finished]
        assert storage.get_all_trials(study_id, [TrialState.RUNNING]) == []
        assert storage.get_all_trials(study_id, [TrialState.FAIL]) == [finished]
        assert storage.get_trial(trial.trial_id) == finished

    def test_waiting_trial_claimed_elsewhere_is_seen(self, storage: Storage, other: Storage,
                                                     study_id: int) -> None:
        waiting = _running(storage, study_id, state=TrialState.WAITING, params={"x": 1})
        assert storage.get_all_trials(study_id) == [waiting]
        claimed = other.claim_waiting_trial(study_id)
        assert storage.get_all_trials(study_id) == [claimed]

    def test_deleted_study_shows_no_trials(self, storage: Storage, other: Storage,
                                           study_id: int) -> None:
        for state in FINISHED:
            _finished(storage, study_id, state, 1.0)
        assert len(storage.get_all_trials(study_id)) == 3
        storage.delete_study(study_id)
        with pytest.raises(StudyNotFoundError, match=str(study_id)):
            storage.get_all_trials(study_id)
        again = storage.create_study("s", Direction.MINIMIZE)
        _finished(storage, again, TrialState.COMPLETE, 2.0)
        assert [t.value for t in storage.get_all_trials(again)] == [2.0]
        assert len(other.get_all_trials(again)) == 1
        other.delete_study(again)  # deleted elsewhere: nothing is served from a cache
        with pytest.raises(StudyNotFoundError, match=str(again)):
            storage.get_all_trials(again)
        with pytest.raises(StudyNotFoundError, match=str(again)):
            storage.get_all_trials(again, FINISHED)

    # -- concurrency --------------------------------------------------------------------------

    def test_threads_get_unique_gapless_numbers(self, storage: Storage,
                                                study_id: int) -> None:
        def work() -> list[int]:
            return [_running(storage, study_id).number for _ in range(25)]

        numbers = _in_threads(work)
        assert sorted(numbers) == list(range(N_THREADS * 25))
        assert [t.number for t in storage.get_all_trials(study_id)] == sorted(numbers)

    def test_threads_read_while_others_finish(self, storage: Storage, study_id: int) -> None:
        def work() -> list[bool]:
            seen_right = []
            for i in range(10):
                mine = _finished(storage, study_id, TrialState.COMPLETE, float(i))
                trials = {t.trial_id: t for t in storage.get_all_trials(study_id)}
                seen_right.append(trials[mine.trial_id] == mine)
            return seen_right

        assert all(_in_threads(work))
        trials = storage.get_all_trials(study_id)
        assert [t.number for t in trials] == list(range(N_THREADS * 10))
        assert trials == [storage.get_trial(t.trial_id) for t in trials]

    def test_threads_never_overshoot_limit(self, storage: Storage, study_id: int) -> None:
        def work() -> list[int]:
            created = []
            while (trial := storage.create_trial(study_id, limit=30)) is not None:
                created.append(trial.number)
            return created

        assert sorted(_in_threads(work)) == list(range(30))

    def test_threads_start_each_waiting_trial_once_and_number_the_rest(
            self, storage: Storage, study_id: int) -> None:
        waiting = {_running(storage, study_id, state=TrialState.WAITING).trial_id
                   for _ in range(20)}

        def work() -> list[tuple[int, int, bool]]:
            started = []
            for _ in range(10):
                got = storage.start_trial(study_id)
                assert got is not None
                started.append((got[0].trial_id, got[0].number, got[1]))
            return started

        started = _in_threads(work)
        assert {tid for tid, _, claimed in started if claimed} == waiting
        assert len({tid for tid, _, _ in started}) == len(started)
        numbers = sorted(t.number for t in storage.get_all_trials(study_id))
        assert numbers == list(range(N_THREADS * 10))  # the claimed ones included

    def test_threads_never_overshoot_limit_when_starting(self, storage: Storage,
                                                         study_id: int) -> None:
        for _ in range(5):
            _running(storage, study_id, state=TrialState.WAITING)

        def work() -> list[int]:
            started = []
            while (got := storage.start_trial(study_id, limit=30)) is not None:
                started.append(got[0].trial_id)
            return started

        assert len(set(_in_threads(work))) == 30
        assert storage.count_trials(study_id, [TrialState.RUNNING]) == 30

    def test_threads_claim_each_waiting_trial_once(self, storage: Storage,
                                                   study_id: int) -> None:
        waiting = {_running(storage, study_id, state=TrialState.WAITING).trial_id
                   for _ in range(40)}

        def work() -> list[int]:
            claimed = []
            while (trial := storage.claim_waiting_trial(study_id)) is not None:
                claimed.append(trial.trial_id)
            return claimed

        claimed = _in_threads(work)
        assert sorted(claimed) == sorted(waiting)

    def test_threads_fail_each_stale_trial_once(self, storage: Storage,
                                                study_id: int) -> None:
        stale = {_running(storage, study_id, heartbeat=True).trial_id for _ in range(10)}
        time.sleep(0.05)

        def work() -> list[int]:
            return [t.trial_id for t in storage.fail_stale_trials(study_id, 0.01)]

        failed = _in_threads(work)
        assert sorted(failed) == sorted(stale)
