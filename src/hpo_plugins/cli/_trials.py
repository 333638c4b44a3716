"""``hpo-plugins trials`` (a table of a study's trials) and ``hpo-plugins best``."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from hpo_plugins._dataframe import trial_records
from hpo_plugins._frozen import FrozenTrial, TrialState, utcnow
from hpo_plugins._study_checks import no_best_message
from hpo_plugins.cli._base import (
    EXIT_OK,
    CLIError,
    Command,
    add_study_argument,
    echo,
    json_text,
    open_storage,
    open_study,
)
from hpo_plugins.cli._table import NumberText, format_duration, format_table, short_reason
from hpo_plugins.study import Study

__all__ = ["BEST", "TRIALS"]

_PARAM_PREFIX = "params_"
_REASON_CHARS = 60


def _configure_trials(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--state", action="append", type=str.upper, metavar="STATE",
                        choices=[s.value for s in TrialState],
                        help="show only trials in this state (repeatable): COMPLETE, PRUNED, "
                             "FAIL, RUNNING or WAITING")
    parser.add_argument("--sort", choices=["number", "value", "duration"], default="number",
                        help="order by trial number (default), by value (COMPLETE trials best "
                             "first, then PRUNED ones by their last reported value, then the "
                             "others) or by duration (longest first)")
    parser.add_argument("--limit", type=_positive, metavar="N",
                        help="show only the first N trials of that order (with --sort value: "
                             "the N best, COMPLETE trials first, as `best` ranks them)")


def _run_trials(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        study = open_study(store, args.study)
        trials = study.get_trials(args.state)
        columns, rows = trial_records(study, trials)
        running = {t.number: t for t in trials if t.state is TrialState.RUNNING}
        _running_durations(rows, running)  # before --sort duration and --limit
        if args.sort == "value":
            rows.sort(key=lambda row: _value_key(study, row))
        elif args.sort == "duration":
            rows.sort(key=lambda row: (row["duration_s"] is None, -(row["duration_s"] or 0.0)))
        if args.limit is not None:
            rows = rows[:args.limit]
        if not rows:
            echo(f"Study {study.study_name!r} has no trials"
                 f"{' in state ' + ', '.join(args.state) if args.state else ''}.")
            return EXIT_OK
        _show_progress(rows, running)
        echo(_trials_table(columns, rows))
    return EXIT_OK


def _running_durations(rows: list[dict[str, Any]], running: dict[int, FrozenTrial]) -> None:
    """Give each RUNNING trial's row the time it has run so far, as its duration."""
    now = utcnow()
    for row in rows:
        trial = running.get(row["number"])
        if trial is not None and trial.datetime_start is not None:
            row["duration_s"] = max(0.0, (now - trial.datetime_start).total_seconds())


def _show_progress(rows: list[dict[str, Any]], running: dict[int, FrozenTrial]) -> None:
    """Show each RUNNING trial's progress as Ray Tune's status table does: the last value it
    reported and that step (``0.231 @12``), in its value cell (after any sort by value: the
    text is no value to rank)."""
    for row in rows:
        trial = running.get(row["number"])
        if trial is not None and trial.last_step is not None:
            step = trial.last_step
            row["value"] = NumberText(f"{trial.intermediate_values[step]:.6g} @{step}")


def _positive(text: str) -> int:
    """``--limit``'s value: an integer >= 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {text!r}")
    return number


#: ``--sort value``: finished trials first, by state; a PRUNED trial's value is the last one it
#: reported, often an early step's, so it never ranks among the COMPLETE ones (as in ``best``).
_STATE_RANK = {TrialState.COMPLETE.value: 0, TrialState.PRUNED.value: 1}


def _value_key(study: Study, row: dict[str, Any]) -> tuple[int, bool, float, int]:
    """``--sort value``: COMPLETE trials best first, then PRUNED ones (best first too), then
    the others (FAIL, RUNNING, WAITING); trials without a value last in their group."""
    value = row["value"]
    return (_STATE_RANK.get(row["state"], len(_STATE_RANK)), value is None,
            0.0 if value is None else study.direction.sign() * value, row["number"])


def _trials_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """The table; a last ``reason`` column (one line, clipped) when a shown trial failed."""
    labels = [key for key in columns if key.startswith(_PARAM_PREFIX)]
    headers = ["number", "state", "value", "duration", *(k[len(_PARAM_PREFIX):] for k in labels)]
    table = [[row["number"], row["state"], row["value"], format_duration(row["duration_s"]),
              *(row[k] for k in labels)] for row in rows]
    if any(row["fail_reason"] for row in rows):
        headers.append("reason")
        for line, row in zip(table, rows):
            line.append(_one_line(row["fail_reason"]))
    return format_table(headers, table)


def _one_line(reason: str | None) -> str | None:
    """A failure reason on one line, at most :data:`_REASON_CHARS` characters (``trial`` and
    ``export`` show it whole): its first line and, for a script-mode command's reason, the last
    line of its stderr tail, where the error is (see :func:`short_reason`)."""
    if not reason:
        return None
    return short_reason(reason, lines=1, width=_REASON_CHARS)


def _configure_best(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)


def _run_best(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        study = open_study(store, args.study)
        best = store.best_trial(study.study_id, study.direction)
        if best is None:
            given = f" --storage {shlex.quote(store.describe())}" if args.storage else ""
            raise CLIError(no_best_message(args.study, study.trials, command_line=True,
                                           storage_option=given))
        echo(json_text(study.natural_params(best), indent=2, default=repr))
    return EXIT_OK


TRIALS = Command(
    name="trials",
    summary="show a study's trials as a table",
    description="A table of a study's trials: number, state, value, duration and every "
                "parameter under its flat label (a RUNNING trial shows its last reported value "
                "and step, e.g. 0.231 @12, and how long it has run; a choice shows its "
                "option; '-' marks a "
                "parameter that is inactive in that trial), then why a trial failed when one "
                "did (one line, clipped; for a script-mode command it ends with the last line "
                "of its stderr; `trial` and `export` show it whole).",
    configure=_configure_trials,
    run=_run_trials,
)

BEST = Command(
    name="best",
    summary="print the best trial's parameters as JSON",
    description="The parameters of the study's best COMPLETE trial, as the nested natural "
                "value the objective received (a choice gives its option), in JSON.",
    configure=_configure_best,
    run=_run_best,
)
