"""Pruning benchmark: the same trial budget and seeds with no pruning and with each pruner.

Prints figures; it is not a test. Run from the repository root::

    python -m benchmarks.pruning                          # 30 trials x 3 seeds, up to 27 epochs
    python -m benchmarks.pruning --quick                  # smoke run: 8 trials x 1 seed, 9 epochs
    python -m benchmarks.pruning --pruners none sha --trials 40
    python -m benchmarks.pruning --frameworks keras --seeds 1 --epochs 20   # ~15 min, 2 cores

One function per framework produces :class:`Row` objects and one printer tabulates them, so
another framework's task slots in beside the Lightning one.

**Lightning task.** The MLP of ``examples/lightning_digits.py`` (1-3 hidden layers, dropout,
Adam or SGD with their own parameters) on scikit-learn's digits, 70/30 split, batch 128, CPU,
one torch thread. Each run is ``hpo.maximize(lightning_objective(..., monitor="val_acc"))``
with the default sampler (`TPESampler`; the first published run used Hyperopt's TPE, the default
of the time) seeded with the run's seed, so the runs of one seed
differ only by the pruner (and by the configurations that pruning steers TPE to). A trial's
value is its best validation accuracy over its epochs.

**Keras task** (``--frameworks keras``). ``keras_tune`` with Hyperband pruning against Keras
Tuner's ``Hyperband`` and ``BayesianOptimization``, at the same budget of epochs, on the network
of ``examples/keras_digits.py``; see :func:`keras_benchmark`. Its rows have no ``none`` run, so
their "vs none" columns are empty.

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
import shutil
import statistics
import sys
import tempfile
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


# -- Keras ---------------------------------------------------------------------------------------

def keras_benchmark(pruners: Sequence[str], seeds: Sequence[int], n_trials: int,
                    max_epochs: int) -> list[Row]:
    """keras_tune with Hyperband pruning against Keras Tuner, at the same budget of epochs.

    **Keras task.** The network of ``examples/keras_digits.py`` (1-3 dense layers with their own
    units and activation, dropout, Adam, SGD or RMSprop with their own parameters) on
    scikit-learn's digits, 60/20/20 split, batch 64, CPU. For each seed, in one process:

    1. ``kt-hyperband``: Keras Tuner's ``Hyperband(max_epochs, factor=3)``, one iteration. Its
       epochs trained in total are the budget of the other two.
    2. ``hyperband``: ``keras_tune`` with our default sampler (``TPESampler``) and
       ``HyperbandPruner(max_resource=max_epochs, reduction_factor=3)``, asking for one trial
       at a time while a full-length trial still fits in the budget (so never more epochs than
       Keras Tuner's Hyperband).
    3. ``sha``: the same with ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)``
       (asynchronous successive halving: rungs after 2, 4 and 10 epochs), which spends the same
       budget on more configurations.
    4. ``kt-bayesian``: Keras Tuner's ``BayesianOptimization`` with ``budget // max_epochs``
       trials of ``max_epochs`` epochs (it does not stop trials early).

    Epochs are counted by one callback in every ``fit`` of the three methods. The best
    validation accuracy is the best trial's best epoch, as each tool scores it; the test
    accuracy of each tool's best model (reloaded, not retrained) is printed to stderr.
    Of ``pruners``, ``hyperband`` and ``sha`` select rows 2 and 3 (both when neither is
    given); ``n_trials`` does not apply: the budget comes from Keras Tuner's Hyperband.
    """
    import keras

    task = _example("keras_digits")
    data = task.digits_splits()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # one retracing note per model
    # Keras Tuner's get_best_models loads weights into a model whose optimiser is not built yet
    warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
    ours = [p for p in ("hyperband", "sha") if p in pruners] or ["hyperband", "sha"]
    rows = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        rows.append(_kt_study(task, data, "kt-hyperband", seed, max_epochs, budget=0))
        budget = rows[-1].epochs
        for pruner in ours:
            keras.utils.set_random_seed(seed)
            rows.append(_keras_tune_study(task, data, seed, max_epochs, budget, pruner))
        keras.utils.set_random_seed(seed)
        rows.append(_kt_study(task, data, "kt-bayesian", seed, max_epochs, budget))
    return rows


def _example(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, _ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _keras_tune_study(task: ModuleType, data: dict[str, Any], seed: int, max_epochs: int,
                      budget: int, pruner: str) -> Row:
    from hpo_plugins.keras import keras_tune
    from hpo_plugins.storages import InMemoryStorage

    counter, storage, result = _epoch_counter(), InMemoryStorage(), None
    logdir = tempfile.mkdtemp(prefix="keras-tune-")  # the trials' best weights
    start = time.perf_counter()
    while result is None or counter.epochs + max_epochs <= budget:  # one trial at a time
        result = keras_tune(
            task.build_model, task.SPACE, x=data["x"], y=data["y"],
            validation_data=(data["x_val"], data["y_val"]), epochs=max_epochs, batch_size=64,
            objective="val_accuracy", n_trials=1, storage=storage, seed=seed,
            study_name=f"keras-{pruner}-{seed}", callbacks=[counter], logdir=logdir,
            pruner=_keras_pruner(pruner, max_epochs), show_progress_bar=False)
    seconds = time.perf_counter() - start
    test = _test_accuracy(result.best_model(), data)
    shutil.rmtree(logdir, ignore_errors=True)
    return _keras_row(pruner, seed, counter.epochs, seconds, result.best_value,
                      result.study, test)


def _keras_pruner(name: str, max_epochs: int) -> Pruner:
    """Our pruner of a Keras row: Hyperband over the full range, or ASHA from the first epoch."""
    if name == "sha":
        return SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)


def _kt_study(task: ModuleType, data: dict[str, Any], method: str, seed: int,
              max_epochs: int, budget: int) -> Row:
    import keras_tuner

    counter = _epoch_counter()
    with tempfile.TemporaryDirectory() as directory:
        common = {"objective": "val_accuracy", "seed": seed, "directory": directory,
                  "project_name": method, "overwrite": True}
        tuner = (keras_tuner.Hyperband(_kt_build(task), max_epochs=max_epochs, factor=3,
                                       **common) if method == "kt-hyperband" else
                 keras_tuner.BayesianOptimization(_kt_build(task),
                                                  max_trials=max(1, budget // max_epochs),
                                                  **common))
        start = time.perf_counter()
        tuner.search(data["x"], data["y"], validation_data=(data["x_val"], data["y_val"]),
                     epochs=max_epochs, batch_size=64, callbacks=[counter], verbose=0)
        seconds = time.perf_counter() - start
        trials = tuner.oracle.get_best_trials(num_trials=10**6)
        test = _test_accuracy(tuner.get_best_models(num_models=1)[0], data)
    return _keras_row(method, seed, counter.epochs, seconds, float(trials[0].score), None,
                      test, n_trials=len(trials))


def _kt_build(task: ModuleType) -> Callable[[Any], Any]:
    """Keras Tuner's version of the example's space, building the example's model."""

    def build(hp: Any) -> Any:
        layers = [{"units": hp.Int(f"units_{i}", 16, 128, step=16),
                   "activation": hp.Choice(f"activation_{i}", ["relu", "tanh", "elu"])}
                  for i in range(hp.Int("n_layers", 1, 3))]
        return task.build_model({"layers": layers, "dropout": hp.Float("dropout", 0.0, 0.4),
                                 "optimizer": _kt_optimizer(hp)})

    return build


