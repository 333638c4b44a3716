"""Sampler benchmark: our samplers against ``hyperopt.fmin`` TPE and Optuna's TPE.

Prints figures; it is not a test. Run from the repository root::

    python -m benchmarks.samplers                       # 10 seeds x 100 evaluations
    python -m benchmarks.samplers --quick               # smoke run: 3 seeds x 40 evaluations
    python -m benchmarks.samplers --problems branin --optimizers hpo_tpe hyperopt_tpe
    python -m benchmarks.samplers --seeds 25 --first-seed 25 --modes parallel   # add seeds
    python -m benchmarks.samplers --timing-only --timing-samplers HyperoptTPESampler

What it measures (problems in :mod:`benchmarks._problems`):

1. **Sequential runs.** Each (problem, optimiser, seed) run evaluates ``--budget`` points one at
   a time; its figure is the final regret (best value found minus the known optimum). The report
   gives the median over seeds per problem, and the mean rank across problems (optimisers ranked
   per problem by median regret, ties averaged).
2. **Simulated parallel workers** (``--workers``, default 8). Ask ``workers`` points, then tell
   them all, until the budget is spent. Our samplers and Optuna use their ask/tell API; Hyperopt
   is driven the way its parallel backends drive it: ``tpe.suggest`` is called for one new id at
   a time while the earlier points of the batch sit in the ``Trials`` as NEW documents without a
   result (Hyperopt gives them an infinite loss and counts them toward its start-up phase).
3. **Normalised area under the best-so-far curve** (lower is better): per problem, each run's
   best-so-far regret after every evaluation is scaled to ``[0, 1]`` between the smallest
   final regret of any run and the median regret of the first evaluation, clipped, and
   averaged over the evaluations; the table gives its mean over seeds, and its mean over
   problems.
4. **Time per ask** with ``--timing-trials`` (default 50, 200 and 1,000) finished trials on the
   10-parameter ``mixed10`` space: our ``study.ask()`` with ``HyperoptTPESampler`` and with our
   ``TPESampler`` (in memory, and on SQLite when that storage imports), and, to show where the
   time goes, each sampler's ``sample()`` alone and one full ``storage.get_all_trials()`` read;
   against one ``tpe.suggest`` call on a ``hyperopt.Trials`` (one step of ``fmin``) and one
   Optuna ``ask`` plus its suggests. The operations are timed round-robin, so a busy machine
   slows them alike.

``hpo_tpe_x_<name>`` optimisers are running-trial policies of ``HyperoptTPESampler`` that were
tried for issue 2 and not adopted (:data:`EXPERIMENTAL_POLICIES`); like ``hpo_tpe_ignore`` they
run only in the parallel simulation.

Every run is deterministic: ours through ``create_study(seed=seed)``, Hyperopt through
``rstate=np.random.default_rng(seed)``, Optuna through ``TPESampler(seed=seed)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a file: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._problems import PROBLEMS, Problem

Runner = Callable[[Problem, int, int, int], list[float]]
"""``runner(problem, seed, budget, workers) -> objective values in evaluation order``."""

_SEED_BOUND = 2**31 - 1
_TIMING_PROBLEM = "mixed10"


# -- optimisers ----------------------------------------------------------------------------------

def _quiet() -> None:
    """Silence library warnings and Optuna's per-trial log lines (in every worker process)."""
    import optuna

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _hpo_sampler(name: str) -> Any:
    """A fresh sampler of ours for an optimiser name."""
    from hpo_plugins.samplers import AnnealSampler, HyperoptTPESampler, RandomSampler
    from hpo_plugins.samplers._tpe import TPESampler

    factories: dict[str, Callable[[], Any]] = {
        "hpo_own_tpe": TPESampler,
        "hpo_tpe": HyperoptTPESampler,
        "hpo_tpe_ignore": lambda: HyperoptTPESampler(running_policy="ignore"),
        "hpo_anneal": AnnealSampler,
        "hpo_random": RandomSampler,
    }
    if name.startswith(_EXPERIMENT):
        return _experimental_policy(name[len(_EXPERIMENT):])
    return factories[name]()


_EXPERIMENT = "hpo_tpe_x_"
EXPERIMENTAL_POLICIES = {
    "split": "running trials in the bad group; the good group sized from finished trials only",
    "believer": "running trials join the good group, on top of the finished ones in it",
    "dup2": "running trials in the bad group twice (twice the weight), good group as 'split'",
    "dupeq": "each running trial weighs in the bad density what one good trial weighs in the "
             "good one (repeated ceil(n_bad / n_good) times), good group as 'split'",
    "hstart": "the default liar, with Hyperopt's start-up count (finished + running trials)",
    "cands": "the default liar; with k trials running, n_ei_candidates * (1 + min(k, 7)) "
             "candidates (what TPESampler does since session 3)",
}
"""Running-trial policies of ``HyperoptTPESampler`` tried for issue 2 and *not* adopted
(``hpo_tpe_x_<name>``, parallel simulation only); kept so the comparison can be rerun."""


