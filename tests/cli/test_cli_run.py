"""``hpo-plugins run``: options checked before anything is stored, errors that name the flags,
a useful last reason when every trial failed, and a study name that a re-run finds again."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from hpo_plugins.cli._run import load_space
from hpo_plugins.cli._table import short_reason
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


def test_an_option_of_the_trial_command_before_the_dashes_says_where_it_goes(
        cli: Run, space: str, db: str) -> None:
    code, out, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                         "--epochs", "3", "--", "python", "train.py")
    assert (code, out) == (2, "")
    assert ("unrecognized arguments: --epochs (options of the trial command go after --, "
            "with it: hpo-plugins run [options] -- python train.py --epochs 3)") in err
    code, _, err = cli("studies", "--storage", db, "--bogus")
    assert code == 2 and err.rstrip().endswith("unrecognized arguments: --bogus")
    code, _, err = cli("run", "--space", space, "--ntrials", "1", "--storage", db, "--", "true")
    assert code == 2 and "unrecognized arguments: --ntrials (did you mean --n-trials?)" in err


def test_a_space_file_that_imports_relatively_is_told_to_load_as_a_module(
        cli: Run, tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "base.py").write_text("LOW = 0\n")
    (tmp_path / "pkg" / "spaces.py").write_text(
        "from .base import LOW\nfrom hpo_plugins import hp\n"
        "SPACE = {'x': hp.uniform('x', LOW, 1)}\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("run", "--space", "pkg/spaces.py:SPACE", "--n-trials", "1",
                       "--storage", db, "--", "true")
    assert code == EXIT_FAILURE
    assert ("attempted relative import with no known parent package; a file of a package "
            "that imports relatively loads as a module: --space pkg.spaces:NAME") in err
    assert _studies(db) == []
    cli("run", "--space", "pkg.spaces:SPACE", "--n-trials", "1", "--storage", db, "--", "true")
    assert len(_studies(db)) == 1  # the module form loads: the run made its study


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
    (["--storage", "foo://x"], "--storage (or $HPO_PLUGINS_STORAGE): Expected a database URL "
     "whose scheme names a SQLAlchemy dialect"),
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
    code, _, err = cli("run", "--space", space, "--n-trials", "2", "--storage", db,
                       "--study", "s", "--", sys.executable, "-c", script)
    assert code == EXIT_FAILURE
    assert "All 2 trials of this run failed" not in err  # the library's line: said once
    last = err.strip().splitlines()[-1]
    assert last == ("hpo-plugins: error: every trial of this run failed (2); the last one: "
                    "ScriptFailed: command exited with status 3; stderr tail: noise 8 | noise 9 "
                    "| ValueError: lr must be > 0")


def test_max_failures_stops_the_run_after_failures_in_a_row(cli: Run, space: str,
                                                            db: str) -> None:
    """Trial 0 succeeds, then every command fails: --max-failures 2 stops after trials 1, 2."""
    script = ("import sys\nfrom hpo_plugins import current_trial\ntrial = current_trial()\n"
              "if trial.number > 0: sys.exit(4)\ntrial.report(0.5, 1)")
    code, _, err = cli("run", "--space", space, "--n-trials", "10", "--storage", db,
                       "--study", "s", "--max-failures", "2", "--", sys.executable, "-c",
                       script)
    assert code == EXIT_FAILURE, err
    assert err.strip().splitlines()[-1] == (
        "hpo-plugins: error: 2 trials in a row failed (trials 1, 2), so the run stopped "
        "(--max-failures 2); the last one: ScriptFailed: command exited with status 4; stderr "
        "tail: (empty). Each trial's reason: hpo-plugins trials --study s")
    states = [t.state for t in hpo.load_study("s", db).trials]
    assert states == [hpo.TrialState.COMPLETE] + [hpo.TrialState.FAIL] * 2, states
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                       "--study", "s", "--max-failures", "0", "--", "true")
    assert code == EXIT_USAGE and "--max-failures" in err


@pytest.mark.parametrize(("reason", "shown"), [
    ("command exited with status 3; stderr tail:\n", "command exited with status 3; stderr "
     "tail: (empty)"),
    ("ValueError: diverged", "ValueError: diverged"),
    ("first\n\nsecond\n", "first | second"),
    (None, "no reason stored"),
    ("head:\n" + "x" * 500, "head: " + "x" * 197 + "..."),
])
def test_a_fail_reason_is_shortened_to_one_line(reason: str | None, shown: str) -> None:
    assert short_reason(reason) == shown


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
    assert "exists with another search space (changed: x " in err
    assert "): pass the --space" in err and "study_name" not in err


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


# --- resuming keeps what the study stored (sampler, pruner, metric) -----------------------------

def _settings(url: str, name: str) -> dict[str, Any]:
    """The study's stored settings, as create_study recorded them."""
    store = SQLStorage(url)
    try:
        return dict(store.get_study(store.get_study_id(name)).attrs)
    finally:
        store.close()


