"""A SQLite storage holding studies with every trial state, and an in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import main
from hpo_plugins.samplers import RandomSampler

Result = tuple[int, str, str]
"""(exit code, stdout, stderr) of one CLI run."""


def _objective(params: dict[str, Any]) -> float:
    trial = hpo.current_trial()
    for step in range(3):
        trial.report(params["lr"] * (3 - step), step)
        if trial.number == 1 and step == 1:
            raise hpo.TrialPruned()
    if trial.number == 2:
        raise ValueError("diverged")
    return float(params["lr"])


@pytest.fixture
def url(tmp_path: Path, nested_space: dict[str, Any]) -> str:
    """A SQLite file with ``demo`` (5 trials: COMPLETE, PRUNED, FAIL, COMPLETE, COMPLETE; with a
    logdir) and ``plain`` (no logdir, no trial)."""
    url = f"sqlite:///{tmp_path}/cli.db"
    hpo.minimize(_objective, nested_space, n_trials=5, storage=url, study_name="demo",
                 logdir=str(tmp_path / "runs"), sampler=RandomSampler(), seed=3,
                 catch=ValueError)
    hpo.create_study(nested_space, storage=url, study_name="plain", direction="maximize")
    return url


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("trials", "--study", "demo")`` runs ``hpo-plugins`` in this process."""

    def run(*argv: str) -> Result:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run

