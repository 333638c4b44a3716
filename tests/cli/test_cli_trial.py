"""``hpo-plugins trial``: one trial in full, as text or JSON; a wrong number is explained."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE

Run = Callable[..., tuple[int, str, str]]


def _stored(url: str, number: int) -> hpo.FrozenTrial:
    store = hpo.storages.get_storage(url)
    try:
        return store.get_all_trials(store.get_study_id("demo"))[number]
    finally:
        store.close()


def test_a_failed_trial_shows_its_reason_curve_and_traceback(cli: Run, url: str,
                                                              tmp_path: Path) -> None:
    code, out, err = cli("trial", "--study", "demo", "--number", "2", "--storage", url)
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert lines[0] == "Trial 2 of study 'demo': FAIL"
    assert any(line.split() == ["reason", "ValueError:", "diverged"] for line in lines)
    assert ["log", "dir", str(tmp_path / "runs" / "trial_0002")] in [line.split()
                                                                      for line in lines]
    curve = lines.index("curve (3 reports):")
    assert lines[curve + 1].split() == ["step", "value"]
    trial = _stored(url, 2)
    for step in range(3):
        assert lines[curve + 2 + step].split() == [str(step),
                                                   repr(trial.intermediate_values[step])]
    assert "traceback (its end, as stored):" in lines
    assert "raise ValueError(\"diverged\")" in out  # the objective's own line
    assert not [line for line in lines if line.split()[:1] == ["value"]]  # a FAIL has none


def test_a_complete_trial_shows_its_value_and_natural_params(cli: Run, url: str) -> None:
    code, out, _ = cli("trial", "--study", "demo", "--number", "0", "--storage", url)
    trial = _stored(url, 0)
    assert code == EXIT_OK and out.splitlines()[0] == "Trial 0 of study 'demo': COMPLETE"
    assert ["value", repr(trial.value)] in [line.split() for line in out.splitlines()]  # whole
    assert json.dumps(trial.natural) in out
    assert "duration" in out and "traceback" not in out


def test_json_holds_every_field(cli: Run, url: str) -> None:
    code, out, _ = cli("trial", "--study", "demo", "--number", "1", "--json", "--storage", url)
    assert code == EXIT_OK
    shown = json.loads(out)
    trial = _stored(url, 1)
    assert shown["state"] == "PRUNED" and shown["value"] == trial.value
    assert shown["params"] == trial.natural and shown["flat_params"] == dict(trial.params)
    assert shown["intermediate_values"] == {str(s): v for s, v in
                                            trial.intermediate_values.items()}
    assert trial.datetime_start is not None
    assert shown["datetime_start"] == trial.datetime_start.isoformat()
    assert shown["system_attrs"] == dict(trial.system_attrs)
    assert shown["duration_s"] == pytest.approx(trial.duration.total_seconds())  # type: ignore[union-attr]


def test_a_trial_with_no_report_says_so(cli: Run, url: str, nested_space: dict) -> None:
    study = hpo.load_study("plain", url, space=nested_space)
    study.ask()
    study.storage.close()
    code, out, _ = cli("trial", "--study", "plain", "--number", "0", "--storage", url)
    assert code == EXIT_OK
    assert out.splitlines()[0] == "Trial 0 of study 'plain': RUNNING"
    assert "curve: nothing reported" in out


@pytest.mark.parametrize(("study", "number", "message"), [
    ("demo", "9", "study 'demo' has no trial 9 (its trials are numbered 0 to 4)"),
    ("plain", "0", "study 'plain' has no trial 0 (it has no trials)"),
    ("nope", "0", "No study named 'nope'"),
])
def test_a_missing_trial_or_study_is_explained(cli: Run, url: str, study: str, number: str,
                                               message: str) -> None:
    code, out, err = cli("trial", "--study", study, "--number", number, "--storage", url)
    assert (code, out) == (EXIT_NOT_FOUND, "")
    assert message in err


def test_the_number_must_be_an_integer(cli: Run, url: str) -> None:
    code, _, err = cli("trial", "--study", "demo", "--number", "two", "--storage", url)
    assert code == EXIT_USAGE and "invalid int value: 'two'" in err


def test_json_stays_strict_and_text_keeps_unicode_and_long_reasons(cli: Run, url: str) -> None:
    store = hpo.storages.get_storage(url)
    study_id = store.get_study_id("plain")
    trial = store.create_trial(study_id)
    assert trial is not None
    store.set_intermediate_value(trial.trial_id, 0, float("nan"))  # written by other means
    store.set_trial_user_attr(trial.trial_id, "note", "café 日本")
    store.finish_trial(trial.trial_id, hpo.TrialState.FAIL, system_attrs={
        "fail_reason": "command exited with status 3; stderr tail:\nline one\nline two"})
    store.close()
    code, out, _ = cli("trial", "--study", "plain", "--number", "0", "--json", "--storage", url)
    assert code == EXIT_OK
    shown = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON"))
    assert shown["intermediate_values"] == {"0": None}
    assert shown["user_attrs"] == {"note": "café 日本"}
    code, out, _ = cli("trial", "--study", "plain", "--number", "0", "--storage", url)
    lines = out.splitlines()
    assert '"café 日本"' in out
    reason = next(i for i, line in enumerate(lines) if line.split()[:1] == ["reason"])
    assert lines[reason].endswith("stderr tail:")
    indent = lines[reason].index("command")
    assert lines[reason + 1] == " " * indent + "line one"
    assert lines[reason + 2] == " " * indent + "line two"
