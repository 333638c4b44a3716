"""``hpo-plugins run``: script mode, one command per trial, sequential, in parallel workers, or
on a Dask cluster (``--dask tcp://scheduler:8786``).

Credentials: a password in ``--storage`` is visible to every user of the machine in process
listings (``ps``), so ``run`` warns about it. Give the whole URL in ``$HPO_PLUGINS_STORAGE``
instead, or a URL without password plus ``$PGPASSWORD`` (or ``~/.pgpass``), which PostgreSQL's
client library reads itself.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import runpy
from collections.abc import Iterator
from typing import Any

from hpo_plugins._frozen import TrialState
from hpo_plugins.cli._base import EXIT_OK, EXIT_USAGE, CLIError, Command, echo, warn
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.storages import DEFAULT_STORAGE_ENV

__all__ = ["RUN", "load_space"]

_SAMPLERS = ("tpe", "hyperopt-tpe", "random", "anneal", "grid")
_PRUNERS = ("none", "median", "asha", "hyperband")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", required=True, metavar="FILE_OR_MODULE:NAME",
                        help="where the search space is: examples/space.py:SPACE or pkg.mod:SPACE")
    parser.add_argument("--study", metavar="NAME", help="study name (default: a new name)")
    parser.add_argument("--n-trials", type=_count(0), help="trials this run starts")
    parser.add_argument("--max-trials", type=_count(0),
                        help="cap on the study's total (resumable)")
    parser.add_argument("--timeout", type=_seconds,
                        help="start no trial after this many seconds")
    parser.add_argument("--n-jobs", type=_jobs,
                        help="trials at once (default 1; -1: one per core; with --dask: every "
                        "worker thread or GPU)")
    parser.add_argument("--direction", choices=["minimize", "maximize"], default="minimize")
    parser.add_argument("--metric", default="val_loss",
                        help="the metric the script's callback monitors (default val_loss)")
    parser.add_argument("--sampler", choices=_SAMPLERS, default="tpe")
    parser.add_argument("--pruner", choices=_PRUNERS, default="none")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--logdir", help="root of the trial directories and TensorBoard runs")
    parser.add_argument("--params-via", choices=["env", "json", "args"], default="env",
                        help="also hand params as params.json ({params_file}) or --label value")
    parser.add_argument("--gpus", help='"all" or a comma-separated list of GPU ids')
    parser.add_argument("--trials-per-gpu", type=_count(1), default=1)
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run the trials on the Dask cluster whose scheduler is at ADDRESS "
                        "(e.g. tcp://scheduler:8786); use a database every worker reaches")
    parser.add_argument("--gpus-per-trial", type=float, default=0,
                        help='with --dask: GPUs per trial, sent only to workers started with '
                        '--resources "GPU=1" (default 0)')
    parser.add_argument("script", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="the command to run per trial, after --")


def _count(minimum: int) -> Any:
    """An argparse type: an integer ``>= minimum``; argparse names the option in its error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, received {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, received {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _jobs(text: str) -> int:
    """``--n-jobs``: an integer >= 1, or -1 for one per core."""
    value = _count(-1)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected an integer >= 1, or -1 for one per core; "
                                          "received 0")
    return int(value)


def _seconds(text: str) -> float:
    """``--timeout``: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, received {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, received {text}")
    return value


def _run(args: argparse.Namespace) -> int:
    import hpo_plugins as hpo
    from hpo_plugins.launchers import ScriptFailed, ScriptObjective

    command = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not command:
        raise CLIError("expected the command to run per trial after --, e.g. "
                       "`-- python train.py --epochs 20`", EXIT_USAGE)
    _warn_if_password_in_argv(args.storage)
    study = hpo.create_study(space=load_space(args.space), study_name=args.study,
                             storage=args.storage, direction=args.direction,
                             sampler=_sampler(args.sampler), pruner=_pruner(args.pruner),
                             seed=args.seed, metric=args.metric, logdir=args.logdir)
    ran: list[Any] = []  # the trials this run finished (callbacks see exactly those)
    try:
        with _launcher(args) as launcher:
            study.optimize(ScriptObjective(command, params_via=args.params_via),
                           n_trials=args.n_trials, max_trials=args.max_trials,
                           timeout=args.timeout, catch=ScriptFailed, launcher=launcher,
                           callbacks=[lambda _, trial: ran.append(trial)])
        _summary(study)
    finally:
        study.storage.close()
    if ran and all(t.state is TrialState.FAIL for t in ran):
        reason = ran[-1].fail_reason or "no reason stored"
        raise CLIError(f"every trial of this run failed ({len(ran)}); the last one: "
                       f"{reason.strip().splitlines()[0] if reason.strip() else reason}")
    return EXIT_OK


@contextlib.contextmanager
def _launcher(args: argparse.Namespace) -> Iterator[Any]:
    """The launcher the options ask for (None: sequential), with its Dask client if any."""
    from hpo_plugins.launchers import DaskLauncher, JoblibLauncher

    gpus = None if args.gpus is None else "all" if args.gpus == "all" else args.gpus.split(",")
    if args.dask is None:
        if args.gpus_per_trial:
            raise CLIError("--gpus-per-trial needs --dask (on one machine use --gpus)",
                           EXIT_USAGE)
        n_jobs = 1 if args.n_jobs is None else args.n_jobs
        yield (JoblibLauncher(n_jobs=n_jobs, gpus=gpus, trials_per_gpu=args.trials_per_gpu)
               if n_jobs != 1 or gpus is not None else None)
        return
    if gpus is not None:
        raise CLIError("--gpus does not apply with --dask: start one Dask worker per GPU with "
                       '--resources "GPU=1" and pass --gpus-per-trial', EXIT_USAGE)
    with _dask_client(args.dask) as client:
        yield DaskLauncher(client, gpus_per_trial=args.gpus_per_trial,
                           n_concurrent=args.n_jobs)


@contextlib.contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    """A client of the Dask scheduler at ``address``, closed on exit."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise CLIError("--dask needs Dask: pip install 'hpo_plugins[dask]'") from None
    try:
        client = Client(address)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CLIError(f"cannot connect to the Dask scheduler at {address}: {exc}") from None
    with client:
        yield client


def _warn_if_password_in_argv(url: str | None) -> None:
    """Warn (without echoing it) when ``--storage`` holds a password: ``ps`` shows it."""
    if url is None:
        return
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # malformed: the storage reports it, without echoing the URL
        return
    if password:
        warn(f"warning: the password in --storage is visible to other users in process "
             f"listings; set ${DEFAULT_STORAGE_ENV} to the URL instead, or leave the password "
             f"out of the URL and set $PGPASSWORD (or use ~/.pgpass)")


def _summary(study: Any) -> None:
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.value] = counts.get(trial.state.value, 0) + 1
    echo(f"study {study.study_name!r}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if counts.get("COMPLETE"):
        echo(f"best value {study.best_value:.6g} (trial {study.best_trial.number})")
        echo(json.dumps(study.best_params, default=repr))


def load_space(spec: str) -> Any:
    """The object named by ``FILE_OR_MODULE:NAME`` (a ``.py`` file path or a module name)."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise CLIError(f"expected --space FILE_OR_MODULE:NAME, e.g. examples/space.py:SPACE. "
                       f"Received: {spec!r}", EXIT_USAGE)
    try:
        if where.endswith(".py") or os.path.sep in where:
            namespace = runpy.run_path(where)
        else:
            namespace = vars(importlib.import_module(where))
    except (OSError, ImportError) as exc:
        raise CLIError(f"cannot load the space from {where!r}: {exc}") from None
    if name not in namespace:
        raise CLIError(f"{where!r} has no name {name!r}; names there: "
                       f"{sorted(k for k in namespace if not k.startswith('_'))}")
    return namespace[name]


def _sampler(name: str) -> Any:
    from hpo_plugins import samplers

    return {"tpe": samplers.TPESampler,
            "hyperopt-tpe": samplers.HyperoptTPESampler, "random": samplers.RandomSampler,
            "anneal": samplers.AnnealSampler, "grid": samplers.GridSampler}[name]()


def _pruner(name: str) -> Any:
    from hpo_plugins import pruners

    factories: dict[str, Any] = {
        "none": pruners.NopPruner, "median": pruners.MedianPruner,
        "asha": pruners.SuccessiveHalvingPruner, "hyperband": pruners.HyperbandPruner}
    try:
        return factories[name]()
    except KeyError:
        raise ConfigurationError(f"unknown pruner {name!r}") from None


RUN = Command(
    name="run",
    summary="run a command per trial (script mode), sequentially or in parallel",
    description="Run COMMAND once per trial. The script reads its params with "
    "hpo_plugins.current_trial().params (or the HPO_PLUGINS_PARAMS JSON variable) and reports "
    "with Trainer(callbacks=[HPOCallback()]) or trial.report(); the trial's value is the last "
    "value it reported. A non-zero exit fails the trial (tail of stderr stored) and the study "
    "goes on. Example: hpo-plugins run --space examples/space.py:SPACE --n-trials 50 "
    "--n-jobs 2 --study digits -- python examples/train_digits.py --epochs 20. With --dask "
    "tcp://scheduler:8786 the trials run on a Dask cluster; give a PostgreSQL URL every worker "
    "reaches, its password in $HPO_PLUGINS_STORAGE or $PGPASSWORD rather than on the command "
    "line.",
    configure=_configure,
    run=_run,
)
