"""Which stopped trials the launcher cleans up after: only those whose worker is gone."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._process import process_record
from hpo_plugins.launchers._state import _dead_here, _still_alive


def test_only_trials_whose_worker_on_this_host_is_gone_are_cleaned_up() -> None:
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    trial = study.tell(study.ask(), state=hpo.TrialState.FAIL)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    gone_pid, here = int(finished.stdout), process_record()

    def run_by(trial_id: int, **record: object) -> hpo.FrozenTrial:
        attrs = {**trial.system_attrs, "worker": {**here, **record}}
        return dataclasses.replace(trial, trial_id=trial_id, system_attrs=attrs)

    dead = run_by(1, pid=gone_pid, started=None)
    alive = run_by(2)  # a Dask worker that goes on with its task, say
    elsewhere = run_by(3, host=here["host"] + "-other", pid=gone_pid)
    # a container that shares this host's name: its process ids are not this namespace's
    sibling = run_by(4, pid_ns=-1, pid=gone_pid)
    trials = [dead, alive, elsewhere, sibling]
    assert _dead_here(trials, wait=0.1) == [dead]
    # a trial whose worker may still write its end is not announced by the launcher
    assert _still_alive(trials, wait=0.1) == {alive.trial_id}
