"""The study: ask/tell over a storage, and the functions that create and load studies."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo_plugins._artifacts import resolve_root
from hpo_plugins._frozen import (
    DIVERGED_ATTR,
    GRACE_ATTR,
    LOST_ATTR,
    MAXIMISED_LOSS_ATTR,
    Direction,
    FrozenTrial,
    TrialState,
    lists_as_tuples,
)
from hpo_plugins._numbers import optional_count, read_number, read_step
from hpo_plugins._observers import TrialObserver, notify
from hpo_plugins._ported import FMIN_ARGUMENTS, plugin_hint, ported_arguments, seed_hint
from hpo_plugins._process import gone_here, refuse_in_importing_worker
from hpo_plugins._results import json_values, read_result_dict, store_other_keys
from hpo_plugins._version import __version__
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import (
    ConfigurationError,
    DuplicateParamsError,
    DuplicateStudyError,
    SearchSpaceExhausted,
    StudyFull,
    StudyNotFoundError,
)
from hpo_plugins.pruners._base import NopPruner, Pruner
from hpo_plugins.samplers._base import History, Sampler, describe_object, is_description
from hpo_plugins.space import SearchSpace, as_space
from hpo_plugins.storages import (
    DEFAULT_STORAGE_ENV,
    Storage,
    StudyInfo,
    get_storage,
    missing_sqlite_file,
)
from hpo_plugins.storages._base import check_attr_key, params_key
from hpo_plugins.trial import Trial

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Study", "StudyFull", "create_study", "delete_study", "load_study"]

_logger = logging.getLogger(__name__)

#: Study attributes that hold the user's own (:meth:`Study.set_user_attr`) start with this.
_USER_ATTR_PREFIX = "user_attr:"

#: How many times ``ask`` re-samples when another worker took the same configuration first.
_DEDUP_RETRIES = 100
DEFAULT_METRIC = "val_loss"  # what HPOCallback monitors when nobody named a metric
#: The settings a resume keeps when the call leaves them out, and records when it gives them.
_INHERITABLE = ("sampler", "pruner", "seed", "metric", "logdir")
#: A lagged wait (deterministic parallel sampling) longer than this is logged, once.
_LAG_WAIT_WARN_SECONDS = 5.0


class Study:
    """A named optimisation over one search space, kept in a storage.

    Build one with :func:`create_study` or :func:`load_study` (or let :func:`hpo_plugins.minimize`
    do it). ``ask`` and ``tell`` are the whole core; :meth:`optimize` is a thin loop over them.

    Example:
        >>> import hpo_plugins as hpo
        >>> study = hpo.create_study(space={"x": hpo.hp.uniform("x", -2, 2)}, storage=":memory:",
        ...                          seed=0)
        >>> trial = study.ask()
        >>> _ = study.tell(trial, (trial.params["x"] - 1) ** 2)
        >>> len(study.trials)
        1
    """

    def __init__(self, *, study_name: str, storage: Storage, study_id: int,
                 direction: Direction, space: SearchSpace | None, sampler: Sampler | None,
                 pruner: Pruner, seed: int | None, metric: str, logdir: str | None,
                 heartbeat_interval: float | None, grace_period: float | None,
                 max_retries: int) -> None:
        self.study_name = study_name
        self.storage = storage
        self.study_id = study_id
        self.direction = direction
        self.space = space
        self._sampler = sampler
        self.pruner = pruner
        self.seed = seed
        self.metric = metric
        self.logdir = logdir
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retries = max_retries
        #: Side outputs told about every trial (see :mod:`hpo_plugins._observers`).
        self.observers: list[TrialObserver] = []
        self._stop_requested = False
        self._stop_error: BaseException | None = None  # raised by optimize at its end (stop())
        self._lag_wait_warned = False  # a long lagged wait is logged once (_warn_lag_wait)
        self._loss_max_warned = False  # a maximised Hyperopt "loss" is warned once (_EndTally)
        if logdir is not None:
            resolve_root(self)  # another study's logdir fails here, not at the first trial
            self.observers.append(_tensorboard_observer(self))

    def __repr__(self) -> str:
        return f"Study(name={self.study_name!r}, direction={self.direction.value!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Launchers ship studies to worker processes: observers are rebuilt there, not sent,
        and a copy starts without a stop request (:meth:`stop` is the sender's call)."""
        state = dict(self.__dict__)
        state["observers"] = []
        state["_stop_requested"] = False
        state["_stop_error"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stop_requested = False  # also for a study pickled before the flag existed
        self._stop_error = None
        if self.logdir is not None:
            self.observers.append(_tensorboard_observer(self))

    @property
    def sampler(self) -> Sampler:
        """The sampler; a study loaded without a space has none and cannot ``ask``."""
        if self._sampler is None:
            self._require_space()
            raise ConfigurationError(
                f"Study {self.study_name!r} has no sampler, so it cannot ask for trials. "
                f"Expected a study made by hpo.create_study (or Study(..., sampler=...)): "
                f"open it with hpo.load_study({self.study_name!r}, storage, space=space), "
                f"which restores its stored sampler.")
        return self._sampler

    @property
    def artifact_root(self) -> str:
        """Where trial directories go: the ``logdir``, else ``hpo_runs/<study name>`` (or, when
        another study of that name has that folder, ``hpo_runs/<study name>-<creation
        time>``: see :mod:`hpo_plugins._artifacts`).

        Raises:
            ConfigurationError: The ``logdir`` holds another study's trial folders.
        """
        return resolve_root(self)

    # -- ask / tell ---------------------------------------------------------------------------

    def ask(self, *, limit: int | None = None, heartbeat: bool = False,
            system_attrs: Mapping[str, Any] | None = None, lag: int | None = None) -> Trial:
        """Start a new trial: an enqueued one if any is waiting, else a sampled one.

        Args:
            limit: Start nothing (raise :class:`StudyFull`) when the study already holds this
                many RUNNING, COMPLETE and PRUNED trials; the check is atomic in the storage.
            heartbeat: Keep this trial's heartbeat (the run loop does; hand-run trials do not
                and are never failed as stale).
            system_attrs: Library attributes stored on the trial (launchers tag their trials).
            lag: Deterministic parallel sampling. Trial ``n`` waits until every trial numbered
                below ``n - lag`` is finished, and the sampler sees exactly trials ``< n``, those
                from ``n - lag`` on as RUNNING. The history is then a function of ``n`` alone,
                so ``lag`` parallel workers reproduce the same suggestions run after run. A
                RUNNING trial without a heartbeat from outside the run (asked by hand) is not
                waited for, and is seen as RUNNING; a wait of more than 5 s is logged once.

        Raises:
            SearchSpaceExhausted: The sampler has nothing new to propose.
            StudyFull: ``limit`` was reached.
        """
        limit, lag = optional_count("limit", limit), optional_count("lag", lag)
        _check_ask(heartbeat, system_attrs)
        if heartbeat and self.grace_period is not None:  # see GRACE_ATTR
            system_attrs = {GRACE_ATTR: self.grace_period, **(system_attrs or {})}
        self._reap_stale_trials()
        waited = False  # whether its sampling waited for earlier trials (``lag``)
        if self.space is None or self.sampler.deduplicate:
            frozen = self._claim_or_sample_dedup(limit, heartbeat, dict(system_attrs or {}))
        else:
            started = self.storage.start_trial(self.study_id, heartbeat=heartbeat, limit=limit,
                                               system_attrs=system_attrs)
            if started is None:
                raise StudyFull(limit)
            frozen, claimed = started
            if not claimed:
                try:
                    frozen = self._sample_params(self.space, frozen, lag)
                except BaseException as exc:  # no RUNNING trial without parameters is left
                    self._fail_unsampled(frozen, exc)
                    raise
                waited = lag is not None
        _logger.debug("Trial %d started with %s", frozen.number, frozen.params)
        trial = Trial(self, frozen)
        trial.waited_for_earlier = waited
        trial.finish_on_error = True  # a hand-run ``with study.ask() as trial:`` block
        notify(self, "trial_started", trial)
        return trial

    def _fail_unsampled(self, frozen: FrozenTrial, exc: BaseException) -> None:
        """Fail a trial started for sampling that raised ``exc``: left RUNNING without
        parameters, it would count toward ``max_trials`` until its heartbeat went stale (for
        ever without heartbeats), so a storage that cannot fail it either is a warning."""
        reason = ("the sampler had nothing new to propose"
                  if isinstance(exc, SearchSpaceExhausted)
                  else "interrupted by the user (KeyboardInterrupt) while its parameters were "
                       "sampled" if isinstance(exc, KeyboardInterrupt)
                  else f"sampling its parameters raised {type(exc).__name__}: {exc}")
        try:
            self.storage.finish_trial(frozen.trial_id, TrialState.FAIL, None,
                                      {"fail_reason": reason})
        except Exception as error:  # the storage failed too: the sampling error matters more
            _logger.warning(
                "Could not mark trial %d FAIL after its sampling failed (%s: %s). It stays "
                "RUNNING, without parameters, and counts toward max_trials until its heartbeat "
                "is older than the grace period; a trial without heartbeats (ask() without "
                "heartbeat=True) stays so until you fail it: study.tell(%d, state='FAIL').",
                frozen.number, type(error).__name__, error, frozen.number)

    def _sample_params(self, space: SearchSpace, frozen: FrozenTrial,
                       lag: int | None) -> FrozenTrial:
        """Sample the parameters of the new trial ``frozen`` and store them.

        Returns the trial with its parameters, built here rather than read back: nobody else
        writes to a trial this young (only its own worker knows its id), so a read would return
        exactly this, at the price of a round trip.
        """
        if lag is None:
            history = self._history(frozen.number, exclude=frozen.trial_id)
        else:
            history = self._lagged_history(frozen, lag)
        params = space.validate(self.sampler.sample(space, history, self._rng(frozen.number)))
        natural = _json_natural(space.build(params))
        self.storage.set_trial_params(frozen.trial_id, params, natural)
        return dataclasses.replace(frozen, params=params, natural=natural)

    def _claim_or_sample_dedup(self, limit: int | None, heartbeat: bool,
                               system_attrs: dict[str, Any]) -> FrozenTrial:
        """Claim a WAITING trial, else propose and insert with a key (deduplicating sampler).

        A study without a space can still claim an enqueued trial, but not sample one.
        """
        frozen = self.storage.claim_waiting_trial(self.study_id, heartbeat=heartbeat,
                                                  limit=limit)
        if frozen is None:
            return self._sample_dedup(self._require_space(), limit, heartbeat, system_attrs)
        for key, value in system_attrs.items():
            self.storage.set_trial_system_attr(frozen.trial_id, key, value)
        return self.storage.get_trial(frozen.trial_id) if system_attrs else frozen

    def _lagged_history(self, waiting: FrozenTrial, lag: int, poll: float = 0.05) -> History:
        """Wait for trials below ``waiting.number - lag`` to finish and newer ones to have
        params; then return what the sampler sees for ``waiting``.

        Newer trials are shown as RUNNING whatever their state (see ``ask``). The wait polls
        the storage after 1 ms, then twice as long each time up to ``poll`` seconds: with
        short trials the awaited one usually lands within milliseconds, and a fixed 50 ms poll
        cost about 28 ms per trial with no-op objectives. The waiting trial's own heartbeat, if
        it has one, is kept during the wait (an earlier trial may run longer than the grace
        period, and the reaping below must not fail the trial that waits for it).

        A RUNNING trial without a heartbeat that is not of this run (see
        :func:`_outside_run`: asked by hand, or left by an ask/tell script killed before its
        tell) is not waited for: nothing would ever fail it, and the wait would never end. The
        sampler sees it as RUNNING, as it sees any running trial. Reproducibility is kept: the
        trials of the run itself are all waited for as before, and such a trial looks the same
        to every trial of the run as long as nobody tells it meanwhile. A wait that lasts more
        than :data:`_LAG_WAIT_WARN_SECONDS` is logged once (WARNING) with what it waits for.
        """
        number = waiting.number
        beating = waiting.trial_id if waiting.last_heartbeat is not None else None
        pause = 0.001
        started = last_beat = time.monotonic()
        interval = self.heartbeat_interval
        while True:
            if beating is not None and interval is not None and (
                    time.monotonic() - last_beat >= interval):
                self.storage.record_heartbeat(beating)
                last_beat = time.monotonic()
            trials = [t for t in self.storage.get_all_trials(self.study_id) if t.number < number]
            blocking = [t for t in trials if not t.state.is_finished
                        and not (t.number >= number - lag and t.params)
                        and not _outside_run(t, waiting)]
            if not blocking:
                break
            if time.monotonic() - started > _LAG_WAIT_WARN_SECONDS:
                self._warn_lag_wait(number, lag, blocking)
            time.sleep(pause)
            pause = min(2 * pause, poll)
            self._reap_stale_trials()
        shown = [t if t.number < number - lag else _as_running(t) for t in trials]
        return History([t for t in shown if t.params or t.state.is_finished], self.direction,
                       number)

    def _warn_lag_wait(self, number: int, lag: int, blocking: Sequence[FrozenTrial]) -> None:
        """Say once per study object (once per worker and run) what a long lagged wait waits
        for: otherwise a seeded parallel run that waits for a lost trial looks hung."""
        if getattr(self, "_lag_wait_warned", False):
            return
        self._lag_wait_warned = True
        shown = _few([_described(t) for t in blocking], most=10)
        grace = (f"a trial whose worker died is failed once its heartbeat is "
                 f"{self.grace_period:g} s old" if self.grace_period is not None
                 else "without a grace_period, a trial whose worker died is waited for until "
                      "it is told")
        _logger.warning(
            "Study %r: trial %d has waited more than %g s for trials %s. Deterministic mode (a "
            "seeded parallel run) samples trial n only once every trial below n - %d has "
            "finished, so that the run gives the same suggestions every time. This is normal "
            "while those trials run; %s. A trial of this run without a heartbeat is waited for "
            "until it is told: if its process is gone, tell it FAIL (study.tell(number, "
            "state='FAIL')). To sample without waiting, give the launcher deterministic=False: "
            "instead of n_jobs=N, pass launcher=JoblibLauncher(n_jobs=N, deterministic=False) "
            "(from hpo_plugins.launchers; DaskLauncher takes it too). (Logged once.)",
            self.study_name, number,
            _LAG_WAIT_WARN_SECONDS, shown, lag, grace)

    def _sample_dedup(self, space: SearchSpace, limit: int | None, heartbeat: bool,
                      system_attrs: dict[str, Any]) -> FrozenTrial:
        """Samplers that must not repeat: propose, then insert atomically with a unique key."""
        for _ in range(_DEDUP_RETRIES):
            history = self._history(None)
            params = space.validate(self.sampler.sample(space, history,
                                                        self._rng(history.number)))
            try:
                frozen = self.storage.create_trial(
                    self.study_id, params=params, natural=_json_natural(space.build(params)),
                    dedup_key=params_key(params), heartbeat=heartbeat, limit=limit,
                    system_attrs=system_attrs)
            except DuplicateParamsError:
                continue  # another worker took it first; the fresh history will show it
            if frozen is None:
                raise StudyFull(limit)
            return frozen
        raise ConfigurationError(
            f"The sampler {self.sampler!r} proposed configurations that other trials already "
            f"hold {_DEDUP_RETRIES} times in a row; it must skip parameters found in history."
        )

    def _history(self, number: int | None, exclude: int | None = None) -> History:
        """What the sampler sees for trial ``number`` (None: the study's next number).

        One snapshot of the storage, or none for a sampler that does not read history.
        """
        if not self.sampler.uses_history:
            if number is None:
                number = self.storage.count_trials(self.study_id)
            return History([], self.direction, number)
        snapshot = self.storage.get_all_trials(self.study_id)
        trials = [t for t in snapshot
                  if t.trial_id != exclude and (t.params or t.state.is_finished)]
        return History(trials, self.direction, len(snapshot) if number is None else number)

    def _rng(self, number: int) -> np.random.Generator:
        """The trial's own random stream, derived from (study seed, trial number)."""
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([self.seed, number])

    def _require_space(self) -> SearchSpace:
        if self.space is None:
            raise ConfigurationError(
                f"Study {self.study_name!r} has no search space, so it cannot propose trials. "
                f"Pass space= (the space it was created with) to create_study or load_study."
            )
        return self.space

    def _reap_stale_trials(self) -> None:
        """Fail trials whose worker stopped sending heartbeats; re-queue them if retries allow."""
        if self.grace_period is None:
            return
        for dead in self.storage.fail_stale_trials(self.study_id, self.grace_period):
            _logger.warning("Trial %d lost its worker (no heartbeat for %g s): marked FAIL.",
                            dead.number, self.grace_period)
            self.requeue_lost(dead)  # first: a worker back from a freeze sees the retry coming
            notify(self, "trial_finished", dead)

    def _requeue_forgotten_retries(self) -> None:
        """Re-queue the lost trials that ``max_retries`` allows to retry and that have no
        retry: the process that failed one (a run that found it stale, a launcher that saw its
        worker die) was killed before it re-queued it, a moment later, in a second write."""
        if self.max_retries <= 0:
            return
        trials = self.get_trials(TrialState.FAIL)
        lost = [t for t in trials if t.system_attrs.get(LOST_ATTR)]
        if not lost:
            return
        retried = {t.system_attrs.get("retry_of") for t in self.trials}
        for dead in lost:
            if dead.number not in retried and self.requeue_lost(dead) is not None:
                _logger.warning("Trial %d was lost and has no retry (the process that failed "
                                "it stopped before it re-queued it, or ran with fewer "
                                "max_retries): re-queued now.", dead.number)

    def requeue_lost(self, dead: FrozenTrial) -> FrozenTrial | None:
        """Re-queue ``dead``, a trial failed because its worker was lost, if ``max_retries``
        allows; return the copy, or None.

        The copy is a WAITING trial with the same parameters and ``retry_of`` (the dead trial's
        number) and ``retries`` (one more than the dead trial's) in its system attributes; the
        next ``ask`` claims it. Used for trials failed by a stale heartbeat, for those a
        launcher fails when it sees their worker die, and for those stopped by SIGTERM (a
        preempted machine), so a lost grid point runs again.

        Raises:
            ConfigurationError: ``dead`` is not a FrozenTrial.
        """
        _require_frozen(dead, "dead", "requeue_lost")
        retries = int(dead.system_attrs.get("retries", 0))
        if retries >= self.max_retries or not dead.params:
            return None
        try:  # the key makes it once only, whoever re-queues it (see _requeue_forgotten...)
            copy = self.storage.create_trial(
                self.study_id, state=TrialState.WAITING, params=dead.params,
                natural=dead.natural, dedup_key=f"retry of trial {dead.trial_id}",
                system_attrs={"retry_of": dead.number, "retries": retries + 1})
        except DuplicateParamsError:
            return None  # another process re-queued it
        _logger.warning("Trial %d re-queued with the same parameters (retry %d of %d).",
                        dead.number, retries + 1, self.max_retries)
        return copy

    def tell(self, trial: Trial | int, value: float | None = None, *,
             state: TrialState | str | None = None, fail_reason: str | None = None,
             system_attrs: Mapping[str, Any] | None = None) -> FrozenTrial:
        """Finish a trial.

        A value that is a number but not finite (NaN, an infinity: a diverged training) fails
        the trial instead of completing or pruning it, as the run loop does with an objective
        that returns one: it is stored FAIL (reason ``"the value told was nan"``), a warning is
        logged and the FAIL trial is returned. (Optuna fails a NaN too, but stores an infinity
        COMPLETE, where it can become the best trial.) A trial is
        never left RUNNING because of its value, except when the value is not a number at all
        (a mistake in the calling code, which can tell again).

        Args:
            trial: The :class:`Trial` (or its number).
            value: The objective value. For COMPLETE, left out (None), it is the trial's last
                reported value (as in the run loop when the objective returns None); without
                any report a COMPLETE tell needs it. Optional for PRUNED (defaults to the last
                reported value); ignored for FAIL. A Hyperopt-style dict (``{"loss": x,
                "status": "ok", ...}``) is read as the run loop reads it: its status decides
                FAIL when no ``state`` is given, and its other keys become ``user_attrs``.
            state: COMPLETE, PRUNED or FAIL. Left out, it follows the trial's marks: FAIL when
                an adapter called :meth:`Trial.mark_failed` (a metric never logged), PRUNED when
                one called :meth:`Trial.mark_pruned` (``HPOCallback`` stopped the training),
                else COMPLETE. An explicit state wins over a pruned mark, but not over a
                failed one: a trial marked failed (a NaN report, a metric never logged) ends
                FAIL whatever state is named (a warning says so), as Optuna's idiom
                ``tell(trial, state="PRUNED")`` after ``should_prune()`` would otherwise store
                a PRUNED trial that carries a failure.
            fail_reason: Stored with a FAIL trial (by default the reason of the mark).
            system_attrs: Extra library attributes stored with the result.

        Returns:
            The finished trial as stored (FAIL for a non-finite value).

        Raises:
            ConfigurationError: ``value`` is not a number (a str, a list, an array of several
                numbers...), or a COMPLETE tell has no value and the trial reported none; or a
                bad state or argument. The trial is then still RUNNING: tell it again with a
                number, or with ``state="FAIL"``.
            TrialFinishedError: The trial was already told.
        """
        live = self._own_trial(trial)
        final = _parse_state(state) if state is not None else _marked_state(live)
        if final is not TrialState.FAIL and live.fail_reason is not None:
            _logger.warning("Trial %d was marked failed (%s) before it was told %s: stored "
                            "FAIL.", live.number, live.fail_reason, final.value)
            final = TrialState.FAIL  # a NaN report, a metric never logged: the reason stands
        if isinstance(value, Mapping):  # a Hyperopt-style result, as the run loop reads it
            result = read_result_dict(value)
            store_other_keys(live, result.others)
            value = result.value
            if result.failure is not None and state is None:
                final, fail_reason = TrialState.FAIL, fail_reason or result.failure
        if final is TrialState.FAIL and fail_reason is None:
            fail_reason = live.fail_reason
        if system_attrs is not None and not isinstance(system_attrs, Mapping):
            raise ConfigurationError(
                f"Expected `system_attrs` to be a dict or None. Received: {system_attrs!r}.")
        if fail_reason is not None and final is not TrialState.FAIL:
            raise ConfigurationError(
                f"Expected `fail_reason` only with state='FAIL' (it is stored with failed "
                f"trials only). Received: fail_reason={fail_reason!r} with "
                f"state={final.value!r}.")
        if fail_reason is not None and not isinstance(fail_reason, str):
            fail_reason = str(fail_reason)  # e.g. mark_failed(42): store it, as text
        attrs = dict(system_attrs or {})
        final, number, non_finite = self._told_value(live, final, value)
        if final is TrialState.FAIL:
            attrs.setdefault("fail_reason", non_finite or fail_reason or "failed")
        if final is TrialState.FAIL and _non_finite_number(value):  # also with state="FAIL"
            attrs.setdefault(DIVERGED_ATTR, True)
        frozen = self.storage.finish_trial(live.trial_id, final, number, attrs)
        notify(self, "trial_finished", frozen)
        return frozen

    def _told_value(self, live: Trial, state: TrialState, value: Any
                    ) -> tuple[TrialState, float | None, str | None]:
        """The state and value ``tell`` stores, and the FAIL reason of a non-finite value.

        Without a value, COMPLETE takes the last report (required) and PRUNED the last report
        or None. A NaN or an infinity turns either into FAIL, as in the run loop.
        """
        if state is TrialState.FAIL:
            return state, None, None
        if value is None:
            if state is TrialState.PRUNED:
                return state, live.last_value, None
            value = _last_report(live, self.study_name)
        number = _told_number(live, value, state, self.study_name)
        if math.isfinite(number):
            return state, number, None
        reason = _non_finite_reason(number)
        _logger.warning("Trial %d was told %s with the value %r: marked FAIL (%s).",
                        live.number, state.value, number, reason)
        return TrialState.FAIL, None, reason

    def _own_trial(self, trial: Trial | int) -> Trial:
        """The live trial ``tell`` finishes: a Trial of this study, or a number in it."""
        if isinstance(trial, Trial):
            other = trial.study
            if other is not self and (other.study_id != self.study_id
                                      or not _same_storage(other.storage, self.storage)):
                raise ConfigurationError(
                    f"Expected a trial of study {self.study_name!r}. Received trial "
                    f"{trial.number} of study {other.study_name!r}: tell each trial to the "
                    f"study that asked it.")
            return trial
        if isinstance(trial, bool) or not isinstance(trial, numbers.Integral):
            raise ConfigurationError(
                f"Expected the Trial returned by ask() or a trial number (an int). Received "
                f"{type(trial).__name__} {str(trial)[:80]!r}.")
        found = self._trial_numbered(int(trial))
        if found.state is TrialState.WAITING:
            raise ConfigurationError(
                f"Trial {found.number} of study {self.study_name!r} is WAITING: it was "
                f"enqueued and has not started. ask() starts it; tell it after it ran.")
        return Trial(self, found)

    def _trial_numbered(self, number: int) -> FrozenTrial:
        trials = self.storage.get_all_trials(self.study_id)
        for t in trials:
            if t.number == number:
                return t
        held = (f"its trials are numbered 0 to {len(trials) - 1}" if trials
                else "it has no trials yet")
        raise ConfigurationError(
            f"Expected the number of a trial of study {self.study_name!r} ({held}). Received: "
            f"{number}. Pass a number from study.trials, or the Trial that ask() returned.")

    def trial(self, trial_id: int) -> Trial:
        """A live handle on a trial of this study, by storage id.

        Raises:
            TrialNotFoundError: No trial has that id.
            ConfigurationError: ``trial_id`` is not an int, or the trial belongs to another
                study of the storage.
        """
        trial_id = _trial_id(trial_id)
        frozen = self.storage.get_trial(trial_id)
        ours = self.storage.get_all_trials(self.study_id, [frozen.state])
        if not any(t.trial_id == trial_id for t in ours) and not any(
                t.trial_id == trial_id  # it may have changed state between the two reads
                for t in self.storage.get_all_trials(self.study_id)):
            raise ConfigurationError(
                f"Expected a trial of study {self.study_name!r}. Received the id {trial_id} of "
                f"trial {frozen.number} of another study in {self.storage.describe()}: check the "
                f"study name and trial id handed over.")
        return Trial(self, frozen)

    def enqueue(self, params: Any, *, user_attrs: Mapping[str, Any] | None = None,
                skip_if_exists: bool = False) -> FrozenTrial | None:
        """Queue a configuration to run before any sampled one (warm start).

        A script that enqueues its warm-start configurations and is re-run to resume queues
        them again on every run, so each one trains again: pass ``skip_if_exists=True`` in a
        script that may be re-run.

        Args:
            params: The nested natural value (as the objective receives it, choices given as the
                chosen option, nested choices included), or a flat ``{label: value}`` dict;
                numbers may be numpy's (a row of ``trials_dataframe()``). A flat dict gives a
                choice by its option, not by its index as Hyperopt does: ``fmin``'s result and
                ``trials.trials[i]["misc"]["vals"]`` hold indices, so with options
                ``[1, 2, 4]`` Hyperopt's ``{"layers": 2}`` means 4 but runs 2 here (no error:
                2 is an option too). Pass ``hyperopt.space_eval(space, best)`` instead. For the
                same reason ``frozen.params`` (internal values: a choice's index) is no value to
                enqueue: pass the :class:`FrozenTrial` itself to run its configuration again
                (its internal params are taken as they are), or ``frozen.natural``.
            user_attrs: JSON values stored as the trial's ``user_attrs`` at once (read back on
                ``study.trials`` while it waits, runs and after), e.g. where the
                configuration came from.
            skip_if_exists: Queue nothing when a trial of the study already has these
                parameters (floats compared to 12 significant digits) and is WAITING, RUNNING,
                COMPLETE or PRUNED; the match is logged at INFO. A FAILed trial does not count:
                the configuration runs again. Trials whose worker is gone (no heartbeat for the
                study's grace period) are failed first, as ``ask`` does, so a warm start whose
                process crashed runs again when the script is re-run. A limit: a re-run within
                the grace period of the crash still finds that trial RUNNING and queues
                nothing; the trial is failed later as lost, and its configuration runs again
                only if ``max_retries`` re-queues it (or on a re-run after the grace period).
                The check reads the storage and then queues, so two processes enqueuing the
                same configuration at the same moment may both queue it: enqueue from one
                process.

        Returns:
            The queued (WAITING) trial, or None when ``skip_if_exists`` found a match, or when
            the sampler runs each configuration once (the grid) and a trial that is not FAIL
            already holds these parameters (as with ``skip_if_exists``).

        Raises:
            SpaceError: ``params`` does not fit the space; the message says how.
            ConfigurationError: A ``user_attrs`` key is not a str or a value is not JSON, or
                ``skip_if_exists`` is not a bool.
        """
        if not isinstance(skip_if_exists, bool):
            raise ConfigurationError(
                f"Expected `skip_if_exists` to be True or False. Received: "
                f"skip_if_exists={skip_if_exists!r}.")
        refuse_in_importing_worker("study.enqueue")
        space = self._require_space()
        if isinstance(params, FrozenTrial):  # a trial's own configuration, run again
            flat = space.validate(params.params)
        else:
            flat = space.flatten(params)
            _warn_index_readings(space, params, flat)
        if skip_if_exists:
            self._reap_stale_trials()  # a dead process's RUNNING trial must not count
            if self._same_params_trial(flat) is not None:
                return None
        elif self.sampler.deduplicate and self._same_params_trial(flat) is not None:
            return None  # the grid runs each configuration once; a FAIL one may run again
        return self._create_with(space, flat, TrialState.WAITING, {"enqueued": True},
                                 user_attrs)

    def _create_with(self, space: SearchSpace, flat: Mapping[str, Any], state: TrialState,
                     system_attrs: Mapping[str, Any], user_attrs: Mapping[str, Any] | None,
                     dedup_key: str | None = None) -> FrozenTrial:
        """A trial with the given parameters (``enqueue``, ``add_trial``); ``user_attrs`` is
        passed only when given, for storages written before the argument existed."""
        _check_user_attrs(user_attrs)
        extra: dict[str, Any] = {"user_attrs": user_attrs} if user_attrs else {}
        frozen = self.storage.create_trial(
            self.study_id, state=state, params=flat, natural=_json_natural(space.build(flat)),
            dedup_key=dedup_key, system_attrs=system_attrs, **extra)
        assert frozen is not None  # no limit was given
        return frozen

    def _same_params_trial(self, flat: Mapping[str, Any]) -> FrozenTrial | None:
        """The first trial that holds the flat params ``flat`` and is not FAIL (logged)."""
        key = params_key(flat)
        states = [TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE,
                  TrialState.PRUNED]
        for trial in self.storage.get_all_trials(self.study_id, states):
            if trial.params and params_key(trial.params) == key:
                running = ""
                if trial.state is TrialState.RUNNING and self.grace_period is not None:
                    running = (f" If the process running it is gone, the trial is failed once "
                               f"its heartbeat is {self.grace_period:g} s old; enqueue again "
                               f"after that to run the configuration again.")
                _logger.info("Study %r: trial %d (%s) already has the parameters %s; "
                             "enqueue queued nothing.%s", self.study_name,
                             trial.number, trial.state.value, dict(flat), running)
                return trial
        return None

    def add_trial(self, params: Any, value: float | None = None, *,
                  state: TrialState | str = TrialState.COMPLETE,
                  intermediate_values: Mapping[int, float] | None = None,
                  user_attrs: Mapping[str, Any] | None = None) -> FrozenTrial:
        """Record a trial that ran elsewhere: a result from an earlier experiment, a paper, a
        colleague's run (Optuna's ``add_trial``). The samplers learn from it like from any
        finished trial, so known good configurations warm-start the search without running
        again (:meth:`enqueue` runs them).

        Args:
            params: As in :meth:`enqueue`: the nested natural value or the flat form.
            value: Its objective value; required for COMPLETE (unless ``intermediate_values``
                are given: then the last one), optional for PRUNED (default: the last
                intermediate value), ignored for FAIL. A NaN or an infinity stores it FAIL,
                as :meth:`tell` does. A Hyperopt result dict (``trials.results[i]``) gives
                its loss, FAIL for a failed status, and its other keys as ``user_attrs``.
                (With the grid sampler, an added trial takes its grid point, a FAIL one too:
                the grid does not propose it again.)
            state: COMPLETE (default), PRUNED or FAIL.
            intermediate_values: Its learning curve, ``{step: value}``; the pruners compare
                later trials with it.
            user_attrs: JSON values stored as its ``user_attrs`` (e.g. where it came from).

        Returns:
            The trial as stored. Its start and end are now; ``system_attrs["added"]`` is True.

        Raises:
            SpaceError: ``params`` does not fit the space.
            ConfigurationError: A bad value, state or attribute; or, with a sampler that never
                repeats a configuration (the grid), a trial already holds these parameters.
        """
        refuse_in_importing_worker("study.add_trial")
        final = _parse_state(state)
        failure = None
        if isinstance(value, Mapping):  # a Hyperopt-style result: Trials.results[i]
            _check_user_attrs(user_attrs)
            result = read_result_dict(value)
            user_attrs = {**json_values(result.others), **(user_attrs or {})}
            value, failure = result.value, result.failure
            if failure is not None:
                final = TrialState.FAIL
        steps = _added_curve(intermediate_values)
        if final is TrialState.COMPLETE and value is None and not steps:
            raise ConfigurationError(
                "Expected `value` (or `intermediate_values`, whose last value is then used) "
                "for a COMPLETE trial. Received neither. Pass add_trial(params, value), or "
                "state='FAIL' for a configuration that failed.")
        if final is not TrialState.FAIL and value is not None and read_number(value)[0] is None:
            raise ConfigurationError(
                f"Expected `value` to be a number. Received: {read_number(value)[1]}.")
        space = self._require_space()
        flat = space.flatten(params)
        dedup = params_key(flat) if self.sampler.deduplicate else None
        try:
            frozen = self._create_with(space, flat, TrialState.RUNNING, {"added": True},
                                       user_attrs, dedup)
        except DuplicateParamsError:
            raise ConfigurationError(
                f"Expected parameters that no trial of study {self.study_name!r} holds yet: "
                f"its sampler ({type(self.sampler).__name__}) runs each configuration once. "
                f"Received {dict(flat)}, which a trial already holds.") from None
        trial = Trial(self, frozen)
        notify(self, "trial_started", trial)
        try:
            for step, reported in sorted(steps.items()):
                trial.report(reported, step)
            return self.tell(trial, value, state=final,
                             fail_reason=failure if final is TrialState.FAIL else None)
        except BaseException as exc:  # no half-recorded trial is left RUNNING
            if self.storage.get_trial(trial.trial_id).state is TrialState.RUNNING:
                failed = self.storage.finish_trial(
                    trial.trial_id, TrialState.FAIL, None,
                    {"fail_reason": f"add_trial stopped before it recorded the trial "
                                    f"({type(exc).__name__})"})
                notify(self, "trial_finished", failed)  # the dashboard saw it start
            raise

    @property
    def user_attrs(self) -> dict[str, Any]:
        """The study's own user attributes (:meth:`set_user_attr`), read from the storage."""
        attrs = self.storage.get_study(self.study_id).attrs
        return {key[len(_USER_ATTR_PREFIX):]: value for key, value in attrs.items()
                if key.startswith(_USER_ATTR_PREFIX)}

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a JSON value on the study (a dataset version, a note, a commit): read back as
        :attr:`user_attrs` by any process, and kept with the study (``delete_study`` removes
        it). Each key is written on its own, so workers setting different keys lose none."""
        check_attr_key(key, "study user attribute")
        self.storage.set_study_attr(self.study_id, _USER_ATTR_PREFIX + key, value)

    # -- the loop -----------------------------------------------------------------------------

    @ported_arguments(FMIN_ARGUMENTS, positional="study.optimize(objective, n_trials, "
                      "max_trials=..., timeout=...)")
    def optimize(self, objective: Callable[..., Any], n_trials: int | None = None, *,
                 max_trials: int | None = None, timeout: float | None = None,
                 catch: Iterable[type[BaseException]] | type[BaseException] = (),
                 callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None = None,
                 show_progress_bar: bool | None = None, n_jobs: int = 1,
                 launcher: Any = None) -> Study:
        """Run trials: ``ask`` → ``objective(params)`` → ``tell``, until a limit is reached.

        Args:
            objective: Called with the nested natural params. It returns a number, a dict with
                ``"loss"`` (Hyperopt style, optional ``"status"``), or None (the trial's value is
                then its last reported value); it may raise :class:`TrialPruned`.
            n_trials: How many trials this call runs.
            max_trials: Cap on the study's total of RUNNING, COMPLETE and PRUNED trials across
                runs and workers: re-running the same script after a crash completes the study.
            timeout: Start no new trial after this many seconds.
            catch: Exception types that fail their trial but let the study go on; any other
                exception fails its trial and is raised.
            callbacks: Called as ``callback(study, frozen_trial)`` after each trial.
            show_progress_bar: A tqdm bar with the best value; default: when stderr is a TTY.
            n_jobs: Worker processes (see :mod:`hpo_plugins.launchers`).
            launcher: A launcher object; default sequential in this process.

        Returns:
            The study itself.
        """
        from hpo_plugins._api import check_run_args
        from hpo_plugins._optimize import run
        from hpo_plugins._run_settings import RunSettings
        from hpo_plugins.launchers._state import fail_dead_here

        check_run_args(objective, n_jobs, launcher)
        _check_objective_against(self, objective)
        settings = RunSettings.build(self, n_trials=n_trials, max_trials=max_trials,
                                     timeout=timeout, catch=catch,
                                     callbacks=_with_objective_callback(objective, callbacks),
                                     show_progress_bar=show_progress_bar)
        tally = _EndTally()
        settings = dataclasses.replace(settings, callbacks=(*settings.callbacks, tally))
        self._stop_requested = False  # a stop() made during an earlier call does not carry over
        self._stop_error = None
        fail_dead_here(self)  # a killed run's trials on this host: lost now, not after grace
        self._requeue_forgotten_retries()
        run(self, objective, settings, n_jobs=n_jobs, launcher=launcher)
        error, self._stop_error = self._stop_error, None
        if error is not None:
            raise error
        tally.warn_if_all_failed()
        return self

    def stop(self, *, error: BaseException | None = None) -> None:
        """Ask the current :meth:`optimize` call to start no new trial (Optuna's
        ``study.stop()``).

        Trials already running finish and are told as usual; then ``optimize`` returns, or,
        with ``error``, raises it: a callback that decides the run has failed (as
        :class:`~hpo_plugins.stoppers.FailureStop` does) ends it with an error without
        cutting short the trials other workers are running, which raising in the callback
        would. The first ``error`` given during a call is the one raised. (With
        ``JoblibLauncher``'s reused workers, joblib may have handed the next task to a worker
        already, so one more trial per worker can start.) Call
        it from a callback (callbacks run in the process that called ``optimize``, in parallel
        runs too), or from the objective in a sequential run. In a parallel run the objective
        runs in a worker process, on that process's copy of the study: ``stop()`` there does
        not reach the launching process. Each ``optimize`` call starts with the request
        cleared, so a stop made outside a call, or during an earlier one, has no effect on the
        next.

        Example:
            >>> import hpo_plugins as hpo
            >>> study = hpo.create_study(space={"x": hpo.hp.uniform("x", 0, 1)},
            ...                          storage=":memory:", seed=0)
            >>> def stop_when_good(study, frozen):
            ...     if frozen.value is not None and frozen.value < 0.5:
            ...         study.stop()
            >>> _ = study.optimize(lambda p: p["x"], n_trials=20, callbacks=[stop_when_good])
            >>> study.best_value < 0.5, study.stop_requested
            (True, True)
        """
        if error is not None and not isinstance(error, BaseException):
            raise ConfigurationError(
                f"Expected `error` to be an exception for optimize to raise once its running "
                f"trials have finished, e.g. study.stop(error=RuntimeError('why')). Received: "
                f"{error!r} (of type {type(error).__name__}).")
        self._stop_requested = True
        if error is not None and self._stop_error is None:
            self._stop_error = error
        _logger.info("Study %r: stop() was called; no new trial will start.", self.study_name)

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`stop` was called during the current :meth:`optimize` call; the run
        loops read it before starting each trial."""
        return self._stop_requested

    # -- results ------------------------------------------------------------------------------

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, by number (a fresh read of the storage)."""
        return self.storage.get_all_trials(self.study_id)

    def get_trials(self, states: Sequence[TrialState | str] | TrialState | str | None = None,
                   *, deepcopy: bool = True) -> list[FrozenTrial]:
        """Trials in ``states`` (all by default; one state or several, names in any case, or
        another library's states of the same names, such as Optuna's), by number.

        ``deepcopy`` is accepted for code written for Optuna (its ``MaxTrialsCallback`` passes
        ``deepcopy=False``) and changes nothing: a :class:`FrozenTrial` cannot be changed, and
        every call reads the storage afresh.
        """
        del deepcopy
        if states is None:
            return self.storage.get_all_trials(self.study_id)
        try:
            items = [states] if isinstance(states, (str, enum.Enum)) else list(states)
        except TypeError:  # not iterable: an int, a FrozenTrial...
            raise ConfigurationError(
                f"Expected `states` to be a trial state or a list of them, e.g. "
                f"get_trials('COMPLETE') or get_trials([TrialState.COMPLETE, "
                f"TrialState.PRUNED]). Received: {states!r}.") from None
        return self.storage.get_all_trials(self.study_id, [_state(s) for s in items])

    @property
    def best_trial(self) -> FrozenTrial:
        """The COMPLETE trial with the best value.

        Raises:
            ConfigurationError: No trial has completed yet; the message counts the trials
                by state (all failed or pruned is not the same as none run).
        """
        best = self.storage.best_trial(self.study_id, self.direction)
        if best is None:
            raise ConfigurationError(_no_best_message(self.study_name, self.trials))
        return best

    @property
    def best_value(self) -> float:
        """The best trial's value."""
        return float(self.best_trial.value)  # type: ignore[arg-type]

    @property
    def best_params(self) -> Any:
        """The best trial's nested natural params."""
        return self.natural_params(self.best_trial)

    def natural_params(self, frozen: FrozenTrial) -> Any:
        """The nested natural value of a stored trial.

        Rebuilt from the space when the study has one. Without it (``load_study(name)``) it is
        the value stored as JSON, where Hyperopt's tuples became lists: they are made tuples
        again, at any depth. For numbers, str, bools, None, and dicts with str keys, lists and
        tuples of them, that is the value the objective received. JSON cannot hold the rest,
        which stays as stored: integer dict keys become str (``{1: 'a'}`` is ``{'1': 'a'}``),
        a non-finite float its text (``'inf'``) and any other object (a function, a class
        instance) its ``repr``. Open the study with its space to get those back.

        Raises:
            ConfigurationError: ``frozen`` is not a FrozenTrial.
        """
        _require_frozen(frozen, "frozen", "natural_params")
        if self.space is not None and frozen.params:
            return self.space.build(frozen.params)
        return lists_as_tuples(frozen.natural)

    def trials_dataframe(self) -> pd.DataFrame:
        """One row per trial: number, state, value, times, ``params_<label>``, attributes.

        Parameter columns use the stable flat labels; a choice shows its option (or index for
        non-scalar options) and an inactive conditional parameter is empty (None/NaN).
        """
        from hpo_plugins._dataframe import trials_dataframe

        return trials_dataframe(self)


def _check_objective_against(study: Study, objective: Any) -> None:
    """Call the objective's own ``check_study(study)``, if it has one, before any trial runs.

    An objective object (``lightning_objective``) uses it to refuse, up front, a study its
    trials cannot run (say space labels that its module does not take), instead of failing
    the first trial.
    """
    hook = getattr(objective, "check_study", None)
    if callable(hook):
        hook(study)


#: Set on the log record that says every trial of an ``optimize`` call failed.
ALL_FAILED_RECORD = "hpo_all_trials_failed"


class _EndTally:
    """A study callback that counts how this ``optimize`` call's trials ended, to say so when
    every one failed: a run whose objective fails under ``catch=`` (or kills its worker) would
    otherwise return as if it had worked, with nothing new in the study. It also warns, once
    per study object, of a maximised Hyperopt ``"loss"`` (marked by the loop that told the
    trial, in whatever process ran it)."""

    def __init__(self) -> None:
        self.ended = self.failed = 0
        self.last_reason: str | None = None

    def __call__(self, study: Study, frozen: FrozenTrial) -> None:
        self.ended += 1
        if frozen.state is TrialState.FAIL:
            self.failed += 1
            self.last_reason = frozen.fail_reason
        if frozen.system_attrs.get(MAXIMISED_LOSS_ATTR) and not getattr(
                study, "_loss_max_warned", False):  # getattr: a study unpickled from before
            study._loss_max_warned = True  # once per study object
            _logger.warning(
                "Study %r maximises, and the objective returns a dict with 'loss', which "
                "Hyperopt minimises: here the largest 'loss' ranks best. If it holds a loss (or "
                "-accuracy), use hpo.minimize; to maximise a score, return it as "
                "{'value': score} or as a number.", study.study_name)

    def warn_if_all_failed(self) -> None:
        """Log a warning when this call ran two trials or more and every one failed (marked
        ``ALL_FAILED_RECORD`` for a caller that says it in its own words: the CLI)."""
        from hpo_plugins._outcome import shortened

        if self.ended >= 2 and self.failed == self.ended:
            _logger.warning(
                "All %d trials of this run failed; the last one: %s. The study has no new "
                "result: try the objective alone (one trial, n_jobs=1) to see its error, or "
                "read each trial's reason with study.trials_dataframe() or hpo-plugins trials.",
                self.ended, shortened(self.last_reason or "no reason stored", 300),
                extra={ALL_FAILED_RECORD: True})


def _with_objective_callback(objective: Any, callbacks: Any) -> Any:
    """``callbacks`` and the objective's own ``after_trial(study, frozen)``, if it has one.

    An objective object (``lightning_objective``, ``keras_tune``'s) uses it to stop the study
    after a set-up mistake that ``catch=`` would otherwise swallow: it runs in the launching
    process after each trial, also when the trial ran in a worker. Not added twice; malformed
    ``callbacks`` are left for :class:`RunSettings` to refuse.
    """
    hook = getattr(objective, "after_trial", None)
    if not callable(hook) or isinstance(callbacks, (str, bytes)) or callable(callbacks):
        return callbacks
    try:
        given = list(callbacks or ())
    except TypeError:  # not iterable: RunSettings says what it expects
        return callbacks
    return given if hook in given else [*given, hook]


def _tensorboard_observer(study: Study) -> TrialObserver:
    """The TensorBoard HParams writer for a study with a ``logdir`` (imported only then)."""
    from hpo_plugins.tensorboard import HParamsObserver

    return HParamsObserver(study)


def _described(trial: FrozenTrial) -> str:
    """A trial's number and state for a log line, e.g. ``3 (RUNNING, no heartbeat)``."""
    silent = trial.state is TrialState.RUNNING and trial.last_heartbeat is None
    return f"{trial.number} ({trial.state.value}{', no heartbeat' if silent else ''})"


def _outside_run(trial: FrozenTrial, waiting: FrozenTrial) -> bool:
    """Whether ``trial`` is a RUNNING trial without a heartbeat that is not of the run of
    ``waiting`` (a trial in a lagged wait, see :meth:`Study._lagged_history`), so that the
    wait must not wait for it: nothing will ever finish or fail it there.

    A run's trials all beat or none do (one study, one ``heartbeat_interval``): if ``waiting``
    beats, a silent trial was asked elsewhere (by hand, or by an ask/tell script killed before
    its tell). If it does not, the run's own trials are silent too, and only another
    ``run_id`` (the launcher's tag) marks a trial as someone else's; a hand ``ask(lag=...)``
    without heartbeat and without a run id waits for every trial, as before.
    """
    if trial.state is not TrialState.RUNNING or trial.last_heartbeat is not None:
        return False
    if waiting.last_heartbeat is not None:
        return True
    run_id = waiting.system_attrs.get("run_id")
    return run_id is not None and trial.system_attrs.get("run_id") != run_id


def _as_running(trial: FrozenTrial) -> FrozenTrial:
    """The trial as a sampler would have seen it while it ran: params, no result."""
    return dataclasses.replace(trial, state=TrialState.RUNNING, value=None,
                               intermediate_values={}, datetime_complete=None)


def _state(state: TrialState | str) -> TrialState:
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


def _marked_state(trial: Trial) -> TrialState:
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


def _parse_state(state: TrialState | str) -> TrialState:
    """The finished state named by ``tell(state=...)``; anything else is refused."""
    try:
        final: TrialState | None = _state(state)
    except ConfigurationError:
        final = None
    if final is None or not final.is_finished:
        raise ConfigurationError(
            f"Expected `state` to be COMPLETE, PRUNED or FAIL. Received: state={state!r}."
        )
    return final


def _trial_id(trial_id: Any) -> int:
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


def _require_frozen(frozen: Any, name: str, method: str) -> None:
    """Refuse anything but a stored trial where a method reads one (not a number or an id)."""
    if not isinstance(frozen, FrozenTrial):
        raise ConfigurationError(
            f"Expected `{name}` to be a FrozenTrial, a stored trial such as study.best_trial "
            f"or an item of study.trials. Received: {name}={frozen!r} (of type "
            f"{type(frozen).__name__}). For trial number n, pass "
            f"study.{method}(study.trials[n])."
        )


def _told_number(trial: Trial, value: Any, state: TrialState, study_name: str) -> float:
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


def _last_report(trial: Trial, study_name: str) -> float:
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


def _non_finite_number(value: Any) -> bool:
    """Whether ``value`` is a NaN or an infinity (a diverged run's value)."""
    number, _ = read_number(value)
    return number is not None and not math.isfinite(number)


def _non_finite_reason(number: float) -> str:
    """The FAIL reason of a NaN or infinite value told by hand. (The run loop never tells one:
    ``_optimize._interpret`` fails such a trial with "the objective returned nan".)"""
    return f"the value told was {number!r}"


def _added_curve(curve: Mapping[int, float] | None) -> dict[int, float]:
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


def _same_storage(a: Storage, b: Storage) -> bool:
    """Whether two storage objects reach the same database (a worker's copy is another
    object on the same file)."""
    if a is b:
        return True
    url_a, url_b = getattr(a, "portable_url", None), getattr(b, "portable_url", None)
    return url_a is not None and url_a == url_b


def _check_ask(heartbeat: Any, system_attrs: Any) -> None:
    """Refuse bad ``ask`` arguments before a trial is started."""
    if not isinstance(heartbeat, bool):
        raise ConfigurationError(
            f"Expected `heartbeat` to be True or False. Received: heartbeat={heartbeat!r}.")
    if system_attrs is not None and not isinstance(system_attrs, Mapping):
        raise ConfigurationError(
            f"Expected `system_attrs` to be a dict or None. Received: {system_attrs!r}.")


def _json_natural(value: Any) -> Any:
    """The natural value as strict JSON: tuples become lists, numpy scalars and arrays their
    Python values (``np.int64(500)`` from ``hp.choice(.., np.arange(...))`` is stored as
    ``500``), non-finite floats their text (``'inf'``: strict JSON has no infinity) and other
    objects their repr."""
    return _finite(json.loads(json.dumps(value, default=_json_default)))


def _json_default(value: Any) -> Any:
    """What JSON cannot write itself: numpy values as Python's, anything else as its repr."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return repr(value)


def _finite(value: Any) -> Any:
    """``value`` (read from JSON) with its non-finite floats replaced by their text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _no_best_message(study_name: str, trials: Sequence[FrozenTrial]) -> str:
    """Why a study has no best trial: none ran yet, or how many ended in which state, with
    where to look (the failed trials' reasons) and what to do."""
    if not trials:
        return (f"Study {study_name!r} has no COMPLETE trial yet (no trial has run), so it "
                f"has no best trial. Run some trials first (study.optimize or ask/tell).")
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.value] = counts.get(trial.state.value, 0) + 1
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    hints = []
    if counts.get("FAIL"):
        hints.append("see why they failed in study.get_trials('FAIL') (each trial's "
                     "fail_reason, also in trials_dataframe()['fail_reason'])")
    if counts.get("PRUNED"):
        hints.append("pruned trials are not candidates: their curves are in "
                     "study.get_trials('PRUNED') (intermediate_values)")
    if counts.get("RUNNING") or counts.get("WAITING"):
        hints.append("wait for the running and waiting trials to finish")
    hints.append("run more trials once the cause is fixed")
    return (f"Study {study_name!r} has no COMPLETE trial, so it has no best trial: "
            f"{len(trials)} trial{'s' if len(trials) != 1 else ''} so far ({by_state}), none "
            f"COMPLETE. Expected at least one COMPLETE trial with a value; "
            f"{'; '.join(hints)}.")


