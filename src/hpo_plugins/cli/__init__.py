"""The ``hpo-plugins`` command: explore studies from a shell.

::

    hpo-plugins run --space F:NAME ... -- CMD       script mode: CMD once per trial
    hpo-plugins studies                             one line per study
    hpo-plugins trials --study NAME                 a table of its trials
    hpo-plugins trial --study NAME --number N       one trial in full (curve, traceback...)
    hpo-plugins best --study NAME                   the best parameters, as JSON
    hpo-plugins importance --study NAME             which parameters explain the results
    hpo-plugins export --study NAME --format csv    every trial (csv or json)
    hpo-plugins plot --study NAME --out DIR         PNG plots (matplotlib)
    hpo-plugins tensorboard --study NAME            TensorBoard on the study's logdir
    hpo-plugins copy --study NAME --to URL          copy a study into another storage
    hpo-plugins delete --study NAME [--yes]         delete a study and its trials

Every command takes ``--storage URL`` (default: ``$HPO_PLUGINS_STORAGE``, else
``sqlite:///hpo.db``), ``--verbose`` and ``--help``. Exit codes: 0 success, 1 failure at run time,
2 bad command line, 3 storage or study not found, 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM, during ``run`` and ``tensorboard``), 129 hung up (SIGHUP: the terminal closed, during
the same two); errors are one line on stderr.

A command is a :class:`~hpo_plugins.cli._base.Command` record listed in :data:`COMMANDS`; adding
one (``run``, for script mode) is one module and one entry there.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from hpo_plugins._version import __version__
from hpo_plugins._warn import issued_here
from hpo_plugins.cli._base import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    Command,
    Terminated,
    exit_status,
    storage_help,
    warn,
)
from hpo_plugins.cli._copy import COPY
from hpo_plugins.cli._delete import DELETE
from hpo_plugins.cli._export import EXPORT
from hpo_plugins.cli._importance import IMPORTANCE
from hpo_plugins.cli._plot import PLOT
from hpo_plugins.cli._run import RUN
from hpo_plugins.cli._studies import STUDIES
from hpo_plugins.cli._tensorboard import TENSORBOARD
from hpo_plugins.cli._trial import TRIAL
from hpo_plugins.cli._trials import BEST, TRIALS
from hpo_plugins.exceptions import HPOError, StudyNotFoundError

__all__ = [
    "COMMANDS",
    "EXIT_FAILURE",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "Command",
    "build_parser",
    "main",
]

#: Every subcommand, in the order ``--help`` lists them.
COMMANDS: tuple[Command, ...] = (RUN, STUDIES, TRIALS, TRIAL, BEST, IMPORTANCE, EXPORT,
                                 PLOT, TENSORBOARD, COPY, DELETE)

_PROG = "hpo-plugins"


def build_parser(commands: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    """The argument parser: one subparser per command (default: :data:`COMMANDS`)."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--storage", metavar="URL", help=storage_help())
    shared.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress to stderr (-vv: debug, with tracebacks)")
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Explore hpo_plugins studies: list them, show their trials, "
        "export them, plot them, open them in TensorBoard, copy them, delete them.",
        epilog="Exit codes: 0 ok, 1 failure, 2 bad usage, 3 storage or study not found, "
        "130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP: the "
        "terminal closed).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # also before the command (`hpo-plugins --storage URL studies`, as Optuna's CLI takes it)
    parser.add_argument("--storage", metavar="URL", dest="global_storage",
                        help="as a command's --storage, given before the command")
    parser.add_argument("-v", "--verbose", action="count", default=0, dest="global_verbose",
                        help="as a command's -v, given before the command")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS if commands is None else commands:
        sub = subparsers.add_parser(command.name, parents=[shared], help=command.summary,
                                    description=command.description)
        command.configure(sub)
        sub.set_defaults(command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hpo-plugins`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}"
                         f"{_unknown_hint(parser, args, unknown)}")
    except SystemExit as exit_:  # --help, --version, or a usage error (code 2)
        return int(exit_.code or 0)
    if getattr(args, "command", None) is None:
        parser.print_usage(sys.stderr)
        warn(f"{_PROG}: error: choose a command (see {_PROG} --help)")
        return EXIT_USAGE
    if args.global_storage is not None:
        if args.storage is not None and args.storage != args.global_storage:
            parser.print_usage(sys.stderr)
            warn(f"{_PROG}: error: --storage is given twice, before and after the command, "
                 f"with different URLs; give it once")
            return EXIT_USAGE
        args.storage = args.global_storage
    args.verbose += args.global_verbose
    with _logging(args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.command.run(args)
    except CLIError as exc:
        return _fail(str(exc), exc.code)
    except StudyNotFoundError as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    except HPOError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except BrokenPipeError:  # e.g. `hpo-plugins trials ... | head`
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Terminated as exc:
        name = str(exc.args[0]) if exc.args else "SIGTERM"
        return _fail(f"terminated by {name}: the trials that were running are marked FAIL, "
                     f"counted as lost (re-queued under --max-retries), and their commands "
                     f"stopped", exit_status(exc))
    except Exception as exc:
        if args.verbose >= 2:
            traceback.print_exc()
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with -vv for the "
                     f"traceback)", EXIT_FAILURE)


def _unknown_hint(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  unknown: Sequence[str]) -> str:
    """For ``run``: the option meant (a typo of one of its own), else where the trial
    command's own options go (a reflex is ``hpo-plugins run --epochs 3 -- python train.py``)."""
    command = getattr(args, "command", None)
    if getattr(command, "name", None) != "run":
        return ""
    known = [option for action in parser._actions  # argparse keeps its subparsers there
             if isinstance(action, argparse._SubParsersAction)
             for option in action.choices["run"]._option_string_actions]
    options = [token.split("=", 1)[0] for token in unknown if token.startswith("-")]
    close = [match for token in options for match in difflib.get_close_matches(token, known, 1)]
    if close:
        return f" (did you mean {', '.join(close)}?)"
    return (" (options of the trial command go after --, with it: hpo-plugins run [options] "
            "-- python train.py --epochs 3)")


def _fail(message: str, code: int) -> int:
    """Print the error as one line (a driver's message, psycopg's say, may span several)."""
    warn(f"{_PROG}: error: {' '.join(message.split())}")
    return code


def _silence_stdout() -> None:
    """After a closed pipe, send the rest of stdout nowhere (no second error at exit)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def _logging(verbosity: int) -> Iterator[None]:
    """Show the library's warnings (and with -v its progress) on stderr while a command runs."""
    logger = logging.getLogger("hpo_plugins")
    from hpo_plugins.study import ALL_FAILED_RECORD

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # a command whose trials all failed says so itself, as its error
    handler.addFilter(lambda record: not getattr(record, ALL_FAILED_RECORD, False))
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    shown = warnings.showwarning
    warnings.showwarning = functools.partial(_show_warning, shown)
    try:
        yield
    finally:
        warnings.showwarning = shown
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _show_warning(shown: Any, message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    """One of our warnings as one line in the command's own voice: Python's format names the
    console script's wrapper (``hpo-plugins:8: ... sys.exit(main())``), to which ``warn_user``
    attributes it, and which tells the user nothing. Other libraries' warnings (and those of a
    user's space file) keep Python's format (``shown``), with their category and source."""
    if not issued_here(message):
        shown(message, category, filename, lineno, file, line)
        return
    stream = sys.stderr if file is None else file
    with contextlib.suppress(OSError):
        stream.write(f"hpo-plugins: warning: {message}\n")