def test_resuming_without_sampler_or_pruner_keeps_the_stored_ones(cli: Run, space: str,
                                                                   db: str) -> None:
    common = ["run", "--space", space, "--n-trials", "1", "--storage", db, "--study", "s"]
    cli(*common, "--sampler", "random", "--pruner", "median", "--", "false")
    code, out, _ = cli(*common, "--", "false")  # resumed without the flags
    assert code == EXIT_FAILURE and "study 's': 2 FAIL" in out
    stored = _settings(db, "s")
    assert stored["sampler"]["class"].endswith("RandomSampler")
    assert stored["pruner"]["class"].endswith("MedianPruner")
    study = hpo.load_study("s", db, space={"x": hpo.hp.uniform("x", 0, 1)})
    assert type(study.sampler).__name__ == "RandomSampler"
    study.storage.close()


def test_resuming_without_metric_keeps_the_stored_one(cli: Run, space: str, db: str) -> None:
    """Needs create_study(metric=None) to mean "keep the stored one" (another change)."""
    common = ["run", "--space", space, "--n-trials", "1", "--storage", db, "--study", "s"]
    cli(*common, "--sampler", "random", "--pruner", "median", "--metric", "val_acc", "--",
        "false")
    cli(*common, "--", "false")
    stored = _settings(db, "s")
    assert stored["metric"] == "val_acc"
    assert stored["sampler"]["class"].endswith("RandomSampler")
    assert stored["pruner"]["class"].endswith("MedianPruner")


def test_absent_flags_derive_the_name_of_their_new_study_defaults(cli: Run, space: str,
                                                                  db: str) -> None:
    """Derived names did not change when the flags' defaults became None: an absent flag
    counts as what a new study gets (tpe, none, val_loss)."""
    argv = ["--space", space, "--n-trials", "1", "--storage", db, "--", "false"]
    cli("run", *argv)
    cli("run", "--sampler", "tpe", "--pruner", "none", "--metric", "val_loss", *argv)
    (name,) = _studies(db)
    import hashlib
    import json

    from hpo_plugins.space import as_space

    fingerprint = as_space({"x": hpo.hp.uniform("x", 0, 1)}).fingerprint
    key = json.dumps([["false"], fingerprint,
                      ["minimize", "val_loss", "tpe", "none", None, "env"]])
    assert name == f"false-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def test_help_says_what_an_absent_flag_means(cli: Run) -> None:
    code, out, _ = cli("run", "--help")
    text = " ".join(out.split())
    assert code == EXIT_OK
    for flag in ("tpe", "none", "val_loss"):
        assert f"{flag} for a new study; a resumed study keeps its own" in text


# --- stopping the run: Ctrl-C, SIGTERM -----------------------------------------------------------

GRANDCHILD = ("import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\n"
              "time.sleep(60)\n")
