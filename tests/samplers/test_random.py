"""RandomSampler: the prior, whatever the history."""

from __future__ import annotations

import numpy as np

from hpo_plugins._frozen import Direction, TrialState
from hpo_plugins.samplers import History, RandomSampler
from hpo_plugins.space import SearchSpace

from .conftest import MakeTrial


def test_random_sampler_draws_the_prior_and_ignores_history(full_space: SearchSpace,
                                                            make_trial: MakeTrial) -> None:
    history = History([make_trial(0, TrialState.COMPLETE, 1.0, {"x": 0.5, "model": 0})],
                      Direction.MINIMIZE, 1)
    for seed in range(20):
        expected = full_space.sample_prior(np.random.default_rng(seed))
        assert RandomSampler().sample(full_space, history, np.random.default_rng(seed)) == expected
        assert RandomSampler().sample(full_space, History([], Direction.MAXIMIZE),
                                      np.random.default_rng(seed)) == expected
