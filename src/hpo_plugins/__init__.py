"""hpo_plugins: hyperparameter optimisation that plugs into Lightning and Keras."""

from __future__ import annotations

import logging

from hyperopt import hp

__version__ = "0.1.0"
__all__ = ["hp"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
