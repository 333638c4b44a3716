"""``hpo-plugins plot``: PNG plots of a study (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

import argparse
import os

from hpo_plugins.cli._base import (
    EXIT_OK,
    CLIError,
    Command,
    add_study_argument,
    echo,
    open_storage,
    open_study,
)

__all__ = ["PLOT"]


def _configure(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for the PNG files (created if missing)")


def _run(args: argparse.Namespace) -> int:
    from hpo_plugins.plotting import save_plots

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} is a file: expected a folder for the PNG files "
                       f"(created if missing). Pass a folder name, e.g. --out plots.")
    with open_storage(args.storage) as store:
        study = open_study(store, args.study)  # first: a missing study makes no folder
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as exc:  # a file on the way, no permission: named by the flag
            raise CLIError(f"cannot create --out {args.out}: {exc.strerror}. Expected a "
                           f"folder this process can create and write.") from None
        try:
            paths = save_plots(study, args.out)
        except OSError as exc:
            raise CLIError(f"cannot write the plots to {args.out}: {exc.strerror}") from None
    for path in paths:
        echo(path)
    return EXIT_OK


PLOT = Command(
    name="plot",
    summary="save PNG plots of a study",
    description="Write history.png (each trial's value and the best so far), "
                "parallel_coordinates.png (completed trials across every parameter), slice.png "
                "(each parameter against the value), intermediate_values.png (the reported "
                "curves) and param_importances.png (which parameters explain the results) into "
                "--out. Needs matplotlib: pip install 'hpo_plugins[plot]'.",
    configure=_configure,
    run=_run,
)
