"""Several processes on one SQLite study: unique numbers, no lock errors, child-process trials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.context import TRIAL_ENV, trial_env
from hpo_plugins.exceptions import ConfigurationError

WORKER = textwrap.dedent("""
    import sys
    import hpo_plugins as hpo
    from hpo_plugins import hp
    from hpo_plugins.samplers import RandomSampler

    url, n = sys.argv[1], int(sys.argv[2])
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=url,
                             study_name="shared", sampler=RandomSampler(), seed=1)
    for _ in range(n):
        trial = study.ask()
        trial.report(trial.params["x"], 0)
        study.tell(trial, trial.params["x"])
""")


@pytest.mark.slow
def test_four_processes_share_one_sqlite_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), url, "100"],
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    trials = hpo.load_study("shared", url).trials
    assert sorted(t.number for t in trials) == list(range(400))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    # each trial's random stream comes from (seed, number): no two workers drew the same x
    assert len({t.params["x"] for t in trials}) == 400


CHILD = textwrap.dedent("""
    import hpo_plugins as hpo
    trial = hpo.current_trial()
    for step in range(3):
        trial.report(trial.params["x"] + step, step)
    trial.set_user_attr("child_pid", __import__("os").getpid())
""")


def test_a_child_process_reports_to_the_handed_over_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/child.db"
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=url,
                             study_name="parent", seed=0)
    trial = study.ask()
    env = {**os.environ, **trial_env(trial)}
    assert json.loads(env[TRIAL_ENV]) == {"storage": url, "study": "parent",
                                          "trial_id": trial.trial_id}  # SQLite: no timeout
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, timeout=120)
    stored = study.storage.get_trial(trial.trial_id)
    x = trial.params["x"]
    assert stored.intermediate_values == {0: x, 1: x + 1, 2: x + 2}
    assert stored.user_attrs["child_pid"] != os.getpid()


def test_in_memory_trials_cannot_be_handed_to_a_child() -> None:
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    with pytest.raises(ConfigurationError, match="storage that other processes can open"):
        trial_env(study.ask())


@pytest.mark.parametrize("raw", ["not json", '{"storage": "sqlite://"}'])
def test_a_malformed_handover_variable_is_explained(raw: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRIAL_ENV, raw)
    with pytest.raises(ConfigurationError, match="Expected HPO_PLUGINS_TRIAL to hold JSON"):
        hpo.current_trial()


def test_grid_never_repeats_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/grid.db"
    script = tmp_path / "grid_worker.py"
    script.write_text(textwrap.dedent("""
        import sys
        import hpo_plugins as hpo
        from hpo_plugins import hp
        from hpo_plugins.samplers import GridSampler

        space = {"a": hp.choice("a", [1, 2, 3, 4]), "b": hp.quniform("b", 0, 2, 1)}
        hpo.minimize(lambda p: p["a"] * p["b"], space, storage=sys.argv[1], study_name="grid",
                     sampler=GridSampler(), heartbeat_interval=None)
    """))
    procs = [subprocess.Popen([sys.executable, str(script), url]) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    trials = hpo.load_study("grid", url).trials
    combos: list[Any] = [(t.params["a"], t.params["b"]) for t in trials]
    assert len(combos) == 12 and len(set(combos)) == 12
