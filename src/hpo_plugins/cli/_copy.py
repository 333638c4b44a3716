"""``hpo-plugins copy``: copy a study, trials and all, into another storage.

The command form of :func:`hpo_plugins.copy_study`, for moving a study from the default SQLite
file to a database server that several machines share (or back). The source is opened as the
read commands open it (a missing file is an error, never created); the destination is opened as
the library opens a storage, so a new SQLite file gets its tables.
"""

from __future__ import annotations

import argparse

from hpo_plugins._copy import copy_study
from hpo_plugins.cli._base import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CLIError,
    Command,
    add_study_argument,
    echo,
    open_storage,
    shown_url,
)
from hpo_plugins.exceptions import ConfigurationError, MissingDependencyError, StorageError
from hpo_plugins.storages import Storage, get_storage

__all__ = ["COPY"]


def _configure(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--to", required=True, metavar="URL",
                        help="the storage the copy goes to, e.g. postgresql+psycopg://user@host/db "
                             "or sqlite:///other.db (a SQLite file is created if missing)")
    parser.add_argument("--to-study", metavar="NAME",
                        help="the copy's name (default: the study's own name; another name is "
                             "needed when --to is the storage the study is in)")


def _run(args: argparse.Namespace) -> int:
    if args.to_study is not None and not args.to_study.strip():
        raise CLIError(f"expected --to-study to be a study name. Received {args.to_study!r}.",
                       EXIT_USAGE)
    with open_storage(args.storage) as source:
        source.get_study_id(args.study)  # a missing study: the target is not even opened
        destination = _destination(args.to)
        try:
            if source.describe() == destination.describe() and args.to_study in (None,
                                                                                 args.study):
                raise CLIError(f"--to names the storage the study is in; pass --to-study "
                               f"with another name to copy {args.study!r} within it.",
                               EXIT_USAGE)
            copied = copy_study(args.study, source, destination, args.to_study)
            where = destination.describe()
        finally:
            destination.close()
    name = args.study if args.to_study is None else args.to_study
    echo(f"Copied study {args.study!r} ({copied} trial{'s' * (copied != 1)}) to {where} as "
         f"{name!r}.")
    return EXIT_OK


def _destination(url: str) -> Storage:
    """The storage at ``url``, opened now (created if it is a new SQLite file).

    Raises:
        CLIError: ``url`` is not a URL (:data:`EXIT_USAGE`), or the storage cannot be opened:
            a missing driver, a server that cannot be reached, a file that is not a database
            (:data:`EXIT_NOT_FOUND`, as for ``--storage``).
    """
    if "://" not in url:
        raise CLIError(f"expected --to to be a database URL such as sqlite:///copy.db or "
                       f"postgresql+psycopg://user@host/db. Received {shown_url(url)}.", EXIT_USAGE)
    try:
        store = get_storage(url)
    except (ConfigurationError, StorageError, MissingDependencyError) as exc:
        raise CLIError(f"cannot open the storage of --to: {exc}", EXIT_NOT_FOUND) from None
    try:
        store.list_studies()  # connects now: an unreachable server fails here, not midway
    except (ConfigurationError, StorageError, MissingDependencyError) as exc:
        store.close()
        raise CLIError(f"cannot open the storage of --to: {exc}", EXIT_NOT_FOUND) from None
    return store


COPY = Command(
    name="copy",
    summary="copy a study and its trials into another storage",
    description="Copy a study, with every trial (numbers, states, values, curves, attributes, "
                "timestamps) and its settings, into another storage: e.g. from the default "
                "SQLite file to a PostgreSQL server several machines share. Running the study "
                "against the new storage resumes it.",
    configure=_configure,
    run=_run,
)
