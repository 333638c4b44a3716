"""``hpo-plugins export``: CSV and JSON with the columns of ``trials_dataframe``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_FAILURE, EXIT_OK

Run = Callable[..., tuple[int, str, str]]


def test_csv_has_the_dataframe_columns_and_one_row_per_trial(cli: Run, url: str) -> None:
    code, out, _ = cli("export", "--study", "demo", "--storage", url, "--format", "csv")
    assert code == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(out)))
    frame = hpo.load_study("demo", url).trials_dataframe()
    assert list(rows[0]) == list(frame.columns)
    assert [r["state"] for r in rows] == list(frame["state"])
    assert [r["params_lr"] for r in rows] == [repr(v) for v in frame["params_lr"]]
    failed = next(r for r in rows if r["state"] == "FAIL")
    assert (failed["value"], failed["fail_reason"]) == ("", "ValueError: diverged")


def test_json_records_match_the_dataframe(cli: Run, url: str) -> None:
    code, out, _ = cli("export", "--study", "demo", "--storage", url, "--format", "json")
    assert code == EXIT_OK
    records = json.loads(out)
    frame = hpo.load_study("demo", url).trials_dataframe()
    assert [list(r) for r in records] == [list(frame.columns)] * len(frame)
    assert [r["value"] for r in records] == [None if v != v else v for v in frame["value"]]
    assert records[0]["datetime_start"] == frame["datetime_start"][0].isoformat()


def test_export_to_a_file(cli: Run, url: str, tmp_path: Path) -> None:
    target = tmp_path / "trials.json"
    code, out, err = cli("export", "--study", "demo", "--storage", url, "--format", "json",
                         "--out", str(target))
    assert (code, out) == (EXIT_OK, "")
    assert err == f"Wrote 5 trials to {target}\n"
    assert len(json.loads(target.read_text())) == 5


def test_export_to_an_unwritable_place_is_exit_1(cli: Run, url: str, tmp_path: Path) -> None:
    code, _, err = cli("export", "--study", "demo", "--storage", url, "--out",
                       str(tmp_path / "missing" / "t.csv"))
    assert code == EXIT_FAILURE and "cannot write" in err


def test_export_of_an_empty_study(cli: Run, url: str) -> None:
    assert cli("export", "--study", "plain", "--storage", url, "--format", "json")[1] == "[]\n"
    code, out, _ = cli("export", "--study", "plain", "--storage", url, "--format", "csv")
    columns = list(hpo.load_study("plain", url).trials_dataframe().columns)
    assert (code, out) == (EXIT_OK, ",".join(columns) + "\n")
