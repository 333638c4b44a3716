"""A SQL storage: a SQLite file for one machine, PostgreSQL for many.

Written with SQLAlchemy Core and portable column types; JSON values are stored as TEXT (never
pickled), timestamps as UTC. The few things that differ between databases live in the engine
set-up (:mod:`._sql_engine`) and the URL rules (:mod:`._sql_url`); the tables are in
:mod:`._sql_tables`, their version and its upgrades in :mod:`._sql_schema`.

How the contract is kept:

* **Numbers.** Each study row holds ``next_number``. A new trial takes it and raises it by one
  in the same atomic step as its insert: on SQLite inside a write transaction that holds the
  database's write lock from its start (``BEGIN IMMEDIATE``); on PostgreSQL in one statement, an
  ``UPDATE`` of the study row chained to the ``INSERT`` (a data-modifying CTE). An ``UPDATE``
  that waited for another writer's row lock re-reads the row as that writer committed it, so
  the number is always fresh. ``UNIQUE(study_id, number)`` backs it up.
* **Check-and-write.** A write that must check something first (the study is below its limit,
  the WAITING trial is still waiting, the trial is unfinished) either says the condition in the
  ``WHERE`` clause of the write itself, or reads it in the same write transaction after taking
  the lock (the study's row on PostgreSQL, ``SELECT ... FOR UPDATE``, then a second statement
  that sees every trial committed before the lock was granted).
* **Round trips.** The hot path (``start_trial``, ``set_trial_params``, ``finish_trial``, the
  stale-trial check of ``fail_stale_trials``) is one or two statements per call, run on the
  driver's connection (see :mod:`._driver` and :class:`_HotStatements`). On PostgreSQL, where
  every statement is a network round trip, single statements run in autocommit (no
  ``BEGIN``/``COMMIT``), reads too (under READ COMMITTED a transaction gives a read nothing
  more), and a pooled connection is checked for life without a round trip (see
  :mod:`._sql_engine`). An ask+tell is four statements: create, store the params, finish, read
  the curve.
* **Processes.** SQLite runs in WAL mode (readers never block the writer) with a long busy
  timeout, so processes wait for the lock instead of failing with "database is locked".
* **Fresh reads.** ``get_all_trials`` asks the database for the ids of the study's trials at
  every call; it keeps *finished* trials once read (they never change and ids are never
  reused) and reads every other trial again, except the points of its curve already read: only
  those from its last known step on, checked by their count and sum (see
  :class:`UnfinishedCurves`). ``get_trial`` always reads in full.
* **Outages.** A server that went away is waited for, where a call can safely run again (see
  :mod:`._outage`): the write methods say whether they are idempotent (``_reconnecting``), and
  each connection says whether a failure came before anything could commit (``_Stage``).
* **Pickling.** Only the URL and the engine arguments travel; the engine (with its pool of
  connections) and the cache of finished trials are rebuilt lazily in the receiving process,
  and an engine inherited through ``fork`` is dropped without closing the parent's connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError, NoSuchModuleError, SQLAlchemyError

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState, utcnow
from hpo_plugins._numbers import close
from hpo_plugins.exceptions import (
    ConfigurationError,
    DuplicateParamsError,
    MissingDependencyError,
    StorageError,
    StudyNotFoundError,
)
from hpo_plugins.storages._base import (
    LIMIT_STATES,
    Storage,
    StudyInfo,
    check_attr_key,
    check_heartbeat_state,
    check_json_keys,
    duplicate_study,
    finished_state,
    import_keys,
    no_study_named,
    not_json,
    numpy_default,
    stale_after,
    stale_reason,
    study_not_found,
    trial_finished,
    trial_not_found,
)
from hpo_plugins.storages._cache import FinishedTrialCache, read_only_trial
from hpo_plugins.storages._driver import HotPath
from hpo_plugins.storages._outage import Reconnector, lost_connection, unreachable
from hpo_plugins.storages._sql_engine import (
    AUTOCOMMIT,
    READ_ONLY,
    bad_engine_argument,
    check_engine_kwargs,
    check_reconnect_timeout,
    server_engine,
    sqlite_engine,
    try_engine_kwargs,
)
from hpo_plugins.storages._sql_schema import (
    SCHEMA_VERSION,
    check_version,
    ensure_schema,
    refuse_foreign_sqlite,
    schema_version,
    sqlite_schema_version,
)
from hpo_plugins.storages._sql_tables import UTCDateTime
from hpo_plugins.storages._sql_tables import studies_table as _studies
from hpo_plugins.storages._sql_tables import trials_table as _trials
from hpo_plugins.storages._sql_tables import values_table as _values
from hpo_plugins.storages._sql_url import (
    absolute_sqlite,
    check_sqlite_url,
    masked_url,
    missing_driver_message,
    parse_url,
    redact,
    sqlite_read_only,
    unknown_scheme_message,
    url_secrets,
    warn_unseen_wal,
)
from hpo_plugins.storages._sqlite_path import (
    immutable_sqlite_url,
    plain_sqlite_url,
    sqlite_file,
)

__all__ = ["SCHEMA_VERSION", "SQLStorage"]

_logger = logging.getLogger(__name__)
_STATES = {state.value: state for state in TrialState}
_LIMIT_VALUES = [state.value for state in LIMIT_STATES]
#: Above this many trials to read in full, get_all_trials reads the whole study in one query.
_MAX_IDS_PER_QUERY = 500
#: SQLite's errors when it cannot open or write the file: the path or permissions are wrong.
_SQLITE_ACCESS_ERRORS = ("unable to open database file", "readonly database")
#: How long a server storage keeps trying to reach its database, by default (see _outage).
DEFAULT_RECONNECT_TIMEOUT_S = 60.0
_P = ParamSpec("_P")
_R = TypeVar("_R")


# -- prebuilt statements ----------------------------------------------------------------------
# Building a Core statement costs several times more than executing it, so hot paths run
# statements built once here. Bind parameters are named b_*: UPDATE ... SET takes the column
# names of the parameters passed at execution.

_SID: sa.BindParameter[int] = sa.bindparam("b_study_id")
_TID: sa.BindParameter[int] = sa.bindparam("b_trial_id")
_STATE_LIST: sa.BindParameter[list[str]] = sa.bindparam("b_states", expanding=True)

_STUDY = sa.select(_studies.c.study_id).where(_studies.c.study_id == _SID)
_LOCK_STUDY = _STUDY.with_for_update()
_WAITING = TrialState.WAITING.value
_UNFINISHED = sa.or_(_trials.c.state == TrialState.RUNNING.value, _trials.c.state == _WAITING)

_OLDEST_WAITING = (sa.select(_trials.c.trial_id)
                   .where(_trials.c.study_id == _SID, _trials.c.state == _WAITING)
                   .order_by(_trials.c.number).limit(1))
_N_COUNTED = (sa.select(sa.func.count()).select_from(_trials)
              .where(_trials.c.study_id == _SID, _trials.c.state.in_(_LIMIT_VALUES))
              .scalar_subquery())
# What the careful path of start_trial / create_trial decides on, read after taking the lock:
# the study exists (a row), how many trials count toward a limit, its oldest WAITING trial.
_STUDY_STATE = sa.select(_studies.c.study_id, sa.null(), _OLDEST_WAITING.scalar_subquery()
                         ).where(_studies.c.study_id == _SID)
_STUDY_STATE_COUNT = sa.select(_studies.c.study_id, _N_COUNTED,
                               _OLDEST_WAITING.scalar_subquery()
                               ).where(_studies.c.study_id == _SID)

# Taking a number: raise the study's next_number, return the one taken. The quick path of
# start_trial takes one only if no trial is WAITING (a WAITING trial must be claimed instead).
_TAKE_NUMBER = (sa.update(_studies).where(_studies.c.study_id == _SID)
                .values(next_number=_studies.c.next_number + 1)
                .returning((_studies.c.next_number - 1).label("number")))
_NO_WAITING = ~sa.exists().where(_trials.c.study_id == _SID, _trials.c.state == _WAITING)
_TAKE_NUMBER_UNLESS_WAITING = _TAKE_NUMBER.where(_NO_WAITING)
_INSERT_TRIAL = sa.insert(_trials).returning(_trials.c.trial_id)
#: The columns of a new trial's row that the caller gives (a new trial has no value and no end).
_NEW_TRIAL_COLUMNS = [c for c in _trials.c
                      if c.name not in ("trial_id", "number", "value", "datetime_complete")]


def _insert_taking_number(take: sa.Update) -> sa.Insert:
    """One statement that takes a number with ``take`` and inserts the trial with it.

    PostgreSQL runs data-modifying CTEs: the ``UPDATE`` of the study row locks it (re-reading
    it if another writer held it) and the ``INSERT`` uses the number it returns; when ``take``
    matches no row, nothing is inserted and no row comes back. Binds: ``b_<column>``.
    """
    taken = take.cte("taken")
    values = [sa.bindparam(f"b_{c.name}", type_=c.type) for c in _NEW_TRIAL_COLUMNS]
    names = [c.name for c in _NEW_TRIAL_COLUMNS]
    return (sa.insert(_trials)
            .from_select(["number", *names], sa.select(taken.c.number, *values))
            .add_cte(taken)
            .returning(_trials.c.trial_id, _trials.c.number))


_CREATE_NUMBERED = _insert_taking_number(_TAKE_NUMBER)
_CREATE_UNLESS_WAITING = _insert_taking_number(_TAKE_NUMBER_UNLESS_WAITING)
# SQLite's second step after _TAKE_NUMBER_UNLESS_WAITING, on the driver (binds b_<column>).
_INSERT_NUMBERED = (sa.insert(_trials)
                    .values({c.name: sa.bindparam(f"b_{c.name}")
                             for c in (_trials.c.number, *_NEW_TRIAL_COLUMNS)})
                    .returning(_trials.c.trial_id))

_TRIAL = sa.select(_trials).where(_trials.c.trial_id == _TID)
_LOCK_TRIAL = _TRIAL.with_for_update()
_LOCK_TRIAL_STATE = (sa.select(_trials.c.number, _trials.c.state)
                     .where(_trials.c.trial_id == _TID).with_for_update())
_UPDATE_TRIAL = sa.update(_trials).where(_trials.c.trial_id == _TID)
# Writes that check "the trial is unfinished" in their own WHERE clause: one statement, no
# lock taken beforehand. No row changed means no such trial or a finished one (_live_row says).
_UPDATE_LIVE_TRIAL = _UPDATE_TRIAL.where(_UNFINISHED)
_SET_PARAMS = _UPDATE_LIVE_TRIAL.values(params=sa.bindparam("b_params"),
                                        natural=sa.bindparam("b_natural"))
_NOW: sa.BindParameter[_dt.datetime] = sa.bindparam("b_now", type_=UTCDateTime)
_FINISH_TRIAL = (_UPDATE_LIVE_TRIAL
                 .values(state=sa.bindparam("b_state"), value=sa.bindparam("b_value"),
                         datetime_complete=_NOW,
                         datetime_start=sa.func.coalesce(_trials.c.datetime_start, _NOW))
                 .returning(*_trials.c))
_HEARTBEAT = (_UPDATE_TRIAL.where(_trials.c.state == TrialState.RUNNING.value)
              .values(last_heartbeat=_NOW))
_STALE_WHERE = (_trials.c.study_id == _SID, _trials.c.state == TrialState.RUNNING.value,
                _trials.c.last_heartbeat.is_not(None),
                _trials.c.last_heartbeat < sa.bindparam("b_before", type_=UTCDateTime))
# The study exists (a row) and whether any of its trials is stale, read without any lock.
_ANY_STALE = sa.select(_studies.c.study_id, sa.exists().where(*_STALE_WHERE)
                       ).where(_studies.c.study_id == _SID)
# Stale by the caller's grace period, with what stale_after needs (not the curves).
_STALE_ROWS = (sa.select(_trials.c.trial_id, _trials.c.system_attrs, _trials.c.last_heartbeat)
               .where(*_STALE_WHERE).order_by(_trials.c.number))
_STALE_ROWS_LOCKED = _STALE_ROWS.with_for_update()
_TRIALS_OF_STUDY = (sa.select(_trials).where(_trials.c.study_id == _SID)
                    .order_by(_trials.c.number))
_TRIALS_OF_STUDY_IN = _TRIALS_OF_STUDY.where(_trials.c.state.in_(_STATE_LIST))
# get_all_trials asks for the ids (by number) first, then reads in full only what is not cached.
_IDS_OF_STUDY = (sa.select(_trials.c.trial_id).where(_trials.c.study_id == _SID)
                 .order_by(_trials.c.number))
_IDS_OF_STUDY_IN = _IDS_OF_STUDY.where(_trials.c.state.in_(_STATE_LIST))
_TID_LIST: sa.BindParameter[list[int]] = sa.bindparam("b_trial_ids", expanding=True)
_TRIALS_WITH_IDS = sa.select(_trials).where(_trials.c.trial_id.in_(_TID_LIST))

_VALUE_COLUMNS = (_values.c.trial_id, _values.c.step, _values.c.value)
_VALUES_OF_TRIAL = sa.select(*_VALUE_COLUMNS).where(_values.c.trial_id == _TID)
_VALUES_OF_STUDY = (sa.select(*_VALUE_COLUMNS)
                    .join(_trials, _trials.c.trial_id == _values.c.trial_id)
                    .where(_trials.c.study_id == _SID))
_VALUES_OF_STUDY_IN = _VALUES_OF_STUDY.where(_trials.c.state.in_(_STATE_LIST))
_VALUES_OF_TRIALS = sa.select(*_VALUE_COLUMNS).where(_values.c.trial_id.in_(_TID_LIST))
_UPDATE_VALUE = sa.update(_values).where(_values.c.trial_id == _TID,
                                         _values.c.step == sa.bindparam("b_step"))
_INSERT_VALUE = sa.insert(_values)


# -- JSON and rows ----------------------------------------------------------------------------


def reached_storage(url: str, reconnect_timeout: float) -> SQLStorage:
    """A storage for ``url`` that another process has opened: when its server cannot be
    reached, its calls wait up to ``reconnect_timeout`` seconds, as a storage that reached it
    does, instead of failing at once as for a wrong address (a trial handed to a child
    process during a database restart)."""
    storage = SQLStorage(url, reconnect_timeout=reconnect_timeout)
    storage._reached = True
    return storage


def _dumps(value: Any, what: str) -> str:
    """``value`` as JSON text; raises the same ConfigurationError as the in-memory storage."""
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"), default=numpy_default)
    except (TypeError, ValueError) as exc:
        raise not_json(value, what, exc) from exc
    check_json_keys(value, what)
    return text


#: json.loads without its whitespace checks (twice as fast); we wrote the text with _dumps.
_raw_decode = json.JSONDecoder().raw_decode


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    return {} if text == "{}" else _raw_decode(text)[0]


def _with_entry(stored: str, key: str, value: Any, what: str) -> str:
    """The JSON object ``stored`` with ``key`` set to ``value`` (validated first)."""
    attrs = json.loads(stored)
    attrs[key] = json.loads(_dumps(value, what))
    return _dumps(attrs, what)


def _to_trial(row: Sequence[Any], values: dict[int, float]) -> FrozenTrial:
    """Build the FrozenTrial of a full trials row, in the table's column order.

    This runs once per trial per snapshot, so it unpacks by position and passes FrozenTrial's
    fields by position (twice as fast as keywords); the conformance suite would catch a
    reordering of either.
    """
    (trial_id, _, number, state, value, params, natural, user_attrs, system_attrs, _,
     start, complete, heartbeat) = row
    return FrozenTrial(trial_id, number, _STATES[state], value, _loads(params),
                       _loads(natural), values, _loads(user_attrs), _loads(system_attrs),
                       start, complete, heartbeat)


def _row_tuple(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A dict of column values as a row tuple in the table's column order."""
    return tuple(row[column.name] for column in _trials.c)