# ---------------------------------------------------------------------------------------------
# Creating and loading


def create_study(space: Any = None, *, study_name: str | None = None, storage: Any = None,
                 direction: str | Direction = "minimize", sampler: Sampler | None = None,
                 pruner: Pruner | None = None, seed: int | None = None,
                 metric: str | None = None, logdir: str | None = None,
                 load_if_exists: bool = True, heartbeat_interval: float | None = 30.0,
                 grace_period: float | None = None, max_retries: int = 0) -> Study:
    """Create a study, or resume the one of that name.

    Args:
        space: A Hyperopt search space; validated here, so a bad space fails before trial 0.
        study_name: The study's name in the storage; default: a new unique name.
        storage: None (the default SQLite file ``hpo.db``, see
            :func:`hpo_plugins.storages.get_storage`), ``":memory:"``, a URL or a Storage.
        direction: ``"minimize"`` or ``"maximize"``.
        sampler: Default: :class:`~hpo_plugins.samplers.TPESampler` (ours; see
            docs/benchmarks.md). ``HyperoptTPESampler`` runs Hyperopt's own TPE.
        pruner: Default: :class:`~hpo_plugins.pruners.NopPruner`.
        seed: Makes the sequence of suggestions reproducible.
        metric: The metric adapters monitor by default. Left out (None): a new study gets
            ``"val_loss"``, a resumed one keeps the metric it was created with.
        logdir: Root of the trial directories (and TensorBoard runs).
        load_if_exists: Resume an existing study of that name (its trials are kept); when
            False, an existing name raises :class:`DuplicateStudyError`. A resume keeps the
            study's stored ``sampler``, ``pruner``, ``seed``, ``metric`` and ``logdir`` where
            this call leaves them out (None), and records the ones it gives: re-running a
            script without ``logdir=`` does not cut the study off from its TensorBoard runs,
            and one without ``metric=`` does not switch its adapters back to ``"val_loss"``.
            Once a call named the metric, another ``metric=`` is refused while trials hold
            values of it (their values could not be ranked with the new ones).
        heartbeat_interval: Seconds between heartbeats of trials run by the loop; None disables
            heartbeats (and so the detection of dead workers).
        grace_period: A RUNNING trial silent for longer is failed at the next ``ask``; default
            ``4 * heartbeat_interval``. With ``heartbeat_interval=None`` this process sends no
            heartbeats, but a ``grace_period`` still makes its ``ask`` fail the stale trials of
            other workers that do.
        max_retries: How many times a trial whose worker was lost is re-queued (failed for a
            stale heartbeat, by a launcher that saw its worker die, or stopped by SIGTERM, as a
            preempted machine is).

    Raises:
        SpaceError: The space is malformed or the sampler cannot handle it.
        ConfigurationError: An argument has the wrong type or range, or a resumed study has
            another direction or another space, or another metric while trials hold values of
            its own.
    """
    from hpo_plugins.samplers import TPESampler

    settings = _check_settings(direction, heartbeat_interval, grace_period, max_retries)
    direction, grace_period = settings
    _check_identity(study_name, seed, metric, logdir, load_if_exists)
    seed = None if seed is None else int(seed)  # numpy numbers become what JSON stores
    max_retries = int(max_retries)
    heartbeat_interval = None if heartbeat_interval is None else float(heartbeat_interval)
    grace_period = None if grace_period is None else float(grace_period)
    logdir = None if logdir is None else os.fspath(logdir)
    if logdir is not None:
        _make_logdir(logdir, "")
    parsed = as_space(space) if space is not None else None
    given = {"sampler": sampler is not None, "pruner": pruner is not None,
             "seed": seed is not None, "metric": metric is not None,
             "logdir": logdir is not None}
    metric = metric if metric is not None else DEFAULT_METRIC  # a new study's default
    sampler = sampler if sampler is not None else TPESampler()
    _check_plugin(sampler, Sampler, "sampler")
    pruner = pruner if pruner is not None else NopPruner()
    _check_plugin(pruner, Pruner, "pruner")
    if parsed is not None:
        sampler.check_space(parsed)
    store = get_storage(storage)
    name = study_name or _unique_name()
    attrs = _study_attrs(parsed, sampler, pruner, seed, metric, logdir, heartbeat_interval,
                         grace_period, max_retries)
    attrs[METRIC_GIVEN_ATTR] = given["metric"]
    study_id, kept, before = _create_or_resume(store, name, direction, attrs, load_if_exists,
                                       [key for key, is_given in given.items() if not is_given],
                                       parsed)
    if kept:  # a resume without these arguments goes on with the study's own
        if "sampler" in kept:
            sampler = _inherit(store, study_id, name, kept["sampler"], Sampler, sampler)
        if "pruner" in kept:
            pruner = _inherit(store, study_id, name, kept["pruner"], Pruner, pruner)
        seed = kept.get("seed", seed)
        metric = kept.get("metric", metric)
        if "logdir" in kept:
            logdir = kept["logdir"]
            _make_logdir(logdir, f"the logdir stored with study {name!r} ")
        if parsed is not None:
            sampler.check_space(parsed)
    try:
        return Study(study_name=name, storage=store, study_id=study_id, direction=direction,
                     space=parsed, sampler=sampler, pruner=pruner, seed=seed, metric=metric,
                     logdir=logdir, heartbeat_interval=heartbeat_interval,
                     grace_period=grace_period, max_retries=max_retries)
    except Exception:  # e.g. a logdir that holds another study's files
        _undo(store, study_id, before)
        raise