def _experimental_policy(variant: str) -> Any:
    """``HyperoptTPESampler()`` with one of :data:`EXPERIMENTAL_POLICIES` for running trials.

    Built on the bridge's private hooks (``_observations`` returns the trials TPE is fitted on,
    with an optional good-group size); sequentially each behaves exactly like the default.
    """
    import dataclasses

    from hpo_plugins.samplers import HyperoptTPESampler
    from hpo_plugins.samplers import _hyperopt_tpe as bridge
    from hpo_plugins.samplers._base import ranked_for_model

    if variant not in EXPERIMENTAL_POLICIES:
        raise KeyError(f"{_EXPERIMENT}{variant}")

    class Experimental(HyperoptTPESampler):
        def sample(self, space: Any, history: Any, rng: np.random.Generator) -> dict[str, Any]:
            if variant == "cands":
                pending = len([t for t in history.in_states(*bridge._PENDING) if t.params])
                base = self.n_ei_candidates
                self.n_ei_candidates = base * (1 + min(pending, 7))
                try:
                    return super().sample(space, history, rng)
                finally:
                    self.n_ei_candidates = base
            started = len([t for t in history.trials if t.state.is_finished or (
                t.state in bridge._PENDING and t.params)]) >= self.n_startup_trials
            if variant != "hstart" or history.n_finished == 0 or not started:
                return super().sample(space, history, rng)
            seed = int(rng.integers(bridge._SEED_BOUND))  # Hyperopt's start-up rule, then TPE
            vals = self._bridge(space).suggest(
                history.number, self._observations(history), seed,
                n_candidates=self.n_ei_candidates, gamma=self.gamma,
                prior_weight=self.prior_weight)
            return bridge._flat_params(space, vals)

        def _observations(self, history: Any) -> Any:
            pairs = ranked_for_model(history)
            pending = [t for t in history.in_states(*bridge._PENDING) if t.params]
            if not pairs or variant in ("hstart", "cands"):
                return super()._observations(history)
            k = min(math.ceil(self.gamma * math.sqrt(len(pairs))), 25)
            worst, best = max(x for _, x in pairs), min(x for _, x in pairs)
            if variant == "believer":
                return bridge._sorted_observations(
                    pairs + [(t, best - 1.0) for t in pending], k + len(pending))
            copies = {"split": 1, "dup2": 2, "dupeq": max(1, math.ceil((len(pairs) - k) / k))}
            top = max([t.number for t in history.trials] + [history.number]) + 1
            extra = []
            for j, t in enumerate(pending):
                extra.append((t, worst))
                for c in range(copies[variant] - 1):  # copies under unused trial numbers
                    number = top + j * copies[variant] + c
                    extra.append((dataclasses.replace(t, number=number), worst))
            return bridge._sorted_observations(pairs + extra, k)

    return Experimental()


def _run_hpo(name: str, problem: Problem, seed: int, budget: int, workers: int) -> list[float]:
    """Our ask/tell loop: ask ``workers`` trials, then tell them, until ``budget``."""
    import hpo_plugins as hpo

    study = hpo.create_study(space=problem.space, storage=":memory:",
                             sampler=_hpo_sampler(name), seed=seed, heartbeat_interval=None)
    values: list[float] = []
    while len(values) < budget:
        batch = [study.ask() for _ in range(min(workers, budget - len(values)))]
        for trial in batch:
            value = problem.objective(trial.params)
            study.tell(trial, value)
            values.append(value)
    return values


def _run_hyperopt(problem: Problem, seed: int, budget: int, workers: int) -> list[float]:
    """``hyperopt.fmin(algo=tpe.suggest)``; with ``workers > 1`` the simulated parallel loop."""
    from hyperopt import Trials, fmin, tpe

    if workers > 1:
        return _run_hyperopt_batches(problem, seed, budget, workers)
    trials = Trials()
    fmin(problem.objective, problem.space, algo=tpe.suggest, max_evals=budget, trials=trials,
         rstate=np.random.default_rng(seed), show_progressbar=False)
    return [float(x) for x in trials.losses()]


