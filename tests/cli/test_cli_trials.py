"""``hpo-plugins trials`` and ``hpo-plugins best``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_OK

Run = Callable[..., tuple[int, str, str]]


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_trials_table_has_every_trial_and_flat_parameter(cli: Run, url: str) -> None:
    code, out, err = cli("trials", "--study", "demo", "--storage", url)
    assert (code, err) == (EXIT_OK, "")
    header, *rows = _table(out)
    study = hpo.load_study("demo", url)
    labels = [p["label"] for p in study.storage.get_study(study.study_id).attrs["space"]]
    assert header == ["number", "state", "value", "duration", *labels, "reason"]
    assert [row[:2] for row in rows] == [[str(t.number), t.state.value] for t in study.trials]
    for row, trial in zip(rows, study.trials):
        assert row[2] == ("-" if trial.value is None else f"{trial.value:.6g}")
        shown = dict(zip(labels, row[4:4 + len(labels)]))
        assert shown["net"] in ("mlp", "cnn") or shown["net"] in ("0", "1")
        inactive = [label for label, cell in shown.items() if cell == "-"]
        assert inactive == [label for label in labels if label not in trial.params]
        reason = " ".join(row[4 + len(labels):])
        assert reason == ("ValueError: diverged" if trial.state.value == "FAIL" else "-")


def test_the_reason_column_is_one_clipped_line_and_only_when_a_trial_failed(
        cli: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/reasons.db"

    def objective(params: dict[str, Any]) -> float:
        if hpo.current_trial().number == 1:  # a long reason over several lines
            raise RuntimeError("command exited with status 1:\n" + "x" * 200)
        return float(params["x"])

    hpo.minimize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=2, storage=url,
                 study_name="r", catch=RuntimeError)
    header, ok, failed = cli("trials", "--study", "r", "--storage", url)[1].splitlines()
    assert header.split()[-1] == "reason" and ok.endswith(" -")
    # the head gives way (down to a third of the width) to the reason's last line, which
    # keeps its start and its end (where an error line's cause usually is)
    assert failed.endswith("RuntimeError: com... | " + "x" * 11 + "..." + "x" * 23)
    assert len(failed) - failed.index("RuntimeError") == 60
    assert "reason" not in cli("trials", "--study", "r", "--storage", url,
                               "--state", "COMPLETE")[1]


def test_trials_columns_are_aligned(cli: Run, url: str) -> None:
    lines = cli("trials", "--study", "demo", "--storage", url)[1].splitlines()
    value_end = lines[0].index("value") + len("value")
    state_start = lines[0].index("state")
    assert all(line[value_end - 1] != " " and line[value_end] == " " for line in lines)
    assert all(line[state_start - 1] == " " and line[state_start] != " " for line in lines)


@pytest.mark.parametrize(("args", "states"), [
    (["--state", "complete"], ["COMPLETE"] * 3),
    (["--state", "PRUNED", "--state", "FAIL"], ["PRUNED", "FAIL"]),
])
def test_trials_filter_by_state(cli: Run, url: str, args: list[str],
                                states: list[str]) -> None:
    rows = _table(cli("trials", "--study", "demo", "--storage", url, *args)[1])[1:]
    assert [row[1] for row in rows] == states


def test_trials_sort_by_value_puts_the_best_first(cli: Run, url: str) -> None:
    rows = _table(cli("trials", "--study", "demo", "--storage", url, "--sort", "value")[1])[1:]
    assert int(rows[0][0]) == hpo.load_study("demo", url).best_trial.number
    assert rows[-1][1] == "FAIL"  # no value: last


def test_trials_of_an_empty_study(cli: Run, url: str) -> None:
    code, out, _ = cli("trials", "--study", "plain", "--storage", url)
    assert (code, out) == (EXIT_OK, "Study 'plain' has no trials.\n")


def test_an_unknown_study_is_exit_3_and_lists_the_studies(cli: Run, url: str) -> None:
    code, out, err = cli("trials", "--study", "nope", "--storage", url)
    assert (code, out) == (EXIT_NOT_FOUND, "")
    assert err == ("hpo-plugins: error: No study named 'nope' in " + url +
                   ". Existing studies: ['demo', 'plain'].\n")


def test_best_prints_the_nested_natural_params(cli: Run, url: str) -> None:
    code, out, _ = cli("best", "--study", "demo", "--storage", url)
    assert code == EXIT_OK
    assert json.loads(out) == hpo.load_study("demo", url).best_params
    assert "kind" in json.loads(out)["net"]  # the chosen option, not its index


def test_best_without_a_completed_trial_is_exit_1(cli: Run, url: str) -> None:
    code, _, err = cli("best", "--study", "plain", "--storage", url)
    assert code == EXIT_FAILURE and "no COMPLETE trial" in err


def test_trials_limit_shows_the_best_n(cli: Run, url: str) -> None:
    rows = _table(cli("trials", "--study", "demo", "--storage", url, "--sort", "value",
                      "--limit", "2")[1])[1:]
    study = hpo.load_study("demo", url)
    best = sorted((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    assert [int(row[0]) for row in rows] == [t.number for t in best[:2]]


def test_trials_sort_by_duration_puts_the_longest_first(cli: Run, url: str) -> None:
    rows = _table(cli("trials", "--study", "demo", "--storage", url, "--sort", "duration")[1])[1:]
    study = hpo.load_study("demo", url)
    longest = sorted(study.trials, key=lambda t: -t.duration.total_seconds())  # type: ignore[union-attr]
    assert [int(row[0]) for row in rows] == [t.number for t in longest]


@pytest.mark.parametrize("limit", ["0", "-1", "two"])
def test_trials_limit_must_be_a_positive_integer(cli: Run, url: str, limit: str) -> None:
    code, _, err = cli("trials", "--study", "demo", "--storage", url, "--limit", limit)
    assert code == 2 and "expected an integer >= 1" in err


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_sort_by_value_ranks_complete_trials_before_pruned_ones(cli: Run, tmp_path: Path,
                                                                direction: str) -> None:
    """A PRUNED trial's value is an early report: however good, it ranks after every COMPLETE
    trial, so `--sort value --limit N` shows the N best as `best` sees them."""
    url = f"sqlite:///{tmp_path}/ranks.db"
    sign = 1.0 if direction == "minimize" else -1.0
    ends = ["complete 0.5", "pruned 0.01", "complete 0.3", "fail", "pruned 0.2"]

    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        how, *value = ends[trial.number].split()
        if how == "fail":
            raise ValueError("diverged")
        trial.report(sign * float(value[0]), 0)
        if how == "pruned":
            raise hpo.TrialPruned()
        return sign * float(value[0])

    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=url, study_name="r",
                             direction=direction)
    study.optimize(objective, n_trials=5, catch=ValueError)
    study.storage.close()
    rows = _table(cli("trials", "--study", "r", "--storage", url, "--sort", "value")[1])[1:]
    assert [(int(row[0]), row[1]) for row in rows] == [
        (2, "COMPLETE"), (0, "COMPLETE"), (1, "PRUNED"), (4, "PRUNED"), (3, "FAIL")]
    best = _table(cli("trials", "--study", "r", "--storage", url, "--sort", "value",
                      "--limit", "1")[1])[1:]
    assert int(best[0][0]) == hpo.load_study("r", url).best_trial.number == 2


def test_the_reason_of_a_failed_command_shows_its_last_stderr_line(cli: Run,
                                                                   tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/script.db"
    (tmp_path / "space.py").write_text("from hpo_plugins import hp\n"
                                       "SPACE = {'x': hp.uniform('x', 0, 1)}\n")
    script = ("for n in 1 2 3; do echo noise $n >&2; done; "
              "echo 'ValueError: lr must be > 0' >&2; exit 3")
    cli("run", "--space", f"{tmp_path / 'space.py'}:SPACE", "--n-trials", "1", "--storage",
        url, "--study", "s", "--", "sh", "-c", script)
    header, failed = cli("trials", "--study", "s", "--storage", url)[1].splitlines()
    assert header.split()[-1] == "reason"
    reason = failed[failed.index("ScriptFailed"):]
    # clipped at 60 characters from its first line, not from the cause
    assert reason == "ScriptFailed: command exited... | ValueError: lr must be > 0"


def test_a_running_trial_shows_its_last_report_and_how_long_it_has_run(
        cli: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/live.db"
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=url, study_name="live")
    study.tell(study.ask(), 0.5)
    running = study.ask()
    running.report(0.75, 3)
    running.report(0.2312345, 12)
    study.ask()  # running, nothing reported yet
    time.sleep(0.5)  # so it has run longer than trial 0 took, even if that tell was slow
    code, out, _ = cli("trials", "--study", "live", "--storage", url, "--sort", "duration",
                       "--limit", "2")
    assert [row[0] for row in _table(out)[1:]] == ["1", "2"]  # the running ones, the longest first
    for argv in ((), ("--sort", "value"), ("--sort", "duration")):
        code, out, err = cli("trials", "--study", "live", "--storage", url, *argv)
        assert (code, err) == (EXIT_OK, "")
        rows = {row[0]: row for row in _table(out)[1:]}
        assert rows["1"][1:3] == ["RUNNING", "0.231235"] and rows["1"][3] == "@12"
        assert rows["1"][4].endswith("s")  # the time run so far
        assert rows["2"][1:3] == ["RUNNING", "-"]
        assert rows["0"][1:3] == ["COMPLETE", "0.5"]


def test_a_long_stderr_line_keeps_its_cause_in_the_reason_column() -> None:
    """A command run as a venv's interpreter path (as the docs advise) put the cause past the
    60 characters: "ScriptFailed: com... | /work/main/.venv/bin/python: can't..."."""
    from hpo_plugins.cli._table import short_reason

    reason = ("ScriptFailed: command exited with status 2; stderr tail:\n/work/main/.venv/bin/"
              "python: can't open file '/work/x/nosuch.py': [Errno 2] No such file or directory")
    shown = short_reason(reason, lines=1, width=60)
    assert len(shown) == 60 and shown.startswith("ScriptFailed: com... | /work/")
    assert shown.endswith("such file or directory")


def test_a_running_trial_s_note_keeps_the_value_column_to_the_right(cli: Run,
                                                                     tmp_path: Path) -> None:
    """``0.231235 @12`` is text: the whole value column was aligned to the left."""
    url = f"sqlite:///{tmp_path}/align.db"
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=url, study_name="a")
    study.tell(study.ask(), 0.5)
    study.ask().report(0.2312345, 12)
    lines = cli("trials", "--study", "a", "--storage", url)[1].splitlines()
    end = lines[0].index("value") + len("value")
    assert [line[:end].rstrip().split()[-1] for line in lines] == ["value", "0.5", "@12"]
    assert all(line[end - 1] != " " for line in lines)  # every value ends under "value"


def test_wide_characters_take_two_columns() -> None:
    from hpo_plugins.cli._table import format_table

    table = format_table(["study", "direction"], [["étude-数据", "minimize"], ["ab", "maximize"]])
    first, second = table.splitlines()[1:]
    # "数据" takes four terminal columns: padding by len() put "minimize" two columns left
    assert first == "étude-数据  minimize" and second == "ab          maximize"
    from hpo_plugins.cli._table import _width

    # marks drawn on the letter before (Thai, Devanagari, a combining accent) and invisible
    # format characters take no column
    assert [_width(t) for t in ("สัม", "कु", "e\u0301", "a\u200bb")] == [2, 1, 1, 2]


def test_text_outside_ascii_is_printed_as_it_is_in_every_json_output(cli: Run,
                                                                     tmp_path: Path) -> None:
    """``best`` and ``export --format json`` wrote "\\u00fcn..." escapes where ``trial --json``
    wrote the letters."""
    url = f"sqlite:///{tmp_path}/uni.db"
    hpo.minimize(lambda p: 0.5, {"opt": hpo.hp.choice("opt", ["ünïcødé", "数据"])},
                 n_trials=1, storage=url, study_name="u", seed=0)
    outputs = [cli(*argv, "--study", "u", "--storage", url)[1]
               for argv in (("best",), ("export", "--format", "json"),
                            ("trial", "--json", "--number", "0"))]
    for out in outputs:
        assert "\\u" not in out and ("ünïcødé" in out or "数据" in out), out


def test_best_without_a_completed_trial_names_commands_not_python(cli: Run,
                                                                  tmp_path: Path) -> None:
    """The hints were Python's: "study.get_trials('FAIL')", "study.optimize or ask/tell"."""
    url = f"sqlite:///{tmp_path}/nobest.db"

    def broken(params: dict[str, Any]) -> float:
        raise ValueError("broken")

    hpo.minimize(broken, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=2, storage=url,
                 study_name="all fail", catch=ValueError)
    hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=url, study_name="empty")
    code, _, err = cli("best", "--study", "all fail", "--storage", url)
    assert code == EXIT_FAILURE
    assert (f"see why they failed with hpo-plugins trials --storage {url} --study 'all fail' "
            f"--state FAIL") in err  # the storage given, so the command reads the same one
    assert "study.get_trials" not in err
    code, _, err = cli("best", "--study", "empty", "--storage", url)
    assert code == EXIT_FAILURE and "(hpo-plugins run ..., or study.optimize in Python)" in err


