"""Patience: prune only a trial whose curve has stopped improving (Keras' EarlyStopping rule)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from hpo_plugins._checks import check_int
from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners._base import Pruner

__all__ = ["PatientPruner"]


class PatientPruner(Pruner):
    """Stop a trial whose last ``patience`` reports brought no improvement, if its wrapped pruner
    agrees.

    A curve that is still improving is spared, however it compares with other trials: a trial
    that starts slowly (a small learning rate, a warm-up schedule) is not cut while it catches up.
    On its own (``wrapped_pruner=None``) this is the early-stopping rule of Keras' and
    Lightning's ``EarlyStopping`` callbacks, decided by the study; around another pruner it makes
    that pruner patient. After each report the trial is pruned when both hold:

    1. It is stagnant: its last ``patience`` reports each failed to improve on the reference,
       counted as Keras' ``EarlyStopping`` counts. The reference is the first finite report;
       a report better than the reference by more than ``min_delta`` (lower when minimising,
       higher when maximising) becomes the new reference and resets the count; any other
       report, a value equal to the reference or a NaN, adds one. (So improvements smaller
       than ``min_delta`` never move the reference, even when they add up.)
    2. ``wrapped_pruner`` is None, or its own rule prunes the trial now.

    Reports are counted, not steps, so sparse reports (every few epochs) work as expected.

    Args:
        wrapped_pruner: The pruner consulted once the trial is stagnant; None prunes every
            stagnant trial.
        patience: How many reports in a row without improvement make a trial stagnant (1:
            the first report that does not improve).
        min_delta: How much better than the reference a report must be to count as an
            improvement (in the metric's units, >= 0).

    Raises:
        ConfigurationError: ``wrapped_pruner`` is not a Pruner or None, ``patience`` is not an
            integer >= 1, or ``min_delta`` is not a finite number >= 0.

    Example:
        >>> from hpo_plugins import Direction, FrozenTrial, TrialState
        >>> flat = FrozenTrial(trial_id=0, number=0, state=TrialState.RUNNING,
        ...                    intermediate_values={0: 0.9, 1: 0.5, 2: 0.52, 3: 0.51})
        >>> PatientPruner(None, patience=2).prune(flat, [], Direction.MINIMIZE)
        True
        >>> PatientPruner(None, patience=3).prune(flat, [], Direction.MINIMIZE)
        False
    """

    def __init__(self, wrapped_pruner: Pruner | None, patience: int,
                 min_delta: float = 0.0) -> None:
        if wrapped_pruner is not None and not isinstance(wrapped_pruner, Pruner):
            raise ConfigurationError(
                f"Expected `wrapped_pruner` to be a Pruner (e.g. MedianPruner()) or None. "
                f"Received: wrapped_pruner={wrapped_pruner!r} (of type "
                f"{type(wrapped_pruner).__name__}).")
        self.wrapped_pruner = wrapped_pruner
        self.patience = check_int("patience", patience, minimum=1)
        self.min_delta = _check_delta(min_delta)

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """True if the trial is stagnant and the wrapped pruner (if any) prunes it."""
        if not self._stagnant(trial, direction):
            return False
        return self.wrapped_pruner is None or self.wrapped_pruner.prune(trial, others, direction)

    def _stagnant(self, trial: FrozenTrial, direction: Direction) -> bool:
        """Keras' count: the best value moves only on a report better than it by more than
        ``min_delta``; every other report (NaN included) adds one to the wait."""
        best: float | None = None
        wait = 0
        for step in sorted(trial.intermediate_values):
            value = trial.intermediate_values[step]
            if best is None:
                if not math.isnan(value):
                    best = value  # the first finite report: nothing to improve on before it
                continue
            better = (value < best - self.min_delta if direction is Direction.MINIMIZE
                      else value > best + self.min_delta)
            if better:
                best, wait = value, 0
            else:
                wait += 1
        return wait >= self.patience


def _check_delta(value: Any) -> float:
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)) and float(value) >= 0.0):
        return float(value)
    raise ConfigurationError(
        f"Expected `min_delta` to be a finite number >= 0. Received: min_delta={value!r}")