def _run_hyperopt_batches(problem: Problem, seed: int, budget: int,
                          workers: int) -> list[float]:
    """What Hyperopt's parallel backends do: suggest with the batch's earlier points pending.

    Each point of a batch is proposed by one ``tpe.suggest`` call (seeded like ``fmin``, from
    ``rstate``) and inserted at once as a NEW document without a result; after the whole batch
    is proposed each document is evaluated through the ``Domain`` (as ``fmin`` does) and marked
    DONE.
    """
    from hyperopt import Domain, Trials, tpe
    from hyperopt.base import JOB_STATE_DONE, Ctrl, spec_from_misc

    domain, trials = Domain(problem.objective, problem.space), Trials()
    rstate = np.random.default_rng(seed)
    values: list[float] = []
    while len(values) < budget:
        tids = []
        for _ in range(min(workers, budget - len(values))):
            new_ids = trials.new_trial_ids(1)
            trials.refresh()
            docs = tpe.suggest(new_ids, domain, trials, int(rstate.integers(_SEED_BOUND)))
            trials.insert_trial_docs(docs)
            tids.extend(new_ids)
        trials.refresh()
        for doc in [d for d in trials.trials if d["tid"] in tids]:
            result = domain.evaluate(spec_from_misc(doc["misc"]), Ctrl(trials, current_trial=doc))
            doc["result"], doc["state"] = result, JOB_STATE_DONE
            values.append(float(result["loss"]))
        trials.refresh()
    return values


def _run_optuna(name: str, problem: Problem, seed: int, budget: int,
                workers: int) -> list[float]:
    """Optuna ask/tell; a trial's parameters are drawn by its suggests, right after its ask."""
    import optuna

    samplers = {
        "optuna_tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "optuna_tpe_indep": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=False),
        "optuna_random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    sampler = samplers[name]()
    study = optuna.create_study(sampler=sampler, direction="minimize")
    values: list[float] = []
    while len(values) < budget:
        batch = []
        for _ in range(min(workers, budget - len(values))):
            trial = study.ask()
            batch.append((trial, problem.suggest(trial)))
        for trial, params in batch:
            value = problem.objective(params)
            study.tell(trial, value)
            values.append(value)
    return values


def _hpo_runner(name: str) -> Runner:
    return lambda problem, seed, budget, workers: _run_hpo(name, problem, seed, budget, workers)


def _optuna_runner(name: str) -> Runner:
    return lambda problem, seed, budget, workers: _run_optuna(name, problem, seed, budget,
                                                              workers)


@dataclass(frozen=True)
class Optimizer:
    """A competitor: how to run it, and whether the parallel-worker simulation includes it."""

    name: str
    label: str
    run: Runner
    parallel: bool


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in [
    Optimizer("hpo_own_tpe", "hpo_plugins TPESampler (ours)", _hpo_runner("hpo_own_tpe"), True),
    Optimizer("hpo_tpe", "hpo_plugins HyperoptTPESampler", _hpo_runner("hpo_tpe"), True),
    Optimizer("hpo_tpe_ignore", "hpo_plugins HyperoptTPESampler(running_policy='ignore')",
              _hpo_runner("hpo_tpe_ignore"), True),
    *[Optimizer(f"{_EXPERIMENT}{v}", f"HyperoptTPESampler, experimental policy {v!r}",
                _hpo_runner(f"{_EXPERIMENT}{v}"), True) for v in EXPERIMENTAL_POLICIES],
    Optimizer("hpo_anneal", "hpo_plugins AnnealSampler", _hpo_runner("hpo_anneal"), False),
    Optimizer("hpo_random", "hpo_plugins RandomSampler", _hpo_runner("hpo_random"), False),
    Optimizer("hyperopt_tpe", "hyperopt.fmin(algo=tpe.suggest)", _run_hyperopt, True),
    Optimizer("optuna_tpe", "optuna TPESampler() (defaults)", _optuna_runner("optuna_tpe"), True),
    Optimizer("optuna_tpe_indep", "optuna TPESampler(multivariate=False)",
              _optuna_runner("optuna_tpe_indep"), True),
    Optimizer("optuna_random", "optuna RandomSampler", _optuna_runner("optuna_random"), False),
]}
"""Competitors by name."""

PARALLEL_ONLY = frozenset({"hpo_tpe_ignore", *(f"{_EXPERIMENT}{v}" for v in EXPERIMENTAL_POLICIES)})
"""Running-trial policies of ``HyperoptTPESampler`` other than the default: they only differ
from ``hpo_tpe`` while trials are running, so they run only in the parallel simulation."""


# -- jobs ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One deterministic run."""

    problem: str
    optimizer: str
    workers: int
    seed: int
    budget: int


@dataclass(frozen=True)
class RunResult:
    """The outcome of one :class:`Job`."""

    job: Job
    regret: float
    seconds: float
    curve: tuple[float, ...] = ()
    """Best-so-far regret after each evaluation."""


def run_job(job: Job) -> RunResult:
    """Run one job and return its final regret and wall time."""
    _quiet()
    problem = PROBLEMS[job.problem]
    start = time.perf_counter()
    values = OPTIMIZERS[job.optimizer].run(problem, job.seed, job.budget, job.workers)
    seconds = time.perf_counter() - start
    if len(values) != job.budget:
        raise RuntimeError(f"{job} evaluated {len(values)} points, expected {job.budget}.")
    curve = tuple(float(problem.regret(v)) for v in np.minimum.accumulate(values))
    return RunResult(job, problem.regret(min(values)), seconds, curve)


