"""The study: ask/tell over a storage, and the functions that create and load studies."""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import numbers
import threading
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
from hpo_plugins._numbers import optional_count, read_number
from hpo_plugins._observers import TrialObserver, notify
from hpo_plugins._ported import (
    FMIN_ARGUMENTS,
    STUDY_ATTRIBUTES,
    foreign_attribute,
    ported_arguments,
)
from hpo_plugins._process import refuse_in_importing_worker
from hpo_plugins._results import json_values, read_result_dict, store_other_keys
from hpo_plugins._sigterm import INTERRUPTED_BY_USER
from hpo_plugins._study_checks import (
    added_curve,
    as_state,
    as_trial_id,
    check_ask,
    check_user_attrs,
    json_natural,
    last_report,
    marked_state,
    no_best_message,
    non_finite_number,
    non_finite_reason,
    parse_state,
    require_frozen,
    same_storage,
    told_number,
    warn_index_readings,
)
from hpo_plugins._study_open import (
    create_study,
    delete_study,
    load_study,
)
from hpo_plugins._text import few, short_repr
from hpo_plugins.exceptions import (
    ConfigurationError,
    DuplicateParamsError,
    SearchSpaceExhausted,
    SpaceError,
    StudyFull,
)
from hpo_plugins.launchers import Launcher
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.samplers._base import History, Sampler
from hpo_plugins.space import SearchSpace
from hpo_plugins.storages import (
    Storage,
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
        #: Side outputs told about every trial (see :class:`~hpo_plugins.TrialObserver`).
        self.observers: list[TrialObserver] = []
        self._tensorboard: TrialObserver | None = None  # the logdir's, rebuilt in workers
        self._stop_requested = False
        self._stop_error: BaseException | None = None  # raised by optimize at its end (stop())
        self._lag_wait_warned = False  # a long lagged wait is logged once (_warn_lag_wait)
        self._loss_max_warned = False  # a maximised Hyperopt "loss" is warned once (_EndTally)
        if logdir is not None:
            resolve_root(self)  # another study's logdir fails here, not at the first trial
            self._tensorboard = _tensorboard_observer(self)
            self.observers.append(self._tensorboard)

    def __repr__(self) -> str:
        return f"Study(name={self.study_name!r}, direction={self.direction.value!r})"

    if not TYPE_CHECKING:  # type checkers still refuse every unknown name

        def __getattr__(self, name: str) -> Any:
            """Name ours for an Optuna ``Study`` or Hyperopt ``Trials`` attribute."""
            return foreign_attribute(self, name, STUDY_ATTRIBUTES)

    def __getstate__(self) -> dict[str, Any]:
        """Launchers ship studies to worker processes: the logdir's TensorBoard observer is
        rebuilt there, the user's observers are sent (those that can be pickled: the others
        are left here, with a warning), and a copy starts without a stop request
        (:meth:`stop` is the sender's call)."""
        state = dict(self.__dict__)
        inside: frozenset[int] = getattr(_pickling, "ids", frozenset())
        if id(self) in inside:  # _sendable pickling an observer that holds this very study
            state["observers"] = []
        else:
            _pickling.ids = inside | {id(self)}
            try:
                state["observers"] = [o for o in self.observers
                                      if o is not self._tensorboard and _sendable(o)]
            finally:
                _pickling.ids = inside
        state["_tensorboard"] = None
        state["_stop_requested"] = False
        state["_stop_error"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stop_requested = False  # also for a study pickled before the flag existed
        self._stop_error = None
        self._tensorboard = None
        if self.logdir is not None:
            self._tensorboard = _tensorboard_observer(self)
            self.observers.insert(0, self._tensorboard)

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
        check_ask(heartbeat, system_attrs)
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
                  else f"{INTERRUPTED_BY_USER} (KeyboardInterrupt) while its parameters "
                       f"were sampled" if isinstance(exc, KeyboardInterrupt)
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
        params = self._propose(space, history, frozen.number)
        natural = json_natural(space.build(params))
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
        shown = few([_described(t) for t in blocking], most=10)
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

    def _propose(self, space: SearchSpace, history: History, number: int) -> dict[str, Any]:
        """The sampler's proposal for trial ``number``, checked against the space; a proposal
        that does not fit names the sampler, what it returned and the form expected (the
        space's own message was written for ``enqueue``)."""
        proposal = self.sampler.sample(space, history, self._rng(number))
        try:
            if not isinstance(proposal, Mapping):
                raise SpaceError(f"Expected a dict of parameters, not {type(proposal).__name__}.")
            return space.validate(proposal)
        except SpaceError as exc:
            raise SpaceError(
                f"The sampler {short_repr(self.sampler, 120)} proposed "
                f"{short_repr(proposal, 200)} for trial "
                f"{number}, which does not fit the space: {exc} A sampler returns flat "
                f"internal parameters: the active labels only, a choice as the index of its "
                f"option, numbers inside their ranges (see hpo_plugins.space; "
                f"space.sample_prior(rng) gives one such dict).") from exc

    def _sample_dedup(self, space: SearchSpace, limit: int | None, heartbeat: bool,
                      system_attrs: dict[str, Any]) -> FrozenTrial:
        """Samplers that must not repeat: propose, then insert atomically with a unique key."""
        for _ in range(_DEDUP_RETRIES):
            history = self._history(None)
            params = self._propose(space, history, history.number)
            try:
                frozen = self.storage.create_trial(
                    self.study_id, params=params, natural=json_natural(space.build(params)),
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
        require_frozen(dead, "dead", "requeue_lost")
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
        final = parse_state(state) if state is not None else marked_state(live)
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
        if final is TrialState.FAIL and non_finite_number(value):  # also with state="FAIL"
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
            value = last_report(live, self.study_name)
        number = told_number(live, value, state, self.study_name)
        if math.isfinite(number):
            return state, number, None
        reason = non_finite_reason(number)
        _logger.warning("Trial %d was told %s with the value %r: marked FAIL (%s).",
                        live.number, state.value, number, reason)
        return TrialState.FAIL, None, reason

    def _own_trial(self, trial: Trial | int) -> Trial:
        """The live trial ``tell`` finishes: a Trial of this study, or a number in it."""
        if isinstance(trial, Trial):
            other = trial.study
            if other is not self and (other.study_id != self.study_id
                                      or not same_storage(other.storage, self.storage)):
                if other.study_name != self.study_name:
                    where = ""
                elif same_storage(other.storage, self.storage):
                    where = (f" (another study of that name, deleted since: study id "
                             f"{other.study_id}, now {self.study_id})")
                else:
                    where = (f" through {other.storage!r}, a storage object not known to "
                             f"reach the same database as this study's {self.storage!r} "
                             f"(storages are matched by their portable_url, which "
                             f"{_url_state(other.storage)} and {_url_state(self.storage)})")
                raise ConfigurationError(
                    f"Expected a trial of study {self.study_name!r}. Received trial "
                    f"{trial.number} of study {other.study_name!r}{where}: tell each trial to "
                    f"the study that asked it.")
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
        trial_id = as_trial_id(trial_id)
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
            warn_index_readings(space, params, flat)
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
        check_user_attrs(user_attrs)
        extra: dict[str, Any] = {"user_attrs": user_attrs} if user_attrs else {}
        frozen = self.storage.create_trial(
            self.study_id, state=state, params=flat, natural=json_natural(space.build(flat)),
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
        final = parse_state(state)
        failure = None
        if isinstance(value, Mapping):  # a Hyperopt-style result: Trials.results[i]
            check_user_attrs(user_attrs)
            result = read_result_dict(value)
            user_attrs = {**json_values(result.others), **(user_attrs or {})}
            value, failure = result.value, result.failure
            if failure is not None:
                final = TrialState.FAIL
        steps = added_curve(intermediate_values)
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
                 launcher: Launcher | None = None) -> Study:
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
            show_progress_bar: A tqdm bar with the best value; default: when stderr is a TTY, and
                in a Jupyter notebook.
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
        return self.storage.get_all_trials(self.study_id, [as_state(s) for s in items])

    @property
    def best_trial(self) -> FrozenTrial:
        """The COMPLETE trial with the best value.

        Raises:
            ConfigurationError: No trial has completed yet; the message counts the trials
                by state (all failed or pruned is not the same as none run).
        """
        best = self.storage.best_trial(self.study_id, self.direction)
        if best is None:
            raise ConfigurationError(no_best_message(self.study_name, self.trials))
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
        require_frozen(frozen, "frozen", "natural_params")
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


def _url_state(storage: Storage) -> str:
    """Whether ``storage`` has a ``portable_url``, for a message (the URL itself may hold a
    password: :meth:`Storage.describe` shows it hidden)."""
    if getattr(storage, "portable_url", None) is None:
        return f"{type(storage).__name__} has none"
    return f"{storage.describe()} has"


def _sendable(observer: TrialObserver) -> bool:
    """Whether a user's observer can go to worker processes with the study; one that cannot
    (a lock, an open file, a client) is warned about once per class and stays here, where it
    hears only of the trials this process runs."""
    import cloudpickle

    try:
        cloudpickle.dumps(observer)
    except Exception as exc:
        name = type(observer).__qualname__
        if name not in _unsendable_warned:
            _unsendable_warned.add(name)
            _logger.warning(
                "Observer %r cannot be sent to worker processes (%s: %s): it hears only of the "
                "trials run in this process. Open what it holds (a file, a client) on first "
                "use, or define __getstate__ to leave it out.", observer, type(exc).__name__,
                exc)
        return False
    return True


#: Classes of observers already warned about by :func:`_sendable`.
_unsendable_warned: set[str] = set()
#: The studies whose ``__getstate__`` runs in this thread (``ids``): an observer that holds its
#: study (``Observer(study)``) pickles that study again inside :func:`_sendable`, which then
#: checked the observer again, without end.
_pickling = threading.local()


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
