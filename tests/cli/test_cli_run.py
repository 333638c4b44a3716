"""``hpo-plugins run``: options checked before anything is stored, errors that name the flags,
a useful last reason when every trial failed, and a study name that a re-run finds again."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from hpo_plugins.cli._run import _short_reason
from hpo_plugins.storages import SQLStorage

Run = Callable[..., tuple[int, str, str]]

SPACE = "from hpo_plugins import hp\nSPACE = {'x': hp.uniform('x', 0, 1)}\n"
REPORTS = ("import hpo_plugins as hpo; trial = hpo.current_trial(); "
           "trial.report(trial.params['x'], 0)")


@pytest.fixture
def space(tmp_path: Path) -> str:
    """``--space`` of a one-parameter space file."""
    (tmp_path / "space.py").write_text(SPACE)
    return f"{tmp_path / 'space.py'}:SPACE"


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A storage URL whose file does not exist yet."""
    return f"sqlite:///{tmp_path}/run.db"


def _studies(url: str) -> list[str]:
    """The names of the studies at ``url`` (none when the file was never created)."""
    if not Path(url.removeprefix("sqlite:///")).exists():
        return []
    store = SQLStorage(url)
    try:
        return [info.name for info in store.list_studies()]
    finally:
        store.close()


def test_without_a_limit_the_error_names_the_flags(cli: Run, space: str, db: str) -> None:
    code, out, err = cli("run", "--space", space, "--storage", db, "--", "true")
    assert (code, out) == (EXIT_USAGE, "")
    assert "--n-trials N" in err and "--max-trials N" in err and "--timeout SECONDS" in err
    assert "n_trials=" not in err and "timeout=" not in err
    assert _studies(db) == []


def test_a_grid_needs_no_limit(cli: Run, tmp_path: Path, db: str) -> None:
    (tmp_path / "grid.py").write_text("from hpo_plugins import hp\n"
                                      "SPACE = {'x': hp.choice('x', [1, 2])}\n")
    code, out, _ = cli("run", "--space", f"{tmp_path / 'grid.py'}:SPACE", "--sampler", "grid",
                       "--storage", db, "--study", "grid", "--", "false")
    assert code == EXIT_FAILURE and "2 FAIL" in out  # the whole grid ran, then it stopped


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--gpus-per-trial", "1"], EXIT_USAGE, "--gpus-per-trial needs --dask"),
    (["--dask", "tcp://127.0.0.1:1", "--gpus", "0"], EXIT_USAGE,
     "--gpus does not apply with --dask"),
    (["--sampler", "grid"], EXIT_FAILURE, "GridSampler needs a finite set"),
    (["--gpus", "ALL"], EXIT_USAGE, "expected --gpus to be 'all' or GPU ids"),
    (["--gpus", "0,-1"], EXIT_USAGE, "Received '0,-1'"),
    (["--trials-per-gpu", "2"], EXIT_USAGE, "--trials-per-gpu needs --gpus"),
])
def test_a_refused_run_leaves_no_study(cli: Run, space: str, db: str, argv: list[str],
                                       code: int, message: str) -> None:
    result = cli("run", "--space", space, "--n-trials", "1", "--storage", db, *argv, "--", "true")
    assert result[0] == code and message in result[2]
    assert _studies(db) == []


def test_an_unreachable_scheduler_leaves_no_study(cli: Run, space: str, db: str) -> None:
    pytest.importorskip("dask.distributed")  # first: config.set below keeps its defaults
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                           "--dask", "tcp://127.0.0.1:1", "--", "true")
    assert code == EXIT_FAILURE
    assert "cannot connect to the Dask scheduler at tcp://127.0.0.1:1" in err
    assert not Path(db.removeprefix("sqlite:///")).exists()  # not even an empty database


@pytest.mark.parametrize(("source", "error"), [
    ("def broken(:\n", "SyntaxError: invalid syntax"),
    ("raise RuntimeError('no data here')\n", "RuntimeError: no data here"),
])
def test_a_space_file_that_fails_to_load_is_explained(cli: Run, tmp_path: Path, db: str,
                                                       source: str, error: str) -> None:
    (tmp_path / "bad.py").write_text(source)
    code, _, err = cli("run", "--space", f"{tmp_path / 'bad.py'}:SPACE", "--n-trials", "1",
                       "--storage", db, "--", "true")
    assert code == EXIT_FAILURE  # as for a missing file or name
    assert err.startswith(f"hpo-plugins: error: cannot load the space from "
                          f"'{tmp_path / 'bad.py'}': {error}")
    assert "unexpected" not in err and _studies(db) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["--study", " "], "argument --study: expected a name"),
    (["--metric", ""], "argument --metric: expected a name"),
    (["--gpus-per-trial", "-1"], "argument --gpus-per-trial: expected a number >= 0"),
    (["--storage", "hpo.db"], "expected --storage (or $HPO_PLUGINS_STORAGE) to be a database URL"),
])
def test_bad_values_name_their_flag(cli: Run, space: str, tmp_path: Path, argv: list[str],
                                    message: str) -> None:
    common = ["run", "--space", space, "--n-trials", "1"]
    if "--storage" not in argv:
        common += ["--storage", f"sqlite:///{tmp_path}/run.db"]
    code, _, err = cli(*common, *argv, "--", "true")
    assert code == EXIT_USAGE and message in err
    assert not (tmp_path / "run.db").exists()


def test_a_storage_value_with_a_password_is_not_echoed(cli: Run, space: str) -> None:
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage",
                       "postgresql:/user:hunter2@db/hpo", "--", "true")
    assert code == EXIT_USAGE and "expected --storage" in err
    assert "hunter2" not in err


