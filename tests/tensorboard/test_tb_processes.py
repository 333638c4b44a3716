"""Across processes: no TensorFlow anywhere on the path, and a child reporting into a run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._artifacts import MARKER
from hpo_plugins.tensorboard import EXPERIMENT_FILE, INTERMEDIATE_TAG, STATE_TAG, VALUE_TAG

Reader = Callable[[str], Any]

NO_TENSORFLOW = textwrap.dedent("""
    import glob, os, sys
    import hpo_plugins as hpo
    import hpo_plugins.cli, hpo_plugins.tensorboard, hpo_plugins.tensorboard._server
    from hpo_plugins import hp
    from hpo_plugins.cli import main

    def objective(params):
        trial = hpo.current_trial()
        trial.report(params["x"], 0)
        if trial.number == 1:
            raise hpo.TrialPruned()
        if trial.number == 2:
            raise ValueError("failed on purpose")
        return params["x"]

    url = "sqlite:///" + os.path.abspath("hpo.db")
    space = {"x": hp.uniform("x", 0, 1), "c": hp.choice("c", ["a", {"y": hp.randint("y", 3)}])}
    hpo.minimize(objective, space, n_trials=4, storage=url, study_name="s", logdir="runs",
                 catch=ValueError)
    for argv in (["studies"], ["trials", "--study", "s"], ["best", "--study", "s"],
                 ["export", "--study", "s", "--format", "json", "--out", "t.json"],
                 ["plot", "--study", "s", "--out", "plots"]):
        assert main([*argv, "--storage", url]) == 0, argv
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
    for path in glob.glob("runs/**/*tfevents*", recursive=True):
        reader = PyRecordReader_New(path.encode())
        reader.GetNext()
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    assert not loaded, loaded
    print("no tensorflow")
""")

ASK_AND_REPORT = textwrap.dedent("""
    import sys
    import hpo_plugins as hpo
    from hpo_plugins import hp

    url, logdir = sys.argv[1], sys.argv[2]
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=url, study_name="tb",
                             logdir=logdir)
    trial = study.ask()
    for step, value in enumerate([0.9, 0.6, 0.4]):
        trial.report(value, step)
""")

CHILD = textwrap.dedent("""
    import sys
    import hpo_plugins as hpo

    url, trial_id = sys.argv[1], int(sys.argv[2])
    trial = hpo.load_study("tb", url).trial(trial_id)
    for step, value in enumerate([0.9, 0.6, 0.4]):
        trial.report(value, step)
""")


def _python(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    return subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_writing_a_study_and_running_the_cli_never_imports_tensorflow(tmp_path: Path) -> None:
    result = _python(NO_TENSORFLOW, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no tensorflow" in result.stdout
    assert sorted(os.listdir(tmp_path / "runs")) == [  # the experiment file and 4 trial runs
        MARKER, EXPERIMENT_FILE, *(f"trial_{n:04d}" for n in range(4))]


@pytest.mark.slow
def test_a_child_process_reports_into_the_trial_run(tmp_path: Path, run_reader: Reader) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=url, study_name="tb",
                             logdir=str(tmp_path / "runs"))
    trial = study.ask()
    child = _python(CHILD, url, str(trial.trial_id), cwd=tmp_path)
    assert child.returncode == 0, child.stderr
    study.tell(trial, 0.4)
    run = run_reader(trial.log_dir)
    assert len(run.files) == 2  # the parent's file and the child's
    assert (len(run.starts), len(run.ends)) == (1, 1)
    steps, values = zip(*run.scalars[INTERMEDIATE_TAG])
    assert (steps, values) == ((0, 1, 2), pytest.approx((0.9, 0.6, 0.4)))
    assert run.last(VALUE_TAG) == pytest.approx(0.4)


@pytest.mark.slow
def test_a_trial_told_by_another_process_shows_its_final_state_in_any_file_order(
        tmp_path: Path, run_reader: Reader, session_reader: Reader) -> None:
    # A child asks and reports, this process tells. Which of the two files TensorBoard reads
    # last depends on their names (in one second: on the pids, as text), so both orders are
    # read here, by TensorBoard's own backend: each must show the state the storage holds.
    url, logdir = f"sqlite:///{tmp_path}/study.db", tmp_path / "runs"
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=url, study_name="tb",
                             logdir=str(logdir))
    child = _python(ASK_AND_REPORT, url, str(logdir), cwd=tmp_path)
    assert child.returncode == 0, child.stderr
    frozen = study.tell(0, 0.25)
    run = Path(frozen.log_dir or "")
    files = sorted(os.listdir(run))
    assert len(files) == 2  # the child's and this process's
    assert run_reader(str(run)).scalars[STATE_TAG] == [(2, 1.0)]  # written by the teller only
    for order in (files, files[::-1]):
        copy = tmp_path / f"read_{order[0] == files[0]}"
        shutil.copytree(logdir, copy)
        for rank, name in enumerate(order):
            os.rename(copy / run.name / name, copy / run.name / f"events.out.tfevents.{rank}.x")
        session = session_reader(str(copy))[run.name]
        assert session.status == "STATUS_SUCCESS"
        assert session.metrics == pytest.approx({VALUE_TAG: 0.25, INTERMEDIATE_TAG: 0.4,
                                                 STATE_TAG: 1.0})
