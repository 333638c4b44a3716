"""Parallel trials on one machine: throughput, launcher overhead, storage throughput, regret.

Prints four tables (measured in one run, so ratios compare like with like):

1. trial throughput of a CPU-bound objective (~1 s of pure-Python work) at n_jobs=1 and 2, and
   the efficiency against ideal scaling;
2. per-trial launcher overhead with a no-op objective: sequential, reused loky workers and a
   fresh process per trial;
3. SQLite ask+tell throughput with 1, 2 and 4 processes (errors counted);
4. median final regret of 4 parallel workers (ask 4 / tell 4) against sequential, at equal
   trials, with our default sampler on Branin and Hartmann6.

    python benchmarks/parallel.py            # full run, a few minutes on 2 cores
    python benchmarks/parallel.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.launchers import JoblibLauncher
from hpo_plugins.samplers import RandomSampler

SPACE = {"x": hp.uniform("x", -5, 10), "y": hp.uniform("y", 0, 15)}


def busy(seconds: float) -> float:
    """Burn CPU in pure Python for about ``seconds`` (no sleeping: it must compete for cores)."""
    end = time.process_time() + seconds
    total = 0.0
    while time.process_time() < end:
        for i in range(1000):
            total += i * 1e-9
    return total


def cpu_objective(params: dict[str, Any]) -> float:
    """About one second of CPU per trial."""
    busy(1.0)
    return float(params["x"])


def noop_objective(params: dict[str, Any]) -> float:
    """No work: what is left is the launcher's and the storage's overhead."""
    return float(params["x"])


def _fresh_url(tag: str) -> str:
    folder = tempfile.mkdtemp(prefix=f"hpo-bench-{tag}-")
    return f"sqlite:///{folder}/bench.db"


def _timed_run(objective: Callable[[dict[str, Any]], float], n_trials: int,
               launcher: Any, tag: str) -> float:
    """Seconds to run ``n_trials`` trials (after a warm-up study that starts the workers)."""
    url = _fresh_url(tag)
    common = {"storage": url, "sampler": RandomSampler(), "heartbeat_interval": None}
    hpo.minimize(objective, SPACE, n_trials=2, study_name="warm", launcher=launcher, **common)
    start = time.perf_counter()
    hpo.minimize(objective, SPACE, n_trials=n_trials, study_name="timed", launcher=launcher,
                 **common)
    return time.perf_counter() - start


def throughput_table(n_trials: int) -> list[list[str]]:
    """Table 1: trials per second of the CPU-bound objective at n_jobs 1 and 2."""
    one = _timed_run(cpu_objective, n_trials, None, "cpu1")
    two = _timed_run(cpu_objective, n_trials, JoblibLauncher(n_jobs=2), "cpu2")
    speedup = one / two
    return [["n_jobs=1", f"{n_trials / one:.3f}", "1.00", "100%"],
            ["n_jobs=2", f"{n_trials / two:.3f}", f"{speedup:.2f}", f"{speedup / 2:.0%}"]]


def overhead_table(n_trials: int, n_fresh: int) -> list[list[str]]:
    """Table 2: milliseconds per no-op trial for each way of running trials."""
    rows = []
    for name, launcher, count in (
            ("sequential (this process)", None, n_trials),
            ("JoblibLauncher(n_jobs=2), reused workers", JoblibLauncher(n_jobs=2), n_trials),
            ("JoblibLauncher(n_jobs=2, fresh_process=True)",
             JoblibLauncher(n_jobs=2, fresh_process=True), n_fresh)):
        seconds = _timed_run(noop_objective, count, launcher, "noop")
        rows.append([name, str(count), f"{1000 * seconds / count:.1f}"])
    return rows


def _ask_tell_worker(url: str, count: int, barrier: Any, queue: Any) -> None:
    """Ask and tell ``count`` trials after every process is ready; report (start, end, errors)."""
    study = hpo.load_study("storage", url, space=SPACE, sampler=RandomSampler())
    errors = 0
    barrier.wait()
    start = time.time()
    for _ in range(count):
        try:
            trial = study.ask()
            study.tell(trial, float(trial.params["x"]))
        except Exception:
            errors += 1
    queue.put((start, time.time(), errors))


def storage_table(per_process: int, processes: tuple[int, ...]) -> list[list[str]]:
    """Table 3: ask+tell per second on one SQLite file shared by N processes.

    Timed inside the workers, from a common start (a barrier) to the last one's end, so process
    start-up and imports are not counted.
    """
    rows = []
    context = multiprocessing.get_context("spawn")
    for n in processes:
        url = _fresh_url(f"sql{n}")
        hpo.create_study(space=SPACE, study_name="storage", storage=url,
                         sampler=RandomSampler(), heartbeat_interval=None)
        queue, barrier = context.Queue(), context.Barrier(n)
        workers = [context.Process(target=_ask_tell_worker,
                                   args=(url, per_process, barrier, queue)) for _ in range(n)]
        for w in workers:
            w.start()
        results = [queue.get() for _ in workers]
        for w in workers:
            w.join()
        seconds = max(r[1] for r in results) - min(r[0] for r in results)
        total = n * per_process
        errors = sum(r[2] for r in results)
        rows.append([str(n), str(total), f"{total / seconds:.0f}", str(errors)])
    return rows


def branin(params: dict[str, Any]) -> float:
    """Branin-Hoo on x in [-5, 10], y in [0, 15]; minimum 0.397887."""
    x, y = params["x"], params["y"]
    b, c, t = 5.1 / (4 * np.pi ** 2), 5 / np.pi, 1 / (8 * np.pi)
    return float((y - b * x ** 2 + c * x - 6) ** 2 + 10 * (1 - t) * np.cos(x) + 10)


HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                              [2329, 4135, 8307, 3736, 1004, 9991],
                              [2348, 1451, 3522, 2883, 3047, 6650],
                              [4047, 8828, 8732, 5743, 1091, 381]])
HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
HARTMANN_SPACE = {f"x{i}": hp.uniform(f"x{i}", 0, 1) for i in range(6)}


def hartmann6(params: dict[str, Any]) -> float:
    """Hartmann6 on the unit cube; minimum -3.32237."""
    x = np.array([params[f"x{i}"] for i in range(6)])
    inner = (HARTMANN_A * (x - HARTMANN_P) ** 2).sum(axis=1)
    return float(-(HARTMANN_ALPHA * np.exp(-inner)).sum())


PROBLEMS = {"branin": (branin, SPACE, 0.397887), "hartmann6": (hartmann6, HARTMANN_SPACE,
                                                                 -3.32237)}


def _regret(problem: str, seed: int, budget: int, batch: int) -> float:
    """Best value found minus the optimum, asking ``batch`` trials before telling them."""
    fn, space, optimum = PROBLEMS[problem]
    study = hpo.create_study(space=space, storage=":memory:", seed=seed,
                             heartbeat_interval=None)
    while len(study.trials) < budget:
        trials = [study.ask() for _ in range(min(batch, budget - len(study.trials)))]
        for trial in trials:
            study.tell(trial, fn(trial.params))
    return study.best_value - optimum


def regret_table(seeds: int, budget: int) -> list[list[str]]:
    """Table 4: median regret of 4 workers (ask 4, tell 4) against sequential."""
    rows = []
    for problem in PROBLEMS:
        seq = statistics.median(_regret(problem, s, budget, 1) for s in range(seeds))
        par = statistics.median(_regret(problem, s, budget, 4) for s in range(seeds))
        rows.append([problem, f"{seq:.4f}", f"{par:.4f}", f"{par / seq:.2f}" if seq else "-"])
    return rows


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A markdown table, ready to paste into docs/benchmarks.md."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small counts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quick = args.quick
    print(f"# parallel benchmark, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print_table("CPU-bound 1 s objective", ["mode", "trials/s", "speed-up", "efficiency"],
                throughput_table(6 if quick else 20))
    print_table("Launcher overhead per no-op trial", ["launcher", "trials", "ms/trial"],
                overhead_table(50 if quick else 400, 6 if quick else 20))
    print_table("SQLite ask+tell throughput", ["processes", "ask+tell", "per second", "errors"],
                storage_table(50 if quick else 300, (1, 2, 4)))
    print_table("4 parallel workers against sequential (median final regret)",
                ["problem", "sequential", "4 workers", "ratio"],
                regret_table(3 if quick else 10, 30 if quick else 100))


if __name__ == "__main__":
    main()
