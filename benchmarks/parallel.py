"""Parallel trials on one machine: throughput, launcher overhead, storage throughput, regret.

Prints four tables (measured in one run, so ratios compare like with like):

1. trial throughput of a CPU-bound objective (~1 s of pure-Python work) at n_jobs=1 and 2, and
   the efficiency against ideal scaling;
2. per-trial launcher overhead with a no-op objective: sequential, reused loky workers and a
   fresh process per trial;
3. SQLite ask+tell throughput with 1, 2 and 4 processes (errors counted);
4. median final regret of 4 parallel workers against sequential, at equal trials, with our
   default sampler on Branin and Hartmann6, for two schedules: asynchronous (what
   ``JoblibLauncher`` does: each new trial sees the 3 before it running) and a synchronous
   batch (ask 4, tell 4); 200 seeds by default, with a bootstrap interval of the ratio and the
   ratio of geometric means, the steadier figure. A yardstick row per problem: the sequential
   runs stopped 3 trials early, about the best asynchronous workers could do. With ``--peers``,
   Optuna's TPE (with its constant liar) and Hyperopt's TPE (open trials as NEW documents) run
   the same asynchronous comparison, each against its own sequential runs
   (``benchmarks/_engines.py``).

    python benchmarks/parallel.py                  # full run, a few minutes on 2 cores
    python benchmarks/parallel.py --quick          # smoke run
    python benchmarks/parallel.py --regret-only    # table 4 alone (independent of the load)
    python benchmarks/parallel.py --regret-only --peers   # with Optuna's and Hyperopt's rows

``--distributed [--postgres URL]`` prints the "Many machines" tables instead (see
``distributed_main``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
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

try:
    from benchmarks._engines import ENGINES, make_engine
except ImportError:  # run as a script: this folder is on the path
    from _engines import ENGINES, make_engine  # type: ignore[no-redef]

BRANIN_BOUNDS = {"x": (-5.0, 10.0), "y": (0.0, 15.0)}
SPACE = {name: hp.uniform(name, low, high) for name, (low, high) in BRANIN_BOUNDS.items()}


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
               launcher: Any, tag: str, **options: Any) -> float:
    """Seconds to run ``n_trials`` trials (after a warm-up study that starts the workers).

    Heartbeats are off unless ``options`` say otherwise; ``options`` go to ``minimize``.
    """
    url = _fresh_url(tag)
    common = {"storage": url, "sampler": RandomSampler(), "heartbeat_interval": None, **options}
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
    defaults = {"heartbeat_interval": 30.0, "seed": 0}  # what a user gets who passes a seed
    for name, launcher, count, options in (
            ("sequential (this process)", None, n_trials, {}),
            ("JoblibLauncher(n_jobs=2), reused workers", JoblibLauncher(n_jobs=2), n_trials, {}),
            ("JoblibLauncher(n_jobs=2), reused workers, heartbeats and a seed (deterministic)",
             JoblibLauncher(n_jobs=2), n_trials, defaults),
            ("JoblibLauncher(n_jobs=2, fresh_process=True)",
             JoblibLauncher(n_jobs=2, fresh_process=True), n_fresh, {})):
        seconds = _timed_run(noop_objective, count, launcher, "noop", **options)
        rows.append([name, str(count), f"{1000 * seconds / count:.1f}"])
    return rows


def _ask_tell_worker(url: str, count: int, barrier: Any, queue: Any) -> None:
    """Ask and tell ``count`` trials after every process is ready; report (start, end, errors)."""
    study = hpo.load_study("storage", url, space=SPACE, sampler=RandomSampler())
    barrier.wait()
    start = time.time()
    errors = _ask_tell_loop(study, count)
    queue.put((start, time.time(), errors))


def _ask_tell_loop(study: hpo.Study, count: int) -> int:
    """``count`` times ``ask`` then ``tell``; the number of those that raised."""
    errors = 0
    for _ in range(count):
        try:
            trial = study.ask()
            study.tell(trial, float(trial.params["x"]))
        except Exception:
            errors += 1
    return errors


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
HARTMANN_BOUNDS = {f"x{i}": (0.0, 1.0) for i in range(6)}
HARTMANN_SPACE = {name: hp.uniform(name, low, high)
                  for name, (low, high) in HARTMANN_BOUNDS.items()}


def hartmann6(params: dict[str, Any]) -> float:
    """Hartmann6 on the unit cube; minimum -3.32237."""
    x = np.array([params[f"x{i}"] for i in range(6)])
    inner = (HARTMANN_A * (x - HARTMANN_P) ** 2).sum(axis=1)
    return float(-(HARTMANN_ALPHA * np.exp(-inner)).sum())


@dataclasses.dataclass(frozen=True)
class RegretProblem:
    """A problem of the regret table: objective, Hyperopt space, the same uniform bounds (for
    Optuna) and the known minimum."""

    objective: Callable[[dict[str, Any]], float]
    space: dict[str, Any]
    bounds: dict[str, tuple[float, float]]
    optimum: float


PROBLEMS = {"branin": RegretProblem(branin, SPACE, BRANIN_BOUNDS, 0.397887),
            "hartmann6": RegretProblem(hartmann6, HARTMANN_SPACE, HARTMANN_BOUNDS, -3.32237)}


SCHEDULES = ("asynchronous", "ask 4, tell 4")


def _regret(problem: str, seed: int, budget: int, workers: int, schedule: str,
            engine: str = "hpo_plugins") -> list[float]:
    """Best value found minus the optimum after each trial, with ``workers`` simulated workers.

    ``"asynchronous"`` is what :class:`JoblibLauncher` does: a worker asks as soon as its trial
    ends, so with equally long trials each new trial sees the ``workers - 1`` trials before it
    still running (the launcher's deterministic mode makes exactly this the rule). ``"ask 4,
    tell 4"`` is a synchronous batch: the first trial of each batch sees every earlier result,
    the last one sees 3 running, on average 1.5 (less delay than real workers have).
    ``engine`` is ours or a peer's (:mod:`benchmarks._engines`).
    """
    spec = PROBLEMS[problem]
    driver = make_engine(engine, spec.objective, spec.space, spec.bounds, seed)
    running: collections.deque[Any] = collections.deque()
    told_at_once = 1 if schedule == "asynchronous" else workers  # the oldest one, or the batch
    values: list[float] = []  # in the order of the asks: tells are first in, first out
    for _ in range(budget):
        if len(running) == workers:
            values.extend(driver.tell(running.popleft()) for _ in range(told_at_once))
        running.append(driver.ask())
    values.extend(driver.tell(handle) for handle in running)
    return (np.minimum.accumulate(np.array(values, dtype=float)) - spec.optimum).tolist()


def _ratio_row(problem: str, engine: str, label: str, seq: list[float],
               par: list[float]) -> list[str]:
    """One row: both medians, their ratio with a bootstrap interval, the geometric-mean ratio."""
    a, b = np.log(np.array(seq)), np.log(np.array(par))
    rng = np.random.default_rng(0)
    boot = [np.median(rng.choice(b, len(b))) - np.median(rng.choice(a, len(a)))
            for _ in range(2000)]
    low, high = np.exp(np.percentile(boot, [10, 90]))
    ratio = statistics.median(par) / statistics.median(seq)
    return [problem, engine, label, str(len(seq)), f"{statistics.median(seq):.4f}",
            f"{statistics.median(par):.4f}", f"{ratio:.2f}", f"[{low:.2f}, {high:.2f}]",
            f"{np.exp(b.mean() - a.mean()):.2f}"]


def regret_table(seeds: int, budget: int, n_jobs: int = 2,
                 peers: tuple[str, ...] = ()) -> list[list[str]]:
    """Table 4: median regret of 4 workers against sequential, both schedules of ``_regret``.

    Besides the ratio of the medians: a bootstrap interval of that ratio (10th-90th percentile
    of 2,000 resamples of the seeds), which shows how much of it is seed-to-seed spread, and the
    ratio of the geometric means (every seed counts, not only the middle ones). A third row per
    problem is a yardstick: the same sequential runs stopped 3 trials early. Asynchronous workers
    lack the last 3 results when they propose the last trials; a policy that used the running
    trials perfectly would still be about that far behind. ``peers`` (``"optuna"``,
    ``"hyperopt"``) add, per problem, the same asynchronous comparison for each peer against
    its own sequential runs, so the cost of parallelism is compared like with like. Runs on
    ``n_jobs`` processes; each run is deterministic, so the figures do not depend on the load.
    """
    from concurrent.futures import ProcessPoolExecutor

    def runs(problem: str, workers: int, schedule: str, engine: str) -> list[list[float]]:
        return list(pool.map(_regret, [problem] * seeds, range(seeds), [budget] * seeds,
                             [workers] * seeds, [schedule] * seeds, [engine] * seeds))

    rows = []
    with ProcessPoolExecutor(n_jobs) as pool:
        for problem in PROBLEMS:
            seq_curves = runs(problem, 1, "asynchronous", "hpo_plugins")
            seq = [curve[-1] for curve in seq_curves]
            for schedule in SCHEDULES:
                par = [curve[-1] for curve in runs(problem, 4, schedule, "hpo_plugins")]
                rows.append(_ratio_row(problem, "hpo_plugins", schedule, seq, par))
            rows.append(_ratio_row(problem, "hpo_plugins", f"sequential, {budget - 3} trials",
                                   seq, [curve[-4] for curve in seq_curves]))
            for peer in peers:
                peer_seq = [curve[-1] for curve in runs(problem, 1, "asynchronous", peer)]
                par = [curve[-1] for curve in runs(problem, 4, "asynchronous", peer)]
                rows.append(_ratio_row(problem, peer, "asynchronous", peer_seq, par))
    return rows


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A markdown table, ready to paste into docs/benchmarks.md."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


# -- many machines (docs/benchmarks.md, "Many machines") ---------------------------------------
# `--distributed` prints these tables instead of the four above: ask+tell throughput of SQLite
# and PostgreSQL with 1 to 8 processes, and a large simulated run on a local Dask cluster.

DISTRIBUTED_PROCESSES = (1, 2, 4, 8)
_STUDY = "storage"


def _ask_tell_cpu_worker(url: str, count: int, barriers: tuple[Any, Any], queue: Any) -> None:
    """Like the SQLite table's worker, and also report this process's CPU seconds.

    It keeps its connections open until the parent has read the server's CPU (second barrier).
    """
    study = hpo.load_study(_STUDY, url, space=SPACE, sampler=RandomSampler())
    barriers[0].wait()
    start, cpu = time.time(), time.process_time()
    errors = _ask_tell_loop(study, count)
    queue.put((start, time.time(), errors, time.process_time() - cpu))
    barriers[1].wait()
    study.storage.close()


def _server_pids(url: str) -> list[int]:
    """The processes of the PostgreSQL server behind ``url`` if it runs on this machine.

    Our backend's parent is the server's main process; its children are the other backends
    and the server's helpers (WAL writer, ...). Empty for SQLite or a server elsewhere.
    """
    if not url.startswith("postgresql"):
        return []
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            backend = int(conn.scalar(sa.text("SELECT pg_backend_pid()")))
            main = _parent(backend)
    finally:
        engine.dispose()
    if main is None or not os.path.exists(f"/proc/{main}/cmdline"):
        return []
    return [main, *(pid for pid in _proc_pids() if _parent(pid) == main)]


def _proc_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name; empty if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if fields else None


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (the ones still alive)."""
    ticks = sum(int(f[11]) + int(f[12]) for f in map(_proc_stat, pids) if f)
    return ticks / os.sysconf("SC_CLK_TCK")


def ask_tell_table(url: str, per_process: int,
                   processes: tuple[int, ...] = DISTRIBUTED_PROCESSES) -> list[list[str]]:
    """ask+tell per second of N processes on one study, with the CPU each ask+tell costs.

    Timed inside the workers from a common start (a barrier) to the last one's end, as the
    SQLite table does. A SQLite URL gets a new file per row; on a database server the study is
    deleted after each row. "server CPU" counts a PostgreSQL server on this machine; on an idle
    machine, cores divided by the total CPU of one ask+tell bounds the throughput.
    """
    rows = []
    context = multiprocessing.get_context("spawn")
    for n in processes:
        row_url = _fresh_url(f"sql{n}") if url.startswith("sqlite") else url
        study = hpo.create_study(space=SPACE, study_name=_STUDY, storage=row_url,
                                 sampler=RandomSampler(), heartbeat_interval=None)
        queue, barriers = context.Queue(), (context.Barrier(n + 1), context.Barrier(n + 1))
        workers = [context.Process(target=_ask_tell_cpu_worker,
                                   args=(row_url, per_process, barriers, queue))
                   for _ in range(n)]
        for w in workers:
            w.start()
        barriers[0].wait()
        server = _server_pids(row_url)
        server_cpu = _cpu_seconds(server)
        results = [queue.get() for _ in workers]
        server_cpu = _cpu_seconds(server) - server_cpu
        barriers[1].wait()
        for w in workers:
            w.join()
        study.storage.delete_study(study.study_id)
        study.storage.close()
        rows.append(_throughput_row(n, per_process, results, server_cpu if server else None))
    return rows


def _throughput_row(n: int, per_process: int, results: list[tuple[float, float, int, float]],
                    server_cpu: float | None) -> list[str]:
    total = n * per_process
    seconds = max(r[1] for r in results) - min(r[0] for r in results)
    client_ms = 1000 * sum(r[3] for r in results) / total
    server_ms = "-" if server_cpu is None else f"{1000 * server_cpu / total:.2f}"
    return [str(n), str(total), f"{total / seconds:.0f}", str(sum(r[2] for r in results)),
            f"{client_ms:.2f}", server_ms]


def sleeping_objective(seconds: float) -> Callable[[dict[str, Any]], float]:
    """An objective that sleeps and records when it ran (``user_attrs["ran"]``, epoch seconds)."""

    def objective(params: dict[str, Any]) -> float:
        start = time.time()
        time.sleep(seconds)
        hpo.current_trial().set_user_attr("ran", [start, time.time()])
        return float(params["x"])

    return objective


def dask_simulation(url: str, slots: int, n_trials: int, seconds: float,
                    n_workers: int = 4) -> list[list[str]]:
    """A large run on a local Dask cluster: ``slots`` sleeping trials at once.

    Where the time goes, per trial, from the trials and Dask's task stream: a task (ask,
    objective, tell) runs from its start on a worker thread to its end; "objective" is the sleep;
    "tell" runs from the objective's end to the write that finished the trial (it includes the
    write of ``ran``); "ask" is the rest of the task (claim or create, sample, store the params;
    a thread's first task also unpacks the study). "idle" is the share of slot time in no task:
    scheduling, sending tasks and results, and the launcher's own loop.
    """
    from dask.distributed import Client, LocalCluster, get_task_stream

    from hpo_plugins.launchers import DaskLauncher

    common: dict[str, Any] = {"storage": url, "sampler": RandomSampler()}
    name = f"dask-{slots}-{os.getpid()}-{time.time_ns()}"  # minimize resumes a same-named study
    with LocalCluster(n_workers=n_workers, threads_per_worker=slots // n_workers,
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        warm = hpo.minimize(sleeping_objective(0.01), SPACE, n_trials=slots,
                            study_name=f"{name}-warm", launcher=DaskLauncher(client),
                            **common)  # imports and unpacking on every thread
        start = time.perf_counter()
        with get_task_stream(client) as stream:
            study = hpo.minimize(sleeping_objective(seconds), SPACE, n_trials=n_trials,
                                 study_name=name, launcher=DaskLauncher(client), **common)
        wall = time.perf_counter() - start
    trials = [t for t in study.trials if "ran" in t.user_attrs]
    for done in (warm, study):
        done.storage.delete_study(done.study_id)
        done.storage.close()
    return [_simulation_row(url, slots, len(trials), wall, seconds, trials, stream.data)]


def _simulation_row(url: str, slots: int, done: int, wall: float, seconds: float,
                    trials: list[hpo.FrozenTrial], tasks: list[dict[str, Any]]) -> list[str]:
    busy = [s["stop"] - s["start"] for t in tasks for s in t["startstops"]
            if s["action"] == "compute"]
    objective = sum(t.user_attrs["ran"][1] - t.user_attrs["ran"][0] for t in trials)
    tell = sum(t.datetime_complete.timestamp() - t.user_attrs["ran"][1] for t in trials
               if t.datetime_complete is not None)
    ask = sum(busy) - objective - tell
    n = max(1, len(trials))
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    return [kind, str(slots), str(done), f"{wall:.1f}", f"{done / wall:.1f}",
            f"{slots / seconds:.1f}", f"{1000 * ask / n:.0f}", f"{1000 * objective / n:.0f}",
            f"{1000 * tell / n:.0f}", f"{1 - sum(busy) / (slots * wall):.0%}"]


def without_commit_wait(url: str) -> str:
    """``url`` with ``synchronous_commit=off`` for its sessions (PostgreSQL, psycopg).

    The server then answers a COMMIT before its WAL reaches the disk: a server crash (not a
    client's) may lose the last fraction of a second of commits. The database's own setting
    (on by default, what the benchmark measures unless asked) is the durable one.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.update_query_dict({"options": "-c synchronous_commit=off"}).render_as_string(
        hide_password=False)


def distributed_main(quick: bool, postgres_url: str | None,
                     synchronous_commit: bool = True) -> None:
    """The "Many machines" tables: storage throughput, then the large Dask run.

    ``synchronous_commit=False`` runs the PostgreSQL sessions without waiting for the WAL to
    reach the disk at commit (see :func:`without_commit_wait`); the tables say so.
    """
    print(f"# distributed benchmark, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"load average {_load()}")
    urls = {"SQLite": _fresh_url("many")}
    if postgres_url and synchronous_commit:
        urls["PostgreSQL"] = postgres_url
    elif postgres_url:
        urls["PostgreSQL (synchronous_commit=off, not crash-durable)"] = without_commit_wait(
            postgres_url)
    else:
        print("\n(no --postgres URL: PostgreSQL rows skipped)")
    header = ["processes", "ask+tell", "per second", "errors", "client CPU ms/ask+tell",
              "server CPU ms/ask+tell"]
    for kind, url in urls.items():
        print_table(f"{kind} ask+tell throughput", header,
                    ask_tell_table(url, 30 if quick else 200))
        print(f"\nload average after: {_load()}")
    slots, n_trials, seconds = (16, 48, 0.5) if quick else (64, 256, 1.0)
    rows = [row for url in urls.values()
            for row in dask_simulation(url if url.startswith("postgresql") else
                                       _fresh_url("dask"), slots, n_trials, seconds)]
    print_table(f"Simulated large run: {slots} trials at once on a local Dask cluster "
                f"(4 worker processes), objective sleeps {seconds:g} s",
                ["storage", "slots", "trials", "wall s", "trials/s", "ideal trials/s",
                 "ask ms", "objective ms", "tell ms", "idle slot time"], rows)
    print(f"\nload average at the end: {_load()}")


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with small counts")
    parser.add_argument("--distributed", action="store_true",
                        help="the 'Many machines' tables instead: SQLite and PostgreSQL "
                        "throughput with 1-8 processes, a large run on a local Dask cluster")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("HPO_BENCH_POSTGRES"),
                        help="with --distributed: a PostgreSQL database to use "
                        "(default: $HPO_BENCH_POSTGRES; none: SQLite only)")
    parser.add_argument("--no-synchronous-commit", action="store_true",
                        help="with --postgres: sessions with synchronous_commit=off (faster, "
                        "but a server crash may lose the last commits); the default measures "
                        "the server's durable setting")
    parser.add_argument("--seeds", type=int, default=200,
                        help="seeds of the regret table (default 200, about 4 minutes: the "
                        "ratio of two medians moves by tens of percent between sets of 40 "
                        "seeds, and by up to 0.4 between sets of 300; the docs use 600)")
    parser.add_argument("--regret-only", action="store_true",
                        help="print only the regret table (it does not depend on the load)")
    parser.add_argument("--peers", nargs="*", choices=ENGINES[1:], default=None,
                        metavar="PEER",
                        help="add to the regret table the same asynchronous comparison for "
                        f"peers ({', '.join(ENGINES[1:])}; with no name, both), each against "
                        "its own sequential runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    quick = args.quick
    if args.distributed:
        distributed_main(quick, args.postgres, not args.no_synchronous_commit)
        return
    print(f"# parallel benchmark, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if not args.regret_only:
        timed_tables(quick)
    peers = tuple(args.peers or ENGINES[1:]) if args.peers is not None else ()
    print_table("4 parallel workers against sequential (median final regret)",
                ["problem", "optimiser", "against sequential", "seeds", "sequential",
                 "that run", "ratio", "ratio, 80 % bootstrap interval",
                 "ratio of geometric means"],
                regret_table(3 if quick else args.seeds, 30 if quick else 100, peers=peers))


def timed_tables(quick: bool) -> None:
    """Tables 1-3, which measure time: run them on an otherwise idle machine."""
    print_table("CPU-bound 1 s objective", ["mode", "trials/s", "speed-up", "efficiency"],
                throughput_table(6 if quick else 20))
    print_table("Launcher overhead per no-op trial", ["launcher", "trials", "ms/trial"],
                overhead_table(50 if quick else 400, 6 if quick else 20))
    print_table("SQLite ask+tell throughput", ["processes", "ask+tell", "per second", "errors"],
                storage_table(50 if quick else 300, (1, 2, 4)))


if __name__ == "__main__":
    main()
