"""``hpo-plugins studies``: one line per study in a storage."""

from __future__ import annotations

import argparse
import math
from typing import Any

from hpo_plugins._frozen import TrialState
from hpo_plugins.cli._base import EXIT_OK, Command, echo, json_text, open_storage
from hpo_plugins.cli._table import format_table
from hpo_plugins.storages import StudyInfo

__all__ = ["STUDIES"]

_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING,
           TrialState.WAITING)
_HEADERS = ["study", "direction", "trials", "complete", "pruned", "fail", "running", "waiting",
            "best"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list, one object per study, for scripts and jq")


def _row(info: StudyInfo) -> list[object]:
    counts = [int(info.n_trials.get(state, 0)) for state in _STATES]
    total = sum(int(n) for n in info.n_trials.values())
    return [info.name, info.direction.value, total, *counts, info.best_value]


def _record(info: StudyInfo) -> dict[str, Any]:
    """A study as ``--json`` prints it: the table's columns, and when it was created."""
    best = info.best_value
    created = info.datetime_created
    return {"study": info.name, "direction": info.direction.value,
            "trials": sum(int(n) for n in info.n_trials.values()),
            **{state.value.lower(): int(info.n_trials.get(state, 0)) for state in _STATES},
            "best": None if best is None or not math.isfinite(best) else best,
            "created": None if created is None else created.isoformat()}


def _run(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        infos = store.list_studies()
        if args.json:  # an empty list, not a sentence, when there is none
            echo(json_text([_record(info) for info in infos], indent=2))
            return EXIT_OK
        if not infos:
            echo(f"No studies in {store.describe()}.")
            return EXIT_OK
        echo(format_table(_HEADERS, [_row(info) for info in infos]))
    return EXIT_OK


STUDIES = Command(
    name="studies",
    summary="list the studies in a storage",
    description="One line per study: its direction, its trials by state and its best value "
                "(--json: the same as a JSON list, with each study's creation time).",
    configure=_configure,
    run=_run,
)
