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
import hashlib
import importlib
import json
import os
import runpy
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import TrialState
from hpo_plugins.cli._base import (
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    Command,
    Terminated,
    echo,
    integer_at_least,
    json_text,
    not_a_storage_url,
    stop_signals_raise,
    warn,
)
from hpo_plugins.cli._table import short_reason
from hpo_plugins.exceptions import ConfigurationError, StudyNotFoundError, TooManyFailuresError
from hpo_plugins.space import SearchSpace, as_space
from hpo_plugins.storages import DEFAULT_STORAGE_ENV, Storage, default_storage_url, get_storage

if TYPE_CHECKING:
    from hpo_plugins.samplers import Sampler
    from hpo_plugins.study import Study

__all__ = ["RUN", "load_space"]

#: --sampler and --pruner: each name and its class in hpo_plugins.samplers / .pruners.
_SAMPLERS = {"tpe": "TPESampler", "hyperopt-tpe": "HyperoptTPESampler",
             "random": "RandomSampler", "anneal": "AnnealSampler", "grid": "GridSampler"}
_PRUNERS = {"none": "NopPruner", "median": "MedianPruner", "asha": "SuccessiveHalvingPruner",
            "hyperband": "HyperbandPruner"}
#: What a new study gets when --sampler, --pruner or --metric is absent (create_study's own
#: defaults); the derived study name is built from these, so that it never changed.
_NEW_SAMPLER, _NEW_PRUNER, _NEW_METRIC = "tpe", "none", "val_loss"
#: create_study's default heartbeat interval, used when --heartbeat-interval is absent.
_HEARTBEAT_S = 30.0
_ABSENT = object()  # --heartbeat-interval left out (None means "off")
_MEMORY = (":memory:", "memory", "inmemory")  # get_storage's names of an in-process storage


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", required=True, metavar="FILE_OR_MODULE:NAME",
                        help="where the search space is: examples/space.py:SPACE or pkg.mod:SPACE")
    parser.add_argument("--study", type=_name, metavar="NAME",
                        help="study name (default: derived from the command and the space, so "
                        "running the same command again resumes the study)")
    parser.add_argument("--n-trials", type=integer_at_least(0), help="trials this run starts")
    parser.add_argument("--max-trials", type=integer_at_least(0),
                        help="cap on the study's total (resumable)")
    parser.add_argument("--timeout", type=_seconds,
                        help="start no trial after this many seconds")
    parser.add_argument("--n-jobs", type=_jobs,
                        help="trials at once (default 1; -1: one per core; with --dask: every "
                        "worker thread or GPU)")
    parser.add_argument("--direction", choices=["minimize", "maximize"], default="minimize")
    parser.add_argument("--metric", type=_name,
                        help=f"the metric the script's callback monitors (when absent: "
                        f"{_NEW_METRIC} for a new study; a resumed study keeps its own)")
    parser.add_argument("--sampler", choices=list(_SAMPLERS),
                        help=f"when absent: {_NEW_SAMPLER} for a new study; a resumed study "
                        f"keeps its own")
    parser.add_argument("--pruner", choices=list(_PRUNERS),
                        help=f"when absent: {_NEW_PRUNER} for a new study; a resumed study "
                        f"keeps its own")
    parser.add_argument("--seed", type=_seed)
    parser.add_argument("--logdir", help="root of the trial directories and TensorBoard runs")
    parser.add_argument("--params-via", choices=["env", "json", "args"], default="env",
                        help="also hand params as params.json (its path replaces "
                        "{params_file} in the command) or --label value")
    parser.add_argument("--gpus", help='"all" or a comma-separated list of GPU ids')
    parser.add_argument("--trials-per-gpu", type=integer_at_least(1),
                        help="with --gpus: trials that share one GPU (default 1)")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="run the trials on the Dask cluster whose scheduler is at ADDRESS "
                        "(e.g. tcp://scheduler:8786); use a database every worker reaches")
    parser.add_argument("--gpus-per-trial", type=_gpus, default=0,
                        help='with --dask: GPUs per trial, sent only to workers started with '
                        '--resources "GPU=1" (default 0)')
    parser.add_argument("--heartbeat-interval", type=_heartbeat, metavar="SECONDS",
                        default=_ABSENT,
                        help=f"seconds between heartbeats of a running trial (default "
                        f"{_HEARTBEAT_S:g}; 'off': none, so a trial whose worker died unseen "
                        f"by the launcher stays RUNNING)")
    parser.add_argument("--grace-period", type=_seconds, metavar="SECONDS",
                        help="a RUNNING trial whose heartbeat is older is failed as lost at the "
                        "next ask (default: 4 heartbeat intervals)")
    parser.add_argument("--max-retries", type=integer_at_least(0), default=0, metavar="N",
                        help="run a trial whose worker was lost (or that SIGTERM stopped) "
                        "again, with the same params, up to N times (default 0)")
    parser.add_argument("--max-failures", type=integer_at_least(1), metavar="N",
                        help="stop the run once N trials in a row have failed (their commands "
                        "exited non-zero, or their workers died; trials an earlier run left "
                        "failed count too, those stopped by Ctrl-C or a signal do not), exit "
                        "status 1; default: run every trial")
    parser.add_argument("script", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="the command to run per trial, after --")


