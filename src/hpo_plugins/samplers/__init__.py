"""Samplers: pure functions of (space, history snapshot, rng) that propose the next trial.

Example:
    >>> from hpo_plugins.samplers import HyperoptTPESampler
    >>> HyperoptTPESampler(n_startup_trials=10)
    HyperoptTPESampler(n_startup_trials=10, n_ei_candidates=24, gamma=0.25, prior_weight=1.0, \
running_policy='liar')
"""

from __future__ import annotations

from hpo_plugins.samplers._anneal import AnnealSampler
from hpo_plugins.samplers._base import (
    History,
    Sampler,
    describe_object,
    diverged,
    ranked_for_model,
)
from hpo_plugins.samplers._grid import GridSampler
from hpo_plugins.samplers._hyperopt_tpe import HyperoptTPESampler
from hpo_plugins.samplers._random import RandomSampler
from hpo_plugins.samplers._tpe import TPESampler

__all__ = [
    "AnnealSampler",
    "GridSampler",
    "History",
    "HyperoptTPESampler",
    "RandomSampler",
    "Sampler",
    "TPESampler",
    "describe_object",
    "diverged",
    "ranked_for_model",
]
