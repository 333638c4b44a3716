"""Trial states and the immutable record of a trial, as storages return it."""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DIVERGED_ATTR", "Direction", "FrozenTrial", "TrialState"]

#: The system attribute, True, of a FAIL trial that reported or returned a NaN or an infinity
#: (a diverged training): unlike other failures, which may be passing faults, it says something
#: about its parameters, and the model-based samplers rank it last instead of leaving it out.
DIVERGED_ATTR = "diverged"
#: System attribute of a trial with a heartbeat: the grace period of the process that runs it.
#: Another process (with a shorter one) does not judge the trial lost before it has passed.
GRACE_ATTR = "grace_period"
#: System attribute of a trial failed because it was lost (its worker died, it was preempted):
#: one that ``max_retries`` allows to retry. A run re-queues such a trial that has no retry yet
#: (the process that failed it died before it re-queued it).
LOST_ATTR = "lost"
#: System attribute of a COMPLETE trial of a maximising study whose objective returned
#: Hyperopt's ``{"loss": ...}`` (which Hyperopt minimises): the calling process warns of it.
MAXIMISED_LOSS_ATTR = "maximised_loss"
#: User attribute of a trial trained by an adapter (``keras_tune``, ``lightning_objective``):
#: the path of its best checkpoint or weights, for the best model's reload.
CHECKPOINT_ATTR = "checkpoint"


class TrialState(str, enum.Enum):
    """Life cycle of a trial.

    ``WAITING`` trials hold enqueued (or retried) parameters and are claimed by the next ``ask``.
    ``RUNNING`` becomes exactly one of the three finished states, after which the trial never
    changes again.
    """

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"

    @property
    def is_finished(self) -> bool:
        """True for COMPLETE, PRUNED and FAIL."""
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Direction(str, enum.Enum):
    """Whether the study minimises or maximises its value."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    @classmethod
    def parse(cls, value: str | Direction) -> Direction:
        """Accept ``"minimize"``/``"maximize"`` (any case) or a ``Direction``."""
        if isinstance(value, Direction):
            return value
        if isinstance(value, str) and value.lower() in ("minimize", "maximize"):
            return cls(value.lower())
        from hpo_plugins.exceptions import ConfigurationError

        raise ConfigurationError(
            f'Expected `direction` to be "minimize" or "maximize". Received: direction={value!r}.'
        )

    def better(self, a: float, b: float) -> bool:
        """True if value ``a`` is strictly better than ``b`` in this direction."""
        return a < b if self is Direction.MINIMIZE else a > b

    def sign(self) -> float:
        """+1 for minimise, -1 for maximise: ``sign * value`` is always a loss."""
        return 1.0 if self is Direction.MINIMIZE else -1.0


@dataclass(frozen=True)
class FrozenTrial:
    """A snapshot of one trial as stored.

    Attributes:
        trial_id: Storage-wide unique id.
        number: Position in its study, 0-based and unique within the study.
        state: The :class:`TrialState`.
        value: The objective value (COMPLETE), or the last reported value (PRUNED), else None.
        params: Flat internal parameters, label -> value as Hyperopt stores them (a choice holds
            the index of its option; numbers are in natural units). Only active labels appear.
        natural: The nested natural value the objective received (JSON form), if known.
        intermediate_values: step -> reported value.
        user_attrs: JSON values set with ``Trial.set_user_attr``.
        system_attrs: JSON values the library keeps (fail reason, traceback, GPU, retries...).
        datetime_start: When the trial started running (UTC).
        datetime_complete: When it finished (UTC).
        last_heartbeat: Last heartbeat of a trial run by the run loop, else None.
    """

    trial_id: int
    number: int
    state: TrialState
    value: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    natural: Any = None
    intermediate_values: Mapping[int, float] = field(default_factory=dict)
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    system_attrs: Mapping[str, Any] = field(default_factory=dict)
    datetime_start: _dt.datetime | None = None
    datetime_complete: _dt.datetime | None = None
    last_heartbeat: _dt.datetime | None = None

    @property
    def duration(self) -> _dt.timedelta | None:
        """Wall time from start to completion, when both are known."""
        if self.datetime_start is None or self.datetime_complete is None:
            return None
        return self.datetime_complete - self.datetime_start

    @property
    def last_step(self) -> int | None:
        """The deepest step reported, or None if nothing was reported."""
        return max(self.intermediate_values) if self.intermediate_values else None

    @property
    def last_value(self) -> float | None:
        """The value reported at the deepest step, or None."""
        step = self.last_step
        return None if step is None else self.intermediate_values[step]

    @property
    def fail_reason(self) -> str | None:
        """Why a FAIL trial failed, if recorded."""
        reason = self.system_attrs.get("fail_reason")
        return None if reason is None else str(reason)

    @property
    def log_dir(self) -> str | None:
        """The trial's directory (checkpoints, logs), if one was assigned."""
        path = self.system_attrs.get("log_dir")
        return None if path is None else str(path)


def utcnow() -> _dt.datetime:
    """Timezone-aware current UTC time; every timestamp in storage uses it."""
    return _dt.datetime.now(_dt.timezone.utc)


def lists_as_tuples(value: Any) -> Any:
    """A stored natural value as the space builds it: JSON turned Hyperopt's tuples into lists,
    and every list of a space is built as a tuple, so each list becomes a tuple again, at any
    depth. Dicts stay dicts."""
    if isinstance(value, list):
        return tuple(lists_as_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: lists_as_tuples(item) for key, item in value.items()}
    return value
