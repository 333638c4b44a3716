"""A parallel run logs each trial's end in the launcher, where the user set up logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.samplers import RandomSampler

pytestmark = pytest.mark.slow


def _objective(params: dict[str, Any]) -> float:
    trial = hpo.current_trial()
    if trial.number == 1:
        raise ValueError("bad luck")
    if trial.number == 2:
        trial.report(7.0, 3)
        raise hpo.TrialPruned()
    return float(params["x"])


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_each_trial_end_is_logged_once_in_the_launcher(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, n_jobs: int) -> None:
    with caplog.at_level(logging.INFO, logger="hpo_plugins"):
        study = hpo.minimize(_objective, {"x": hp.uniform("x", 0, 1)}, n_trials=4, seed=0,
                             storage=f"sqlite:///{tmp_path}/log.db", sampler=RandomSampler(),
                             catch=(ValueError,), n_jobs=n_jobs)
    ends = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("Trial ")
                  and ("finished" in r.getMessage() or "failed" in r.getMessage()
                       or "pruned" in r.getMessage()))
    values = {t.number: t.value for t in study.trials}
    assert ends == sorted([f"Trial 0 finished with value {values[0]:.6g}.",
                           "Trial 1 failed: ValueError: bad luck",
                           "Trial 2 pruned at step 3.",
                           f"Trial 3 finished with value {values[3]:.6g}."]), ends


def _loss_of(params: dict[str, Any]) -> dict[str, Any]:
    return {"loss": -float(params["x"]), "status": "ok"}


def test_a_maximised_hyperopt_loss_is_warned_once_by_the_launcher(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each worker process used to warn on its own: once per trial with fresh processes."""
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study = hpo.maximize(_loss_of, {"x": hp.uniform("x", 0, 1)}, n_trials=4,
                             storage=f"sqlite:///{tmp_path}/max.db", n_jobs=2)
    warned = [r for r in caplog.records if "which Hyperopt minimises" in r.getMessage()]
    assert len(warned) == 1 and len(study.trials) == 4


SCRIPT = """
import logging
import hpo_plugins as hpo
from hpo_plugins import hp

def objective(params):
    if hpo.current_trial().number == 1:
        raise ValueError("bad luck")
    return params["x"]

if __name__ == "__main__":
    logging.basicConfig(format="USER-FORMAT %(levelname)s %(message)s", level=logging.WARNING)
    hpo.minimize(objective, {"x": hp.uniform("x", 0, 1)}, n_trials=3, n_jobs=2, seed=0,
                 storage="sqlite:///s.db", catch=(ValueError,))
"""


def test_a_workers_failure_is_logged_once_in_the_users_format(tmp_path: Path) -> None:
    """Workers left the warning to Python's last-resort handler, unformatted, and the launcher
    said nothing at WARNING: the user's format never showed a failure of a parallel run."""
    import subprocess
    import sys

    (tmp_path / "s.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "s.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "Trial 1 failed" in line]
    assert lines == ["USER-FORMAT WARNING Trial 1 failed: ValueError: bad luck"], done.stderr