# what `hpo-plugins` is from a terminal: SIGINT raises KeyboardInterrupt even when this test
# session was started with SIGINT ignored (a background job)
CLI = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
       "from hpo_plugins.cli import main; sys.exit(main())")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _pids(logdir: Path) -> list[int]:
    """The pids the trials' grandchildren wrote (a file still empty is not counted)."""
    return [int(text) for text in (path.read_text() for path in logdir.rglob("pid")) if text]


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("signum", "jobs", "extra", "code", "message", "reason"), [
    pytest.param(signal.SIGINT, "1", [], 130, "hpo-plugins: error: interrupted",
                 "interrupted by the user (KeyboardInterrupt)", id="ctrl-c"),
    pytest.param(signal.SIGTERM, "1", [], 143, "hpo-plugins: error: terminated by SIGTERM",
                 "stopped by SIGTERM (Terminated(SIGTERM)): counted as lost, like a trial whose "
                 "worker died", id="sigterm"),
    pytest.param(signal.SIGTERM, "2", [], 143, "hpo-plugins: error: terminated by SIGTERM",
                 "stopped by SIGTERM (Terminated(SIGTERM)): counted as lost, like a trial whose "
                 "worker died", id="sigterm-n-jobs-2"),
    # a GPU slot (here on CPU: only CUDA_VISIBLE_DEVICES is set) is killed with SIGKILL, so
    # the launcher stops the commands' groups itself
    pytest.param(signal.SIGINT, "1", ["--gpus", "0"], 130, "hpo-plugins: error: interrupted",
                 "interrupted by the user (KeyboardInterrupt)", id="ctrl-c-gpu-slot"),
    # the terminal closed, an ssh connection dropped: it ended the run at once, its trials left
    # RUNNING and what their commands started running on
    pytest.param(signal.SIGHUP, "1", [], 129, "hpo-plugins: error: terminated by SIGHUP",
                 "stopped by SIGHUP (Terminated(SIGHUP)): counted as lost, like a trial whose "
                 "worker died", id="sighup"),
])
def test_a_stopped_run_fails_its_trials_and_stops_what_the_command_started(
        tmp_path: Path, space: str, db: str, signum: int, jobs: str, extra: list[str],
        code: int, message: str, reason: str) -> None:
    """Through a wrapper (``sh -c '... & wait'``) the trial's script is a grandchild: it must
    stop with the run, as the wrapper does, whether the run gets Ctrl-C or SIGTERM (``kill``,
    ``timeout``, Slurm, ``docker stop``)."""
    (tmp_path / "grandchild.py").write_text(GRANDCHILD)
    wrapper = f"{shlex.quote(sys.executable)} {tmp_path / 'grandchild.py'} \"$PID_FILE\" & wait"
    # each trial writes its grandchild's pid to its own file (the trial directory's)
    command = f'PID_FILE="$(dirname "$HPO_PLUGINS_PARAMS_FILE")/pid"; {wrapper}'
    logdir = tmp_path / "logs"
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        run = subprocess.Popen(
            [sys.executable, "-c", CLI, "run", "--space", space, "--n-trials", "4",
             "--n-jobs", jobs, "--storage", db, "--study", "s", "--logdir", str(logdir),
             "--params-via", "json", *extra, "--", "sh", "-c", command],
            stdout=out, stderr=err)
        try:
            assert _wait_for(lambda: len(_pids(logdir)) == int(jobs), 30)
            pids = _pids(logdir)
            assert all(_alive(pid) for pid in pids)
            run.send_signal(signum)
            assert run.wait(timeout=30) == code
        finally:
            if run.poll() is None:
                run.kill()
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids), 5), "a grandchild survived"
    errors = (tmp_path / "err").read_text()
    assert errors.strip().splitlines()[-1].startswith(message)
    # nothing after it either: Python 3.11's exit hook could race a killed slot's manager
    # thread ("Exception ignored ... Bad file descriptor"), seen once in 30 Ctrl-C'd runs
    assert "Traceback" not in errors and "Exception ignored" not in errors, errors
    trials = hpo.load_study("s", db).trials
    assert [t.state for t in trials] == [hpo.TrialState.FAIL] * int(jobs)
    assert {t.fail_reason for t in trials} == {reason}


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
@pytest.mark.timeout(60)
def test_under_nohup_a_closed_terminal_does_not_stop_the_run(tmp_path: Path, space: str,
                                                             db: str) -> None:
    """``nohup hpo-plugins run ...`` ignores SIGHUP so that the run survives a logout; the
    run's own SIGHUP handler replaced that choice and stopped it (exit 129)."""
    logdir = tmp_path / "logs"
    command = 'echo $$ > "$(dirname "$HPO_PLUGINS_PARAMS_FILE")/pid"; sleep 30'

    def as_nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    with open(tmp_path / "err", "w") as err:
        run = subprocess.Popen(
            [sys.executable, "-c", CLI, "run", "--space", space, "--n-trials", "1",
             "--storage", db, "--study", "s", "--logdir", str(logdir), "--params-via", "json",
             "--", "sh", "-c", command],
            stdout=subprocess.DEVNULL, stderr=err, preexec_fn=as_nohup)
        try:
            assert _wait_for(lambda: len(_pids(logdir)) == 1, 30)
            run.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert run.poll() is None, (tmp_path / "err").read_text()  # still running
            run.send_signal(signal.SIGTERM)
            assert run.wait(timeout=30) == 143
        finally:
            if run.poll() is None:
                run.kill()