def test_json_outputs_escape_what_stdout_cannot_encode(tmp_path: Path) -> None:
    """Printing the letters themselves failed ("unexpected UnicodeEncodeError") where stdout's
    encoding lacks them: a latin-1 locale, a redirected Windows console. JSON's escapes read
    back as the same values; the text outputs escape them too."""
    import json
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/enc.db"
    hpo.minimize(lambda p: 0.5, {"opt": hpo.hp.choice("opt", ["数据"])}, n_trials=1,
                 storage=url, study_name="数据", seed=0)
    env = dict(os.environ, PYTHONIOENCODING="latin-1")

    def run(*argv: str) -> str:
        done = subprocess.run([sys.executable, "-m", "hpo_plugins.cli", *argv, "--storage", url],
                              env=env, capture_output=True, text=True, encoding="latin-1")
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        return done.stdout

    assert json.loads(run("best", "--study", "数据")) == {"opt": "数据"}
    assert json.loads(run("export", "--study", "数据", "--format", "json"))[0]["state"] == \
        "COMPLETE"
    assert json.loads(run("trial", "--study", "数据", "--number", "0", "--json"))["params"]
    assert json.loads(run("studies", "--json"))[0]["study"] == "数据"
    assert "\\u6570\\u636e" in run("trials", "--study", "数据")  # a table: escaped, not failed
