"""Random search: every trial drawn independently from the prior.

The module also holds the small argument checks the other samplers share, so that every
constructor reports a bad argument the same way (Keras Tuner style: the argument, what was
expected, what was received).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from hpo_plugins.exceptions import ConfigurationError
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
        >>> from hpo_plugins._frozen import Direction
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


# ---------------------------------------------------------------------------------------------
# Constructor argument checks shared by the samplers of this package


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` if it is an ``int`` of at least ``minimum``, else raise.

    Raises:
        ConfigurationError: Names the argument, the expectation and the received value.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(
            f"Expected `{name}` to be an integer >= {minimum}. Received: {name}={value!r}."
        )
    return int(value)


def check_real(name: str, value: Any, *, low: float, high: float = math.inf,
               open_low: bool = False, open_high: bool = True) -> float:
    """Return ``value`` as a float if it lies in the interval, else raise.

    Args:
        name: The argument's name, for the message.
        value: What the caller passed.
        low: Lower end of the interval.
        high: Upper end of the interval.
        open_low: Whether ``low`` itself is excluded.
        open_high: Whether ``high`` itself is excluded.

    Raises:
        ConfigurationError: Names the argument, the interval and the received value.
    """
    number = _as_float(value)
    above = number is not None and (number > low if open_low else number >= low)
    below = number is not None and (number < high if open_high else number <= high)
    if not (above and below):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ConfigurationError(
            f"Expected `{name}` to be a number in {interval}. Received: {name}={value!r}."
        )
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``, else raise a :class:`ConfigurationError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigurationError(
            f"Expected `{name}` to be True or False. Received: {name}={value!r} "
            f"(of type {type(value).__name__})."
        )
    return bool(value)


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    number = float(value)
    return number if not math.isnan(number) else None