SAVER = """\
import os, signal, sys, time
from hpo_plugins import current_trial
trial = current_trial()
folder = os.path.dirname(os.environ["HPO_PLUGINS_PARAMS_FILE"])
def save(signum, frame):
    time.sleep(0.5)  # writing a checkpoint takes a while
    open(os.path.join(folder, "saved"), "w").write(str(signum))
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
trial.report(1.0, 0)
open(os.path.join(folder, "ready"), "w").close()
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("signum", "extra"), [
    pytest.param(signal.SIGINT, ["--n-jobs", "2"], id="ctrl-c-n-jobs-2"),
    pytest.param(signal.SIGTERM, ["--n-jobs", "2"], id="sigterm-n-jobs-2"),
    pytest.param(signal.SIGTERM, ["--gpus", "0,1"], id="sigterm-gpu-slots"),
])
def test_a_parallel_run_gives_its_commands_the_sigterm_grace(
        tmp_path: Path, space: str, db: str, signum: int, extra: list[str]) -> None:
    """A sequential run gives a trial's command SIGTERM and 3 s before SIGKILL, time to save a
    checkpoint; joblib's workers (and GPU slots) were killed with their commands at once."""
    (tmp_path / "saver.py").write_text(SAVER)
    logdir = tmp_path / "logs"
    with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
        run = subprocess.Popen(
            [sys.executable, "-c", CLI, "run", "--space", space, "--n-trials", "4",
             "--storage", db, "--study", "s", "--logdir", str(logdir), "--params-via", "json",
             *extra, "--", sys.executable, str(tmp_path / "saver.py")],
            stdout=out, stderr=err)
        try:
            assert _wait_for(lambda: len(list(logdir.rglob("ready"))) == 2, 40)
            run.send_signal(signum)
            run.wait(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
    saved = sorted(path.read_text() for path in logdir.rglob("saved"))
    assert saved == [str(int(signal.SIGTERM))] * 2, (tmp_path / "err").read_text()[-2000:]
    assert [t.state for t in hpo.load_study("s", db).trials] == [hpo.TrialState.FAIL] * 2


def test_the_sigterm_handler_is_restored_after_the_run(cli: Run, space: str, db: str) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    cli("run", "--space", space, "--n-trials", "1", "--storage", db, "--", "false")
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


# --- loading the space file ----------------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "import sys\nsys.exit('run me with --data')\n",
    "import argparse\nparser = argparse.ArgumentParser()\nparser.add_argument('--data', "
    "required=True)\nargs = parser.parse_args()\n",
])
def test_a_space_file_that_exits_is_a_load_error(cli: Run, tmp_path: Path, db: str,
                                                 source: str) -> None:
    (tmp_path / "train.py").write_text(source + "SPACE = {}\n")
    code, out, err = cli("run", "--space", f"{tmp_path / 'train.py'}:SPACE", "--n-trials", "1",
                         "--storage", db, "--", "true")
    assert (code, out) == (EXIT_FAILURE, "")
    assert err.strip().splitlines()[-1] == (
        f"hpo-plugins: error: cannot load the space from '{tmp_path / 'train.py'}': the space "
        f"file exited while being loaded (SystemExit: "
        f"{'run me with --data' if 'sys.exit' in source else 2}); guard script code with if "
        f"__name__ == '__main__'")
    assert _studies(db) == []


