"""Which stopped trials the launcher cleans up after: only those whose worker is gone."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.launchers._state import _dead_here


def test_only_trials_whose_worker_on_this_host_is_gone_are_cleaned_up() -> None:
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    trial = study.tell(study.ask(), state=hpo.TrialState.FAIL)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    host = socket.gethostname()

    def run_by(where: str, pid: int) -> hpo.FrozenTrial:
        attrs = {**trial.system_attrs, "worker": {"host": where, "pid": pid}}
        return dataclasses.replace(trial, trial_id=pid, system_attrs=attrs)

    dead = run_by(host, int(finished.stdout))
    alive = run_by(host, os.getpid())  # a Dask worker that goes on with its task, say
    elsewhere = run_by(host + "-other", int(finished.stdout) + 1)
    assert _dead_here([dead, alive, elsewhere], wait=0.1) == [dead]