def make_jobs(problems: Sequence[str], optimizers: Sequence[str], seeds: int, budget: int,
              workers: int, modes: Sequence[str] = ("sequential", "parallel"),
              first_seed: int = 0) -> list[Job]:
    """Sequential jobs for every optimiser, parallel-simulation jobs for those that take part.

    ``modes`` keeps only sequential or only parallel runs; seeds are ``first_seed`` onwards.
    """
    jobs = []
    seed_range = range(first_seed, first_seed + seeds)
    for problem in problems:
        for name in optimizers:
            runs = [] if name in PARALLEL_ONLY or "sequential" not in modes else [1]
            if workers > 1 and OPTIMIZERS[name].parallel and "parallel" in modes:
                runs.append(workers)
            jobs += [Job(problem, name, w, s, budget) for w in runs for s in seed_range]
    return jobs


def run_jobs(jobs: Sequence[Job], n_jobs: int) -> list[RunResult]:
    """Run ``jobs`` on ``n_jobs`` processes; print progress to stderr about every 10%."""
    from joblib import Parallel, delayed

    from benchmarks.samplers import run_job as job_fn  # by reference, also when run as __main__

    results: list[RunResult] = []
    step = max(1, len(jobs) // 10)
    start = time.perf_counter()
    stream = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(job_fn)(job) for job in jobs)
    for result in stream:
        results.append(result)
        if len(results) % step == 0 or len(results) == len(jobs):
            print(f"  {len(results)}/{len(jobs)} runs, {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)
    return results


# -- time per ask --------------------------------------------------------------------------------

Call = Callable[[], Callable[[], object]]
"""A timed operation: does the work and returns its (untimed) clean-up."""
Data = tuple[list[dict[str, Any]], list[float]]


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one operation, over repetitions (after one untimed warm-up call)."""

    label: str
    seconds: list[float]

    @property
    def mean_ms(self) -> float:
        """Mean milliseconds per call."""
        return 1e3 * float(np.mean(self.seconds))

    @property
    def median_ms(self) -> float:
        """Median milliseconds per call."""
        return 1e3 * float(np.median(self.seconds))

    @property
    def min_ms(self) -> float:
        """Fastest call, in milliseconds."""
        return 1e3 * float(np.min(self.seconds))


def _history_data(problem: Problem, n: int) -> Data:
    """``n`` configurations drawn from the prior (flat labels), and their losses."""
    from hpo_plugins.space import SearchSpace

    space, rng = SearchSpace(problem.space), np.random.default_rng(12345)
    configs = [space.sample_prior(rng) for _ in range(n)]
    return configs, [problem.objective(space.build(c)) for c in configs]


def interleave(calls: dict[str, Call], reps: int) -> list[Timing]:
    """Time every call ``reps`` times, round-robin, after one warm-up call of each.

    Round-robin spreads the load of a shared machine evenly over the operations compared.
    """
    for call in calls.values():
        call()()
    seconds: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(reps):
        for label, call in calls.items():
            start = time.perf_counter()
            cleanup = call()
            seconds[label].append(time.perf_counter() - start)
            cleanup()
    return [Timing(label, s) for label, s in seconds.items()]


def hpo_calls(problem: Problem, data: Data, storage: Any, where: str,
              sampler_name: str = "HyperoptTPESampler") -> dict[str, Call]:
    """Our ``study.ask()``, ``sampler.sample()`` and one full storage read, with the history of
    ``data`` loaded as COMPLETE trials, for ``HyperoptTPESampler`` or our ``TPESampler``.

    The history is loaded by enqueueing the configurations and telling their losses; each timed
    ask is then told FAIL, which TPE ignores, so every timed call sees the same finished trials.
    """
    import hpo_plugins as hpo
    from hpo_plugins.samplers import History, HyperoptTPESampler
    from hpo_plugins.samplers._tpe import TPESampler

    sampler = {"HyperoptTPESampler": HyperoptTPESampler, "TPESampler": TPESampler}[sampler_name]
    study = hpo.create_study(space=problem.space, storage=storage, sampler=sampler(), seed=0,
                             heartbeat_interval=None)
    for config in data[0]:
        study.enqueue(config)
    for _ in data[0]:
        trial = study.ask()
        study.tell(trial, problem.objective(trial.params))

    def ask() -> Callable[[], object]:
        trial = study.ask()
        return lambda: study.tell(trial, state="FAIL")

    history = History(study.get_trials(["COMPLETE"]), study.direction, len(data[0]))

    space = study.space
    assert space is not None

    def sample() -> Callable[[], None]:
        study.sampler.sample(space, history, np.random.default_rng(0))
        return lambda: None

    def read() -> Callable[[], None]:
        study.storage.get_all_trials(study.study_id)
        return lambda: None

    name = f"hpo_plugins {sampler_name}"
    calls = {f"{name}: study.ask(), {where}": ask,
             f"{name}: storage.get_all_trials() alone, {where}": read}
    if where == "in-memory":
        calls[f"{name}: sampler.sample() alone (history read beforehand)"] = sample
    return calls


def hyperopt_call(problem: Problem, data: Data) -> Call:
    """One ``tpe.suggest`` call (one ``fmin`` step) on a ``Trials`` of finished documents."""
    from hyperopt import Domain, Trials, tpe
    from hyperopt.base import JOB_STATE_DONE, STATUS_OK

    domain, trials = Domain(problem.objective, problem.space), Trials()
    docs = []
    for tid, (config, loss) in enumerate(zip(*data)):
        misc = {"tid": tid, "cmd": domain.cmd, "workdir": None,
                "idxs": {k: [tid] for k in config}, "vals": {k: [v] for k, v in config.items()}}
        (doc,) = trials.new_trial_docs([tid], [None], [{"status": STATUS_OK, "loss": loss}],
                                       [misc])
        doc["state"] = JOB_STATE_DONE
        docs.append(doc)
    trials.insert_trial_docs(docs)
    trials.refresh()
    new_id = len(docs)

    def suggest() -> Callable[[], None]:
        tpe.suggest([new_id], domain, trials, 0)
        return lambda: None

    return suggest


def optuna_call(problem: Problem, data: Data) -> Call:
    """One Optuna ``ask`` plus the problem's suggests (where its TPE samples), default TPE."""
    import optuna

    distributions = _optuna_distributions(problem)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trials([
        optuna.trial.create_trial(params=config, distributions=distributions, value=loss)
        for config, loss in zip(*data)])

    def ask() -> Callable[[], object]:
        trial = study.ask()
        problem.suggest(trial)
        return lambda: study.tell(trial, state=optuna.trial.TrialState.FAIL)

    return ask


def _optuna_distributions(problem: Problem) -> dict[str, Any]:
    """The Optuna distributions ``problem.suggest`` declares (float parameters only)."""
    from optuna.distributions import FloatDistribution

    found: dict[str, Any] = {}

    class _Recorder:
        def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                          ) -> float:
            found[name] = FloatDistribution(low, high, log=log)
            return low

    problem.suggest(_Recorder())
    return found


