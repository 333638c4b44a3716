"""Pruners: pure functions of (this trial's curve, the others' curves, direction) -> stop?"""

from __future__ import annotations

from hpo_plugins.pruners._base import NopPruner, Pruner
from hpo_plugins.pruners._hyperband import HyperbandPruner
from hpo_plugins.pruners._median import MedianPruner, PercentilePruner
from hpo_plugins.pruners._patient import PatientPruner
from hpo_plugins.pruners._successive_halving import SuccessiveHalvingPruner
from hpo_plugins.pruners._threshold import ThresholdPruner

__all__ = [
    "HyperbandPruner",
    "MedianPruner",
    "NopPruner",
    "PatientPruner",
    "PercentilePruner",
    "Pruner",
    "SuccessiveHalvingPruner",
    "ThresholdPruner",
]
