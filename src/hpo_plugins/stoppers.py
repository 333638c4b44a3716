"""Study callbacks that end a run early: no progress for a while, or a good enough value.

Hyperopt passes such rules to ``fmin`` as ``early_stop_fn`` and ``loss_threshold``; Ray Tune
has stoppers. Here they are ordinary study callbacks, ``callback(study, frozen_trial)``, called
after each trial: ``minimize(..., callbacks=[NoImprovementStop(20)])``. Each one calls
:meth:`Study.stop <hpo_plugins.Study.stop>`, so trials already running finish and are recorded,
and the call returns. They keep no state of their own: each decision is read from the study's
finished trials, so a resumed study and parallel workers decide alike.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.samplers._random import check_int, check_real

if TYPE_CHECKING:
    from hpo_plugins.study import Study

__all__ = ["NoImprovementStop", "ThresholdStop"]

_logger = logging.getLogger(__name__)


class NoImprovementStop:
    """Stop once ``patience`` trials in a row have finished without a better value.

    A value counts as better when it beats the best before it by more than ``min_delta`` (in
    the study's direction). Trials count in the order of their numbers; pruned and failed ones
    count as trials without improvement (they cost time, as Hyperopt's ``no_progress_loss``
    counts every evaluation). Nothing is stopped before the first COMPLETE trial.

    Args:
        patience: Finished trials without improvement that end the run (Hyperopt's
            ``iteration_stop_count``).
        min_delta: The smallest change that counts as an improvement (an absolute amount,
            where Hyperopt's ``percent_increase`` is relative), >= 0.
    """

    def __init__(self, patience: int, *, min_delta: float = 0.0) -> None:
        self.patience = check_int("patience", patience, minimum=1)
        self.min_delta = check_real("min_delta", min_delta, low=0.0)

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        finished = study.get_trials(["COMPLETE", "PRUNED", "FAIL"])
        since = self.trials_since_improvement(finished, study.direction)
        if since is not None and since >= self.patience:
            _logger.info("Stopping: %d trials in a row without improving the best value by "
                         "more than %g (NoImprovementStop).", since, self.min_delta)
            study.stop()

    def trials_since_improvement(self, finished: list[FrozenTrial],
                                 direction: Direction) -> int | None:
        """How many of ``finished`` came after the last improvement; None before any value."""
        sign = 1.0 if direction is Direction.MINIMIZE else -1.0
        best, since = math.inf, None
        for frozen in sorted(finished, key=lambda t: t.number):
            value = frozen.value if frozen.state is TrialState.COMPLETE else None
            if value is not None and math.isfinite(value) and (
                    since is None or sign * value < best - self.min_delta):
                best, since = sign * value, 0
            elif since is not None:
                since += 1
        return since

    def __repr__(self) -> str:
        return f"NoImprovementStop(patience={self.patience}, min_delta={self.min_delta:g})"


class ThresholdStop:
    """Stop once a COMPLETE trial reaches ``value`` (at or below it when minimising, at or above
    it when maximising): Hyperopt's ``loss_threshold``."""

    def __init__(self, value: float) -> None:
        self.value = check_real("value", value, low=-math.inf)

    def __call__(self, study: Study, trial: FrozenTrial) -> None:
        if trial.state is not TrialState.COMPLETE or trial.value is None:
            return
        reached = (trial.value <= self.value if study.direction is Direction.MINIMIZE
                   else trial.value >= self.value)
        if reached:
            _logger.info("Stopping: trial %d reached %g (ThresholdStop(%g)).", trial.number,
                         trial.value, self.value)
            study.stop()

    def __repr__(self) -> str:
        return f"ThresholdStop({self.value:g})"
