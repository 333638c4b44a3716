"""How often a sampler proposes in a region whose trials cannot finish, against Optuna's TPE.

Half of a one-dimensional range, ``x > 0``, cannot run: its trials end the way ``ending``
names, and the rest return ``(x + 2) ** 2``. The table gives, per sampler and ending, the
share of the trials after the first 20 (after every start-up) that were proposed in that
region, over ``--seeds`` studies of ``--trials`` trials. A sampler that learns from such
trials proposes there rarely; one that leaves them out of its model keeps going back.

Endings: ``pruned`` (``raise TrialPruned`` before any report, an up-front check), ``diverged``
(the objective returns NaN, as a loss that blew up), ``raised`` (an exception, caught).

    python -m benchmarks.failures              # 8 seeds, 60 trials (about a minute)
    python -m benchmarks.failures --seeds 20
"""

from __future__ import annotations

import argparse
import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.samplers import HyperoptTPESampler, Sampler, TPESampler

ENDINGS = ("pruned", "diverged", "raised")
WARM_UP = 20  # the largest start-up here (HyperoptTPESampler's)
SAMPLERS: dict[str, Callable[[], Sampler]] = {
    "hpo TPESampler": TPESampler, "hpo HyperoptTPESampler": HyperoptTPESampler}


class CannotRun(Exception):
    """The exception of the ``raised`` ending."""


def _outcome(x: float, ending: str) -> float:
    """The value of a trial at ``x``, or its ending in the region that cannot run."""
    if x <= 0:
        return (x + 2) ** 2
    if ending == "pruned":
        raise hpo.TrialPruned()
    if ending == "raised":
        raise CannotRun("out of memory")
    return math.nan


def _share(xs: list[float]) -> float:
    return float(np.mean(np.array(xs[WARM_UP:]) > 0))


def ours(make: Callable[[], Sampler], ending: str, seed: int, trials: int) -> float:
    xs: list[float] = []

    def objective(params: dict[str, Any]) -> float:
        xs.append(params["x"])
        return _outcome(params["x"], ending)

    study = hpo.create_study({"x": hp.uniform("x", -5, 5)}, storage=":memory:", seed=seed,
                             sampler=make())
    study.optimize(objective, n_trials=trials, catch=(CannotRun,))
    return _share(xs)


def optuna_tpe(ending: str, seed: int, trials: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    xs: list[float] = []

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -5, 5)
        xs.append(x)
        try:
            return _outcome(x, ending)
        except hpo.TrialPruned:
            raise optuna.TrialPruned() from None

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, catch=(CannotRun,))
    return _share(xs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # a FAIL per trial in the region is the point
    warnings.filterwarnings("ignore")
    runs: dict[str, Callable[[str, int], float]] = {
        name: (lambda ending, seed, make=make: ours(make, ending, seed, args.trials))
        for name, make in SAMPLERS.items()}
    runs["optuna TPESampler"] = lambda ending, seed: optuna_tpe(ending, seed, args.trials)
    print(f"share of trials {WARM_UP}-{args.trials - 1} proposed in the region that cannot "
          f"run (mean over {args.seeds} seeds; half the range)")
    print(f"| sampler | {' | '.join(ENDINGS)} |")
    print(f"|---|{'---|' * len(ENDINGS)}")
    for name, run in runs.items():
        shares = [np.mean([run(ending, seed) for seed in range(args.seeds)])
                  for ending in ENDINGS]
        print(f"| {name} | {' | '.join(f'{share:.2f}' for share in shares)} |")


if __name__ == "__main__":
    main()