def test_a_space_file_sees_only_its_own_argv_and_imports_beside_it(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    helpers = f"helpers_{abs(hash(str(tmp_path)))}"  # not cached by another test's import
    request.addfinalizer(lambda: sys.modules.pop(helpers, None))
    (tmp_path / f"{helpers}.py").write_text("HIGH = 3.0\n")
    (tmp_path / "train.py").write_text(
        "import argparse, sys\n"
        f"from {helpers} import HIGH\n"
        "from hpo_plugins import hp\n"
        "parser = argparse.ArgumentParser()\nparser.add_argument('--epochs', default=2)\n"
        "ARGS = parser.parse_args()\nARGV = list(sys.argv)\n"
        "SPACE = {'x': hp.uniform('x', 0, HIGH)}\n")
    argv, path = list(sys.argv), list(sys.path)
    assert load_space(f"{tmp_path / 'train.py'}:ARGV") == [str(tmp_path / "train.py")]
    assert (sys.argv, sys.path) == (argv, path)  # both restored


def test_a_space_module_is_found_in_the_working_directory(
        cli: Run, tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """As the ``hpo-plugins`` console script runs: the working directory is not on sys.path
    (``python -m hpo_plugins.cli`` has it there)."""
    module = f"myspace_{abs(hash(str(tmp_path)))}"
    request.addfinalizer(lambda: sys.modules.pop(module, None))
    (tmp_path / f"{module}.py").write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    path = list(sys.path)
    code, out, err = cli("run", "--space", f"{module}:SPACE", "--n-trials", "1", "--storage", db,
                         "--study", "m", "--", "false")
    assert code == EXIT_FAILURE and "study 'm': 1 FAIL" in out, err
    assert sys.path == path


# --- refused before anything is created --------------------------------------------------------

def test_params_file_without_params_via_json_is_a_usage_error(cli: Run, space: str,
                                                              db: str) -> None:
    code, out, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db, "--",
                         "python", "train.py", "--params", "{params_file}")
    assert (code, out) == (EXIT_USAGE, "")
    assert "{params_file} in the command is replaced only with --params-via json" in err
    assert "add --params-via json" in err
    assert _studies(db) == []


@pytest.mark.parametrize("value", [":memory:", "memory"])
def test_an_in_memory_storage_is_refused(cli: Run, space: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be created here either
    code, out, err = cli("run", "--space", space, "--n-trials", "1", "--storage", value, "--",
                         "true")
    assert (code, out) == (EXIT_USAGE, "")
    assert "expected --storage (or $HPO_PLUGINS_STORAGE) to be a database the trial commands " \
           "can open too" in err and "could not report to it" in err
    monkeypatch.setenv("HPO_PLUGINS_STORAGE", value)  # from the variable: the same
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--", "true")
    assert code == EXIT_USAGE and f"Received {value!r}" in err
    assert list(tmp_path.iterdir()) == [tmp_path / "space.py"]


def test_no_storage_message_suggests_memory(cli: Run, space: str) -> None:
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", "hpo.db", "--",
                       "true")
    assert code == EXIT_USAGE and "expected --storage" in err and "memory" not in err


# --- what a run that started nothing prints ------------------------------------------------------

def test_a_run_that_starts_no_trial_says_why(cli: Run, space: str, db: str) -> None:
    code, out, _ = cli("run", "--space", space, "--n-trials", "0", "--storage", db, "--study",
                       "s", "--", "true")
    assert (code, out) == (EXIT_OK, "study 's': no trials; no trial run: --n-trials is 0\n")
    study = hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, study_name="s", storage=db)
    study.tell(study.ask(), 0.5)
    study.storage.close()
    code, out, _ = cli("run", "--space", space, "--max-trials", "1", "--storage", db, "--study",
                       "s", "--", "true")
    assert code == EXIT_OK
    assert out.splitlines()[0] == ("study 's': 1 COMPLETE; no trial run: the study already "
                                   "holds --max-trials 1 trials (failed ones do not count); "
                                   "raise --max-trials to run more")


