"""``hpo-plugins delete``: remove a study and all its trials from a storage.

A study name that keeps resuming (the name a script derives, or one reused with another search
space, which is refused) is cleared with this command. Deleting cannot be undone, so the command
asks first on a terminal and needs ``--yes`` anywhere else. Only the database records go: files
the trials wrote (TensorBoard events, trial directories) stay on disk, and the command names
where they would be.
"""

from __future__ import annotations

import argparse
import sys

from hpo_plugins._frozen import TrialState
from hpo_plugins.cli._base import (
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    Command,
    add_study_argument,
    echo,
    open_storage,
)

__all__ = ["DELETE"]


def _configure(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--yes", "-y", action="store_true",
                        help="delete without asking (needed when stdin is not a terminal)")


def _run(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        study_id = store.get_study_id(args.study)  # StudyNotFoundError lists the studies
        info = store.get_study(study_id)
        total = sum(int(n) for n in info.n_trials.values())
        running = int(info.n_trials.get(TrialState.RUNNING, 0))
        what = (f"study {args.study!r} and its {total} trial{'s' * (total != 1)} from "
                f"{store.describe()}")
        if running:
            what += f" ({running} of them RUNNING: their workers' results will be refused)"
        if not args.yes and not _confirmed(what):
            echo("Nothing deleted.")
            return EXIT_OK
        store.delete_study(study_id)
    echo(f"Deleted {what}.")
    logdir = info.attrs.get("logdir")
    echo(f"Files the trials wrote are left on disk: {logdir or 'hpo_runs/' + args.study} "
         f"(relative to where the study ran).")
    return EXIT_OK


def _confirmed(what: str) -> bool:
    """Ask on the terminal; without one, refuse (a script must pass ``--yes``)."""
    if not sys.stdin.isatty():
        raise CLIError(f"about to delete {what}, and stdin is not a terminal to ask on: pass "
                       f"--yes to delete without asking.", EXIT_USAGE)
    answer = input(f"Delete {what}? This cannot be undone. [y/N] ")
    return answer.strip().lower() in ("y", "yes")


DELETE = Command(
    name="delete",
    summary="delete a study and all its trials",
    description="Remove a study and all its trials from the storage (asks first; --yes to "
                "skip). Files the trials wrote (TensorBoard events, trial directories) stay.",
    configure=_configure,
    run=_run,
)