def sql_storage_problem() -> str | None:
    """None if the SQL storage imports, else why not (imported early, with the rest)."""
    try:
        import hpo_plugins.storages._sql  # noqa: F401
    except Exception as exc:  # absent, or mid-edit in a shared working tree
        return f"{type(exc).__name__}: {exc}"
    return None


TIMED = ("TPESampler", "HyperoptTPESampler", "optuna")


def run_timings(sizes: Sequence[int], reps: int, sqlite: bool,
                samplers: Sequence[str] = TIMED) -> dict[int, list[Timing]]:
    """Time-per-ask measurements on the ``mixed10`` problem, per history size, for hyperopt's
    ``tpe.suggest`` and ``samplers`` (names of :data:`TIMED`)."""
    return {n: _timings(n, reps, sqlite, samplers) for n in sizes}


def _timings(n_trials: int, reps: int, sqlite: bool,
             samplers: Sequence[str] = TIMED) -> list[Timing]:
    """Time-per-ask measurements with ``n_trials`` finished trials, in this process."""
    _quiet()
    problem = PROBLEMS[_TIMING_PROBLEM]
    data = _history_data(problem, n_trials)
    print(f"  timing: {n_trials} finished trials, {reps} repetitions", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        calls = {"hyperopt: one tpe.suggest call (one fmin step)": hyperopt_call(problem, data)}
        for name in [n for n in ("TPESampler", "HyperoptTPESampler") if n in samplers]:
            calls.update(hpo_calls(problem, data, ":memory:", "in-memory", name))
            if sqlite:
                url = "sqlite:///" + os.path.join(tmp, f"bench-{name}.db")
                try:
                    calls.update(hpo_calls(problem, data, url, "SQLite", name))
                except Exception as exc:  # report the rest rather than lose it
                    print(f"  SQLite timing skipped: {type(exc).__name__}: {exc}",
                          file=sys.stderr)
        if "optuna" in samplers:
            calls["optuna TPESampler(): study.ask() + suggests, in-memory"] = optuna_call(
                problem, data)
        return interleave(calls, reps)


# -- report --------------------------------------------------------------------------------------

Key = tuple[str, int, str]  # (optimizer, workers, problem)


def _collect(results: Iterable[RunResult]) -> tuple[dict[Key, list[float]],
                                                    dict[Key, list[float]]]:
    regrets: dict[Key, list[float]] = defaultdict(list)
    seconds: dict[Key, list[float]] = defaultdict(list)
    for r in results:
        key = (r.job.optimizer, r.job.workers, r.job.problem)
        regrets[key].append(r.regret)
        seconds[key].append(r.seconds)
    return regrets, seconds


def _fmt(x: float) -> str:
    if x == 0.0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.3g}" if abs(x) >= 1e-3 else f"{x:.2e}"


