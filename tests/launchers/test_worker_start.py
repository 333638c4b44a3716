"""A script without a ``__main__`` guard: its slot processes die as they start, and the run says
why instead of replacing them again and again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hpo_plugins as hpo

pytestmark = pytest.mark.slow

UNGUARDED = textwrap.dedent("""
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.launchers import JoblibLauncher

    def objective(params):
        return params["x"] ** 2

    study = hpo.minimize(objective, {"x": hp.uniform("x", -1, 1)}, n_trials=4,
                         launcher=JoblibLauncher(n_jobs=2, fresh_process=True),
                         storage="sqlite:///unguarded.db", study_name="unguarded")
    print("returned with", len(study.trials), "trials")
""")


def test_a_run_started_at_module_level_stops_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "unguarded.py").write_text(UNGUARDED)
    done = subprocess.run([sys.executable, "unguarded.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "returned with" not in done.stdout
    # the launcher's error, and each worker's own, name the guard
    assert "WorkerStartError: Expected the worker process of slot " in done.stderr
    assert "ConfigurationError: Expected the run to be started by the main script" in done.stderr
    assert 'if __name__ == "__main__":' in done.stderr
    assert "died; its trial is failed and run again" not in done.stderr  # no replacements
    storage = hpo.storages.get_storage(f"sqlite:///{tmp_path}/unguarded.db")
    try:  # the workers stopped before they could add a study or a trial of their own
        assert [s.name for s in storage.list_studies()] == ["unguarded"]
        assert hpo.load_study("unguarded", storage).trials == []
    finally:
        storage.close()