def _jobs(text: str) -> int:
    """``--n-jobs``: an integer >= 1, or -1 for one per core."""
    value = integer_at_least(-1)(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected an integer >= 1, or -1 for one per core; "
                                          "received 0")
    return int(value)


def _seed(text: str) -> int:
    """``--seed``: an integer in [0, 2**63), the seeds a study stores."""
    value = int(integer_at_least(0)(text))
    if value >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"expected an integer < 2**63, received {value}")
    return value


def _name(text: str) -> str:
    """``--study``, ``--metric``: a name that is not blank."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a name, received {text!r}")
    return text


def _float(text: str, noun: str) -> float:
    """``text`` as a float, or an argparse error that expects ``noun``."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {noun}, received {text!r}") from None


def _gpus(text: str) -> float:
    """``--gpus-per-trial``: a number of GPUs >= 0 (a fraction shares a GPU)."""
    value = _float(text, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, received {text}")
    return value


def _seconds(text: str) -> float:
    """``--timeout``: a number of seconds > 0."""
    value = _float(text, "seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, received {text}")
    return value


def _heartbeat(text: str) -> float | None:
    """``--heartbeat-interval``: seconds > 0, or ``off`` (None: no heartbeats)."""
    if text.strip().lower() in ("off", "none", "0"):
        return None
    return _seconds(text)


def _run(args: argparse.Namespace) -> int:
    with _sigterm_stops_the_run():
        return _run_script(args)


def _run_script(args: argparse.Namespace) -> int:
    from hpo_plugins._space_record import earlier_derived_name, earlier_fingerprints
    from hpo_plugins.launchers import ScriptFailed

    command = args.script[1:] if args.script[:1] == ["--"] else args.script
    if not command:
        raise CLIError("expected the command to run per trial after --, e.g. "
                       "`-- python train.py --epochs 20`", EXIT_USAGE)
    _warn_if_password_in_argv(args.storage)
    _refuse_memory_storage(args.storage)
    objective = _objective(command, args.params_via)
    sampler = _sampler(args.sampler or _NEW_SAMPLER)  # for the checks: a new study's sampler
    _check_options(args, sampler)  # everything is checked before the study is created
    space = as_space(load_space(args.space))
    sampler.check_space(space)
    name = args.study or _default_study_name(command, space, args)
    ran: list[Any] = []  # the trials this run finished (callbacks see exactly those)
    with _launcher(args) as launcher:  # first: a refused --dask must not leave a database
        store = _open_storage(args.storage)  # opened lazily: no file is made yet
        try:
            if launcher is not None:  # e.g. a SQLite file a Dask worker cannot see
                launcher.check(store)
            if args.study is None:  # go on with a study an earlier version named
                name = earlier_derived_name(store, name, [
                    _default_study_name(command, space, args, fingerprint)
                    for fingerprint in earlier_fingerprints(space)], space)
            _check_resumable(store, name, args.direction, space)
            study = _study(args, name, space, None if args.sampler is None else sampler, store)
            try:
                study.optimize(objective, n_trials=args.n_trials, max_trials=args.max_trials,
                               timeout=args.timeout, catch=ScriptFailed, launcher=launcher,
                               callbacks=[lambda _, trial: ran.append(trial),
                                          *_failure_stop(args.max_failures)])
            except TooManyFailuresError as exc:
                from hpo_plugins.stoppers import failed_in_a_row

                _summary(study, ran, args)
                numbers = exc.trial_numbers
                last = next(t for t in study.trials if t.number == numbers[-1])
                raise CLIError(
                    f"{failed_in_a_row(numbers)}, so the run stopped (--max-failures "
                    f"{args.max_failures}); the last one: {short_reason(last.fail_reason)}. "
                    f"Each trial's reason: hpo-plugins trials --study {name}") from None
            _summary(study, ran, args)
        finally:
            store.close()
    if ran and all(t.state is TrialState.FAIL for t in ran):
        raise CLIError(f"every trial of this run failed ({len(ran)}); the last one: "
                       f"{short_reason(ran[-1].fail_reason)}")
    return EXIT_OK


def _failure_stop(max_failures: int | None) -> list[Any]:
    """``--max-failures``: the study callback that ends the run after that many failed trials
    in a row (none without the flag)."""
    from hpo_plugins.stoppers import FailureStop

    return [] if max_failures is None else [FailureStop(max_failures)]


@contextlib.contextmanager
def _sigterm_stops_the_run() -> Iterator[None]:
    """While ``run`` runs, SIGTERM raises :class:`~hpo_plugins.cli._base.Terminated`.

    ``kill``, ``timeout``, Slurm and ``docker stop`` send SIGTERM, whose default action ends
    the process at once: the running trials stayed RUNNING until their heartbeat's grace period
    ran out, and their commands ran on. Raised in the main thread instead, it stops the run as
    Ctrl-C does (the trials are marked FAIL, every command's process group is stopped, see
    :class:`~hpo_plugins.launchers.ScriptObjective`), and ``hpo-plugins`` exits with status 143.
    SIGHUP (the terminal closed, an ssh connection dropped) is taken the same way: its default
    action also ended the process at once, and the machine is still there to run the retries
    (exit status 129), unless this process ignores it (``nohup``): that choice is kept. The
    previous handlers are restored afterwards (see :func:`stop_signals_raise`).
    """

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    from hpo_plugins._sigterm import STOPS_THE_RUN

    setattr(terminate, STOPS_THE_RUN, True)  # a parallel run gives its commands a grace first
    with stop_signals_raise(terminate):
        yield


def _refuse_memory_storage(url: str | None) -> None:
    """Refuse an in-memory storage before anything is created: it lives in this process, and
    the trial commands, which run in processes of their own, could not report to it."""
    value = url or default_storage_url()
    if value in _MEMORY:
        raise CLIError(f"expected --storage (or ${DEFAULT_STORAGE_ENV}) to be a database the "
                       f"trial commands can open too, such as sqlite:///hpo.db or "
                       f"postgresql+psycopg://user@host/db. Received {value!r}, a storage that "
                       f"lives in this process only: the commands run in processes of their own "
                       f"and could not report to it", EXIT_USAGE)


def _objective(command: list[str], params_via: str) -> Any:
    """The :class:`~hpo_plugins.launchers.ScriptObjective` of the command, checked before the
    study is created; what it refuses is a usage error that names the flags."""
    from hpo_plugins.launchers import ScriptObjective

    if params_via != "json" and any("{params_file}" in word for word in command):
        raise CLIError(f"{{params_file}} in the command is replaced only with --params-via json "
                       f"(received --params-via {params_via}): add --params-via json, or read "
                       f"the params from $HPO_PLUGINS_PARAMS in the script", EXIT_USAGE)
    try:
        return ScriptObjective(command, params_via=params_via)
    except ConfigurationError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None


def _check_options(args: argparse.Namespace, sampler: Sampler) -> None:
    """Refuse options that cannot run together, naming the flags (the library names its Python
    arguments): before anything is stored, so a refused run leaves no empty study."""
    if (args.n_trials is None and args.max_trials is None and args.timeout is None
            and not sampler.finite):
        raise CLIError("expected a limit: --n-trials N (trials this run starts), --max-trials N "
                       "(the study's total, resumable) or --timeout SECONDS. Received none, so "
                       "the run would never stop", EXIT_USAGE)
    interval = _interval(args)
    if args.grace_period is not None and interval is not None and args.grace_period <= interval:
        raise CLIError(f"expected --grace-period to be longer than the heartbeat interval "
                       f"({interval:g} s): a trial would be failed between two of its "
                       f"heartbeats. Received --grace-period {args.grace_period:g}", EXIT_USAGE)
    if args.dask is None and args.gpus_per_trial:
        raise CLIError("--gpus-per-trial needs --dask (on one machine use --gpus)", EXIT_USAGE)
    if args.dask is not None and args.gpus is not None:
        raise CLIError("--gpus does not apply with --dask: start one Dask worker per GPU with "
                       '--resources "GPU=1" and pass --gpus-per-trial', EXIT_USAGE)
    if args.trials_per_gpu is not None and args.gpus is None:
        from hpo_plugins.launchers._gpus import needs_gpus

        raise CLIError(needs_gpus("--trials-per-gpu", "--gpus"), EXIT_USAGE)
    if args.gpus is not None:
        from hpo_plugins.launchers._gpus import parse_gpus

        try:
            parse_gpus(args.gpus)
        except ConfigurationError as exc:
            raise CLIError(f"expected --gpus to be 'all' or GPU ids separated by commas "
                           f"(e.g. --gpus 0,1). Received {args.gpus!r}: {exc}",
                           EXIT_USAGE) from None


def _interval(args: argparse.Namespace) -> float | None:
    """The heartbeat interval of this run: --heartbeat-interval, 30 s when absent, None: off."""
    value = args.heartbeat_interval
    return _HEARTBEAT_S if value is _ABSENT else value


def _default_study_name(command: list[str], space: SearchSpace, args: argparse.Namespace,
                        fingerprint: str | None = None) -> str:
    """``<script>-<hash>``: the study of a command when ``--study`` is not given.

    Stable across runs, so running the same command again after a crash resumes its study (and
    with ``--max-trials`` completes it), as ``hpo.minimize`` does with its derived names. The
    hash covers the command's words as typed, the space's fingerprint and the options that
    define the experiment (``--direction``, ``--metric``, ``--sampler``, ``--pruner``,
    ``--seed``, ``--params-via``): another command, an edited space or another sampler or seed
    gets another study, so comparing two settings never mixes their trials. Options that only
    say how long or where to run (``--n-trials``, ``--n-jobs``, ``--gpus``...) do not count.
    ``<script>`` is the stem of the command's first ``.py`` word (``train`` for
    ``python train.py``), else of its program. ``fingerprint``: another than the space's
    (one of :func:`~hpo_plugins._space_record.earlier_fingerprints`, for a name earlier versions
    derived).
    """
    # an absent --metric, --sampler or --pruner counts as what a new study gets, so the names
    # derived before these flags could be absent stay the same
    setting = [args.direction, args.metric or _NEW_METRIC, args.sampler or _NEW_SAMPLER,
               args.pruner or _NEW_PRUNER, args.seed, args.params_via]
    key = json.dumps([command, fingerprint or space.fingerprint, setting])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    scripts = [word for word in command if word.endswith(".py")]
    stem = os.path.splitext(os.path.basename(scripts[0] if scripts else command[0]))[0]
    return f"{stem or 'run'}-{digest}"


def _open_storage(url: str | None) -> Storage:
    """The storage of ``--storage`` (created if missing: ``run`` writes, unlike the commands that
    read). Nothing is connected yet, so what is refused here is the value itself, a usage error
    that names the flag: no URL (not echoed if it may hold a password), or a URL that cannot be
    parsed or whose scheme SQLAlchemy does not know (the library's message says which)."""
    value = url or default_storage_url()
    try:
        store = get_storage(url)
    except ConfigurationError as exc:
        if "://" in value:
            raise CLIError(f"--storage (or ${DEFAULT_STORAGE_ENV}): {exc}", EXIT_USAGE) from None
        raise CLIError(not_a_storage_url(value), EXIT_USAGE) from None
    _check_dialect(value)
    return store


def _check_dialect(url: str) -> None:
    """Refuse a URL whose scheme names no SQLAlchemy dialect (``foo://x``, ``postgres://``)
    now, as a usage error: the storage would find out only when it first connects."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import NoSuchModuleError

    from hpo_plugins.storages._sql_url import unknown_scheme_message

    parsed = make_url(url)  # get_storage parsed it already
    try:
        parsed.get_dialect()  # the dialect's module only: its driver is imported on connect
    except NoSuchModuleError:
        raise CLIError(f"--storage (or ${DEFAULT_STORAGE_ENV}): "
                       f"{unknown_scheme_message(parsed)}", EXIT_USAGE) from None


def _check_resumable(store: Storage, name: str, direction: str, space: SearchSpace) -> None:
    """Refuse to resume a study of another direction or space, naming the flags (the library's
    error names its Python arguments)."""
    try:
        info = store.get_study(store.get_study_id(name))
    except StudyNotFoundError:
        return
    if info.direction.value != direction:
        raise CLIError(f"study {name!r} exists with --direction {info.direction.value}: pass "
                       f"that to resume it, or --study with another name")
    from hpo_plugins._space_record import stored_space_difference

    difference = stored_space_difference(info.attrs, space)
    if difference is not None:
        raise CLIError(f"study {name!r} exists with another search space{difference}: pass "
                       f"the --space it was created with to resume it, or --study with "
                       f"another name")


def _study(args: argparse.Namespace, name: str, space: SearchSpace, sampler: Sampler | None,
           store: Storage) -> Study:
    """Create or resume the study; a derived name is shown, since the user did not choose it.

    A flag left out (``--sampler``, ``--pruner``, ``--metric``, ``--seed``, ``--logdir``) is
    passed as None: a resumed study keeps what it stored, a new one gets the library's default.
    Passing the parsers' defaults instead overwrote a resumed study's settings.
    """
    import hpo_plugins as hpo

    try:
        study = hpo.create_study(space=space, study_name=name, storage=store,
                                 direction=args.direction, sampler=sampler,
                                 pruner=None if args.pruner is None else _pruner(args.pruner),
                                 seed=args.seed, metric=args.metric, logdir=args.logdir,
                                 heartbeat_interval=_interval(args),
                                 grace_period=args.grace_period,
                                 max_retries=args.max_retries)
    except ConfigurationError as exc:
        if "logdir" not in str(exc):
            raise
        # a logdir that holds another study's files; create_study stored nothing
        raise CLIError(f"--logdir: {exc}".replace("Pass another logdir=", "Pass another "
                                                  "--logdir"), EXIT_USAGE) from None
    if args.study is None:
        earlier = len(study.trials)
        warn(f"study {name!r} (a name derived from the command and the space; pass --study to "
             f"choose one): " + (f"resumed with its {earlier} earlier trials" if earlier
                                 else "new"))
    return study


@contextlib.contextmanager
def _launcher(args: argparse.Namespace) -> Iterator[Any]:
    """The launcher the options ask for (None: sequential), with its Dask client if any."""
    from hpo_plugins.launchers import DaskLauncher, JoblibLauncher

    gpus = None if args.gpus is None else "all" if args.gpus == "all" else args.gpus.split(",")
    if args.dask is None:
        n_jobs = 1 if args.n_jobs is None else args.n_jobs
        yield (JoblibLauncher(n_jobs=n_jobs, gpus=gpus, trials_per_gpu=args.trials_per_gpu or 1)
               if n_jobs != 1 or gpus is not None else None)
        return
    with _dask_client(args.dask) as client:
        _check_dask_capacity(client, args.gpus_per_trial)
        yield DaskLauncher(client, gpus_per_trial=args.gpus_per_trial,
                           n_concurrent=None if args.n_jobs == -1 else args.n_jobs)


@contextlib.contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    """A client of the Dask scheduler at ``address``, closed on exit."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise CLIError("--dask needs Dask: pip install 'hpo_plugins[dask]'") from None
    from hpo_plugins.launchers._dask import check_address
    from hpo_plugins.launchers._dask_cluster import connect

    try:
        check_address(address)  # before a Client is built: a half-built one hangs on exit
    except ConfigurationError as exc:
        raise CLIError(f"--dask: {exc}".replace("Expected `client` to be", "expected")
                       .replace(", a Client or a cluster", "")
                       .replace(f"client={address!r}", repr(address)), EXIT_USAGE) from None
    try:
        client = connect(address, Client)
    except ConfigurationError as exc:
        raise CLIError(str(exc)) from None
    with client:
        yield client


def _check_dask_capacity(client: Any, gpus_per_trial: float) -> None:
    """Refuse a cluster that cannot run one trial before the study exists, naming the flag.

    The rule is the launcher's own (:func:`~hpo_plugins.launchers._dask_cluster.wait_for_capacity`:
    a trial's GPUs must all be on one worker); a scheduler that no worker has joined yet is
    waited for a while, as the launcher does.
    """
    from hpo_plugins.launchers._dask_cluster import wait_for_capacity

    try:
        wait_for_capacity(client, gpus_per_trial, option="--gpus-per-trial")
    except ConfigurationError as exc:
        raise CLIError(str(exc)) from None


def _warn_if_password_in_argv(url: str | None) -> None:
    """Warn (without echoing it) when ``--storage`` holds a password: ``ps`` shows it."""
    if url is None:
        return
    from sqlalchemy.engine import make_url

    from hpo_plugins.storages._sql_url import url_secrets

    try:
        secrets = url_secrets(make_url(url))  # after the user name, or ?password=
    except Exception:  # malformed: the storage reports it, without echoing the URL
        return
    if secrets:
        warn(f"warning: the password in --storage is visible to other users in process "
             f"listings; set ${DEFAULT_STORAGE_ENV} to the URL instead, or leave the password "
             f"out of the URL and set $PGPASSWORD (or use ~/.pgpass)")


def _summary(study: Any, ran: list[Any], args: argparse.Namespace) -> None:
    """The study's trials by state and its best trial; when this run started no trial, why."""
    counts: dict[str, int] = {}
    for trial in study.trials:
        counts[trial.state.value] = counts.get(trial.state.value, 0) + 1
    total = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
    echo(f"study {study.study_name!r}: {total}" if ran else
         f"study {study.study_name!r}: {total}; no trial run: {_why_none(study, counts, args)}")
    if counts.get("COMPLETE"):
        echo(f"best value {study.best_value:.6g} (trial {study.best_trial.number})")
        echo(json_text(study.best_params, default=repr))


def _why_none(study: Any, counts: dict[str, int], args: argparse.Namespace) -> str:
    """Why a run started no trial, from the options and the study (best guess, in words)."""
    if args.n_trials == 0:
        return "--n-trials is 0"
    counted = sum(n for state, n in counts.items() if state != TrialState.FAIL.value)
    if args.max_trials is not None and counted >= args.max_trials:
        return (f"the study already holds --max-trials {args.max_trials} trials (failed ones "
                f"do not count); raise --max-trials to run more")
    if getattr(study.sampler, "finite", False):
        return "the sampler's set of points (the grid) is used up"
    if args.timeout is not None:
        return f"--timeout {args.timeout:g} s passed before a trial could start"
    return "nothing was left to run (run with -v to see why)"


def load_space(spec: str) -> Any:
    """The object named by ``FILE_OR_MODULE:NAME`` (a ``.py`` file path or a module name).

    A file runs as a script would, but not as ``__main__``: ``sys.argv`` is just the file (a
    module-level ``argparse`` sees no ``run`` options) and its directory comes first on
    ``sys.path`` (``from helpers import X`` finds ``helpers.py`` beside it); both are restored
    afterwards. A module is imported with the working directory on ``sys.path``, as
    ``python -m`` has it (the ``hpo-plugins`` console script has not). A file or module that
    exits while loading (``sys.exit``, a failed ``parse_args``) is a load error, not the exit
    of ``hpo-plugins``.
    """
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise CLIError(f"expected --space FILE_OR_MODULE:NAME, e.g. examples/space.py:SPACE. "
                       f"Received: {spec!r}", EXIT_USAGE)
    is_file = where.endswith(".py") or os.path.sep in where
    try:
        if is_file:
            with _script_context(where):
                namespace = runpy.run_path(where)
        else:
            with _on_sys_path(os.getcwd()):
                namespace = vars(importlib.import_module(where))
    except SystemExit as exc:
        raise CLIError(f"cannot load the space from {where!r}: the space "
                       f"{'file' if is_file else 'module'} exited while being loaded "
                       f"(SystemExit: {exc.code}); guard script code with "
                       f"if __name__ == '__main__'") from None
    except Exception as exc:  # the user's code: a SyntaxError, or whatever it raises
        raise CLIError(f"cannot load the space from {where!r}: {type(exc).__name__}: {exc}"
                       f"{_module_hint(where, exc) if is_file else ''}") from None
    if name not in namespace:
        raise CLIError(f"{where!r} has no name {name!r}; names there: "
                       f"{sorted(k for k in namespace if not k.startswith('_'))}")
    return namespace[name]


def _module_hint(path: str, exc: Exception) -> str:
    """For a space file that imports relatively (``from .layers import ...``), which only a
    module of a package can: its module name, and the folder to run from, when the file is in
    a package (folders with ``__init__.py``); else ""."""
    if not (isinstance(exc, ImportError) and "relative import" in str(exc)):
        return ""
    folder, stem = os.path.split(os.path.abspath(path))
    parts = [os.path.splitext(stem)[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.insert(0, package)
    if len(parts) == 1:  # not in a package: no module name would import it
        return ("; a file that imports relatively must be a module of a package (a folder "
                "with __init__.py), given as --space package.module:NAME")
    where = os.path.relpath(folder) if folder != os.getcwd() else "this folder"
    return (f"; a file of a package that imports relatively loads as a module: --space "
            f"{'.'.join(parts)}:NAME, run from {where}")


@contextlib.contextmanager
def _script_context(path: str) -> Iterator[None]:
    """``sys.argv`` as a script ``path`` would have it, and its directory first on
    ``sys.path``, restored on exit."""
    argv = sys.argv
    sys.argv = [path]
    try:
        with _on_sys_path(os.path.dirname(os.path.abspath(path))):
            yield
    finally:
        sys.argv = argv


@contextlib.contextmanager
def _on_sys_path(directory: str) -> Iterator[None]:
    """``directory`` first on ``sys.path`` (unless already there), removed on exit; modules
    imported from it meanwhile stay imported."""
    if directory in sys.path:
        yield
        return
    sys.path.insert(0, directory)
    importlib.invalidate_caches()  # a module written after the last import is found too
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # the loaded code removed it itself
            sys.path.remove(directory)


def _sampler(name: str) -> Any:
    """A new sampler for ``--sampler name`` (argparse took only names of ``_SAMPLERS``)."""
    from hpo_plugins import samplers

    return getattr(samplers, _SAMPLERS[name])()


def _pruner(name: str) -> Any:
    """A new pruner for ``--pruner name`` (argparse took only names of ``_PRUNERS``)."""
    from hpo_plugins import pruners

    return getattr(pruners, _PRUNERS[name])()


RUN = Command(
    name="run",
    summary="run a command per trial (script mode), sequentially or in parallel",
    description="Run COMMAND once per trial. The script reads its params with "
    "hpo_plugins.current_trial().params (or the HPO_PLUGINS_PARAMS JSON variable) and reports "
    "with Trainer(callbacks=[HPOCallback()]) or trial.report(); the trial's value is the last "
    "value it reported. A non-zero exit fails the trial (tail of stderr stored) and the study "
    "goes on. Example: hpo-plugins run --space examples/space.py:SPACE --n-trials 50 "
    "--n-jobs 2 --study digits -- python examples/train_digits.py --epochs 20. Without --study "
    "the name is derived from the command and the space, so the same command resumes its "
    "study (with --max-trials, completes it). With --dask "
    "tcp://scheduler:8786 the trials run on a Dask cluster; give a PostgreSQL URL every worker "
    "reaches, its password in $HPO_PLUGINS_STORAGE or $PGPASSWORD rather than on the command "
    "line.",
    configure=_configure,
    run=_run,
)
