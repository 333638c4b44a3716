"""Pruning benchmark: the same trial budget and seeds with no pruning and with each pruner.

Prints figures; it is not a test. Run from the repository root::

    python -m benchmarks.pruning                          # 30 trials x 3 seeds, up to 27 epochs
    python -m benchmarks.pruning --quick                  # smoke run: 8 trials x 1 seed, 9 epochs
    python -m benchmarks.pruning --pruners none sha --trials 40

One function per framework produces :class:`Row` objects and one printer tabulates them, so
another framework's task slots in beside the Lightning one.

**Lightning task.** The MLP of ``examples/lightning_digits.py`` (1-3 hidden layers, dropout,
Adam or SGD with their own parameters) on scikit-learn's digits, 70/30 split, batch 128, CPU,
one torch thread. Each run is ``hpo.maximize(lightning_objective(..., monitor="val_acc"))``
with the default sampler (Hyperopt TPE) seeded with the run's seed, so the runs of one seed
differ only by the pruner (and by the configurations that pruning steers TPE to). A trial's
value is its best validation accuracy over its epochs.

Figures per pruner, summed or averaged over seeds: epochs trained (a trial reports after every
epoch, so a trial that last reported at step ``s`` trained ``s + 1`` epochs), wall time of the
study, and the best validation accuracy found (the study's best COMPLETE trial).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import hpo_plugins as hpo
from hpo_plugins.pruners import (
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    Pruner,
    SuccessiveHalvingPruner,
)

_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    """One study: a framework's task run with one pruner and one seed."""

    framework: str
    pruner: str
    seed: int
    epochs: int
    seconds: float
    best_accuracy: float
    pruned: int
    trials: int


def make_pruner(name: str, max_epochs: int) -> Pruner:
    """The pruners compared, with the settings the table reports."""
    pruners: dict[str, Callable[[], Pruner]] = {
        "none": NopPruner,
        "median": lambda: MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        "sha": lambda: SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        "hyperband": lambda: HyperbandPruner(min_resource=1, max_resource=max_epochs,
                                             reduction_factor=3),
    }
    return pruners[name]()


PRUNERS = ("none", "median", "sha", "hyperband")


# -- Lightning -----------------------------------------------------------------------------------

def _digits_example() -> ModuleType:
    """``examples/lightning_digits.py``, whose model, data and space this task uses."""
    path = _ROOT / "examples" / "lightning_digits.py"
    spec = importlib.util.spec_from_file_location("lightning_digits", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # lightning_objective pickles nothing, but be importable
    spec.loader.exec_module(module)
    return module


def run_lightning(pruners: Sequence[str], seeds: Sequence[int], n_trials: int,
                  max_epochs: int) -> list[Row]:
    """Every (pruner, seed) study of the Lightning digits task, in this process."""
    import torch

    torch.set_num_threads(1)
    task = _digits_example()
    data = task.DigitsData(batch_size=128)
    rows = []
    for seed in seeds:
        for name in pruners:
            rows.append(_lightning_study(task, data, name, seed, n_trials, max_epochs))
            print(f"  {rows[-1]}", file=sys.stderr)
    return rows


def _lightning_study(task: ModuleType, data: Any, pruner: str, seed: int, n_trials: int,
                     max_epochs: int) -> Row:
    objective = task.lightning_objective(
        task.DigitsMLP, datamodule=data, monitor="val_acc", seed=seed,
        trainer_kwargs={"max_epochs": max_epochs, "accelerator": "cpu", "devices": 1,
                        "logger": False, "num_sanity_val_steps": 0})
    start = time.perf_counter()
    study = hpo.maximize(objective, task.SPACE, n_trials=n_trials, storage=":memory:",
                         seed=seed, pruner=make_pruner(pruner, max_epochs), metric="val_acc",
                         study_name=f"lightning-{pruner}-{seed}", show_progress_bar=False)
    return _row("lightning", pruner, seed, study, time.perf_counter() - start)


def _row(framework: str, pruner: str, seed: int, study: hpo.Study, seconds: float) -> Row:
    trials = study.trials
    epochs = sum((t.last_step or 0) + 1 for t in trials if t.intermediate_values)
    pruned = sum(t.state is hpo.TrialState.PRUNED for t in trials)
    return Row(framework, pruner, seed, epochs, seconds, study.best_value, pruned, len(trials))


# -- report --------------------------------------------------------------------------------------

def summary_table(rows: Sequence[Row]) -> list[str]:
    """Markdown table: one line per (framework, pruner), figures over seeds, vs no pruning."""
    out = ["| framework | pruner | epochs trained (all seeds) | vs none | wall time | "
           "best val. accuracy (mean over seeds) | vs none | pruned trials |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (framework, pruner), group in _groups(rows).items():
        base = _groups(rows).get((framework, "none"), group)
        epochs, base_epochs = sum(r.epochs for r in group), sum(r.epochs for r in base)
        accuracy = statistics.mean(r.best_accuracy for r in group)
        delta = 100 * (accuracy - statistics.mean(r.best_accuracy for r in base))
        out.append(
            f"| {framework} | {pruner} | {epochs} | {base_epochs / epochs:.2f}x fewer | "
            f"{sum(r.seconds for r in group):.0f} s | {100 * accuracy:.2f} % | "
            f"{delta:+.2f} pp | {sum(r.pruned for r in group)} / "
            f"{sum(r.trials for r in group)} |")
    return out


def seed_table(rows: Sequence[Row]) -> list[str]:
    """Markdown table of every study: best accuracy and epochs per seed."""
    out = ["| framework | pruner | seed | epochs | best val. accuracy | wall time |",
           "|---|---|---:|---:|---:|---:|"]
    out += [f"| {r.framework} | {r.pruner} | {r.seed} | {r.epochs} | "
            f"{100 * r.best_accuracy:.2f} % | {r.seconds:.0f} s |" for r in rows]
    return out


def _groups(rows: Sequence[Row]) -> dict[tuple[str, str], list[Row]]:
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.framework, row.pruner), []).append(row)
    return groups