def test_every_trial_failed_shows_the_end_of_stderr(cli: Run, space: str, db: str) -> None:
    script = ("import sys\nfor n in range(10): print('noise', n, file=sys.stderr)\n"
              "print('ValueError: lr must be > 0', file=sys.stderr)\nsys.exit(3)")
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                       "--study", "s", "--", sys.executable, "-c", script)
    assert code == EXIT_FAILURE
    last = err.strip().splitlines()[-1]
    assert last == ("hpo-plugins: error: every trial of this run failed (1); the last one: "
                    "ScriptFailed: command exited with status 3; stderr tail: noise 8 | noise 9 "
                    "| ValueError: lr must be > 0")


@pytest.mark.parametrize(("reason", "shown"), [
    ("command exited with status 3; stderr tail:\n", "command exited with status 3; stderr "
     "tail: (empty)"),
    ("ValueError: diverged", "ValueError: diverged"),
    ("first\n\nsecond\n", "first | second"),
    (None, "no reason stored"),
    ("head:\n" + "x" * 500, "head: " + "x" * 197 + "..."),
])
def test_a_fail_reason_is_shortened_to_one_line(reason: str | None, shown: str) -> None:
    assert _short_reason(reason) == shown


def test_the_same_command_finds_its_study_again(cli: Run, space: str, db: str) -> None:
    argv = ["run", "--space", space, "--n-trials", "1", "--storage", db, "--", "false"]
    code, out, err = cli(*argv)
    assert code == EXIT_FAILURE
    (name,) = _studies(db)
    assert name.startswith("false-")
    assert f"study {name!r} (a name derived from the command and the space" in err
    assert "new" in err.splitlines()[0]
    code, out, err = cli(*argv)
    assert f"study {name!r}: 2 FAIL" in out
    assert "resumed with its 1 earlier trials" in err
    cli(*argv[:-1], "false", "--another-word")
    assert len(_studies(db)) == 2  # another command, another study
    cli(*argv[:1], "--seed", "1", *argv[1:])
    cli(*argv[:1], "--sampler", "random", *argv[1:])
    assert len(_studies(db)) == 4  # another seed or sampler: trials of two settings never mix
    cli(*argv[:1], "--n-jobs", "1", *argv[1:])
    assert len(_studies(db)) == 4  # how the run is done does not make another study


@pytest.mark.slow
def test_a_rerun_with_max_trials_completes_the_study(cli: Run, space: str, db: str) -> None:
    """What a re-run after ``kill -9`` does: the same command resumes the study it started."""
    command = ["--storage", db, "--sampler", "random", "--", sys.executable, "-c", REPORTS]
    assert cli("run", "--space", space, "--n-trials", "1", *command)[0] == EXIT_OK  # "crashed"
    code, out, _ = cli("run", "--space", space, "--max-trials", "2", *command)
    (name,) = _studies(db)
    assert code == EXIT_OK and f"study {name!r}: 2 COMPLETE" in out


def test_resuming_with_another_direction_or_space_names_the_flags(
        cli: Run, space: str, tmp_path: Path, db: str) -> None:
    hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, study_name="s", storage=db).storage.close()
    common = ["run", "--n-trials", "1", "--storage", db, "--study", "s"]
    code, _, err = cli(*common, "--space", space, "--direction", "maximize", "--", "true")
    assert code == EXIT_FAILURE
    assert "study 's' exists with --direction minimize" in err and "direction=" not in err
    (tmp_path / "other.py").write_text("from hpo_plugins import hp\n"
                                       "SPACE = {'x': hp.uniform('x', 0, 2)}\n")
    code, _, err = cli(*common, "--space", f"{tmp_path / 'other.py'}:SPACE", "--", "true")
    assert code == EXIT_FAILURE
    assert "exists with another search space: pass the --space" in err
    assert "study_name" not in err


@pytest.fixture
def local_cluster() -> Iterator[Any]:
    """A Dask cluster in this process, whose one worker advertises no GPU."""
    distributed = pytest.importorskip("dask.distributed")

    # dashboard ":0": a session's `dask scheduler` (tests/distributed) may hold port 8787
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        yield cluster


def test_dask_options_are_checked_against_the_cluster(cli: Run, space: str, db: str,
                                                      local_cluster: Any) -> None:
    address = local_cluster.scheduler_address
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db, "--dask",
                       address, "--gpus-per-trial", "1", "--", "true")
    assert code == EXIT_FAILURE
    assert "for --gpus-per-trial 1" in err
    assert f"none of the 1 Dask workers at {address} advertises one" in err
    assert "gpus_per_trial=" not in err and _studies(db) == []
    code, out, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                         "--study", "dask", "--dask", address, "--n-jobs", "-1", "--", "false")
    assert "study 'dask': 1 FAIL" in out  # -1: every worker thread (it was refused)
    assert "n_concurrent" not in err


@pytest.mark.timeout(60)  # the old check added up the GPUs of all workers: the run hung
def test_dask_gpus_per_trial_must_fit_on_one_worker(cli: Run, space: str, db: str) -> None:
    """Two workers with one GPU each: no trial of two GPUs fits, though the cluster has two."""
    distributed = pytest.importorskip("dask.distributed")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0", resources={"GPU": 1}) as cluster:
        code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                           "--dask", cluster.scheduler_address, "--gpus-per-trial", "2", "--",
                           "true")
    assert code == EXIT_FAILURE
    assert "for --gpus-per-trial 2: all of a trial's GPUs must be on one worker" in err
    assert "the largest advertises 1" in err and "or lower --gpus-per-trial" in err
    assert "gpus_per_trial" not in err and _studies(db) == []