def _undo(store: Storage, study_id: int, before: Mapping[str, Any] | None) -> None:
    """Take back what a ``create_study`` whose Study was refused stored: the study itself if
    the call created it (and nothing ran on it meanwhile), else the settings it recorded. A
    refused logdir must not stay stored, or every later open of the study would be refused."""
    try:
        if before is None:
            if store.count_trials(study_id) == 0:
                store.delete_study(study_id)
            return
        for key in (*_INHERITABLE, METRIC_GIVEN_ATTR):
            if key in before:
                store.set_study_attr(study_id, key, before[key])
    except Exception as exc:  # the original error matters more; say what could not be undone
        _logger.warning("Could not take back the study settings of the refused call: %s", exc)


def _check_settings(direction: str | Direction, heartbeat_interval: float | None,
                    grace_period: float | None, max_retries: int
                    ) -> tuple[Direction, float | None]:
    parsed = Direction.parse(direction)
    for name, seconds in (("heartbeat_interval", heartbeat_interval),
                          ("grace_period", grace_period)):
        if seconds is not None and (isinstance(seconds, bool)
                                    or not isinstance(seconds, numbers.Real)
                                    or not math.isfinite(seconds) or not seconds > 0):
            raise ConfigurationError(
                f"Expected `{name}` to be a finite number of seconds > 0, or None. "
                f"Received: {name}={seconds!r}."
            )
    if grace_period is None and heartbeat_interval is not None:
        grace_period = 4.0 * heartbeat_interval
    if grace_period is not None and heartbeat_interval is not None and (
            grace_period <= heartbeat_interval):
        raise ConfigurationError(
            f"Expected `grace_period` to be longer than `heartbeat_interval` "
            f"({heartbeat_interval}). Received: grace_period={grace_period!r}."
        )
    if (isinstance(max_retries, bool) or not isinstance(max_retries, numbers.Integral)
            or max_retries < 0):
        raise ConfigurationError(
            f"Expected `max_retries` to be an integer >= 0. Received: max_retries={max_retries!r}."
        )
    return parsed, grace_period


