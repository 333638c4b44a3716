"""``hpo-plugins export``: a study's trials as CSV or JSON, with ``trials_dataframe``'s columns."""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import io
import json
import math
import sys
from collections.abc import Iterator
from typing import IO, Any

from hpo_plugins._dataframe import trial_records
from hpo_plugins.cli._base import (
    EXIT_OK,
    CLIError,
    Command,
    add_study_argument,
    json_text,
    open_storage,
    open_study,
    warn,
)
from hpo_plugins.study import Study

__all__ = ["EXPORT", "export_records"]


def export_records(study: Study) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns (as ``study.trials_dataframe()`` has them) and one record per trial.

    The columns are the same whichever trials exist, so an empty study still gets the full
    header (see :func:`hpo_plugins._dataframe.trial_records`).
    """
    return trial_records(study, study.trials)


def _configure(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--format", choices=["csv", "json"], default="csv",
                        help="csv (default) or json (a list of records)")
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")


def _run(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        columns, records = export_records(open_study(store, args.study))
    with _output(args.out) as handle:
        handle.write(_csv(columns, records) if args.format == "csv" else _json(records, handle))
    if args.out:
        warn(f"Wrote {len(records)} trials to {args.out}")
    return EXIT_OK


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    try:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            yield handle
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror}") from None


def _csv(columns: list[str], records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv_cell(v) for k, v in r.items()} for r in records)
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _json(records: list[dict[str, Any]], handle: IO[str]) -> str:
    return json_text(records, handle, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return repr(value)


EXPORT = Command(
    name="export",
    summary="export a study's trials as CSV or JSON",
    description="Every trial of a study, one record each, with the columns of "
                "study.trials_dataframe(): number, state, value, datetime_start, "
                "datetime_complete, duration_s, last_step, params_<label>, user_attrs_<key>, "
                "fail_reason.",
    configure=_configure,
    run=_run,
)
