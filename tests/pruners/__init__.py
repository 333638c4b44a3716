"""Tests of hpo_plugins.pruners, and the trial builder they share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hpo_plugins._frozen import FrozenTrial, TrialState


def make_trial(number: int, curve: Sequence[float] | Mapping[int, float],
               state: TrialState = TrialState.RUNNING) -> FrozenTrial:
    """A trial with ``curve`` as its intermediate values (a list means steps 0, 1, 2, ...).

    Finished trials get their last reported value as ``value``, as a storage would record it.
    """
    values = dict(curve) if isinstance(curve, Mapping) else dict(enumerate(curve))
    finished = state in (TrialState.COMPLETE, TrialState.PRUNED) and values
    value = values[max(values)] if finished else None
    return FrozenTrial(trial_id=number, number=number, state=state, value=value,
                       intermediate_values=values)