def _check_user_attrs(user_attrs: Any) -> None:
    """Refuse ``user_attrs`` that are not a mapping (enqueue, add_trial)."""
    if user_attrs is not None and not isinstance(user_attrs, Mapping):
        raise ConfigurationError(
            f"Expected `user_attrs` to be a dict of JSON values, e.g. "
            f"user_attrs={{'source': 'paper'}}. Received: {user_attrs!r} (of type "
            f"{type(user_attrs).__name__}).")


def _check_name(study_name: Any) -> None:
    """Refuse a ``study_name`` that cannot name a stored study (load, delete)."""
    if not isinstance(study_name, str):
        raise ConfigurationError(
            f"Expected `study_name` to be the name of a study (a str). Received: "
            f"study_name={study_name!r} (of type {type(study_name).__name__}).")


def _check_identity(study_name: Any, seed: Any, metric: Any, logdir: Any,
                    load_if_exists: Any) -> None:
    """Refuse arguments of the wrong type before anything is stored."""
    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise ConfigurationError(
            f"Expected `study_name` to be a non-empty str, or None for a new unique name. "
            f"Received: study_name={study_name!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or not 0 <= int(seed) < 2 ** 63):
        raise ConfigurationError(
            f"Expected `seed` to be an integer >= 0, or None for a different run each time. "
            f"Received: seed={seed!r}.{seed_hint(seed)}")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ConfigurationError(
            f"Expected `metric` to be the name of a logged metric, such as 'val_loss', or None "
            f"(a resume keeps the stored one, a new study uses 'val_loss'). Received: "
            f"metric={metric!r}.")
    if logdir is not None and not isinstance(logdir, (str, os.PathLike)):
        raise ConfigurationError(
            f"Expected `logdir` to be a directory path (str or pathlib.Path), or None. "
            f"Received: logdir={logdir!r} (of type {type(logdir).__name__}).")
    if not isinstance(load_if_exists, bool):
        raise ConfigurationError(
            f"Expected `load_if_exists` to be True or False. Received: "
            f"load_if_exists={load_if_exists!r}.")


def _make_logdir(logdir: str, whose: str) -> None:
    """Create ``logdir`` now, not at the first trial's TensorBoard write, which only logs its
    failure; ``whose`` names a stored one in the message."""
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as exc:
        fix = ("; pass logdir= to use another one" if whose else "")
        raise ConfigurationError(
            f"Expected `logdir` to be a directory this process can create and write. "
            f"Received: {whose}{logdir!r}, which failed: {exc}{fix}.") from None


def _inherit(store: Storage, study_id: int, name: str, stored: Any, base: type,
             default: Any) -> Any:
    """The sampler or pruner a resume keeps: rebuilt from the study's record when the rebuild
    is exact (same class and arguments); else ``default``, recorded and announced."""
    rebuilt = _rebuild(stored, base)
    exact = isinstance(stored, Mapping) and stored.get("exact", True)  # older records: compare
    if rebuilt is not None and exact and _identity(describe_object(rebuilt)) == _identity(stored):
        return rebuilt
    key = "sampler" if base is Sampler else "pruner"
    what = stored.get("class") if isinstance(stored, Mapping) else stored
    _logger.warning("Study %r: its stored %s %s cannot be rebuilt exactly here (a class that "
                    "is not importable, or arguments it does not keep); this run uses %r and "
                    "records it. Pass %s= to choose.", name, key, what, default, key)
    store.set_study_attr(study_id, key, describe_object(default))
    return default


def _identity(description: Mapping[str, Any]) -> Any:
    """Class and arguments of a recorded sampler or pruner, as JSON reads them back."""
    return json.loads(json.dumps([description.get("class"), description.get("params")],
                                 default=repr))


def _warn_index_readings(space: SearchSpace, params: Any, flat: Mapping[str, Any]) -> None:
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


def _check_plugin(obj: object, base: type, name: str) -> None:
    if not isinstance(obj, base):
        raise ConfigurationError(
            f"Expected `{name}` to be an instance of {base.__name__}. Received: {name}={obj!r} "
            f"(of type {type(obj).__name__}).{plugin_hint(obj, base)}"
        )


def _unique_name() -> str:
    import datetime as dt
    import uuid

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"study-{stamp}-{uuid.uuid4().hex[:6]}"


def _study_attrs(space: SearchSpace | None, sampler: Sampler, pruner: Pruner, seed: int | None,
                 metric: str, logdir: str | None, heartbeat_interval: float | None,
                 grace_period: float | None, max_retries: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "sampler": describe_object(sampler), "pruner": describe_object(pruner), "seed": seed,
        "metric": metric, "logdir": None if logdir is None else os.path.abspath(logdir),
        "heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
        "max_retries": max_retries, "hpo_plugins_version": __version__,
    }
    if space is not None:
        attrs.update(_space_record(space))
    return attrs


#: The study attributes that record its space (see :func:`_space_record`).
_SPACE_KEYS = ("space", "space_fingerprint", "space_constants")


def _space_record(space: SearchSpace) -> dict[str, Any]:
    """What a study stores about its space: the description (tables, plots and the CLI read
    it without the space), the fingerprint, and the constants (values outside ``hp``
    expressions and the content of choice options that the description shows by index), so
    a resume with an edited constant is refused with what changed. All JSON."""
    return {"space": space.describe(), "space_fingerprint": space.fingerprint,
            "space_constants": space.constants()}


def _create_or_resume(store: Storage, name: str, direction: Direction,
                      attrs: Mapping[str, Any], load_if_exists: bool, inherit: Sequence[str],
                      space: SearchSpace | None
                      ) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    """Create the study, or resume it: then the stored settings named in ``inherit`` (those
    the call left out) are kept and returned; the others are overwritten by ``attrs``. The
    third value is the study's stored attributes before this call (None: it created it).
    ``space`` is the parsed space of ``attrs``, checked against the stored one."""
    try:
        study_id = store.create_study(name, direction, attrs)
        _logger.info("Created study %r in %s.", name, store.describe())
        return study_id, {}, None
    except DuplicateStudyError:
        if not load_if_exists:
            raise DuplicateStudyError(
                f"A study named {name!r} already exists in {store.describe()}. Pass "
                f"load_if_exists=True to resume it, or choose another study_name."
            ) from None
    study_id = store.get_study_id(name)
    info = store.get_study(study_id)
    _check_resume(info.name, info.direction, info.attrs, direction, space)
    if "metric" not in inherit:
        _check_metric_switch(store, info, attrs["metric"])
        if not info.attrs.get(METRIC_GIVEN_ATTR):
            store.set_study_attr(study_id, METRIC_GIVEN_ATTR, True)
    kept = {key: info.attrs[key] for key in inherit
            if key in info.attrs and info.attrs[key] is not None}
    for key in _INHERITABLE:
        if key not in kept:
            store.set_study_attr(study_id, key, attrs[key])
    if space is not None and (any(info.attrs.get(key) is None for key in _SPACE_KEYS)
                              or info.attrs["space_fingerprint"] != space.fingerprint):
        _record_space(store, study_id, name, info.attrs, attrs)
    done = sum(info.n_trials.values())
    _logger.info("Resuming study %r in %s (%d trials so far).", name, store.describe(), done)
    if kept:
        _logger.info("Study %r keeps its stored %s (not given in this call).", name,
                     ", ".join(sorted(kept)))
    return study_id, kept, dict(info.attrs)


def _record_space(store: Storage, study_id: int, name: str, stored: Mapping[str, Any],
                  attrs: Mapping[str, Any]) -> None:
    """Record the space of a resumed study that has no (full) record of it: one created
    without a space (ask/tell by hand), so readers without the space (the CLI, exports, plots)
    show its parameters; or one stored before constants were recorded, so later resumes check
    them too (this one could not: nothing recorded what they were); or one recorded as an
    earlier version read it (:attr:`SearchSpace.earlier_fingerprints`), so readers show what
    this version shows (a choice of numpy scalars by its values)."""
    if stored.get("space_fingerprint") is not None and stored.get("space_constants") is None:
        _logger.info("Study %r: recorded the constants of its space (values outside hp "
                     "expressions, choice options); from now on a resume checks them too.", name)
    for key in _SPACE_KEYS:
        store.set_study_attr(study_id, key, attrs[key])


def _check_resume(name: str, stored_dir: Direction, stored: Mapping[str, Any],
                  direction: Direction, space: SearchSpace | None) -> None:
    if stored_dir is not direction:
        raise ConfigurationError(
            f"Study {name!r} exists with direction={stored_dir.value!r}; this call asked for "
            f"{direction.value!r}. Use the same direction, or another study_name."
        )
    difference = None if space is None else stored_space_difference(stored, space)
    if difference is not None:
        raise ConfigurationError(
            f"Study {name!r} exists with another search space{difference}. Expected the space "
            f"it was created with: restore it to resume this study. To search the new space, "
            f"choose another study_name, or delete the old study "
            f"(hpo.delete_study({name!r}, storage) or `hpo-plugins delete --study {name}`)."
            f"{_CHANGING_CONSTANT_HINT if 'constants ' in difference else ''}"
        )


def _check_metric_switch(store: Storage, info: StudyInfo, metric: str) -> None:
    """Refuse a resume that names another metric than the one a call named for the study while
    trials hold values of it: later trials would be ranked against values of another quantity
    (training ``loss`` against ``val_loss``) and ``best_trial`` would mean nothing.

    A study whose stored metric is only the default (no call named one: its objective may
    report another metric through ``HPOCallback("val_acc")``), or whose trials all failed (a
    typo in the first run's metric), may switch.
    """
    stored = info.attrs.get("metric")
    if stored is None or stored == metric or not info.attrs.get(METRIC_GIVEN_ATTR):
        return
    valued = sum(info.n_trials.get(state, 0) for state in _VALUED_STATES)
    if info.n_trials.get(TrialState.RUNNING):  # all but those whose process is gone unreported
        valued += sum(bool(t.intermediate_values) or not gone_here(t.system_attrs.get("worker"))
                      for t in store.get_all_trials(info.study_id, [TrialState.RUNNING]))
    if not valued:
        return
    raise ConfigurationError(
        f"Study {info.name!r} exists with metric={stored!r}, and {valued} of its trials hold "
        f"{stored!r} values; this call asked for metric={metric!r}, whose values cannot be "
        f"ranked with them. Pass metric={stored!r} (or leave it out) to resume this study, or "
        f"choose another study_name for {metric!r}."
    )


#: Study attribute: whether a call named the study's ``metric`` (else it is the default).
METRIC_GIVEN_ATTR = "metric_given"

#: The states of trials that hold values of the study's metric (RUNNING ones count when they
#: reported).
_VALUED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


#: Said when constants differ: one that changes by itself between runs is a likely cause.
_CHANGING_CONSTANT_HINT = (
    " A value that changes from run to run by itself (a timestamped folder, a temporary "
    "directory, the date) does not belong in the space: pass it to the objective another way "
    "(a functools.partial argument, a global).")


def stored_space_difference(stored: Mapping[str, Any], space: SearchSpace) -> str | None:
    """How ``space`` differs from the space recorded in a study's attributes ``stored``, as
    `` (...)`` for a message; None when it is the same, or the study recorded none.

    A study stored before constants were recorded (no ``space_constants``) holds the
    fingerprint of the parameters only (:attr:`SearchSpace.parameters_fingerprint`): it is
    compared on those, so it still opens and resumes with its space (the constants are then
    recorded, and checked from the next resume on).
    """
    old = stored.get("space_fingerprint")
    if old is None:
        return None
    pairs = space.earlier_fingerprints  # this version's reading of the space first
    if stored.get("space_constants") is None:
        same = any(old in pair for pair in pairs)
    else:
        same = any(old == fingerprint for fingerprint, _ in pairs)
    return None if same else _space_changes(stored, _space_record(space))


def earlier_fingerprints(space: SearchSpace) -> list[str]:
    """The fingerprints earlier versions gave ``space`` (other than its own), from which they
    derived study names: see :func:`earlier_derived_name`."""
    found = [f for pair in space.earlier_fingerprints for f in pair]
    return [f for i, f in enumerate(found) if f != space.fingerprint and f not in found[:i]]


def earlier_derived_name(store: Storage, name: str, earlier: Sequence[str],
                         space: SearchSpace) -> str:
    """The derived study name to use: ``name``, or one of ``earlier`` to go on with a study
    that an earlier version named.

    Earlier versions derived other names for some spaces: from
    :attr:`~SearchSpace.parameters_fingerprint` (before constants counted in the fingerprint)
    for a space with constants, and from another reading of a choice of numpy scalars (before
    they were read as their values: see :attr:`SearchSpace.earlier_fingerprints`). Such a
    study is resumed under its name, so an upgrade does not start a script's study afresh,
    as long as no study of the new name exists and the space is the one it records (once
    resumed, it records this version's reading, so a later edit gets a new study again).
    """
    try:
        store.get_study_id(name)
        return name
    except StudyNotFoundError:
        pass
    for candidate in earlier:
        if candidate == name:
            continue
        try:
            info = store.get_study(store.get_study_id(candidate))
        except StudyNotFoundError:
            continue
        if stored_space_difference(info.attrs, space) is None:
            _logger.info("Study %r: the name that an earlier version derived for this space, "
                         "kept (a new study would be %r).", candidate, name)
            return candidate
    return name


def _space_changes(stored: Mapping[str, Any], attrs: Mapping[str, Any]) -> str:
    """What differs between the stored space and this one, from their records: labels only
    in one, parameters whose kind, bounds, options or conditions changed, and constants
    changed, added or removed (at most five of each named); the fingerprints when a
    description is missing."""
    before, after = stored.get("space"), attrs.get("space")
    if not isinstance(before, (list, tuple)) or not isinstance(after, (list, tuple)):
        return (f" (fingerprint {stored.get('space_fingerprint')}, this one "
                f"{attrs.get('space_fingerprint')})")
    old = {str(p.get("label")): p for p in before if isinstance(p, Mapping)}
    new = {str(p.get("label")): p for p in after if isinstance(p, Mapping)}
    parts = []
    if gone := [label for label in old if label not in new]:
        parts.append(f"only in the stored space: {_few(gone)}")
    if added := [label for label in new if label not in old]:
        parts.append(f"only in this one: {_few(added)}")
    changed = [f"{label} ({_shown_param(old[label])} -> {_shown_param(new[label])})"
               for label in old if label in new and old[label] != new[label]]
    if changed:
        parts.append(f"changed: {_few(changed)}")
    parts.extend(_constant_changes(stored.get("space_constants"), attrs.get("space_constants")))
    return f" ({'; '.join(parts)})" if parts else " (the same parameters, in another order)"


def _constant_changes(before: Any, after: Any) -> list[str]:
    """The constants (:meth:`SearchSpace.constants`) that differ, by where they are: changed
    (old -> new), only in the stored space, only in this one. Nothing when either record is
    missing (a study stored before constants were recorded)."""
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return []
    parts = []
    if changed := [f"{where}: {_clip(before[where])} -> {_clip(after[where])}"
                   for where in before if where in after and before[where] != after[where]]:
        parts.append(f"constants changed: {_few(changed, sep='; ')}")
    if gone := [f"{where}: {_clip(before[where])}" for where in before if where not in after]:
        parts.append(f"constants only in the stored space: {_few(gone, sep='; ')}")
    if added := [f"{where}: {_clip(after[where])}" for where in after if where not in before]:
        parts.append(f"constants only in this one: {_few(added, sep='; ')}")
    return parts


def _clip(text: Any, most: int = 80) -> str:
    """A stored constant's text, cut for a message."""
    text = str(text)
    return text if len(text) <= most else text[:most - 3] + "..."


def _few(items: Sequence[str], most: int = 5, sep: str = ", ") -> str:
    shown = sep.join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _shown_param(param: Mapping[str, Any]) -> str:
    """One parameter's description, short: its kind and arguments, options, conditions."""
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in (param.get("args") or {}).items())
    text = f"{param.get('kind')}({args})" if args else str(param.get("kind"))
    if param.get("options"):
        text += f" options {param['options']}"
    conditions = [c for c in param.get("conditions") or [] if c]
    if conditions:
        text += f" when {conditions}"
    return text


