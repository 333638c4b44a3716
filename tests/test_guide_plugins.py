"""The guide's example of a sampler and a pruner of one's own runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"


def test_the_writing_plugins_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Writing your own sampler", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "guide_example"}
    exec(compile(code.group(1), str(GUIDE), "exec"), namespace)
    study = namespace["study"]
    best, count = capsys.readouterr().out.split()
    assert int(count) == 30 and float(best) == study.best_value < 0.01  # type: ignore[attr-defined]
    states = {t.state.value for t in study.trials}  # type: ignore[attr-defined]
    assert "PRUNED" in states and "COMPLETE" in states
    record = study.storage.get_study(study.study_id).attrs  # type: ignore[attr-defined]
    assert record["sampler"]["exact"] and record["pruner"]["params"] == {"step": 2,
                                                                        "threshold": 1.5}