def _group_values(rows: Iterable[Sequence[Any]]) -> dict[int, dict[int, float]]:
    """Rows of (trial_id, step, value) as trial_id -> {step: value}.

    A study's curves are hundreds of thousands of rows, which come grouped by trial (the
    table's key order), so the curve at hand is looked up only when the trial changes.
    """
    grouped: dict[int, dict[int, float]] = {}
    current_id, curve = None, None
    nan = float("nan")
    for trial_id, step, value in rows:
        if trial_id != current_id:
            current_id, curve = trial_id, grouped.get(trial_id)
            if curve is None:
                curve = grouped[trial_id] = {}
        curve[step] = nan if value is None else value  # type: ignore[index]
    return grouped


# Repairing a study's next_number that fell behind its trials' numbers (see _healing_numbers).
_NUMBER_AFTER_LAST = (sa.select(sa.func.coalesce(sa.func.max(_trials.c.number), -1) + 1)
                      .where(_trials.c.study_id == _SID).scalar_subquery())
_RESYNC_NUMBER = (sa.update(_studies)
                  .where(_studies.c.study_id == _SID,
                         _studies.c.next_number < _NUMBER_AFTER_LAST)
                  .values(next_number=_NUMBER_AFTER_LAST))


def _is_number_violation(exc: BaseException) -> bool:
    """True if ``exc``, or the driver error it wraps (the hot path raises StorageError from
    it), broke UNIQUE(study_id, number): SQLite names the columns, PostgreSQL the constraint."""
    for error in (exc, exc.__cause__):
        if error is not None and type(error).__name__ in ("IntegrityError", "UniqueViolation"):
            text = str(getattr(error, "orig", None) or error)  # the driver's words, not the SQL
            if "uq_hpo_trials_number" in text or "hpo_trials.number" in text:
                return True
    return False


def _is_dedup_violation(exc: IntegrityError) -> bool:
    """True if ``exc`` broke UNIQUE(study_id, dedup_key).

    SQLite names the columns ("UNIQUE constraint failed: hpo_trials.study_id,
    hpo_trials.dedup_key"), PostgreSQL the constraint ("uq_hpo_trials_dedup_key").
    """
    return "dedup_key" in str(exc.orig)


# -- statements shared by several methods -----------------------------------------------------


