"""Several launchers on one PostgreSQL study: two ``hpo-plugins run`` processes cooperate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState

pytest_plugins = ["conftest_postgres"]
pytestmark = pytest.mark.slow

MAX_TRIALS = 4

SPACE = ("from hpo_plugins import hp\n"
         "SPACE = {'x': hp.uniform('x', -1, 1), 'y': hp.uniform('y', -1, 1)}\n")
# Each trial first waits (until WAIT_UNTIL, a time.time() the test writes above this) until the
# study holds a trial of the other launcher (Dask's carry a run_id, the local launcher's do
# not). Neither launcher can then take every place before the other starts (the local one runs
# a trial every few seconds, while the Dask one may still be starting), and some trial of each
# runs while one of the other does.
SCRIPT = textwrap.dedent("""
    import time
    import hpo_plugins as hpo
    trial = hpo.current_trial()
    on_dask = "run_id" in trial.system_attrs
    while (time.time() < WAIT_UNTIL
           and not any(("run_id" in t.system_attrs) != on_dask for t in trial.study.trials)):
        time.sleep(0.1)
    x, y = trial.params["x"], trial.params["y"]
    for step in range(2):
        trial.report((x - 0.3) ** 2 + y ** 2 + 1.0 / (step + 1), step)
""")


def _run_command(tmp_path: Path, *extra: str) -> list[str]:
    (tmp_path / "space.py").write_text(SPACE)
    (tmp_path / "train.py").write_text(f"WAIT_UNTIL = {time.time() + 120!r}\n{SCRIPT}")
    return [sys.executable, "-m", "hpo_plugins.cli", "run", "--space",
            f"{tmp_path / 'space.py'}:SPACE", "--study", "together", "--max-trials",
            str(MAX_TRIALS), "--seed", "0", "--logdir", str(tmp_path / "runs"), *extra, "--",
            sys.executable, str(tmp_path / "train.py")]


def test_two_cli_launchers_share_one_study(tmp_path: Path, dask_cluster: Any, dask_client: Any,
                                           fresh_postgres_url: str) -> None:
    # The URL reaches both through the environment (as documented for credentials), not argv.
    env = {**os.environ, "HPO_PLUGINS_STORAGE": fresh_postgres_url}
    commands = {"local": _run_command(tmp_path),
                "dask": _run_command(tmp_path, "--dask", dask_cluster.address, "--n-jobs", "2")}
    processes = {name: subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                 for name, argv in commands.items()}
    outputs = {name: p.communicate(timeout=240) for name, p in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, (name, outputs[name], dask_cluster.logs())

    study = hpo.load_study("together", fresh_postgres_url)
    trials = study.trials
    study.storage.close()
    assert [t.number for t in trials] == list(range(len(trials)))  # unique numbers
    assert [t.state for t in trials] == [TrialState.COMPLETE] * MAX_TRIALS  # the total asked
    params = [json.dumps(t.params, sort_keys=True) for t in trials]
    assert len(set(params)) == len(params)  # no two trials share a suggestion

    on_dask = [t for t in trials if "run_id" in t.system_attrs]
    local = [t for t in trials if "run_id" not in t.system_attrs]
    assert on_dask and local  # both launchers ran trials...
    assert all(t.system_attrs["worker"]["name"] in ("gpu0", "gpu1") for t in on_dask)
    assert any(_overlap(a, b) for a in on_dask for b in local)  # ...at the same time


def _overlap(a: hpo.FrozenTrial, b: hpo.FrozenTrial) -> bool:
    assert a.datetime_start and a.datetime_complete and b.datetime_start and b.datetime_complete
    return a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