def mean_ranks(medians: dict[str, dict[str, float]], problems: Sequence[str]
               ) -> dict[str, float]:
    """Mean over problems of each optimiser's rank by median regret (1 = best, ties averaged)."""
    from scipy.stats import rankdata

    names = list(medians)
    ranks = np.array([rankdata([medians[n][p] for n in names]) for p in problems])
    return dict(zip(names, ranks.mean(axis=0).tolist()))


def regret_table(regrets: dict[Key, list[float]], optimizers: Sequence[str], workers: int,
                 problems: Sequence[str]) -> list[str]:
    """Markdown: median [25%, 75%] final regret per problem, and the mean rank."""
    names = [o for o in optimizers if (o, workers, problems[0]) in regrets]
    medians = {n: {p: float(np.median(regrets[n, workers, p])) for p in problems} for n in names}
    ranks = mean_ranks(medians, problems)
    lines = ["| optimizer | " + " | ".join(problems) + " | mean rank |",
             "|---|" + "---|" * (len(problems) + 1)]
    for n in sorted(names, key=lambda n: ranks[n]):
        cells = []
        for p in problems:
            q1, q3 = np.percentile(regrets[n, workers, p], [25, 75])
            cells.append(f"{_fmt(medians[n][p])} [{_fmt(q1)}, {_fmt(q3)}]")
        lines.append(f"| `{n}` | " + " | ".join(cells) + f" | {ranks[n]:.2f} |")
    return lines


def parallel_cost_table(regrets: dict[Key, list[float]], optimizers: Sequence[str],
                        workers: int, problems: Sequence[str]) -> list[str]:
    """Markdown: median regret sequential -> with ``workers`` workers, per problem."""
    names = [o for o in optimizers if (o, workers, problems[0]) in regrets]
    lines = ["| optimizer | " + " | ".join(problems) + " |",
             "|---|" + "---|" * len(problems)]
    for n in names:
        cells = []
        for p in problems:
            seq = regrets.get((n, 1, p))
            seq_txt = _fmt(float(np.median(seq))) if seq else "-"
            cells.append(f"{seq_txt} → {_fmt(float(np.median(regrets[n, workers, p])))}")
        lines.append(f"| `{n}` | " + " | ".join(cells) + " |")
    return lines


def head_to_head(regrets: dict[Key, list[float]], workers: Sequence[int],
                 problems: Sequence[str], ours: str = "hpo_tpe",
                 theirs: str = "hyperopt_tpe") -> list[str]:
    """Markdown: ours vs theirs per problem and mode: medians and a Mann-Whitney U p-value."""
    from scipy.stats import mannwhitneyu

    lines = [f"| mode | problem | `{ours}` median | `{theirs}` median | "
             f"P(`{ours}` < `{theirs}`) | Mann-Whitney p (two-sided) |",
             "|---|---|---|---|---|---|"]
    for w in workers:
        for p in problems:
            a, b = regrets.get((ours, w, p)), regrets.get((theirs, w, p))
            if not a or not b:
                continue
            test = mannwhitneyu(a, b, alternative="two-sided")
            p_greater = float(test.statistic) / (len(a) * len(b))  # U counts pairs a > b
            mode = "sequential" if w == 1 else f"{w} workers"
            lines.append(f"| {mode} | {p} | {_fmt(float(np.median(a)))} | "
                         f"{_fmt(float(np.median(b)))} | {1.0 - p_greater:.2f} | "
                         f"{float(test.pvalue):.2f} |")
    return lines


def seconds_table(seconds: dict[Key, list[float]], optimizers: Sequence[str],
                  workers: Sequence[int], problems: Sequence[str]) -> list[str]:
    """Markdown: mean wall seconds per run (optimiser overhead; the objectives are instant)."""
    lines = ["| optimizer | mode | " + " | ".join(problems) + " |",
             "|---|---|" + "---|" * len(problems)]
    for n in optimizers:
        for w in workers:
            if (n, w, problems[0]) not in seconds:
                continue
            cells = [f"{np.mean(seconds[n, w, p]):.2f}" for p in problems]
            mode = "sequential" if w == 1 else f"{w} workers"
            lines.append(f"| `{n}` | {mode} | " + " | ".join(cells) + " |")
    return lines