def _check_study(conn: Connection, study_id: int, *, lock: bool = False) -> None:
    """Raise StudyNotFoundError unless the study exists; ``lock`` locks its row (PostgreSQL).

    Locking the study row serializes, per study, everything that assigns numbers or raises the
    count toward a limit. SQLite ignores FOR UPDATE; BEGIN IMMEDIATE already serializes writers.
    """
    if conn.scalar(_LOCK_STUDY if lock else _STUDY, {"b_study_id": study_id}) is None:
        raise study_not_found(study_id)


def _lock_study_state(conn: Connection, study_id: int,
                      limit: int | None) -> tuple[bool, int | None]:
    """Lock the study; return (whether ``limit`` is reached, its oldest WAITING trial's id).

    On SQLite the transaction already holds the database's write lock, so one statement does it.
    Elsewhere (PostgreSQL, READ COMMITTED) a statement that waited for the study's row lock
    still reads the trials as they were when it started, without those of the writer it waited
    for: the lock is taken first, and the trials are read by a second statement.

    Raises:
        StudyNotFoundError: No such study.
    """
    if conn.dialect.name != "sqlite":
        _check_study(conn, study_id, lock=True)
    statement = _STUDY_STATE if limit is None else _STUDY_STATE_COUNT
    row = conn.execute(statement, {"b_study_id": study_id}).first()
    if row is None:
        raise study_not_found(study_id)
    _, counted, waiting = row
    return limit is not None and counted >= limit, waiting


def _insert_numbered(conn: Connection, row: Mapping[str, Any], *,
                     unless_waiting: bool = False) -> tuple[int, int] | None:
    """Insert the new trial ``row`` with its study's next number; return (trial id, number).

    None when no study row was updated: there is no such study or, with ``unless_waiting``, one
    of its trials is WAITING. PostgreSQL does it in one statement (see
    :func:`_insert_taking_number`); SQLite, which has no data-modifying CTE, in two, inside the
    write transaction that already holds the database's lock.
    """
    if conn.dialect.name == "sqlite":
        take = _TAKE_NUMBER_UNLESS_WAITING if unless_waiting else _TAKE_NUMBER
        number = conn.scalar(take, {"b_study_id": row["study_id"]})
        if number is None:
            return None
        return int(conn.scalar(_INSERT_TRIAL, {**row, "number": number})), int(number)
    statement = _CREATE_UNLESS_WAITING if unless_waiting else _CREATE_NUMBERED
    created = conn.execute(statement, {f"b_{c.name}": row[c.name]
                                       for c in _NEW_TRIAL_COLUMNS}).first()
    return None if created is None else (int(created[0]), int(created[1]))


def _unchanged(conn: Connection, trial_id: int) -> NoReturn:
    """Explain why a write of an unfinished trial (``WHERE ... state`` unfinished) changed no row.

    Raises:
        TrialNotFoundError, TrialFinishedError: See :func:`_live_row`.
        StorageError: Neither (cannot happen: the trial would have matched).
    """
    _live_row(conn, trial_id)
    raise StorageError(f"Trial id {trial_id} changed while it was being written.")


def _live_row(conn: Connection, trial_id: int, *, full: bool = False) -> Row[Any]:
    """Lock and return an unfinished trial's row: every column if ``full``, else number, state.

    Raises:
        TrialNotFoundError: No such trial.
        TrialFinishedError: The trial is finished.
    """
    statement = _LOCK_TRIAL if full else _LOCK_TRIAL_STATE
    row = conn.execute(statement, {"b_trial_id": trial_id}).first()
    if row is None:
        raise trial_not_found(trial_id)
    if _STATES[row.state].is_finished:
        raise trial_finished(row.number, row.state)
    return row


def _update_trial(conn: Connection, trial_id: int, changes: Mapping[str, Any]) -> None:
    conn.execute(_UPDATE_TRIAL, {"b_trial_id": trial_id, **changes})


def _check_dedup(conn: Connection, study_id: int, key: str | None,
                 trial_id: int | None = None) -> None:
    """Raise DuplicateParamsError if another trial of the study holds ``key``."""
    if key is None:
        return
    query = sa.select(_trials.c.number).where(_trials.c.study_id == study_id,
                                              _trials.c.dedup_key == key)
    if trial_id is not None:
        query = query.where(_trials.c.trial_id != trial_id)
    holder = conn.scalar(query)
    if holder is not None:
        raise DuplicateParamsError(f"Trial {holder} already holds these parameters.")


def _check_trial_key(conn: Connection, trial_id: int, key: str) -> None:
    """Lock the trial's study, then check that no other trial of it holds ``key``.

    The study is locked before the trial (the order fail_stale_trials uses), so that writers of
    keys are serialized per study on PostgreSQL without deadlocks.
    """
    study_id = conn.scalar(sa.select(_trials.c.study_id).where(_trials.c.trial_id == trial_id))
    if study_id is None:
        raise trial_not_found(trial_id)
    _check_study(conn, study_id, lock=True)
    _check_dedup(conn, study_id, key, trial_id)


@contextlib.contextmanager
def _dedup_errors(key: str | None) -> Iterator[None]:
    """Turn a violation of the dedup constraint that slipped past _check_dedup into our error."""
    try:
        yield
    except IntegrityError as exc:
        if key is None or not _is_dedup_violation(exc):
            raise
        raise DuplicateParamsError(
            f"Another trial of the study already holds these parameters (key {key!r})."
        ) from exc


def _values_of_trial(conn: Connection, trial_id: int) -> dict[int, float]:
    rows = conn.execute(_VALUES_OF_TRIAL, {"b_trial_id": trial_id}).all()
    return _group_values(rows).get(trial_id, {})


def _fetch_trial(conn: Connection, trial_id: int) -> FrozenTrial:
    row = conn.execute(_TRIAL, {"b_trial_id": trial_id}).first()
    if row is None:
        raise trial_not_found(trial_id)
    return _to_trial(row, _values_of_trial(conn, trial_id))


def _study_params(study_id: int, states: Sequence[TrialState] | None) -> dict[str, Any]:
    """Bind parameters of the per-study queries (the ``*_IN`` ones take ``b_states``)."""
    params: dict[str, Any] = {"b_study_id": study_id}
    if states is not None:
        params["b_states"] = [TrialState(s).value for s in states]
    return params


def _snapshot(conn: Connection, params: Mapping[str, Any]) -> list[FrozenTrial]:
    """Every trial of the study (in ``b_states``, if given) with its curve, in two queries."""
    trials, values = _TRIALS_OF_STUDY, _VALUES_OF_STUDY
    if "b_states" in params:
        trials, values = _TRIALS_OF_STUDY_IN, _VALUES_OF_STUDY_IN
    rows = conn.execute(trials, params).all()
    curves = _group_values(conn.execute(values, params)) if rows else {}
    return [_to_trial(row, curves.get(row[0]) or {}) for row in rows]


def _trial_ids(conn: Connection, params: Mapping[str, Any]) -> list[int]:
    """Ids of the study's trials (in ``b_states``, if given), by number.

    Raises:
        StudyNotFoundError: No such study.
    """
    query = _IDS_OF_STUDY_IN if "b_states" in params else _IDS_OF_STUDY
    ids = [row[0] for row in conn.execute(query, params).all()]  # faster than .scalars()
    if not ids:
        _check_study(conn, params["b_study_id"])
    return ids


def _fetch_trials(conn: Connection, trial_ids: Sequence[int], params: Mapping[str, Any],
                  known: UnfinishedCurves) -> dict[int, FrozenTrial]:
    """The trials ``trial_ids`` of the study of ``params``, by id.

    Many ids are read as the whole study: one query instead of a long ``IN`` list. The curves
    of unfinished trials that ``known`` holds are read from their last step on (see
    :class:`UnfinishedCurves`); what is read of unfinished trials is kept there.
    """
    read_whole: set[int]
    if len(trial_ids) > _MAX_IDS_PER_QUERY:
        fresh = {trial.trial_id: trial for trial in _snapshot(conn, params)}
        read_whole = set(fresh)
    else:
        rows = conn.execute(_TRIALS_WITH_IDS, {"b_trial_ids": list(trial_ids)}).all()
        unfinished = [row[0] for row in rows if not _STATES[row[3]].is_finished]
        curves = known.read(conn, unfinished)
        rest = [row[0] for row in rows if row[0] not in curves]
        if rest:
            curves.update(_group_values(conn.execute(_VALUES_OF_TRIALS,
                                                     {"b_trial_ids": rest})))
        fresh = {row[0]: _to_trial(row, curves.get(row[0]) or {}) for row in rows}
        read_whole = set(rest)
    known.keep({tid: t.intermediate_values for tid, t in fresh.items()
                if tid in read_whole and not t.state.is_finished})
    return fresh


#: Per trial: how many points, and their sum (NULL, a NaN, counts as 0), for UnfinishedCurves.
_COUNT_AND_SUM = (sa.select(_values.c.trial_id, sa.func.count(),
                            sa.func.sum(sa.func.coalesce(_values.c.value, 0.0)))
                  .where(_values.c.trial_id.in_(_TID_LIST)).group_by(_values.c.trial_id))


