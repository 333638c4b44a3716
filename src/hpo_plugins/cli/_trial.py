"""``hpo-plugins trial``: everything one trial holds, for a closer look than ``trials`` gives.

The table of ``hpo-plugins trials`` clips a failure to one line and shows no curve. When a trial
failed, was pruned or did surprisingly well, this command shows all of it: the parameters as the
objective received them, the reported curve, the failure's message and traceback, the trial's
own directory, which worker and GPU ran it, and its user attributes. ``--json`` gives the same
as one JSON object, for scripts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from hpo_plugins._frozen import FrozenTrial
from hpo_plugins.cli._base import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    CLIError,
    Command,
    add_study_argument,
    echo,
    json_text,
    open_storage,
)
from hpo_plugins.cli._table import EMPTY, format_cell, format_duration, format_table
from hpo_plugins.storages import Storage

__all__ = ["TRIAL"]

#: System attributes shown under their own heading, not in the "library attributes" list.
_SHOWN_APART = ("fail_reason", "traceback", "log_dir")


def _configure(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--number", required=True, type=int, metavar="N",
                        help="the trial's number (the first column of `hpo-plugins trials`)")
    parser.add_argument("--json", action="store_true",
                        help="print the trial as one JSON object instead of text")


def _run(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        trial = _find(store, args.study, args.number)
    echo(json_text(trial_json(trial), indent=2, default=repr, allow_nan=False) if args.json
         else describe_trial(trial, args.study))
    return EXIT_OK


def _find(store: Storage, name: str, number: int) -> FrozenTrial:
    """Trial ``number`` of study ``name``.

    Raises:
        StudyNotFoundError: No such study.
        CLIError: No such trial (:data:`EXIT_NOT_FOUND`); the message gives the numbers there.
    """
    trials = store.get_all_trials(store.get_study_id(name))
    for trial in trials:
        if trial.number == number:
            return trial
    held = f"its trials are numbered 0 to {len(trials) - 1}" if trials else "it has no trials"
    raise CLIError(f"study {name!r} has no trial {number} ({held}).", EXIT_NOT_FOUND)


def trial_json(trial: FrozenTrial) -> dict[str, Any]:
    """Every field of ``trial`` as JSON values: timestamps in ISO 8601 (UTC), curve steps as
    string keys (JSON's only kind), ``duration_s`` in seconds, a number that is not finite (a
    storage written by other means may hold one) as null, which strict parsers accept."""
    duration = trial.duration
    return {
        "number": trial.number, "state": trial.state.value, "value": _finite(trial.value),
        "params": trial.natural, "flat_params": dict(trial.params),
        "intermediate_values": {str(step): _finite(value)
                                for step, value in sorted(trial.intermediate_values.items())},
        "datetime_start": _iso(trial.datetime_start),
        "datetime_complete": _iso(trial.datetime_complete),
        "last_heartbeat": _iso(trial.last_heartbeat),
        "duration_s": None if duration is None else duration.total_seconds(),
        "user_attrs": dict(trial.user_attrs), "system_attrs": dict(trial.system_attrs),
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def describe_trial(trial: FrozenTrial, study_name: str) -> str:
    """The text form: a header line, then one ``name: value`` line per known fact, then the
    curve as a table and the traceback of a failure, each under a heading."""
    duration = trial.duration
    facts: list[tuple[str, Any]] = [
        ("value", None if trial.value is None else _number(trial.value)),
        ("started", _when(trial.datetime_start)),
        ("finished", _when(trial.datetime_complete)),
        ("duration", format_duration(None if duration is None else duration.total_seconds())),
        ("params", _json(trial.natural) if trial.natural is not None
         else _flat(trial.params)),
        ("log dir", trial.system_attrs.get("log_dir")),
        ("reason", trial.system_attrs.get("fail_reason")),
    ]
    if trial.last_heartbeat is not None and not trial.state.is_finished:
        facts.append(("last heartbeat", _when(trial.last_heartbeat)))
    facts.extend((f"user attr {key}", _json(value))
                 for key, value in sorted(trial.user_attrs.items()))
    facts.extend((key.replace("_", " "), _json(value))
                 for key, value in sorted(trial.system_attrs.items())
                 if key not in _SHOWN_APART)
    shown = [(name, value) for name, value in facts if value is not None and value != EMPTY]
    width = max(len(name) for name, _ in shown) if shown else 0
    lines = [f"Trial {trial.number} of study {study_name!r}: {trial.state.value}"]
    for name, value in shown:  # a fact of several lines (script mode's stderr) stays indented
        first, *rest = str(format_cell(value)).split("\n")
        lines.append(f"  {name.ljust(width)}  {first}")
        lines.extend(f"  {' ' * width}  {line}" for line in rest)
    if trial.intermediate_values:
        points = [(step, _number(value))
                  for step, value in sorted(trial.intermediate_values.items())]
        lines.append(f"curve ({len(points)} report{'s' * (len(points) != 1)}):")
        lines.extend("  " + line for line in format_table(["step", "value"], points).split("\n"))
    else:
        lines.append("curve: nothing reported")
    traceback = trial.system_attrs.get("traceback")
    if traceback:
        lines.append("traceback (its end, as stored):")
        lines.extend("  " + line for line in str(traceback).rstrip().split("\n"))
    return "\n".join(lines)


def _number(value: float) -> str:
    """A value in full: the shortest text that reads back as the same float."""
    return repr(float(value))


def _json(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


def _when(moment: dt.datetime | None) -> str | None:
    return None if moment is None else f"{format_cell(moment)} UTC"


def _flat(params: Mapping[str, Any]) -> str | None:
    return " ".join(f"{k}={format_cell(v)}" for k, v in params.items()) or None


TRIAL = Command(
    name="trial",
    summary="show everything one trial holds",
    description="One trial in full: state, value, times, its parameters as the objective "
                "received them, its reported curve, why it failed (with the traceback), its "
                "directory, worker and GPU, and its user attributes. --json for scripts.",
    configure=_configure,
    run=_run,
)