def auc_table(results: Sequence[RunResult], optimizers: Sequence[str], workers: int,
              problems: Sequence[str]) -> list[str]:
    """Markdown: normalised area under the best-so-far regret curve (see the module doc)."""
    curves: dict[Key, list[np.ndarray]] = defaultdict(list)
    for r in results:
        curves[r.job.optimizer, r.job.workers, r.job.problem].append(np.asarray(r.curve))
    names = [o for o in optimizers if (o, workers, problems[0]) in curves]
    auc: dict[str, dict[str, float]] = {n: {} for n in names}
    for p in problems:
        runs = [c for key, cs in curves.items() if key[2] == p for c in cs]
        low = min(float(c[-1]) for c in runs)
        high = float(np.median([c[0] for c in runs]))
        for n in names:
            scaled = (np.array(curves[n, workers, p]) - low) / max(high - low, 1e-300)
            auc[n][p] = float(np.mean(np.clip(scaled, 0.0, 1.0)))
    lines = ["| optimizer | " + " | ".join(problems) + " | mean |",
             "|---|" + "---|" * (len(problems) + 1)]
    for n in sorted(names, key=lambda n: float(np.mean(list(auc[n].values())))):
        cells = [f"{auc[n][p]:.3f}" for p in problems]
        lines.append(f"| `{n}` | " + " | ".join(cells) + f" | "
                     f"{float(np.mean(list(auc[n].values()))):.3f} |")
    return lines


def timing_table(timings: Sequence[Timing], n_trials: int) -> list[str]:
    """Markdown: milliseconds per ask, and the ratio to Hyperopt's own ``tpe.suggest``."""
    ref = next((t.mean_ms for t in timings if t.label.startswith("hyperopt")), math.nan)
    lines = [f"| operation ({n_trials} finished trials, 10 parameters) | mean ms | median ms | "
             f"min ms | reps | mean / hyperopt step |", "|---|---|---|---|---|---|"]
    for t in timings:
        lines.append(f"| {t.label} | {t.mean_ms:.1f} | {t.median_ms:.1f} | {t.min_ms:.1f} | "
                     f"{len(t.seconds)} | {t.mean_ms / ref:.2f} |")
    return lines


