"""``hpo-plugins importance``: which parameters explain a study's results, as a table or JSON.

The command form of :func:`hpo_plugins.importance.param_importances`: one line per parameter,
the most important first, with the number of COMPLETE trials where it was active (a conditional
parameter is judged among those only) and a bar to read the table at a glance.
"""

from __future__ import annotations

import argparse

from hpo_plugins._frozen import TrialState
from hpo_plugins.cli._base import (
    EXIT_OK,
    Command,
    add_study_argument,
    echo,
    integer_at_least,
    json_text,
    open_storage,
    open_study,
)
from hpo_plugins.cli._table import format_table
from hpo_plugins.importance import param_importances

__all__ = ["IMPORTANCE"]

#: Characters of the bar of an importance of 1.
_BAR = 30


def _configure(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--json", action="store_true",
                        help="print {label: importance} as JSON instead of a table")
    parser.add_argument("--bins", type=integer_at_least(2), metavar="N",
                        help="cut each numeric parameter into N bins (>= 2; default: 3 to 8, "
                             "growing with the trials)")


def _run(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        study = open_study(store, args.study)
        done = study.get_trials(TrialState.COMPLETE)
        importances = param_importances(study, n_bins=args.bins, trials=done)
    if args.json:
        echo(json_text(importances, indent=2))
        return EXIT_OK
    rows = [[label, round(share, 3), sum(label in t.params for t in done),
             "#" * round(share * _BAR)] for label, share in importances.items()]
    echo(format_table(["param", "importance", "trials", ""], rows))
    if not any(importances.values()):
        echo("No parameter explains the results better than chance would: run more trials.")
    return EXIT_OK


IMPORTANCE = Command(
    name="importance",
    summary="rank the parameters by how much of the results they explain",
    description="Each parameter's share of what explains the study's COMPLETE results (one "
                "least-squares fit of the results' ranks on every parameter at once, corrected "
                "for chance; a conditional parameter is judged where it is active). Read it as "
                "a ranking: with few trials the shares are rough.",
    configure=_configure,
    run=_run,
)
