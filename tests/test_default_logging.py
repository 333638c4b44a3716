"""What a program that configures no logging sees of the package's log records."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import hpo_plugins as hpo

    space = {"x": hpo.hp.uniform("x", 0, 1)}

    def objective(params):
        if params["x"] > -1:
            raise ValueError("boom")

    hpo.minimize(objective, space, n_trials=2, storage="sqlite:///s.db", study_name="s",
                 catch=(ValueError,), show_progress_bar=False)
""")


def test_warnings_reach_stderr_and_info_stays_silent(tmp_path: Path) -> None:
    """No handler of the package's own: Python's last resort shows WARNING and above."""
    (tmp_path / "run.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)
    lines = done.stderr.splitlines()
    assert lines == ["Trial 0 failed: ValueError: boom", "Trial 1 failed: ValueError: boom",
                     "All 2 trials of this run failed; the last one: ValueError: boom. The "
                     "study has no new result: try the objective alone (one trial, n_jobs=1) "
                     "to see its error, or read each trial's reason with "
                     "study.trials_dataframe() or hpo-plugins trials."], (
        done.stderr)  # the INFO records (study created, storage location) are not shown


def test_a_program_that_configures_logging_decides(tmp_path: Path) -> None:
    (tmp_path / "run.py").write_text(
        'import logging\nlogging.getLogger("hpo_plugins").setLevel(logging.ERROR)\n' + SCRIPT)
    done = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stderr == ""