def source_digest() -> str:
    """A short hash of the ``hpo_plugins`` sources this process imported (the code measured)."""
    import hashlib

    import hpo_plugins

    root = Path(hpo_plugins.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def environment_lines(argv: Sequence[str], wall: float, digest: str, loads: Sequence[str]
                      ) -> list[str]:
    """Command, date, machine, load and package versions, as Markdown bullet points."""
    import hyperopt
    import optuna

    import hpo_plugins

    return [
        f"- Command: `{' '.join(['python -m benchmarks.samplers', *argv])}`",
        f"- Date: {dt.date.today().isoformat()}; total wall time {wall / 60:.1f} min",
        f"- Machine: {os.cpu_count()} CPU cores, {platform.platform()}, "
        f"Python {platform.python_version()}; load average (1/5/15 min) at start, before the "
        f"timings and at the end: {', '.join(loads)}",
        f"- Versions: hpo_plugins {hpo_plugins.__version__} (sources sha256 {digest}), "
        f"hyperopt {hyperopt.__version__}, optuna {optuna.__version__}, numpy {np.__version__}",
    ]


def build_report(args: argparse.Namespace, results: Sequence[RunResult],
                 timings: dict[int, list[Timing]], header: Sequence[str]) -> str:
    """The whole Markdown report, under the ``header`` lines (regret sections only for the
    modes that ran)."""
    regrets, seconds = _collect(results)
    problems, optimizers = args.problems, args.optimizers
    modes = sorted({r.job.workers for r in results})
    out = list(header)
    if results:
        out += ["", f"Budget {args.budget} evaluations per run, {args.seeds} seeds per "
                f"(problem, optimizer), from seed {args.first_seed}. Cells: median final regret "
                f"[25th, 75th percentile] over seeds; mean rank: optimisers ranked per problem "
                f"by median regret, averaged.", ""]
    out += _regret_sections(args, results, regrets, modes)
    pairs_wanted = [
        ("hpo_own_tpe", "optuna_tpe", "TPESampler (ours) vs Optuna's default TPESampler"),
        ("hpo_own_tpe", "hyperopt_tpe", "TPESampler (ours) vs hyperopt.fmin TPE"),
        ("hpo_tpe", "hyperopt_tpe", "HyperoptTPESampler vs hyperopt.fmin TPE"),
        *[(name, "hyperopt_tpe", f"{OPTIMIZERS[name].label} vs hyperopt.fmin TPE")
          for name in optimizers if name in PARALLEL_ONLY]]
    for ours, theirs, title in pairs_wanted:
        pairs = head_to_head(regrets, modes, problems, ours, theirs)
        if len(pairs) > 2:
            out += [f"#### {title}", "", *pairs, ""]
    for n_trials, timed in timings.items():
        out += [f"#### Time per ask, {n_trials} finished trials", "",
                *timing_table(timed, n_trials), ""]
    if results:
        out += ["#### Seconds per run", "", *seconds_table(seconds, optimizers, modes, problems)]
    return "\n".join(out) + "\n"


def _regret_sections(args: argparse.Namespace, results: Sequence[RunResult],
                     regrets: dict[Key, list[float]], modes: Sequence[int]) -> list[str]:
    """Markdown: regret tables, the cost of parallelism and the curve areas per mode."""
    problems, optimizers, out = args.problems, args.optimizers, []
    if 1 in modes:
        out += ["#### Sequential", "", *regret_table(regrets, optimizers, 1, problems), ""]
    if args.workers in modes and args.workers > 1:
        out += [f"#### {args.workers} simulated workers (ask {args.workers}, tell "
                f"{args.workers})", "",
                *regret_table(regrets, optimizers, args.workers, problems), "",
                f"Median regret, sequential → {args.workers} workers:", "",
                *parallel_cost_table(regrets, optimizers, args.workers, problems), ""]
    for w in modes:
        mode = "sequential" if w == 1 else f"{w} workers"
        out += [f"#### Normalised area under the best-so-far curve, {mode} (lower is better)",
                "", *auc_table(results, optimizers, w, problems), ""]
    return out


def write_raw(path: Path, results: Sequence[RunResult]) -> None:
    """Every run's job, final regret and wall seconds, as a JSON list."""
    import dataclasses
    import json

    rows = [{**dataclasses.asdict(r.job), "regret": r.regret, "seconds": r.seconds,
             "curve": list(r.curve)} for r in results]
    path.write_text(json.dumps(rows, indent=1))


# -- command line --------------------------------------------------------------------------------

DEFAULT_OPTIMIZERS = ("hpo_own_tpe", "hpo_tpe", "hpo_tpe_ignore", "hpo_anneal", "hpo_random",
                      "hyperopt_tpe", "optuna_tpe", "optuna_tpe_indep", "optuna_random")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line; ``--quick`` fills in the smoke-run sizes not given explicitly."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.samplers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, help="seeds per run (default 10; --quick 3)")
    parser.add_argument("--budget", type=int, help="evaluations per run (default 100; --quick 40)")
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS))
    parser.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS),
                        default=list(DEFAULT_OPTIMIZERS))
    parser.add_argument("--workers", type=int, default=8,
                        help="simulated parallel workers; 1 skips the simulation (default 8)")
    parser.add_argument("--modes", nargs="+", choices=["sequential", "parallel"],
                        default=["sequential", "parallel"],
                        help="which runs to make: one at a time, simulated workers, or both")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed, first-seed + 1, ... (default 0)")
    parser.add_argument("--timing-only", action="store_true",
                        help="skip the regret runs; only the time-per-ask figures")
    parser.add_argument("--timing-samplers", nargs="+",
                        choices=["TPESampler", "HyperoptTPESampler", "optuna"],
                        default=["TPESampler", "HyperoptTPESampler", "optuna"],
                        help="whose ask to time besides hyperopt's tpe.suggest (default all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--jobs", type=int, default=2, help="processes over runs (default 2)")
    parser.add_argument("--timing-trials", type=int, nargs="+",
                        help="finished trials for the time-per-ask figures "
                             "(default 50 200 1000; --quick 50 200)")
    parser.add_argument("--timing-reps", type=int,
                        help="timed repetitions per operation (default 20; --quick 3)")
    parser.add_argument("--no-timing", action="store_true", help="skip the time-per-ask figures")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite ask timing")
    parser.add_argument("--out", type=Path, help="also write the Markdown report to this file")
    parser.add_argument("--raw", type=Path,
                        help="write every run's result as JSON to this file (before timings)")
    args = parser.parse_args(argv)
    quick = {"seeds": 3, "budget": 40, "timing_trials": [50, 200], "timing_reps": 3}
    full = {"seeds": 10, "budget": 100, "timing_trials": [50, 200, 1000], "timing_reps": 20}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report (and write it to ``--out``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    start, loads, digest = time.perf_counter(), [_load()], source_digest()
    sql_problem = None if args.no_timing or args.no_sqlite else sql_storage_problem()
    if sql_problem is not None:
        print(f"  SQLite timing skipped: {sql_problem}", file=sys.stderr)
    jobs = [] if args.timing_only else make_jobs(
        args.problems, args.optimizers, args.seeds, args.budget, args.workers, args.modes,
        args.first_seed)
    print(f"samplers benchmark: {len(jobs)} runs on {args.jobs} processes", file=sys.stderr)
    results = run_jobs(jobs, args.jobs) if jobs else []
    if args.raw is not None:
        write_raw(args.raw, results)
    loads.append(_load())
    timings = {} if args.no_timing else run_timings(
        args.timing_trials, args.timing_reps, not args.no_sqlite and sql_problem is None,
        args.timing_samplers)
    loads.append(_load())
    header = environment_lines(argv, time.perf_counter() - start, digest, loads)
    if source_digest() != digest:
        header.append(f"- Warning: the hpo_plugins sources changed during the run (sha256 "
                      f"{source_digest()} at the end); runs may mix code versions.")
        print(header[-1], file=sys.stderr)
    report = build_report(args, results, timings, header)
    print(report)
    if args.out is not None:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