def environment_lines(argv: Sequence[str], wall: float, loads: Sequence[str]) -> list[str]:
    """Command, date, machine, load and versions, as Markdown bullet points."""
    from importlib.metadata import version

    return [
        f"- Command: `{' '.join(['python -m benchmarks.pruning', *argv])}`",
        f"- Date: {dt.date.today().isoformat()}; total wall time {wall / 60:.1f} min",
        f"- Machine: {os.cpu_count()} CPU cores, {platform.platform()}, Python "
        f"{platform.python_version()}; load average (1/5/15 min) at start and end: "
        f"{', '.join(loads)}",
        f"- Versions: hpo_plugins {hpo.__version__}, lightning {version('lightning')}, "
        f"torch {version('torch')}",
    ]


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


# -- command line --------------------------------------------------------------------------------

FRAMEWORKS: dict[str, Callable[[Sequence[str], Sequence[int], int, int], list[Row]]] = {
    "lightning": run_lightning,
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; ``--quick`` fills in the smoke-run sizes not given explicitly."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pruning",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", choices=list(FRAMEWORKS),
                        default=list(FRAMEWORKS))
    parser.add_argument("--pruners", nargs="+", choices=PRUNERS, default=list(PRUNERS))
    parser.add_argument("--trials", type=int, help="trials per study (default 30; --quick 8)")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3; --quick 1)")
    parser.add_argument("--epochs", type=int, help="epochs of an unpruned trial (default 27)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    sizes = {"trials": 8, "seeds": 1, "epochs": 9} if args.quick else {
        "trials": 30, "seeds": 3, "epochs": 27}
    for key, value in sizes.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the Markdown report (and write it to ``--out``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    _quiet()
    start, loads, rows = time.perf_counter(), [_load()], []
    for framework in args.frameworks:
        rows += FRAMEWORKS[framework](args.pruners, range(args.seeds), args.trials, args.epochs)
    loads.append(_load())
    report = [*environment_lines(argv, time.perf_counter() - start, loads), "",
              f"{args.trials} trials per study, seeds 0-{args.seeds - 1}, up to {args.epochs} "
              f"epochs per trial.", "", *summary_table(rows), "", "Per study:", "",
              *seed_table(rows)]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


def _quiet() -> None:
    import lightning.pytorch  # noqa: F401 - it sets its loggers' level on import; override after

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    for name in ("lightning.pytorch", "lightning.fabric", "hpo_plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)


if __name__ == "__main__":
    raise SystemExit(main())
