"""The pruner contract: a pure function of (this trial's curve, the others' curves, direction)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins.pruners._curves import MEMO_ATTR
from hpo_plugins.samplers._base import constructor_params

__all__ = ["NopPruner", "Pruner"]


class Pruner(abc.ABC):
    """Base class of every pruner.

    ``Trial.should_prune()`` calls :meth:`prune` each time the objective (or an adapter's
    callback, after each report) asks, with a fresh snapshot of the study from the storage, so
    the decision is the same in every process. It does not call it before the trial's first
    report (the answer is then False), nor once the trial is marked failed, by a NaN or
    infinite report or ``mark_failed`` (the answer is then True: the trial ends FAIL).

    An implementation must be pure: no I/O, no state that changes between calls, no randomness
    except what it derives from the trials themselves (e.g. a bracket from the trial number). It
    must tolerate other trials in any state, with curves of any length, and steps that are not
    contiguous (reports every few epochs). Constructors only store their keyword arguments under
    the same names, so the study can record the pruner and rebuild it in a child process.
    """

    @abc.abstractmethod
    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """True if ``trial`` should stop now.

        Args:
            trial: The trial asking; its ``intermediate_values`` hold its curve so far, the
                latest report included.
            others: Every other trial of the study, any state, by number.
            direction: Whether lower or higher values are better.
        """

    def __new__(cls, *args: Any, **kwargs: Any) -> Pruner:
        """Refuse positional options with the fix, for a pruner that takes them by keyword only
        (Optuna's ``MedianPruner(5, 3)``: see
        :func:`~hpo_plugins._ported.check_constructor_call`)."""
        from hpo_plugins._ported import PRUNER_ARGUMENTS, check_constructor_call

        check_constructor_call(cls, args, kwargs, PRUNER_ARGUMENTS, whose="Keras Tuner's")
        return super().__new__(cls)

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, read back from attributes of the same names."""
        return constructor_params(self)

    def __getstate__(self) -> dict[str, Any]:
        """The pruner's attributes without the memo of curves some pruners keep between calls
        (:mod:`._curves`): a copy or a pickled pruner starts afresh."""
        state = dict(self.__dict__)
        state.pop(MEMO_ATTR, None)
        return state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class NopPruner(Pruner):
    """Never prunes. The default: every trial runs to the end.

    Example:
        >>> NopPruner().prune(trial, [], Direction.MINIMIZE)  # doctest: +SKIP
        False
    """

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """Always False."""
        return False