def test_a_logdir_of_another_study_is_a_usage_error_that_stores_nothing(
        cli: Run, space: str, db: str, tmp_path: Path) -> None:
    logdir = tmp_path / "runs"
    hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=f"sqlite:///{tmp_path}/o.db",
                     study_name="other", logdir=str(logdir))
    code, out, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                         "--study", "mine", "--logdir", str(logdir), "--", "true")
    assert (code, out) == (EXIT_USAGE, "")
    assert "--logdir: Expected logdir" in err
    assert "Pass another --logdir" in err and "logdir=" not in err
    assert _studies(db) == []


def test_a_dask_address_without_port_is_a_usage_error_at_once(cli: Run, space: str,
                                                              db: str) -> None:
    """Checked before a Client is built: a half-built one waited 60 s on exit."""
    started = time.monotonic()
    code, out, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db,
                         "--dask", "tcp://127.0.0.1", "--", "true")
    assert (code, out) == (EXIT_USAGE, "")
    assert "--dask: expected a Dask scheduler address such as 'tcp://scheduler:8786'" in err
    assert "Received: 'tcp://127.0.0.1' (missing port number" in err
    assert time.monotonic() - started < 20 and _studies(db) == []


def test_crash_safety_flags_reach_the_study(cli: Run, space: str, db: str,
                                            tmp_path: Path) -> None:
    """--max-retries: trials whose worker died (killed by a command) run again."""
    mark = tmp_path / "killed-once"
    command = (f"if [ ! -e {mark} ]; then touch {mark}; kill -9 $PPID; sleep 5; fi; "
               f"{shlex.quote(sys.executable)} -c {shlex.quote(REPORTS)}")
    code, _, err = cli("run", "--space", space, "--n-trials", "2", "--n-jobs", "2",
                         "--storage", db, "--study", "retried", "--heartbeat-interval", "0.5",
                         "--grace-period", "3", "--max-retries", "1", "--", "sh", "-c", command)
    assert code == EXIT_OK, err
    study = hpo.load_study("retried", storage=db)
    try:
        trials = study.trials
        lost = [t for t in trials if t.state is hpo.TrialState.FAIL]
        retries = [t for t in trials if t.system_attrs.get("retry_of") is not None]
        # joblib stops its whole pool when a worker dies: the other trial is lost too unless
        # it had finished by then
        assert len(lost) in (1, 2) and len(retries) == len(lost), [
            (t.number, t.state) for t in trials]
        by_number = {t.number: t for t in lost}
        for retry in retries:
            assert retry.state is hpo.TrialState.COMPLETE
            assert retry.params == by_number[retry.system_attrs["retry_of"]].params
        assert sum(t.state is hpo.TrialState.COMPLETE for t in trials) == 2
        attrs = study.storage.get_study(study.study_id).attrs
        assert (attrs["heartbeat_interval"], attrs["grace_period"], attrs["max_retries"]) == (
            0.5, 3.0, 1)
    finally:
        study.storage.close()


