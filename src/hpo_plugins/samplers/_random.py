"""Random search: every trial drawn independently from the prior."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hpo_plugins.samplers._base import History, Sampler
from hpo_plugins.space import SearchSpace

__all__ = ["RandomSampler"]

_logger = logging.getLogger(__name__)


class RandomSampler(Sampler):
    """Draw every active parameter independently from its Hyperopt prior.

    A choice picks each option with equal probability (``hp.pchoice`` with its probabilities);
    numbers follow their distribution, rounded to ``q`` where one is given; parameters of
    branches that are not chosen are left out. The history is ignored, so workers never need to
    see each other's trials. Random search is a strong baseline on spaces with many parameters
    of little importance, and the start-up phase of the model-based samplers.

    Example:
        >>> import numpy as np
        >>> from hpo_plugins import hp
        >>> from hpo_plugins import Direction
        >>> from hpo_plugins.samplers import History, RandomSampler
        >>> from hpo_plugins.space import SearchSpace
        >>> space = SearchSpace({"x": hp.uniform("x", -1, 1)})
        >>> params = RandomSampler().sample(space, History([], Direction.MINIMIZE),
        ...                                 np.random.default_rng(0))
        >>> -1 <= params["x"] <= 1
        True
    """

    uses_history = False

    def __init__(self) -> None:
        pass

    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        """Draw flat internal parameters from the prior (see :class:`Sampler`)."""
        return space.sample_prior(rng)
