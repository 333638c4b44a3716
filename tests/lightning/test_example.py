"""examples/lightning_digits.py still runs: a few short trials of its study and its report."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from hpo_plugins import TrialState

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lightning_digits.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lightning_digits_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_example_tunes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    args = example.parse_args(["--trials", "3", "--epochs", "2",
                               "--storage", f"sqlite:///{tmp_path}/digits.db"])
    data = example.DigitsData()
    study = example.tune(args, data)
    example.report(study, data)

    assert len(study.trials) == 3
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    widths = [w for t in study.trials for w in t.natural["layers"]]
    assert widths and all(type(w) is int for w in widths), widths  # scope.int, not 160.0
    out = capsys.readouterr().out
    assert f"in {tmp_path}/digits.db" in out
    assert "best checkpoint: " in out and "its validation accuracy: 0." in out
