"""``hpo-plugins delete``: remove a study and all its trials from a storage.

A study name that keeps resuming (the name a script derives, or one reused with another search
space, which is refused) is cleared with this command. Deleting cannot be undone, so the command
asks first on a terminal and needs ``--yes`` anywhere else. Only the database records go: files
the trials wrote (TensorBoard events, trial directories) stay on disk, and the command names
the folders that hold them.
"""

from __future__ import annotations

import argparse
import os
import sys

from hpo_plugins._artifacts import read_owner
from hpo_plugins._frozen import FrozenTrial, TrialState
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
        folders = _folders(info.attrs.get("logdir"), store.get_all_trials(study_id))
        created = info.datetime_created
        me = {"study": args.study, "created": created.isoformat() if created else None}
        owners = {folder: read_owner(folder) for folder in folders}  # once: a read may wait
        here = {(i.name, i.datetime_created.isoformat() if i.datetime_created else None)
                for i in store.list_studies() if i.study_id != study_id}
        store.delete_study(study_id)
    echo(f"Deleted {what}.")
    mine = [f for f, owner in owners.items() if owner in (None, me)]
    others = [(f, owner) for f, owner in owners.items() if owner not in (None, me)]
    if mine:
        echo(f"Files the trials wrote are left on disk: {', '.join(mine)}. A new study of "
             f"this name will not write there (with a logdir, pass another one or delete the "
             f"folder first).")
    for folder, owner in others:  # a copy's trials keep the paths of its original's
        whose = f"study {owner.get('study')!r} (created {owner.get('created')})"
        if (owner.get("study"), owner.get("created")) in here:
            echo(f"{folder} holds the files of {whose}, which this one was probably copied "
                 f"from: keep it for that study.")
        else:
            echo(f"{folder} holds the files of {whose}, which is not in this storage (deleted, "
                 f"or kept in another one): delete it once no study needs it.")
    return EXIT_OK


def _folders(logdir: object, trials: list[FrozenTrial]) -> list[str]:
    """Where the study's files are: its TensorBoard logdir, and each folder holding trial
    directories the trials recorded (``system_attrs["log_dir"]``, absolute paths).

    Each folder that holds a trial directory is named, never a common ancestor: a study resumed
    with another logdir has its trials in two sibling folders, and their common parent (which
    may hold other studies' folders) is not this study's to delete.
    """
    found = [str(logdir)] if logdir else []
    dirs = [str(t.system_attrs["log_dir"]) for t in trials if t.system_attrs.get("log_dir")]
    for parent in sorted({os.path.dirname(d.rstrip(os.sep)) for d in dirs}):
        if not any(parent == f or parent.startswith(f + os.sep) for f in found):
            found.append(parent)
    return found


def _confirmed(what: str) -> bool:
    """Ask on the terminal; without one, refuse (a script must pass ``--yes``)."""
    if not sys.stdin.isatty():
        raise CLIError(f"about to delete {what}, and stdin is not a terminal to ask on: pass "
                       f"--yes to delete without asking.", EXIT_USAGE)
    try:
        answer = input(f"Delete {what}? This cannot be undone. [y/N] ")
    except EOFError:  # Ctrl-D: no answer is a no
        echo("")
        return False
    return answer.strip().lower() in ("y", "yes")


DELETE = Command(
    name="delete",
    summary="delete a study and all its trials",
    description="Remove a study and all its trials from the storage (asks first; --yes to "
                "skip). Files the trials wrote (TensorBoard events, trial directories) stay.",
    configure=_configure,
    run=_run,
)
