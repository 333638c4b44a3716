"""What one ``report`` + ``should_prune`` costs on long curves, against Optuna, in one run.

A study holds ``--finished`` finished trials and ``--running`` running ones, each with a curve
of ``--steps`` reports; one more running trial, halfway through, reports and asks its pruner.
The table gives the median wall time of that report + decision over ``--repeats`` reports,
for our in-memory and SQLite storages and Optuna's in-memory and RDB (SQLite) storages, with
no pruner, the median rule and successive halving.

The two libraries do not compare the same rivals: ours compares with every trial that
reported at the step, running ones included; Optuna's median rule and successive halving read
finished trials only (``MedianPruner``) or the trial's own rung records. So with many running
trials ours reads more, by design.

Setup is by the fastest public route: ``add_trial`` with its curve for finished trials;
running trials report through ``trial.report`` (Optuna) or have their curve written into
the database in one transaction (ours, SQLite: 10,000s of reports would otherwise take
minutes to set up).

    python -m benchmarks.prune_cost                 # 150 + 20 trials of 2,000 reports
    python -m benchmarks.prune_cost --steps 10000   # the figures of docs/benchmarks.md
    python -m benchmarks.prune_cost --quick         # a smoke run
    python -m benchmarks.prune_cost --ours-only     # ours only: compare two versions
    python -m benchmarks.prune_cost --finished 10000 --running 20 --steps 20 --memory-only
                                                    # many short curves, in memory only
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

import sqlalchemy as sa

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.pruners import MedianPruner, NopPruner, Pruner, SuccessiveHalvingPruner

PRUNERS: dict[str, tuple[Callable[[], Pruner], Callable[[], Any]]] = {
    "none": (NopPruner, lambda: _optuna().pruners.NopPruner()),
    "median": (MedianPruner, lambda: _optuna().pruners.MedianPruner()),
    "successive halving": (SuccessiveHalvingPruner,
                           lambda: _optuna().pruners.SuccessiveHalvingPruner()),
}


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _curve(rng: random.Random, steps: int) -> dict[int, float]:
    level = rng.random()
    return {s: level + 1.0 / (s + 1) + rng.random() * 0.01 for s in range(steps)}


def _time_reports(report: Callable[[int], bool], start: int, repeats: int) -> float:
    """Median seconds of ``report(step)`` (a report and a decision) over ``repeats`` steps."""
    times = []
    for k in range(repeats):
        began = time.perf_counter()
        report(start + k)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def ours(storage: str, pruner: Callable[[], Pruner], args: argparse.Namespace,
         folder: str) -> float:
    rng = random.Random(0)
    url = None if storage == "memory" else f"sqlite:///{folder}/ours-{time.time_ns()}.db"
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, pruner=pruner(),
                             storage=url or hpo.storages.InMemoryStorage())
    for _ in range(args.finished):
        study.add_trial({"x": rng.random()}, intermediate_values=_curve(rng, args.steps))
    running = [study.ask() for _ in range(args.running)]
    if url is None:
        for trial in running:
            for step, value in _curve(rng, args.steps).items():
                study.storage.set_intermediate_value(trial.trial_id, step, value)
    else:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO hpo_trial_values (trial_id, step, value) "
                                 "VALUES (:t, :s, :v)"),
                         [{"t": t.trial_id, "s": s, "v": v} for t in running
                          for s, v in _curve(rng, args.steps).items()])
        engine.dispose()
    me = study.ask()
    half = args.steps // 2
    for step, value in _curve(rng, half).items():
        me.report(value, step)

    def report(step: int) -> bool:
        me.report(0.5, step)
        return me.should_prune()

    seconds = _time_reports(report, half, args.repeats)
    study.storage.close()
    return seconds


def theirs(storage: str, pruner: Callable[[], Any], args: argparse.Namespace,
           folder: str) -> float:
    optuna = _optuna()
    rng = random.Random(0)
    url = None if storage == "memory" else f"sqlite:///{folder}/optuna-{time.time_ns()}.db"
    study = optuna.create_study(storage=url, pruner=pruner())
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for _ in range(args.finished):
        curve = _curve(rng, args.steps)
        study.add_trial(optuna.trial.create_trial(
            params={"x": rng.random()}, distributions=dist, value=curve[args.steps - 1],
            intermediate_values=curve))
    for _ in range(args.running):
        trial = study.ask(dist)
        for step, value in _curve(rng, args.steps).items():
            trial.report(value, step)
    me = study.ask(dist)
    half = args.steps // 2
    for step, value in _curve(rng, half).items():
        me.report(value, step)

    def report(step: int) -> bool:
        me.report(0.5, step)
        return bool(me.should_prune())

    return _time_reports(report, half, args.repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--finished", type=int, default=150)
    parser.add_argument("--running", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="20 + 5 trials of 100 reports")
    parser.add_argument("--ours-only", action="store_true",
                        help="skip Optuna (to compare two versions of ours quickly)")
    parser.add_argument("--memory-only", action="store_true",
                        help="skip the SQLite columns (their set-up of 10,000s of trials "
                             "takes minutes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.finished, args.running, args.steps, args.repeats = 20, 5, 100, 3
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    print(f"{args.finished} finished + {args.running} running trials of {args.steps} reports; "
          f"median ms per report + should_prune over {args.repeats} reports")
    print(f"{'pruner':<20} {'ours memory':>12} {'ours SQLite':>12} {'Optuna memory':>14} "
          f"{'Optuna SQLite':>14}")
    kinds = ("memory",) if args.memory_only else ("memory", "sqlite")
    with tempfile.TemporaryDirectory() as folder:
        for name, (make_ours, make_theirs) in PRUNERS.items():
            cells: list[float | None] = [ours(kind, make_ours, args, folder)
                                         if kind in kinds else None
                                         for kind in ("memory", "sqlite")]
            if not args.ours_only:
                cells += [theirs(kind, make_theirs, args, folder) if kind in kinds else None
                          for kind in ("memory", "sqlite")]
            print(f"{name:<20} " + " ".join(
                f"{'-':>{w}}" if c is None else f"{1000 * c:>{w}.1f}"
                for c, w in zip(cells, (12, 12, 14, 14), strict=False)))


if __name__ == "__main__":
    main()