def _kt_optimizer(hp: Any) -> dict[str, Any]:
    name = hp.Choice("optimizer", ["adam", "sgd", "rmsprop"])
    with hp.conditional_scope("optimizer", [name]):
        if name == "adam":
            return {"name": name, "learning_rate": hp.Float("adam_lr", 1e-4, 1e-2,
                                                            sampling="log")}
        if name == "sgd":
            return {"name": name, "learning_rate": hp.Float("sgd_lr", 1e-3, 0.3, sampling="log"),
                    "momentum": hp.Float("sgd_momentum", 0.0, 0.95),
                    "nesterov": hp.Boolean("sgd_nesterov")}
        return {"name": name, "learning_rate": hp.Float("rmsprop_lr", 1e-4, 1e-2,
                                                        sampling="log"),
                "rho": hp.Float("rmsprop_rho", 0.8, 0.99)}


def _epoch_counter() -> Any:
    """A Keras callback counting every epoch it sees; copies of it are itself (Keras Tuner
    deep-copies callbacks per trial, keras_tune too), so it counts across trials."""
    import keras

    class EpochCounter(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.epochs += 1

        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            return self

    return EpochCounter()


def _test_accuracy(model: Any, data: dict[str, Any]) -> float:
    scores = model.evaluate(data["x_test"], data["y_test"], batch_size=64, verbose=0,
                            return_dict=True)
    return float(scores["accuracy"])


def _keras_row(method: str, seed: int, epochs: int, seconds: float, best: float,
               study: hpo.Study | None, test: float, n_trials: int = 0) -> Row:
    pruned, trials = 0, n_trials
    if study is not None:
        pruned = sum(t.state is hpo.TrialState.PRUNED for t in study.trials)
        trials = len(study.trials)
    row = Row("keras", method, seed, epochs, seconds, best, pruned, trials)
    print(f"  {row} test_accuracy={test:.4f}", file=sys.stderr)
    return row


# -- report --------------------------------------------------------------------------------------

def summary_table(rows: Sequence[Row]) -> list[str]:
    """Markdown table: one line per (framework, pruner), figures over seeds, vs no pruning."""
    out = ["| framework | pruner | epochs trained (all seeds) | vs none | wall time | "
           "best val. accuracy (mean over seeds) | vs none | pruned trials |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for (framework, pruner), group in _groups(rows).items():
        base = _groups(rows).get((framework, "none"))
        epochs = sum(r.epochs for r in group)
        accuracy = statistics.mean(r.best_accuracy for r in group)
        fewer = delta = "-"  # a framework run without a "none" study has nothing to compare
        if base is not None:
            fewer = f"{sum(r.epochs for r in base) / epochs:.2f}x fewer"
            delta = f"{100 * (accuracy - statistics.mean(r.best_accuracy for r in base)):+.2f} pp"
        out.append(
            f"| {framework} | {pruner} | {epochs} | {fewer} | "
            f"{sum(r.seconds for r in group):.0f} s | {100 * accuracy:.2f} % | "
            f"{delta} | {sum(r.pruned for r in group)} / "
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
    return [
        f"- Command: `{' '.join(['python -m benchmarks.pruning', *argv])}`",
        f"- Date: {dt.date.today().isoformat()}; total wall time {wall / 60:.1f} min",
        f"- Machine: {os.cpu_count()} CPU cores, {platform.platform()}, Python "
        f"{platform.python_version()}; load average (1/5/15 min) at start and end: "
        f"{', '.join(loads)}",
        f"- Versions: hpo_plugins {hpo.__version__}, {_versions()}",
    ]


def _versions() -> str:
    """The installed versions of the frameworks the tasks use."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("lightning", "torch", "keras", "tensorflow-cpu", "keras-tuner"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


# -- command line --------------------------------------------------------------------------------

FRAMEWORKS: dict[str, Callable[[Sequence[str], Sequence[int], int, int], list[Row]]] = {
    "lightning": run_lightning,
    "keras": keras_benchmark,
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; ``--quick`` fills in the smoke-run sizes not given explicitly."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pruning",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", choices=list(FRAMEWORKS),
                        default=["lightning"], help="default: lightning (keras is opt-in: its "
                        "budget comes from Keras Tuner's Hyperband, ~15 min per seed)")
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
