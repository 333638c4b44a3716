"""The live handle of a running trial."""

from __future__ import annotations

import contextvars
import logging
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpo_plugins import context
from hpo_plugins._artifacts import claim_root
from hpo_plugins._frozen import (
    DIVERGED_ATTR,
    LOST_ATTR,
    FrozenTrial,
    TrialState,
    lists_as_tuples,
)
from hpo_plugins._numbers import read_number, read_step
from hpo_plugins._observers import notify
from hpo_plugins._ported import TRIAL_ATTRIBUTES, foreign_attribute
from hpo_plugins._sigterm import INTERRUPTED_BY_USER
from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins.study import Study

__all__ = ["Trial"]

_logger = logging.getLogger(__name__)

#: System attributes that carry the adapters' marks to other processes (see ``refresh``).
_PRUNED_ATTR = "pruned"
_FAIL_ATTR = "fail_reason"


class Trial:
    """A trial while it runs: its parameters, reports, pruning decisions and attributes.

    Get one from ``study.ask()``, as the objective's current trial
    (:func:`hpo_plugins.current_trial`), or in a child process that a launcher started. Every
    method writes through the study's storage at once, so other processes see the trial live.

    Example:
        >>> import hpo_plugins as hpo
        >>> study = hpo.create_study(space={"x": hpo.hp.uniform("x", -1, 1)}, storage=":memory:")
        >>> with study.ask() as trial:
        ...     for step in range(3):
        ...         trial.report(trial.params["x"] ** 2, step)
        >>> _ = study.tell(trial, trial.params["x"] ** 2)
    """

    def __init__(self, study: Study, frozen: FrozenTrial) -> None:
        self.study = study
        self.trial_id = frozen.trial_id
        self.number = frozen.number
        #: When the trial started (UTC), as stored.
        self.datetime_start = frozen.datetime_start
        self.flat_params: dict[str, Any] = dict(frozen.params)
        self._natural = frozen.natural
        self._curve: dict[int, float] = dict(frozen.intermediate_values)
        #: The deepest step of ``_curve``, kept: ``max`` of a long curve at every report made
        #: reporting cost grow with the curve (``add_trial`` of 20,000 points took 3 s).
        self._last_step: int | None = max(self._curve) if self._curve else None
        self._user_attrs: dict[str, Any] = dict(frozen.user_attrs)
        self._system_attrs: dict[str, Any] = dict(frozen.system_attrs)
        # Marks stored by mark_pruned/mark_failed (a trial reopened by number keeps them).
        self._pruned = bool(frozen.system_attrs.get(_PRUNED_ATTR))
        reason = frozen.system_attrs.get(_FAIL_ATTR)
        self._fail_reason: str | None = None if reason is None else str(reason)
        self._handed_over = False  # set by context.trial_env: reads then go to the storage
        #: Whether a ``with trial:`` block that raises tells the trial (see ``__exit__``):
        #: set by :meth:`Study.ask` for the caller's own trials; the run loop clears it, as it
        #: tells its trials itself, and a trial opened in another process (script mode,
        #: Lightning's handover) never has it, since its parent tells it.
        self.finish_on_error = False
        #: Set by :meth:`Study.ask`: its sampling waited for earlier trials to finish (``lag``,
        #: a seeded parallel run), maybe for as long as one runs. The run loop then checks its
        #: timeout again before the objective starts; an enqueued or retried trial, claimed
        #: without that wait, is never held back so.
        self.waited_for_earlier = False
        self._tokens: list[contextvars.Token[tuple[Trial, ...]]] = []

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, study={self.study.study_name!r})"

    if not TYPE_CHECKING:  # type checkers still refuse every unknown name

        def __getattr__(self, name: str) -> Any:
            """Name ours for an Optuna ``Trial`` method (``suggest_float``...)."""
            return foreign_attribute(self, name, TRIAL_ATTRIBUTES)

    # -- parameters ---------------------------------------------------------------------------

    @property
    def params(self) -> Any:
        """The nested natural value for this trial (what ``hyperopt.space_eval`` builds).

        Without the study's space (a child process of script mode, a study opened by name) it
        is the stored JSON value with its lists made tuples again. That equals the built value
        for numbers, str, bools, None and containers of them with str dict keys; otherwise,
        integer dict keys come back as str, a non-finite float as its text (``'inf'``) and
        other objects (functions, instances) as their ``repr``
        (see :meth:`Study.natural_params`)."""
        if self.study.space is not None:
            return self.study.space.build(self.flat_params)
        return lists_as_tuples(self._natural)

    # -- reporting and pruning ----------------------------------------------------------------

    def report(self, value: float, step: int | None = None) -> None:
        """Record an intermediate ``value`` at ``step`` (default: the next step after the last).

        A NaN or infinite value (a diverged training) is not stored: the trial is marked to end
        as FAIL with that reason, and :meth:`should_prune` answers True from then on so that
        adapters stop the training at once. Steps may not go back; a second report at the last
        step replaces its value, and :meth:`should_prune` then decides on the new one (Optuna
        keeps the first and warns).

        Raises:
            ConfigurationError: ``value`` is not a number or ``step`` not an integer >= 0.
        """
        number = _as_float(value)
        if step is None:
            step = self._last_step + 1 if self._last_step is not None else 0
        checked = read_step(step)
        if checked is None:
            raise ConfigurationError(
                f"Expected `step` to be an integer from 0 to 2**63 - 1 (an epoch or a global "
                f"step). Received: step={step!r}."
            )
        step = checked
        if self._last_step is not None and step < self._last_step:
            raise ConfigurationError(
                f"Expected steps that never go back: the last report was at step "
                f"{self._last_step}. Received: step={step}. Report epochs or global steps in "
                f"increasing order."
            )
        if not math.isfinite(number):
            _logger.warning("Trial %d reported %r at step %d; it will end as FAIL.",
                            self.number, number, step)
            self.mark_failed(f"reported a non-finite value ({number!r}) at step {step}")
            self.set_system_attr(DIVERGED_ATTR, True)  # after the local mark: a failed write
            return  # must not leave should_prune() False
        self.study.storage.set_intermediate_value(self.trial_id, step, number)
        self._curve[step] = number  # after the write: a refused write leaves no phantom point
        self._last_step = step
        notify(self.study, "value_reported", self, step, number)

    @property
    def intermediate_values(self) -> dict[int, float]:
        """What this process reported so far, step -> value (see :meth:`refresh`)."""
        self._pull_if_handed_over()
        return dict(self._curve)

    @property
    def last_value(self) -> float | None:
        """The value reported at the deepest step, or None."""
        self._pull_if_handed_over()
        return None if self._last_step is None else self._curve[self._last_step]

    def should_prune(self) -> bool:
        """Ask the study's pruner whether this trial should stop now.

        The decision uses a fresh snapshot of every trial in the storage, so it is the same in
        any process. It does not stop anything by itself: raise :class:`TrialPruned`, or (in an
        adapter) set the framework's stop flag and call :meth:`mark_pruned`.
        """
        if self._fail_reason is not None:
            return True
        if not self._curve:
            return False
        snapshot = self.study.storage.get_all_trials(self.study.study_id)
        me = next((t for t in snapshot if t.trial_id == self.trial_id), None)
        if me is None:
            return False
        others = [t for t in snapshot if t.trial_id != self.trial_id]
        return bool(self.study.pruner.prune(me, others, self.study.direction))

    def mark_pruned(self) -> None:
        """Record that this trial was stopped early; the run loop ends it as PRUNED.

        The mark is also stored, so a parent process that handed this trial over sees it.
        """
        self._pruned = True
        self.set_system_attr(_PRUNED_ATTR, True)

    def mark_failed(self, reason: str) -> None:
        """Record that this trial must end as FAIL with ``reason`` whatever the objective returns.

        Adapters use it for faults they detect but must not raise through a framework (for
        example a monitored metric that never appears). The mark is also stored, so a parent
        process that handed this trial over sees it.
        """
        reason = reason if isinstance(reason, str) else str(reason)  # an exception, a code...
        self._fail_reason = reason
        self.set_system_attr(_FAIL_ATTR, reason)

    @property
    def pruned(self) -> bool:
        """True once :meth:`mark_pruned` was called."""
        self._pull_if_handed_over()
        return self._pruned

    @property
    def fail_reason(self) -> str | None:
        """The reason given to :meth:`mark_failed`, if any."""
        self._pull_if_handed_over()
        return self._fail_reason

    def refresh(self) -> None:
        """Adopt what other processes recorded for this trial: reports, attributes and marks.

        A trial handed to a child process (:func:`hpo_plugins.context.trial_env`, used by the
        launchers and by ``HPOCallback`` under ``strategy="ddp_spawn"``) is reported to, pruned
        or failed there, through the storage. After such a hand-over, :attr:`intermediate_values`,
        :attr:`last_value`, :attr:`pruned` and :attr:`fail_reason` call this first, so the run
        loop ends the trial with what the child saw.
        """
        frozen = self.study.storage.get_trial(self.trial_id)
        self._curve.update(frozen.intermediate_values)
        self._last_step = max(self._curve) if self._curve else None
        self._user_attrs.update(frozen.user_attrs)
        self._system_attrs.update(frozen.system_attrs)
        self._pruned = self._pruned or bool(frozen.system_attrs.get(_PRUNED_ATTR))
        reason = frozen.system_attrs.get(_FAIL_ATTR)
        if self._fail_reason is None and reason is not None:
            self._fail_reason = str(reason)

    def _pull_if_handed_over(self) -> None:
        if self._handed_over:
            self.refresh()

    # -- attributes ---------------------------------------------------------------------------

    def set_user_attr(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``; read back as ``user_attrs`` on ``study.trials``."""
        self.study.storage.set_trial_user_attr(self.trial_id, key, value)
        self._user_attrs[key] = value

    @property
    def user_attrs(self) -> Mapping[str, Any]:
        """User attributes set so far."""
        return dict(self._user_attrs)

    def set_system_attr(self, key: str, value: Any) -> None:
        """Store a library attribute (adapters and launchers use it, users rarely)."""
        self.study.storage.set_trial_system_attr(self.trial_id, key, value)
        self._system_attrs[key] = value

    @property
    def system_attrs(self) -> Mapping[str, Any]:
        """Library attributes set so far."""
        return dict(self._system_attrs)

    @property
    def log_dir(self) -> str:
        """This trial's own directory (checkpoints, framework logs), created on first use.

        ``<study logdir>/trial_<number>`` when the study has a ``logdir``, else
        ``hpo_runs/<study name>/trial_<number>`` in the working directory (unless another
        study of that name has that folder: see :mod:`hpo_plugins._artifacts`).

        Raises:
            ConfigurationError: The study's ``logdir`` holds another study's trial folders.
        """
        path = self._system_attrs.get("log_dir")
        if path is None:
            path = os.path.abspath(os.path.join(claim_root(self.study),
                                                f"trial_{self.number:04d}"))
            self.set_system_attr("log_dir", path)
        os.makedirs(path, exist_ok=True)
        return str(path)

    # -- context ------------------------------------------------------------------------------

    def __enter__(self) -> Trial:
        self._tokens.append(context.push(self))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: object) -> None:
        """Leave the trial's context. For a trial the caller asked itself
        (:attr:`finish_on_error`), an exception that ends its outermost block finishes the
        trial if nothing told it: PRUNED for :class:`TrialPruned`, else FAIL with the error as
        its reason. Without this, a hand-run ``with study.ask() as trial:`` block that raised
        left the trial RUNNING for good (it has no heartbeat), counting toward
        ``max_trials``. Trials of the run loop or of a parent process are told by their owner.
        """
        context.pop(self._tokens.pop())
        if exc is not None and self.finish_on_error and not self._tokens:
            self._finish_after(exc)

    def _finish_after(self, exc: BaseException) -> None:
        """Tell the trial for the exception that left its block, unless the block told it
        already. A failure to tell is logged, never raised over ``exc``."""
        from hpo_plugins._outcome import tell_raised_pruned
        from hpo_plugins._sigterm import exit_as_sigterm, sigterm_reason, stopped_by_sigterm
        from hpo_plugins.exceptions import is_trial_pruned

        try:
            if self.study.storage.get_trial(self.trial_id).state is not TrialState.RUNNING:
                return
            if is_trial_pruned(exc):  # as the run loop tells it: PRUNED, or FAIL after a NaN
                tell_raised_pruned(self.study, self)
                return

            lost = stopped_by_sigterm(type(exc))
            reason = (f"{INTERRUPTED_BY_USER} (KeyboardInterrupt)"
                      if isinstance(exc, KeyboardInterrupt)
                      else sigterm_reason(exc, type(exc)) if lost
                      else f"{type(exc).__name__}: {exc}")
            frozen = self.study.tell(self, state=TrialState.FAIL, fail_reason=reason,
                                     system_attrs={LOST_ATTR: True} if lost else None)
            _logger.warning("Trial %d marked FAIL: its block raised %s.", self.number, reason)
            if lost:  # a preempted machine, as in the run loop: retried under max_retries
                exit_as_sigterm(exc)
                self.study.requeue_lost(frozen)
        except Exception as error:  # the block's own exception is the one to see
            _logger.warning("Trial %d could not be finished after its block raised (%s).",
                            self.number, error)


def _as_float(value: Any) -> float:
    """Accept Python, numpy and 0-d tensor numbers; reject the rest clearly."""
    number, what = read_number(value)
    if number is None:
        hint = ""
        if isinstance(value, Mapping):  # Ray Tune's tune.report({...}), Keras' logs
            hint = (" Report the one metric the pruner judges, e.g. trial.report(metrics["
                    "'val_loss'], step); keep the others with trial.set_user_attr(name, value),"
                    " or return a dict with 'loss' and them from the objective.")
        raise ConfigurationError(
            f"Expected the reported value to be a number (a float, or a numpy or torch "
            f"scalar). Received: {what}.{hint}"
        )
    return number