@pytest.mark.parametrize(("argv", "message"), [
    (["--heartbeat-interval", "5", "--grace-period", "5"],
     "expected --grace-period to be longer than the heartbeat interval (5 s)"),
    (["--grace-period", "20"], "longer than the heartbeat interval (30 s)"),
    (["--heartbeat-interval", "-1"], "argument --heartbeat-interval: expected seconds > 0"),
    (["--max-retries", "-1"], "argument --max-retries: expected an integer >= 0"),
])
def test_crash_safety_flags_are_checked(cli: Run, space: str, db: str, argv: list[str],
                                        message: str) -> None:
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db, *argv,
                       "--", "true")
    assert code == EXIT_USAGE and message in err, err
    assert _studies(db) == []


def test_heartbeats_can_be_turned_off(cli: Run, space: str, db: str) -> None:
    code, _, err = cli("run", "--space", space, "--n-trials", "1", "--storage", db, "--study",
                       "quiet", "--heartbeat-interval", "off", "--",
                       sys.executable, "-c", REPORTS)
    assert code == EXIT_OK, err
    study = hpo.load_study("quiet", storage=db)
    try:
        assert study.storage.get_study(study.study_id).attrs["heartbeat_interval"] is None
        assert study.trials[0].state is hpo.TrialState.COMPLETE
    finally:
        study.storage.close()


def test_a_study_stored_before_constants_were_recorded_resumes(cli: Run, tmp_path: Path,
                                                               db: str) -> None:
    """Its fingerprint covers the parameters only: `run --study` still resumes it."""
    from hpo_plugins._frozen import Direction
    from hpo_plugins.space import SearchSpace

    source = ("from hpo_plugins import hp\n"
              "SPACE = {'epochs': 10, 'x': hp.uniform('x', 0, 1)}\n")
    (tmp_path / "const.py").write_text(source)
    parsed = SearchSpace(load_space(f"{tmp_path / 'const.py'}:SPACE"))
    store = SQLStorage(db)
    try:  # as the code before constants were recorded stored it
        store.create_study("old", Direction.MINIMIZE, {
            "space": parsed.describe(), "space_fingerprint": parsed.parameters_fingerprint})
    finally:
        store.close()
    code, out, err = cli("run", "--space", f"{tmp_path / 'const.py'}:SPACE", "--n-trials", "1",
                         "--storage", db, "--study", "old", "--", sys.executable, "-c", REPORTS)
    assert code == EXIT_OK, err
    assert "study 'old': 1 COMPLETE" in out


@pytest.mark.parametrize("entry", ["console script", "-m"])
def test_a_warning_is_one_line_in_the_commands_voice(
        space: str, db: str, tmp_path: Path, entry: str) -> None:
    """Python's format named the console script's wrapper: "hpo-plugins:8: RuntimeWarning:
    ... sys.exit(main())". Another library's warning keeps Python's format and its source."""
    script = Path(sys.executable).with_name("hpo-plugins")
    if entry == "console script" and not script.exists():
        pytest.skip("the console script is not installed next to this Python")
    command = [str(script)] if entry == "console script" else [sys.executable, "-m",
                                                               "hpo_plugins.cli"]
    (tmp_path / "noisy.py").write_text(
        "import warnings\nfrom hpo_plugins import hp\n"
        "warnings.warn('a warning of the space file', FutureWarning)\n"
        "SPACE = {'x': hp.uniform('x', 0, 1)}\n")
    done = subprocess.run(
        [*command, "run", "--space", f"{tmp_path / 'noisy.py'}:SPACE", "--n-trials", "1",
         "--storage", db, "--gpus", "all", "--study", "w", "--", sys.executable, "-c", REPORTS],
        capture_output=True, text=True, timeout=300, env={**os.environ,
                                                          "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == EXIT_OK, done.stderr
    assert ("hpo-plugins: warning: No GPU found: trials run on CPU, one at a time (n_jobs=1, "
            "--n-jobs).\n") in done.stderr
    assert "RuntimeWarning" not in done.stderr and "sys.exit" not in done.stderr
    assert "noisy.py:3: FutureWarning: a warning of the space file" in done.stderr