def _number(value: float) -> float:
    """A stored point as the database sums it: a NaN (stored NULL) as 0."""
    return 0.0 if value != value else value




class UnfinishedCurves:
    """The curves of unfinished trials last read by one storage object, to read only what is
    new: a snapshot (every ``should_prune``) read every point of every running trial again,
    100,000 rows for 50 trials of 2,000 reports.

    A curve grows at its end (:meth:`Trial.report <hpo_plugins.Trial.report>` refuses steps
    that go back; a second report at the last step replaces its value), so the points from the
    last known step on are all that usually change. One query counts and sums each trial's
    points in the database (a quarter of the cost of reading them): a count or a sum that does
    not match (a point written or rewritten below the last step, through the storage API or a
    second handle of the trial) reads that curve whole again. A rewrite that changes the sum
    by less than a relative 1e-9 goes unseen until the trial finishes.
    """

    #: Beyond this many curves the memory is cleared (trials deleted, studies long done).
    MAX_CURVES = 10_000

    def __init__(self) -> None:
        self._curves: dict[int, tuple[dict[int, float], float]] = {}  # id -> (curve, sum)
        self._lock = threading.Lock()

    def read(self, conn: Connection, trial_ids: Sequence[int]) -> dict[int, dict[int, float]]:
        """The up-to-date curves of those ``trial_ids`` whose curve is known, by id; fresh
        dicts (callers may change them). They are remembered as read."""
        with self._lock:
            known = {tid: self._curves[tid] for tid in trial_ids if tid in self._curves}
        known = {tid: entry for tid, entry in known.items() if entry[0]}
        if not known:
            return {}
        last = list({tid: max(curve) for tid, (curve, _) in known.items()}.items())  # C speed
        tails: dict[int, dict[int, float]] = {}
        for start in range(0, len(last), _MAX_IDS_PER_QUERY // 2):  # 2 bound values each
            tails.update(_group_values(conn.execute(
                sa.select(*_VALUE_COLUMNS)
                .where(sa.or_(*(sa.and_(_values.c.trial_id == tid, _values.c.step >= step)
                                for tid, step in last[start:start + _MAX_IDS_PER_QUERY // 2])))
                .order_by(_values.c.trial_id, _values.c.step))))
        checks = {row[0]: (int(row[1]), float(row[2] or 0.0)) for row in
                  conn.execute(_COUNT_AND_SUM, {"b_trial_ids": list(known)})}
        curves, entries = {}, {}
        for tid, (curve, total) in known.items():
            tail = tails.get(tid, {})
            total += sum(_number(v) - _number(curve.get(s, 0.0)) for s, v in tail.items())
            grown = dict(curve)
            grown.update(tail)
            count, stored = checks.get(tid, (0, 0.0))
            if len(grown) == count and close(total, stored):
                curves[tid] = grown
                entries[tid] = (dict(grown), total)
        with self._lock:
            self._curves.update(entries)
        return curves

    def keep(self, curves: Mapping[int, Mapping[int, float]]) -> None:
        """Remember the curves just read whole of these unfinished trials (copies)."""
        with self._lock:
            if len(self._curves) + len(curves) > self.MAX_CURVES:
                self._curves.clear()
            self._curves.update({tid: (dict(curve), math.fsum(map(_number, curve.values())))
                                 for tid, curve in curves.items()})

    def forget_finished(self, finished: Mapping[int, Any]) -> None:
        """Drop the curves of trials found in ``finished`` (the cache of finished trials): a
        thread that read a trial running can keep its curve after another saw it finish."""
        with self._lock:
            for tid in [tid for tid in self._curves if tid in finished]:
                del self._curves[tid]

    def forget(self, trial_ids: Iterable[int]) -> None:
        """Drop the curves of trials that finished (or are gone)."""
        with self._lock:
            for tid in trial_ids:
                self._curves.pop(tid, None)


def _study_infos(conn: Connection, study_id: int | None = None) -> list[StudyInfo]:
    """StudyInfo of one study (or all), with counts and best value, in two queries."""
    studies = sa.select(_studies).order_by(_studies.c.study_id)
    counts = (sa.select(_trials.c.study_id, _trials.c.state, sa.func.count(),
                        sa.func.min(_trials.c.value), sa.func.max(_trials.c.value))
              .group_by(_trials.c.study_id, _trials.c.state))
    if study_id is not None:
        studies = studies.where(_studies.c.study_id == study_id)
        counts = counts.where(_trials.c.study_id == study_id)
    per_study: dict[int, list[Sequence[Any]]] = {}
    for row in conn.execute(counts):
        per_study.setdefault(row[0], []).append(row)
    return [_study_info(row, per_study.get(row.study_id, [])) for row in conn.execute(studies)]


def _study_info(study: Any, counts: Sequence[Sequence[Any]]) -> StudyInfo:
    direction = Direction(study.direction)
    n_trials = dict.fromkeys(TrialState, 0)
    best = None
    for _, state, count, low, high in counts:
        n_trials[_STATES[state]] = int(count)
        if state == TrialState.COMPLETE.value:
            best = low if direction is Direction.MINIMIZE else high
    return StudyInfo(study.study_id, study.name, direction, attrs=_loads(study.attrs),
                     n_trials=n_trials, best_value=best,
                     datetime_created=study.datetime_created)


# -- the hot path -----------------------------------------------------------------------------


@dataclasses.dataclass
class _Stage:
    """How far a database call got: once ``committing``, it may have changed the database."""

    committing: bool = False


def _reconnecting(*, idempotent: bool) -> Callable[
        [Callable[Concatenate[SQLStorage, _P], _R]], Callable[Concatenate[SQLStorage, _P], _R]]:
    """Run a storage method again while its database server is away (see :mod:`._outage`).

    ``idempotent``: running the method twice leaves what running it once leaves, so it is run
    again even when the first attempt may have been committed.
    """
    def wrap(method: Callable[Concatenate[SQLStorage, _P], _R]
             ) -> Callable[Concatenate[SQLStorage, _P], _R]:
        @functools.wraps(method)
        def call(self: SQLStorage, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            return self._reconnector.call(lambda: method(self, *args, **kwargs),
                                          idempotent=idempotent)
        return call
    return wrap


class _HotStatements:
    """What ``ask`` and ``tell`` run, compiled for one engine and run on its driver.

    See :mod:`._driver` for why. Only the common branch of each hot method runs here; the rare
    ones (a WAITING trial, a limit, a key, attributes to merge, an error) go through SQLAlchemy.
    """

    def __init__(self, path: HotPath, sqlite: bool) -> None:
        self.path = path
        compile_ = path.compile
        # PostgreSQL creates in one statement; SQLite takes the number, then inserts.
        self._create = None if sqlite else compile_(_CREATE_UNLESS_WAITING)
        self._take = compile_(_TAKE_NUMBER_UNLESS_WAITING) if sqlite else None
        self._insert = compile_(_INSERT_NUMBERED) if sqlite else None
        self._set_params = compile_(_SET_PARAMS)
        self._finish = compile_(_FINISH_TRIAL)
        self._values = compile_(_VALUES_OF_TRIAL)
        self._any_stale = compile_(_ANY_STALE)

    def start(self, row: Mapping[str, Any]) -> tuple[int, int] | None:
        """Insert the new trial ``row`` unless a trial is WAITING; (trial id, number) or None.

        None also when the study does not exist (the caller's careful path tells which).
        """
        path = self.path
        values = {f"b_{c.name}": row[c.name] for c in _NEW_TRIAL_COLUMNS}
        for column in ("datetime_start", "last_heartbeat"):
            values[f"b_{column}"] = path.bind_time(row[column])
        with path.cursor() as cursor:
            if self._create is not None:
                created = path.execute(cursor, self._create, values).fetchone()
                return None if created is None else (int(created[0]), int(created[1]))
            assert self._take is not None and self._insert is not None
            taken = path.execute(cursor, self._take, values).fetchone()
            if taken is None:
                return None
            values["b_number"] = taken[0]
            trial_id = path.execute(cursor, self._insert, values).fetchone()[0]
            return int(trial_id), int(taken[0])

    def any_stale(self, study_id: int, before: _dt.datetime) -> bool | None:
        """Whether a RUNNING trial's heartbeat is older than ``before``; None: no such study."""
        path = self.path
        with path.cursor(write=False) as cursor:
            found = path.execute(cursor, self._any_stale, {
                "b_study_id": study_id, "b_before": path.bind_time(before)}).fetchone()
        return None if found is None else bool(found[1])

    def set_params(self, trial_id: int, params: str, natural: str | None) -> bool:
        """Store the JSON params of an unfinished trial; False if no row changed."""
        with self.path.cursor() as cursor:
            return bool(self.path.execute(cursor, self._set_params, {
                "b_trial_id": trial_id, "b_params": params, "b_natural": natural}).rowcount)

    def finish(self, trial_id: int, state: TrialState,
               value: float | None) -> FrozenTrial | None:
        """Finish an unfinished trial and return it; None if no row changed."""
        path = self.path
        with path.cursor() as cursor:
            done = path.execute(cursor, self._finish, {
                "b_trial_id": trial_id, "b_state": state.value, "b_value": value,
                "b_now": path.bind_time(utcnow())}).fetchone()
            if done is None:
                return None
            curve = path.execute(cursor, self._values, {"b_trial_id": trial_id}).fetchall()
        return _to_trial(path.trial_row(done), _group_values(curve).get(trial_id, {}))


# -- the storage ------------------------------------------------------------------------------


class SQLStorage(Storage):
    """Keeps studies in a SQL database that processes and machines share.

    A SQLite file suits one machine (any number of processes); PostgreSQL suits many machines
    (``pip install 'hpo_plugins[postgres]'``). Tables are created on first use; a database of
    an older schema version is upgraded in place (``create=True``) or refused
    (``create=False``), and one of a newer version is refused with a clear error rather than
    misread.

    Args:
        url: A SQLAlchemy URL, such as ``"sqlite:///hpo.db"`` (relative to the working directory)
            or ``"postgresql+psycopg://user:password@host/db"``. Kept as given in ``self.url``;
            a relative SQLite path is resolved once, here, so a later ``chdir`` or a child
            process started in another directory (:attr:`portable_url`) still opens this file.
        engine_kwargs: Extra keyword arguments for :func:`sqlalchemy.create_engine` (pool size,
            ``connect_args``...). Checked here: an engine is created and dropped without
            connecting, so a misspelled argument fails now rather than at first use.
        create: Create the tables when they are missing and upgrade an older schema (default).
            False opens only a database that already holds this schema version and never
            changes its structure: for tools that read, such as the command line, which must
            not write into another program's database it was pointed at by mistake.
        reconnect_timeout: Seconds that a call keeps trying to reach a database *server*
            (PostgreSQL) that went away (a restart, a failover), where trying again is safe:
            the call never reached the server, failed before its commit, or is idempotent
            (reads, heartbeats, reports, attributes, params, a ``tell``); 0 fails at once.
            Past it, or for a write that is not idempotent cut off while the server may have
            committed it (a new trial's insert), the call raises
            :class:`~hpo_plugins.exceptions.DatabaseUnreachableError`. A storage that never
            reached its server (a wrong host) fails at once. Unused for SQLite.

    A SQLite URL has three slashes before a relative path (``sqlite:///runs/hpo.db``) and four
    before an absolute one (``sqlite:////home/me/hpo.db``). Its query string may hold the
    arguments of Python's SQLite driver (``timeout``, ``uri``...); SQLite's own URI arguments,
    such as ``mode=ro``, reach SQLite only in its URI form, with ``uri=true`` and a path
    starting with ``file:`` (``sqlite:///file:hpo.db?mode=ro&uri=true``). A URL with URI
    arguments but not in that form is refused, because the driver would drop them: ``mode=ro``
    would open the file read-write.

    Raises:
        ConfigurationError: ``reconnect_timeout`` is not a number of seconds >= 0;
            ``engine_kwargs`` is not a dict of argument names, or holds an
            argument that ``create_engine`` refuses; ``url`` is not a database URL; or is a
            SQLite URL that names an
            in-memory database (use :class:`~hpo_plugins.storages.InMemoryStorage` instead),
            has a host (two slashes, ``sqlite://hpo.db``), or holds SQLite URI arguments
            outside the URI form. An unknown scheme is reported on first use.
        StorageError: On first use: the database cannot be opened (for SQLite, the folder
            cannot be made or the file cannot be opened or written), or holds another
            schema version.
        MissingDependencyError: On first use: the URL's database driver is not installed.

    Example:
        >>> from hpo_plugins.storages import SQLStorage
        >>> storage = SQLStorage("sqlite:///hpo.db")  # doctest: +SKIP
    """

    multiprocess = True

    def __init__(self, url: str, *, engine_kwargs: dict[str, Any] | None = None,
                 create: bool = True,
                 reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT_S) -> None:
        self.url = url
        self.engine_kwargs = check_engine_kwargs(engine_kwargs)
        self.create = create
        self._parsed = parse_url(url)
        if self._parsed.get_backend_name() == "sqlite":
            check_sqlite_url(self._parsed)
            self._parsed = absolute_sqlite(self._parsed)
        self._description = masked_url(self._parsed)
        self._redact = functools.partial(redact, secrets=url_secrets(self._parsed))
        self._is_sqlite = self._parsed.get_backend_name() == "sqlite"
        self.reconnect_timeout = reconnect_timeout  # checked; builds the Reconnector
        if self.engine_kwargs:
            try_engine_kwargs(self._parsed, self.engine_kwargs, self._is_sqlite)
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        #: This storage (or the one it was pickled from) has opened its database once: a
        #: server that cannot be reached now is away, which is worth waiting for, not a typo.
        self._reached = False
        self._hot: _HotStatements | None = None
        self._pid = os.getpid()
        self._finished = FinishedTrialCache()
        self._unfinished = UnfinishedCurves()

    # -- life cycle ---------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Only the URL and the options travel (engine arguments, ``create``,
        ``reconnect_timeout``, and whether the database was reached); the engine is rebuilt
        where it lands."""
        return {"url": self.portable_url, "engine_kwargs": self.engine_kwargs,
                "create": self.create, "reconnect_timeout": self.reconnect_timeout,
                "reached": self._reached}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], engine_kwargs=state["engine_kwargs"],  # type: ignore[misc]
                      create=state.get("create", True),
                      reconnect_timeout=state.get("reconnect_timeout",
                                                  DEFAULT_RECONNECT_TIMEOUT_S))
        self._reached = bool(state.get("reached", False))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._description!r})"

    @property
    def reconnect_timeout(self) -> float:
        """Seconds a call waits for a database server that went away (see the class doc)."""
        return self._reconnect_timeout

    @reconnect_timeout.setter
    def reconnect_timeout(self, seconds: float) -> None:
        self._reconnect_timeout = check_reconnect_timeout(seconds)
        self._reconnector = Reconnector(self._description,
                                        0.0 if self._is_sqlite else self._reconnect_timeout)

    @property
    def portable_url(self) -> str:
        """The URL for other processes: ``self.url``, with a SQLite path made absolute.

        Example:
            >>> import os
            >>> SQLStorage("sqlite:///hpo.db").portable_url == f"sqlite:///{os.path.abspath('hpo.db')}"
            True
        """
        if not self._is_sqlite:
            return self.url
        return self._parsed.render_as_string(hide_password=False)

    @portable_url.setter
    def portable_url(self, value: str | None) -> None:
        raise AttributeError("SQLStorage.portable_url follows its url: open another "
                             "SQLStorage for another database.")

    def describe(self) -> str:
        """The database URL with any password replaced by ``***``."""
        return self._description

    def close(self) -> None:
        """Close this process's pooled connections (a later call would open new ones)."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose(close=self._pid == os.getpid())

    def _get_engine(self) -> Engine:
        """This process's engine, opened (and the schema checked) on first use."""
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            return engine
        if self._pid != os.getpid():
            self._forget_inherited_engine()
        with self._lock:
            if self._engine is None:
                self._engine = self._open()
            return self._engine

    def _hot_statements(self) -> _HotStatements:
        """The hot statements for this process's engine (compiled on first use)."""
        engine = self._get_engine()
        hot = self._hot
        if hot is None or hot.path.engine is not engine:
            hot = _HotStatements(HotPath(engine, self._description, self._redact),
                                 self._is_sqlite)
            self._hot = hot
        return hot

    def _explain_unchanged(self, trial_id: int) -> NoReturn:
        """Raise why a hot write of an unfinished trial changed no row (see _unchanged)."""
        with self._read() as conn:
            _unchanged(conn, trial_id)

    def _forget_inherited_engine(self) -> None:
        """After ``fork``: drop the parent's pool without closing the parent's connections."""
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._engine = None
        self._lock = threading.Lock()
        self._finished = FinishedTrialCache()  # its lock may have been held by a parent thread
        self._unfinished = UnfinishedCurves()
        self.reconnect_timeout = self._reconnect_timeout  # a new Reconnector: a fresh lock too
        self._pid = os.getpid()

    def _open(self) -> Engine:
        if self._is_sqlite:  # first: the tables themselves may be in the -wal file only
            warn_unseen_wal(self._parsed)
        if not self.create and self._is_sqlite:  # before the engine makes folders or WAL
            check_version(sqlite_schema_version(self._parsed), self._description)
        if self.create and self._is_sqlite:  # before the engine switches the file to WAL
            refuse_foreign_sqlite(self._parsed, self._description)
        engine = self._create_engine()
        try:
            if self.create:
                ensure_schema(engine, self._description)
            elif not self._is_sqlite:
                with engine.connect() as conn:
                    check_version(schema_version(conn), self._description)
        except SQLAlchemyError as exc:
            engine.dispose()
            if self._reached and not self._is_sqlite and lost_connection(exc):
                raise unreachable(self._description, self._redact(exc),
                                  maybe_committed=False) from exc
            raise StorageError(
                f"Could not open the storage at {self._description}: {self._redact(exc)}"
                f"{self._access_hint(exc)}"
            ) from None
        except BaseException:
            engine.dispose()
            raise
        self._reached = True
        _logger.debug("Opened %s (schema version %d).", self._description, SCHEMA_VERSION)
        return engine

    def _create_engine(self) -> Engine:
        kwargs = dict(self.engine_kwargs or {})
        try:
            if self._parsed.get_backend_name() == "sqlite":
                return sqlite_engine(self._parsed, kwargs, create=self.create)
            return server_engine(self._parsed, kwargs)
        except NoSuchModuleError:
            raise ConfigurationError(unknown_scheme_message(self._parsed)) from None
        except ImportError as exc:
            raise MissingDependencyError(missing_driver_message(self._parsed, exc)) from exc
        except TypeError as exc:  # a driver installed since the constructor's check
            raise ConfigurationError(bad_engine_argument(kwargs, exc)) from None

    def _access_hint(self, exc: SQLAlchemyError) -> str:
        """What to check when SQLite cannot open or write its file; "" for other errors.

        Where the file exists (or the error is "attempt to write a readonly database") it also
        says how to read a study where nothing can be written: ``immutable=1``, with which
        SQLite creates no -shm file, which even ``mode=ro`` needs on a WAL database. For a URL
        that is read-only itself, it says that writing needs a URL without ``mode=ro``.
        """
        if not self._is_sqlite or not any(text in str(exc) for text in _SQLITE_ACCESS_ERRORS):
            return ""
        plain = plain_sqlite_url(self._parsed)
        offer = ("readonly database" in str(exc) or sqlite_read_only(self._parsed)
                 or os.path.isfile(sqlite_file(self._parsed) or ""))
        reading = (f" To read a study in a location this user cannot write to (a read-only "
                   f"folder or file), open it as {immutable_sqlite_url(self._parsed)} (only "
                   f"while no process writes to it: SQLite then takes the file as unchanging)."
                   if offer else "")
        if sqlite_read_only(self._parsed):
            return (f". This storage was opened read-only (mode=ro or immutable=1 in its URL): "
                    f"it reads studies but cannot create, resume or run them; to write, use "
                    f"a URL without them, such as {plain}. With mode=ro SQLite still writes a "
                    f"-shm file beside a WAL database.{reading}")
        return (f". Check the path {self._parsed.database}: it must name a file (or nothing yet) "
                f"in an existing folder, and this user must be allowed to read and write the "
                f"file and to create files in the folder (SQLite writes -wal and -shm files "
                f"beside the database).{reading}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it holds the database's write lock from the start)."""
        stage = _Stage()
        with (self._database_errors(stage), self._get_engine().connect() as conn,
              conn.begin()):
            yield conn
            stage.committing = True

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot on SQLite, no write lock."""
        with self._database_errors(), self._get_engine().connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _statements(self) -> Iterator[Connection]:
        """A connection for statements that are each atomic by themselves.

        On a database server each runs in autocommit: no ``BEGIN``/``COMMIT`` round trips, no
        lock held between statements. On SQLite (in-process, where a statement costs no round
        trip) they run in one write transaction.
        """
        if self._is_sqlite:
            with self._write() as conn:
                yield conn
            return
        stage = _Stage()
        with self._database_errors(stage), self._get_engine().connect() as conn:
            stage.committing = True  # from here on, every statement commits by itself
            conn.execution_options(**{AUTOCOMMIT: True})
            yield conn

    @contextlib.contextmanager
    def _database_errors(self, stage: _Stage | None = None) -> Iterator[None]:
        """Report a failing database (lock timeout, lost connection, full disk) as StorageError.

        A server that is away or cut the connection gives DatabaseUnreachableError, which
        :meth:`_reconnecting` methods retry; ``stage`` says whether the failing call may have
        been committed by then. Integrity errors pass through: the methods turn the expected
        ones into our errors.
        """
        try:
            yield
        except sa.exc.DBAPIError as exc:
            if not self._is_sqlite and lost_connection(exc):
                raise unreachable(self._description, self._redact(exc),
                                  maybe_committed=stage is not None and stage.committing
                                  ) from exc
            if not isinstance(exc, sa.exc.OperationalError):
                raise
            raise StorageError(
                f"The database {self._description} failed: {self._redact(exc)}"
                f"{self._access_hint(exc) if 'readonly database' in str(exc) else ''}"
            ) from exc
        except Exception as exc:  # the driver's own error, which some pool paths leave bare
            if self._is_sqlite or not self._driver_error(exc) or not lost_connection(exc):
                raise
            raise unreachable(self._description, self._redact(exc),
                              maybe_committed=stage is not None and stage.committing) from exc

    def _driver_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an error of this engine's database driver (not wrapped)."""
        dbapi = getattr(getattr(self._engine, "dialect", None), "loaded_dbapi", None)
        error = getattr(dbapi, "Error", None)
        return isinstance(error, type) and isinstance(exc, error)

    # -- studies ------------------------------------------------------------------------------

    @_reconnecting(idempotent=False)
    def create_study(self, name: str, direction: Direction,
                     attrs: Mapping[str, Any] | None = None) -> int:
        values = {"name": name, "direction": Direction.parse(direction).value,
                  "attrs": _dumps(dict(attrs or {}), "study attrs"),
                  "datetime_created": utcnow()}
        try:
            with self._write() as conn:
                if conn.scalar(sa.select(_studies.c.study_id)
                               .where(_studies.c.name == name)) is not None:
                    raise duplicate_study(name)
                return _inserted_id(conn.execute(sa.insert(_studies).values(values)))
        except IntegrityError as exc:  # another process created it between check and insert
            raise duplicate_study(name) from exc

    @_reconnecting(idempotent=False)
    def import_study(self, name: str, direction: Direction, attrs: Mapping[str, Any],
                     trials: Sequence[FrozenTrial],
                     dedup_keys: Sequence[str | None] | None = None,
                     datetime_created: _dt.datetime | None = None) -> int:
        """See :meth:`Storage.import_study`. One write transaction inserts the study (its next
        number already past the copies), every trial and every curve point."""
        keys = import_keys(trials, dedup_keys)
        study = {"name": name, "direction": Direction.parse(direction).value,
                 "attrs": _dumps(dict(attrs), "study attrs"),
                 "datetime_created": datetime_created or utcnow(), "next_number": len(trials)}
        rows = [_imported_row(trial, number, key)
                for number, (trial, key) in enumerate(zip(trials, keys))]
        try:
            with self._write() as conn:
                if conn.scalar(sa.select(_studies.c.study_id)
                               .where(_studies.c.name == name)) is not None:
                    raise duplicate_study(name)
                study_id = _inserted_id(conn.execute(sa.insert(_studies).values(study)))
                points: list[dict[str, Any]] = []
                for row, trial in zip(rows, trials):
                    trial_id = int(conn.scalar(_INSERT_TRIAL, {**row, "study_id": study_id}))
                    points.extend({"trial_id": trial_id, "step": int(step), "value": float(v)}
                                  for step, v in sorted(trial.intermediate_values.items()))
                if points:
                    conn.execute(_INSERT_VALUE, points)
                return study_id
        except IntegrityError as exc:  # another process created it between check and insert
            raise duplicate_study(name) from exc

    @_reconnecting(idempotent=True)
    def get_study_id(self, name: str) -> int:
        with self._read() as conn:
            study_id = conn.scalar(sa.select(_studies.c.study_id).where(_studies.c.name == name))
            if study_id is not None:
                return int(study_id)
            names = conn.scalars(sa.select(_studies.c.name).order_by(_studies.c.name)).all()
        raise no_study_named(name, names, self._description)

    @_reconnecting(idempotent=True)
    def get_study(self, study_id: int) -> StudyInfo:
        with self._read() as conn:
            infos = _study_infos(conn, study_id)
        if not infos:
            raise study_not_found(study_id)
        return infos[0]

    @_reconnecting(idempotent=True)
    def list_studies(self) -> list[StudyInfo]:
        with self._read() as conn:
            return _study_infos(conn)

    @_reconnecting(idempotent=True)
    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        check_attr_key(key, "study attribute")
        what = f"study attr {key!r}"
        _dumps(value, what)
        with self._write() as conn:
            stored = conn.scalar(sa.select(_studies.c.attrs)
                                 .where(_studies.c.study_id == study_id).with_for_update())
            if stored is None:
                raise study_not_found(study_id)
            conn.execute(sa.update(_studies).where(_studies.c.study_id == study_id)
                         .values(attrs=_with_entry(stored, key, value, what)))

    @_reconnecting(idempotent=False)
    def delete_study(self, study_id: int) -> None:
        with self._write() as conn:
            _check_study(conn, study_id, lock=True)
            trial_ids = sa.select(_trials.c.trial_id).where(_trials.c.study_id == study_id)
            conn.execute(sa.delete(_values).where(_values.c.trial_id.in_(trial_ids)))
            conn.execute(sa.delete(_trials).where(_trials.c.study_id == study_id))
            conn.execute(sa.delete(_studies).where(_studies.c.study_id == study_id))
        self._finished.drop(study_id)

    # -- trials -------------------------------------------------------------------------------

    @_reconnecting(idempotent=False)
    def create_trial(self, study_id: int, *, state: TrialState = TrialState.RUNNING,
                     params: Mapping[str, Any] | None = None, natural: Any = None,
                     dedup_key: str | None = None,
                     system_attrs: Mapping[str, Any] | None = None,
                     heartbeat: bool = False, limit: int | None = None,
                     user_attrs: Mapping[str, Any] | None = None) -> FrozenTrial | None:
        """See :meth:`Storage.create_trial`.

        Without a limit or a key, one statement takes the number and inserts the trial; else the
        study is locked, the limit and the key checked, then the trial inserted.
        """
        for key in user_attrs or {}:
            check_attr_key(key, "trial attribute")
        row = _new_trial_row(study_id, TrialState(state), params, natural, dedup_key,
                             system_attrs, heartbeat)
        if user_attrs:
            row["user_attrs"] = _dumps(dict(user_attrs), "user attrs")

        def attempt() -> FrozenTrial | None:
            if limit is None and dedup_key is None:
                with self._statements() as conn:
                    created = _insert_numbered(conn, row)
                if created is None:
                    raise study_not_found(study_id)
                return _created_trial(row, created)
            with _dedup_errors(dedup_key), self._write() as conn:
                full, _ = _lock_study_state(conn, study_id, limit)
                if full:
                    return None
                _check_dedup(conn, study_id, dedup_key)
                created = _insert_numbered(conn, row)
            return _created_trial(row, created)

        return self._healing_numbers(study_id, attempt)

    @_reconnecting(idempotent=False)
    def start_trial(self, study_id: int, *, heartbeat: bool = False, limit: int | None = None,
                    system_attrs: Mapping[str, Any] | None = None
                    ) -> tuple[FrozenTrial, bool] | None:
        """See :meth:`Storage.start_trial`.

        Most calls find no WAITING trial and pass no limit: then one statement inserts the new
        trial, on the condition that no trial is WAITING. Otherwise, with the study locked, the
        limit is checked and the oldest WAITING trial claimed (or, if another worker claimed it
        meanwhile, a new trial created).
        """
        row = _new_trial_row(study_id, TrialState.RUNNING, None, None, None, system_attrs,
                             heartbeat)

        def attempt() -> tuple[FrozenTrial, bool] | None:
            if limit is None:
                created = self._hot_statements().start(row)
                if created is not None:
                    return _created_trial(row, created), False
            with self._write() as conn:
                full, waiting = _lock_study_state(conn, study_id, limit)
                if full:
                    return None
                if waiting is None:
                    return _created_trial(row, _insert_numbered(conn, row)), False
                return _claim(conn, waiting, heartbeat, row["system_attrs"]), True

        return self._healing_numbers(study_id, attempt)

    def _healing_numbers(self, study_id: int, attempt: Callable[[], _R]) -> _R:
        """``attempt()``, run again once after repairing the study's ``next_number`` if it
        took a number that a trial already holds.

        ``next_number`` falls behind only when something else inserts trials without raising
        it: an hpo_plugins from before schema version 2 still running on a database that a
        newer one upgraded (it numbers trials ``max + 1``), or a hand-written insert. Without
        the repair every later trial of the study failed on the UNIQUE constraint, for good.
        """
        try:
            return attempt()
        except (IntegrityError, StorageError) as exc:
            if not _is_number_violation(exc):
                raise
        with self._write() as conn:
            conn.execute(_RESYNC_NUMBER, {"b_study_id": study_id})
        _logger.warning(
            "Study id %d in %s: trial numbers were taken without the study's counter (an "
            "hpo_plugins older than this database's schema still running on it, or a trial "
            "inserted by hand); the counter was repaired. Stop processes of older "
            "hpo_plugins versions on this database: every machine must run the same version.",
            study_id, self._description)
        return attempt()

    @_reconnecting(idempotent=False)
    def claim_waiting_trial(self, study_id: int, *, heartbeat: bool = False,
                            limit: int | None = None) -> FrozenTrial | None:
        """See :meth:`Storage.claim_waiting_trial`.

        Most calls find no WAITING trial; a read answers them without taking the write lock. A
        trial enqueued just after that read is claimed by the next call.
        """
        with self._read() as conn:
            state = conn.execute(_STUDY_STATE, {"b_study_id": study_id}).first()
        if state is None:
            raise study_not_found(study_id)
        if state[2] is None:
            return None
        with self._write() as conn:
            full, waiting = _lock_study_state(conn, study_id, limit)
            if full or waiting is None:  # None: another worker claimed it since the read
                return None
            return _claim(conn, waiting, heartbeat, "{}")

    @_reconnecting(idempotent=True)
    def set_trial_params(self, trial_id: int, params: Mapping[str, Any], natural: Any,
                         dedup_key: str | None = None) -> None:
        """See :meth:`Storage.set_trial_params`.

        Without a key, one statement that checks the trial is unfinished in its WHERE clause.
        """
        text = _dumps(dict(params), "params")
        natural_text = None if natural is None else _dumps(natural, "natural params")
        if dedup_key is None:
            if not self._hot_statements().set_params(trial_id, text, natural_text):
                self._explain_unchanged(trial_id)
            return
        changes = {"params": text, "natural": natural_text, "dedup_key": dedup_key}
        with _dedup_errors(dedup_key), self._write() as conn:
            _check_trial_key(conn, trial_id, dedup_key)
            _live_row(conn, trial_id)
            _update_trial(conn, trial_id, changes)

    @_reconnecting(idempotent=True)
    def set_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        point = {"b_trial_id": trial_id, "b_step": int(step), "value": float(value)}
        with self._write() as conn:
            _live_row(conn, trial_id)  # also locks the trial, so the upsert below cannot race
            if not conn.execute(_UPDATE_VALUE, point).rowcount:
                conn.execute(_INSERT_VALUE, {"trial_id": trial_id, "step": point["b_step"],
                                             "value": point["value"]})

    @_reconnecting(idempotent=True)
    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_attr(trial_id, "user_attrs", key, value)

    @_reconnecting(idempotent=True)
    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_attr(trial_id, "system_attrs", key, value)

    def _set_trial_attr(self, trial_id: int, column: str, key: str, value: Any) -> None:
        check_attr_key(key, "trial attribute")
        what = f"attribute {key!r}"
        _dumps(value, what)
        with self._write() as conn:
            stored = _live_row(conn, trial_id, full=True)._mapping[column]
            _update_trial(conn, trial_id, {column: _with_entry(stored, key, value, what)})

    @_reconnecting(idempotent=True)
    def record_heartbeat(self, trial_id: int) -> None:
        with self._statements() as conn:
            if not conn.execute(_HEARTBEAT, {"b_trial_id": trial_id, "b_now": utcnow()}).rowcount:
                row = _live_row(conn, trial_id)
                check_heartbeat_state(row.number, _STATES[row.state])
                _unchanged(conn, trial_id)

    def finish_trial(self, trial_id: int, state: TrialState, value: float | None = None,
                     system_attrs: Mapping[str, Any] | None = None, *,
                     ended: _dt.datetime | None = None) -> FrozenTrial:
        """See :meth:`Storage.finish_trial`.

        Without system attributes to merge (every ``tell`` of a value), one statement finishes
        the trial if it is unfinished and returns its row; a second reads its curve, which can
        no longer change. With attributes, the row is locked and read, then written.
        """
        state = finished_state(state)
        value = None if value is None else float(value)
        tried: list[bool] = []

        def finish() -> FrozenTrial:
            if tried:  # the last try lost the server, maybe after it finished the trial
                done = self._finished_as(trial_id, state, value)
                if done is not None:
                    return done
            tried.append(True)
            return self._finish_trial(trial_id, state, value, system_attrs, ended)

        return self._reconnector.call(finish, idempotent=True)

    def _finished_as(self, trial_id: int, state: TrialState,
                     value: float | None) -> FrozenTrial | None:
        """The trial, if it is finished in ``state`` with ``value`` already; else None."""
        trial = self.get_trial(trial_id)
        if trial.state is state and trial.value == value:
            return trial
        return None

    def _finish_trial(self, trial_id: int, state: TrialState, value: float | None,
                      system_attrs: Mapping[str, Any] | None,
                      ended: _dt.datetime | None = None) -> FrozenTrial:
        if not system_attrs and ended is None:
            done = self._hot_statements().finish(trial_id, state, value)
            if done is None:
                self._explain_unchanged(trial_id)
            return done
        extra = json.loads(_dumps(dict(system_attrs or {}), "system attrs"))
        with self._write() as conn:
            row = _live_row(conn, trial_id, full=True)._mapping
            now = utcnow()
            start = row["datetime_start"] or now
            changes = {"state": state.value, "value": value,
                       "system_attrs": _dumps({**json.loads(row["system_attrs"]), **extra},
                                              "system attrs"),
                       "datetime_complete": max(ended or now, start), "datetime_start": start}
            _update_trial(conn, trial_id, changes)
            values = _values_of_trial(conn, trial_id)
        return _to_trial(_row_tuple({**row, **changes}), values)

    @_reconnecting(idempotent=True)
    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._read() as conn:
            return _fetch_trial(conn, trial_id)

    @_reconnecting(idempotent=True)
    def get_all_trials(self, study_id: int,
                       states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        """Every trial of the study (in ``states``), by number.

        Each call asks the database which trials the study holds, then reads in full only those
        that this object has not yet seen finished: finished trials never change, so they are
        kept once read (their containers are read-only, see :mod:`._cache`). Unfinished trials
        and trials new to this object are always read from the database.
        """
        params = _study_params(study_id, states)
        try:
            with self._read() as conn:
                trial_ids = _trial_ids(conn, params)
                trials = self._finished.lookup(study_id, trial_ids)
                missing = [tid for tid in trial_ids if tid not in trials]
                fresh = (_fetch_trials(conn, missing, params, self._unfinished)
                         if missing else {})
                self._unfinished.forget(tid for tid, t in fresh.items()
                                        if t.state.is_finished)
                self._unfinished.forget_finished(trials)  # kept by a thread's late keep()
        except StudyNotFoundError:
            self._finished.drop(study_id)
            raise
        trials.update(self._keep_finished(study_id, fresh, states))
        return [trials[tid] for tid in trial_ids if tid in trials]

    def _keep_finished(self, study_id: int, fresh: Mapping[int, FrozenTrial],
                       states: Sequence[TrialState] | None) -> dict[int, FrozenTrial]:
        """Cache the finished ones among trials just read; return them all, by id.

        A trial that left ``states`` between two statements (PostgreSQL reads each statement at
        its own time) is left out. Ids missing from ``fresh`` belong to a study deleted
        meanwhile; the caller skips them.
        """
        wanted = None if states is None else {TrialState(s) for s in states}
        kept = {tid: read_only_trial(t) if t.state.is_finished else t
                for tid, t in fresh.items() if wanted is None or t.state in wanted}
        self._finished.add(study_id, kept.values())
        return kept

    @_reconnecting(idempotent=True)
    def best_trial(self, study_id: int, direction: Direction) -> FrozenTrial | None:
        """See :meth:`Storage.best_trial`: the database orders the COMPLETE trials by value
        and only the first is read, so a study of 10,000 trials does not read every curve."""
        value = _trials.c.value
        where = [_trials.c.study_id == study_id, _trials.c.state == TrialState.COMPLETE.value,
                 value.is_not(None)]
        if not self._is_sqlite:  # PostgreSQL keeps a NaN (and sorts it above every number);
            where.append(value != float("nan"))  # SQLite stores it NULL
        query = (sa.select(_trials.c.trial_id).where(*where)
                 .order_by(value.asc() if direction is Direction.MINIMIZE else value.desc(),
                           _trials.c.number.asc())
                 .limit(1))
        with self._read() as conn:
            trial_id = conn.scalar(query)
            if trial_id is None:
                _check_study(conn, study_id)
                return None
            known = self._finished.lookup(study_id, [int(trial_id)]).get(int(trial_id))
            if known is not None:
                return known
            fresh = _fetch_trial(conn, int(trial_id))
        return self._keep_finished(study_id, {fresh.trial_id: fresh}, None)[fresh.trial_id]

    @_reconnecting(idempotent=True)
    def count_trials(self, study_id: int, states: Sequence[TrialState] | None = None) -> int:
        """How many trials of the study are in ``states``, counted by the database."""
        query = sa.select(sa.func.count()).select_from(_trials).where(
            _trials.c.study_id == study_id)
        if states is not None:
            query = query.where(_trials.c.state.in_([TrialState(s).value for s in states]))
        with self._read() as conn:
            counted = int(conn.scalar(query) or 0)
            if not counted:
                _check_study(conn, study_id)
        return counted

    @_reconnecting(idempotent=False)
    def fail_stale_trials(self, study_id: int, grace_seconds: float) -> list[FrozenTrial]:
        """See :meth:`Storage.fail_stale_trials`.

        The run loop calls it before every ``ask``; almost always nothing is stale, which a read
        says without taking any lock. Only then is the study locked and the scan repeated.
        """
        now = utcnow()
        before = now - _dt.timedelta(seconds=grace_seconds)
        params = {"b_study_id": study_id, "b_before": before}
        found = self._hot_statements().any_stale(study_id, before)
        if found is None:
            raise study_not_found(study_id)
        if not found:
            return []
        with self._read() as conn:  # no lock yet: trials kept alive by their own grace period
            if not _past_own_grace(conn, _STALE_ROWS, params, grace_seconds, now):
                return []  # (another launcher's, longer) cost no write lock at every ask
        with self._write() as conn:
            _check_study(conn, study_id, lock=True)
            failed = []
            for trial_id, seconds in _past_own_grace(conn, _STALE_ROWS_LOCKED, params,
                                                     grace_seconds, now):
                trial = _fetch_trial(conn, trial_id)
                failed.append(_fail_trial(conn, trial, stale_reason(seconds),
                                          trial.last_heartbeat or now))
            return failed


# -- helpers of the methods above -------------------------------------------------------------


def _created_trial(row: Mapping[str, Any], created: tuple[int, int] | None) -> FrozenTrial:
    """The FrozenTrial of the new trial ``row`` that :func:`_insert_numbered` inserted."""
    if created is None:  # the caller holds the study's lock, so the insert cannot miss it
        raise StorageError(f"The study with id {row['study_id']} changed while a trial was "
                           f"being created.")
    trial_id, number = created
    return _to_trial(_row_tuple({**row, "trial_id": trial_id, "number": number}), {})


def _claim(conn: Connection, trial_id: int, heartbeat: bool, system_attrs: str) -> FrozenTrial:
    """Turn a WAITING trial RUNNING (its study is locked); merge ``system_attrs`` (JSON text)."""
    now = utcnow()
    changes = {"state": TrialState.RUNNING.value, "datetime_start": now,
               "last_heartbeat": now if heartbeat else None}
    if system_attrs != "{}":
        stored = conn.scalar(sa.select(_trials.c.system_attrs)
                             .where(_trials.c.trial_id == trial_id))
        changes["system_attrs"] = _dumps({**json.loads(stored or "{}"),
                                          **json.loads(system_attrs)}, "system attrs")
    _update_trial(conn, trial_id, changes)
    return _fetch_trial(conn, trial_id)


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    assert key is not None, "an INSERT always has a primary key"
    return int(key[0])


def _new_trial_row(study_id: int, state: TrialState, params: Mapping[str, Any] | None,
                   natural: Any, dedup_key: str | None,
                   system_attrs: Mapping[str, Any] | None, heartbeat: bool) -> dict[str, Any]:
    """The column values of a new trial (all but its number and id), JSON validated."""
    now = utcnow()
    return {
        "study_id": study_id, "state": state.value, "value": None,
        "params": _dumps(dict(params or {}), "params"),
        "natural": None if natural is None else _dumps(natural, "natural params"),
        "user_attrs": "{}", "system_attrs": _dumps(dict(system_attrs or {}), "system attrs"),
        "dedup_key": dedup_key, "datetime_start": now if state is TrialState.RUNNING else None,
        "datetime_complete": None, "last_heartbeat": now if heartbeat else None,
    }


def _imported_row(trial: FrozenTrial, number: int, key: str | None) -> dict[str, Any]:
    """The column values of a copy of ``trial`` (all but its id and study), JSON validated."""
    return {
        "number": number, "state": TrialState(trial.state).value,
        "value": None if trial.value is None else float(trial.value),
        "params": _dumps(dict(trial.params), "params"),
        "natural": None if trial.natural is None else _dumps(trial.natural, "natural params"),
        "user_attrs": _dumps(dict(trial.user_attrs), "user attrs"),
        "system_attrs": _dumps(dict(trial.system_attrs), "system attrs"),
        "dedup_key": key, "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete, "last_heartbeat": trial.last_heartbeat,
    }


def _past_own_grace(conn: Connection, query: Any, params: Mapping[str, Any],
                    grace_seconds: float, now: _dt.datetime) -> list[tuple[int, float]]:
    """``(id, seconds)`` of the study's trials with no heartbeat for ``grace_seconds`` and for
    the grace period their own process recorded (``seconds``, see
    :func:`~._base.stale_after`), read without their curves."""
    stale = []
    for trial_id, system_attrs, heartbeat in conn.execute(query, params):
        seconds = stale_after(_loads(system_attrs), grace_seconds)
        if heartbeat < now - _dt.timedelta(seconds=seconds):
            stale.append((trial_id, seconds))
    return stale


def _fail_trial(conn: Connection, trial: FrozenTrial, reason: Mapping[str, Any],
                ended: _dt.datetime) -> FrozenTrial:
    """Fail one stale RUNNING trial, ending it at ``ended`` (its last heartbeat); the state
    guard makes the change happen exactly once."""
    system_attrs = {**trial.system_attrs, **reason}
    changed = conn.execute(
        sa.update(_trials)
        .where(_trials.c.trial_id == trial.trial_id,
               _trials.c.state == TrialState.RUNNING.value)
        .values(state=TrialState.FAIL.value, datetime_complete=ended,
                system_attrs=_dumps(system_attrs, "system attrs"))
    ).rowcount
    if changed != 1:  # impossible while the study row (or the database) is locked
        raise StorageError(f"Trial {trial.number} changed while it was being failed.")
    return dataclasses.replace(trial, state=TrialState.FAIL, datetime_complete=ended,
                               system_attrs=system_attrs)