def load_study(study_name: str, storage: Any = None, *, space: Any = None,
               sampler: Sampler | None = None, pruner: Pruner | None = None) -> Study:
    """Open an existing study.

    Without ``space`` the study can be read (trials, best values, exports) and its trials can
    report and prune, but it cannot ``ask``. The pruner is rebuilt from the study's record when
    not given, so a child process prunes exactly like its parent.

    Raises:
        StudyNotFoundError: No such study; the message lists the studies in the storage. A
            SQLite file that does not exist (a mistyped path) is refused before it is opened,
            so nothing is created.
    """
    if sampler is not None:
        _check_plugin(sampler, Sampler, "sampler")
    if pruner is not None:
        _check_plugin(pruner, Pruner, "pruner")
    _check_name(study_name)
    refuse_missing_sqlite_file(study_name, storage)
    store = get_storage(storage)
    study_id = store.get_study_id(study_name)
    info = store.get_study(study_id)
    attrs = info.attrs
    parsed = as_space(space) if space is not None else None
    difference = None if parsed is None else stored_space_difference(attrs, parsed)
    if difference is not None:
        raise ConfigurationError(
            f"Study {study_name!r} was created with another search space{difference}. "
            f"Expected the space it was created with: pass that one as space=."
        )
    if parsed is not None and sampler is None:
        from hpo_plugins.samplers import TPESampler

        sampler = _rebuild(attrs.get("sampler"), Sampler) or TPESampler()
    pruner = pruner or _rebuild(attrs.get("pruner"), Pruner) or NopPruner()
    interval = attrs.get("heartbeat_interval")
    return Study(study_name=study_name, storage=store, study_id=study_id,
                 direction=info.direction, space=parsed, sampler=sampler, pruner=pruner,
                 seed=attrs.get("seed"), metric=attrs.get("metric") or DEFAULT_METRIC,
                 logdir=attrs.get("logdir"), heartbeat_interval=interval,
                 grace_period=attrs.get("grace_period"),
                 max_retries=int(attrs.get("max_retries") or 0))


