"""What reading a stored study's best trial costs, against Optuna, in one run.

A SQLite study holds ``--trials`` COMPLETE trials with curves of ``--steps`` reports. The
table gives the median wall time of opening it afresh (a new storage object, so no cache) and
reading ``best_trial``: what ``hpo-plugins best`` or a notebook's
``load_study(...).best_params`` pays. Ours asks the database for the one best trial
(``Storage.best_trial``); it used to read every trial with its curve.

Setup is by the fastest public route on both sides (``add_trial`` with its curve), which for
thousands of trials takes a minute or more.

    python -m benchmarks.best_on_load                  # 2,000 trials of 50 reports
    python -m benchmarks.best_on_load --trials 10000 --steps 20
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import hpo_plugins as hpo
from hpo_plugins import hp


def _curve(rng: random.Random, steps: int) -> dict[int, float]:
    level = rng.random()
    return {s: level + 1.0 / (s + 1) for s in range(steps)}


def _median_seconds(read: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        read()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def ours(url: str, args: argparse.Namespace) -> float:
    rng = random.Random(0)
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=url, study_name="best")
    for _ in range(args.trials):
        study.add_trial({"x": rng.random()}, intermediate_values=_curve(rng, args.steps))
    study.storage.close()

    def read() -> object:
        loaded = hpo.load_study("best", url)
        best = loaded.best_trial
        loaded.storage.close()
        return best

    return _median_seconds(read, args.repeats)


def theirs(url: str, args: argparse.Namespace) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(0)
    study = optuna.create_study(storage=url, study_name="best")
    dist: dict[str, Any] = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for _ in range(args.trials):
        curve = _curve(rng, args.steps)
        study.add_trial(optuna.trial.create_trial(
            params={"x": rng.random()}, distributions=dist, value=curve[args.steps - 1],
            intermediate_values=curve))

    def read() -> object:
        return optuna.load_study(study_name="best", storage=url).best_trial

    return _median_seconds(read, args.repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        mine = ours(f"sqlite:///{folder}/ours.db", args)
        other = theirs(f"sqlite:///{folder}/optuna.db", args)
    print(f"{args.trials} COMPLETE trials of {args.steps} reports in SQLite; median ms to open "
          f"the study afresh and read best_trial over {args.repeats} reads")
    print(f"{'ours':>10} {'Optuna':>10} {'ratio':>8}")
    print(f"{1000 * mine:>10.1f} {1000 * other:>10.1f} {mine / other:>8.2f}")


if __name__ == "__main__":
    main()
