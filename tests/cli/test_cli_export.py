"""``hpo-plugins export``: CSV and JSON with the columns of ``trials_dataframe``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.cli import EXIT_FAILURE, EXIT_OK
from hpo_plugins.samplers import RandomSampler

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


def test_export_of_an_empty_study_has_the_whole_header(cli: Run, url: str) -> None:
    assert cli("export", "--study", "plain", "--storage", url, "--format", "json")[1] == "[]\n"
    code, out, _ = cli("export", "--study", "plain", "--storage", url, "--format", "csv")
    columns = list(hpo.load_study("plain", url).trials_dataframe().columns)
    assert (code, out) == (EXIT_OK, ",".join(columns) + "\n")
    assert columns == ["number", "state", "value", "datetime_start", "datetime_complete",
                       "duration_s", "last_step", "params_lr", "params_net", "params_mlp_dropout",
                       "params_mlp_layers", "params_cnn_filters", "fail_reason"]


def test_integer_parameters_are_written_as_integers(cli: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ints.db"
    space = {"i": hp.uniformint("i", 1, 9), "n": hp.randint("n", 3, 40)}
    study = hpo.minimize(lambda p: p["i"] + p["n"], space, n_trials=3, storage=url,
                         study_name="ints", sampler=RandomSampler(), seed=0)
    code, out, _ = cli("export", "--study", "ints", "--storage", url, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == EXIT_OK
    assert [(r["params_i"], r["params_n"]) for r in rows] == [
        (str(int(t.params["i"])), str(int(t.params["n"]))) for t in study.trials]
    assert all(r["params_i"].isdigit() and r["params_n"].isdigit() for r in rows)  # no "6.0"