def _rebuild(description: Any, base: type | tuple[type, ...]) -> Any:
    """Rebuild a sampler or pruner from ``describe_object`` output; None if impossible."""
    if not isinstance(description, Mapping) or "class" not in description:
        return None
    import importlib

    module_name, _, qualname = str(description["class"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
        if not (isinstance(cls, type) and issubclass(cls, base)):
            # a record names a class to call: never call anything but a sampler or pruner
            _logger.warning("The study record names %s, which is not a %s; using the default.",
                            description["class"], _base_names(base))
            return None
        params = dict(description.get("params") or {})
        for key, value in params.items():
            if is_description(value):  # a wrapped sampler or pruner
                params[key] = _rebuild(value, (Sampler, Pruner))
                if params[key] is None:
                    return None
        obj = cls(**params)
    except Exception:  # a user class that is not importable here, or repr'd params
        _logger.warning("Could not rebuild %s from the study record; using the default.",
                        description["class"])
        return None
    return obj if isinstance(obj, base) else None


def _base_names(base: type | tuple[type, ...]) -> str:
    return " or ".join(b.__name__ for b in (base if isinstance(base, tuple) else (base,)))


def delete_study(study_name: str, storage: Any = None) -> None:
    """Delete a study and all its trials (values, reports, attributes) from the storage.

    It cannot be undone. Only the database records go: files the trials wrote (trial
    directories, TensorBoard runs under the study's ``logdir``) stay on disk. A worker still
    running one of its trials gets an error when it reports or tells.

    Args:
        study_name: The study's name.
        storage: As in :func:`load_study`: None (the default SQLite file), a URL or a Storage.

    Raises:
        StudyNotFoundError: No such study (the message lists the studies in the storage), or a
            SQLite file that does not exist; nothing is created then.

    Example:
        >>> import hpo_plugins as hpo
        >>> storage = hpo.storages.InMemoryStorage()
        >>> _ = hpo.create_study(space={"x": hpo.hp.uniform("x", 0, 1)}, study_name="old",
        ...                      storage=storage)
        >>> hpo.delete_study("old", storage)
        >>> [info.name for info in storage.list_studies()]
        []
    """
    _check_name(study_name)
    refuse_missing_sqlite_file(study_name, storage)
    store = get_storage(storage)
    try:
        store.delete_study(store.get_study_id(study_name))
        _logger.info("Deleted study %r and its trials from %s.", study_name, store.describe())
    finally:
        if store is not storage:  # opened here: close it (a given Storage stays open)
            store.close()


def refuse_missing_sqlite_file(study_name: str, storage: Any) -> None:
    """Raise StudyNotFoundError when ``storage`` is a SQLite URL whose file does not exist.

    Opening it would create the file and write the library's tables into it, only to find no
    study there: functions that need an existing study (``load_study``, ``delete_study``)
    create nothing. The command line's read commands use the same rule.
    """
    path = missing_sqlite_file(storage)
    if path is None:
        return
    where = (f" (the default storage: ${DEFAULT_STORAGE_ENV}, else sqlite:///hpo.db in the "
             f"working directory)" if storage is None else "")
    raise StudyNotFoundError(
        f"No study named {study_name!r}: the SQLite file {path}{where} does not exist, and "
        f"nothing was created. Expected the URL of an existing study's file: check the path "
        f"(three slashes before a relative one, 'sqlite:///runs/hpo.db', four before an "
        f"absolute one), or create the study with create_study.")
