"""Script mode: a command per trial, params handed over, reports and pruning across processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins.cli import main
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.launchers import ScriptFailed, ScriptObjective, current_params
from hpo_plugins.pruners import MedianPruner
from hpo_plugins.samplers import RandomSampler

CHILD = textwrap.dedent("""
    import json, os, sys
    import hpo_plugins as hpo
    from hpo_plugins.launchers import current_params

    params = current_params({"x": 0.0, "mode": "ok"})
    assert json.loads(os.environ["HPO_PLUGINS_PARAMS"]) == params
    if params["mode"] == "crash":
        print("about to fail", file=sys.stderr)
        sys.exit(3)
    if params["mode"] == "silent":
        sys.exit(0)
    trial = hpo.current_trial()
    if params["mode"] == "raise_pruned":
        trial.report(9.0, 0)
        raise hpo.TrialPruned()
    for step in range(4):
        trial.report(params["x"] + 1.0 / (step + 1), step)
        if trial.should_prune():
            trial.mark_pruned()
            break
    print("extra args:", sys.argv[1:])
""")
SPACE = {"x": hp.uniform("x", 0, 1),
         "mode": hp.choice("mode", ["ok", "crash", "raise_pruned", "silent"])}


@pytest.fixture
def child(tmp_path: Path) -> Path:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return path


def test_script_trials_report_prune_and_fail_through_the_storage(tmp_path: Path,
                                                                  child: Path) -> None:
    study = hpo.create_study(space=SPACE, storage=f"sqlite:///{tmp_path}/s.db",
                             study_name="script", sampler=RandomSampler(), seed=0,
                             pruner=MedianPruner(n_startup_trials=1))
    for x, mode in ((0.5, "ok"), (0.9, "ok"), (0.5, "crash")):
        study.enqueue({"x": x, "mode": mode})
    study.optimize(ScriptObjective([sys.executable, str(child)]), n_trials=3,
                   catch=ScriptFailed)
    first, second, third = study.trials
    assert first.state is TrialState.COMPLETE and first.value == pytest.approx(0.5 + 1 / 4)
    # the child rebuilt the study's MedianPruner: 0.9 + 1 is worse than trial 0's 0.5 + 1
    assert second.state is TrialState.PRUNED and second.last_step == 0
    assert third.state is TrialState.FAIL
    assert "status 3" in (third.fail_reason or "") and "about to fail" in third.fail_reason
    log_dir = Path(first.log_dir or "")
    assert "extra args: []" in (log_dir / "stdout.log").read_text()


def test_raised_trial_pruned_silence_and_a_missing_command(tmp_path: Path, child: Path) -> None:
    study = hpo.create_study(space=SPACE, storage=f"sqlite:///{tmp_path}/s.db",
                             study_name="edge", sampler=RandomSampler())
    for mode in ("raise_pruned", "silent"):
        study.enqueue({"x": 0.5, "mode": mode})
    study.optimize(ScriptObjective([sys.executable, str(child)]), n_trials=2)
    pruned, silent = study.trials
    assert pruned.state is TrialState.PRUNED and pruned.value == 9.0
    assert silent.state is TrialState.FAIL
    assert "exited with status 0 but reported no value" in (silent.fail_reason or "")
    study.optimize(ScriptObjective(["no-such-command-hpo"]), n_trials=1, catch=ScriptFailed)
    assert "'no-such-command-hpo' was not found" in (study.trials[-1].fail_reason or "")
    script = tmp_path / "train.sh"
    script.write_text("echo hi\n")  # not executable: the trial fails, the study goes on
    study.optimize(ScriptObjective([str(script)]), n_trials=2, catch=ScriptFailed)
    for trial in study.trials[-2:]:
        assert trial.state is TrialState.FAIL
        assert "could not be started (Permission denied)" in (trial.fail_reason or "")
        assert "chmod +x" in (trial.fail_reason or "")
    before = len(study.trials)
    (tmp_path / "gone").mkdir()  # checked when the objective is made, removed before the run
    objective = ScriptObjective([sys.executable, "-c", "pass"], cwd=str(tmp_path / "gone"))
    (tmp_path / "gone").rmdir()
    with pytest.raises(FileNotFoundError):  # not the command's fault: the run stops at once
        study.optimize(objective, n_trials=3, catch=ScriptFailed)
    assert len(study.trials) == before + 1


@pytest.mark.parametrize(("via", "expected"), [
    ("json", "params.json"),
    ("args", "['--mode', 'ok', '--x', '0.25']"),
])
def test_params_as_a_json_file_or_flags(tmp_path: Path, child: Path, via: str,
                                        expected: str) -> None:
    study = hpo.create_study(space=SPACE, storage=f"sqlite:///{tmp_path}/s.db",
                             study_name=via, sampler=RandomSampler())
    study.enqueue({"x": 0.25, "mode": "ok"})
    command = [sys.executable, str(child)] + (["{params_file}"] if via == "json" else [])
    study.optimize(ScriptObjective(command, params_via=via), n_trials=1)
    (trial,) = study.trials
    stdout = (Path(trial.log_dir or "") / "stdout.log").read_text()
    assert expected in stdout
    if via == "json":
        written = json.loads((Path(trial.log_dir or "") / "params.json").read_text())
        assert written == {"x": 0.25, "mode": "ok"}


def test_child_in_another_directory_finds_a_relative_sqlite_study(
        tmp_path: Path, child: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    study = hpo.create_study(space=SPACE, storage="sqlite:///rel.db", study_name="rel",
                             sampler=RandomSampler())
    study.enqueue({"x": 0.5, "mode": "ok"})
    study.optimize(ScriptObjective([sys.executable, str(child)], cwd="elsewhere"), n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.COMPLETE, trial.fail_reason
    assert not (tmp_path / "elsewhere" / "rel.db").exists()  # no stray, empty database


def test_current_params_falls_back_outside_a_trial() -> None:
    assert current_params({"lr": 0.1}) == {"lr": 0.1}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"command": []}, "Expected a command"),
    ({"command": "python x.py", "params_via": "yaml"}, "Expected `params_via`"),
    ({"command": "python x.py --params {params_file}"},
     r'Expected \{params_file\} in the command only with params_via="json".*'
     r"Received: params_via='env'"),
    ({"command": ["python", "x.py", "--params={params_file}"], "params_via": "args"},
     r"Received: params_via='args'"),
])
def test_script_objective_arguments_are_checked(kwargs: dict[str, object],
                                                message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ScriptObjective(**kwargs)  # type: ignore[arg-type]


_COMMAND = r"Expected `command` to be the command to run per trial, as a string .*Received: "


@pytest.mark.parametrize(("command", "message"), [
    (None, _COMMAND + r"command=None \(of type NoneType\)\.$"),
    (5, _COMMAND + r"command=5 \(of type int\)\.$"),
    (Path("train.sh"), _COMMAND + r"command=PosixPath\('train.sh'\).*pass \[path\] or "
                                  r"str\(path\)"),
    (["python", 5], _COMMAND + r"command=\['python', 5\], whose word 5 is of type int"),
])
def test_a_command_that_is_not_words_is_refused(command: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ScriptObjective(command)  # type: ignore[arg-type]


def test_a_cwd_that_is_no_directory_is_refused_or_warned_about_when_the_objective_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigurationError, match=r"Expected `cwd` to be a directory path "
                                                 r"\(str or pathlib.Path\).*Received: cwd=5 "
                                                 r"\(of type int\)"):
        ScriptObjective("echo", cwd=5)  # type: ignore[arg-type]
    missing = str(tmp_path / "no" / "dir")
    with pytest.warns(UserWarning, match=rf"cwd='{re.escape(missing)}' does not exist on this "
                                         r"machine: a trial whose command runs here stops the "
                                         r"run\. Create it first, unless only .*Dask workers"):
        ScriptObjective("echo", cwd=missing)  # Dask workers may have it
    with pytest.raises(ConfigurationError, match=r"cwd='afile', which is a file "
                                                 rf"\(relative to '{re.escape(str(tmp_path))}'\)"):
        ScriptObjective("echo", cwd=Path("afile"))
    assert ScriptObjective("echo", cwd=Path(".")).cwd == Path(".")  # as given
    assert ScriptObjective(c for c in ["echo", "hi"]).command == ["echo", "hi"]


@pytest.mark.slow
def test_cli_run_in_parallel_workers(tmp_path: Path, child: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    space_file = tmp_path / "space.py"
    space_file.write_text("from hpo_plugins import hp\n"
                          "SPACE = {'x': hp.uniform('x', 0, 1), 'mode': hp.choice('mode', "
                          "['ok'])}\n")
    url = f"sqlite:///{tmp_path}/cli.db"
    code = main(["run", "--space", f"{space_file}:SPACE", "--n-trials", "4", "--n-jobs", "2",
                 "--study", "cli", "--storage", url, "--seed", "1", "--sampler", "random",
                 "--", sys.executable, str(child)])
    assert code == 0
    assert "4 COMPLETE" in capsys.readouterr().out
    assert len(hpo.load_study("cli", url).trials) == 4


def test_cli_run_explains_a_bad_space_or_missing_command(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    assert main(["run", "--space", "nowhere", "--n-trials", "1", "--storage", url,
                 "--", "true"]) == 2
    assert "FILE_OR_MODULE:NAME" in capsys.readouterr().err
    space_file = tmp_path / "space.py"
    space_file.write_text("OTHER = 1\n")
    assert main(["run", "--space", f"{space_file}:SPACE", "--n-trials", "1", "--storage", url,
                 "--", "true"]) == 1
    assert "has no name 'SPACE'" in capsys.readouterr().err
    assert main(["run", "--space", f"{space_file}:OTHER", "--n-trials", "1",
                 "--storage", url]) == 2
    assert "expected the command to run per trial" in capsys.readouterr().err


def test_cli_run_fails_when_every_trial_fails_and_names_bad_flags(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    space_file = tmp_path / "space.py"
    space_file.write_text("from hpo_plugins import hp\nSPACE = {'x': hp.uniform('x', 0, 1)}\n")
    common = ["run", "--space", f"{space_file}:SPACE", "--storage", url]
    assert main([*common, "--n-trials", "2", "--study", "bad", "--", "no-such-command-hpo"]) == 1
    captured = capsys.readouterr()
    assert "2 FAIL" in captured.out
    assert "every trial of this run failed (2)" in captured.err
    assert "'no-such-command-hpo' was not found" in captured.err
    for flag, value in (("--n-jobs", "0"), ("--n-trials", "-1"), ("--timeout", "0"),
                        ("--trials-per-gpu", "0")):
        assert main([*common, flag, value, "--", "true"]) == 2  # a usage error, named
        assert f"argument {flag}: expected" in capsys.readouterr().err


def test_a_script_that_reported_nan_then_raised_trial_pruned_ends_fail(tmp_path: Path) -> None:
    child = tmp_path / "nan.py"
    child.write_text(textwrap.dedent("""
        import hpo_plugins as hpo
        trial = hpo.current_trial()
        trial.report(1.0, 0)
        trial.report(float("nan"), 1)
        if trial.should_prune():  # True after a NaN report
            raise hpo.TrialPruned()
    """))
    study = hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, study_name="nan",
                             storage=f"sqlite:///{tmp_path}/s.db", sampler=RandomSampler())
    study.optimize(ScriptObjective([sys.executable, str(child)]), n_trials=1,
                   catch=ScriptFailed)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL
    assert "non-finite value (nan) at step 1" in (trial.fail_reason or "")
    assert "ScriptFailed" not in (trial.fail_reason or "")  # the child's reason, not the exit's
    assert not trial.system_attrs.get("pruned")  # not marked pruned as well


def _study(tmp_path: Path, name: str) -> hpo.Study:
    return hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, study_name=name,
                            storage=f"sqlite:///{tmp_path}/s.db", sampler=RandomSampler())


@pytest.mark.timeout(60)  # before stdin was /dev/null, the command waited here for ever
def test_a_command_that_reads_stdin_fails_at_once(tmp_path: Path) -> None:
    """A prompt (``input()``, a login) in the command gets end-of-file, even when this
    process's stdin is a terminal or a pipe that stays open."""
    study = _study(tmp_path, "stdin")
    read, write = os.pipe()  # never written, never closed while the trial runs
    saved = os.dup(0)
    os.dup2(read, 0)
    try:
        started = time.monotonic()
        study.optimize(ScriptObjective([sys.executable, "-c", "input('password: ')"]),
                       n_trials=1, catch=ScriptFailed)
        elapsed = time.monotonic() - started
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read, write):
            os.close(fd)
    (trial,) = study.trials
    assert trial.state is TrialState.FAIL and elapsed < 20
    assert "EOFError: EOF when reading a line" in (trial.fail_reason or "")


def test_a_command_killed_by_a_signal_says_which(tmp_path: Path) -> None:
    study = _study(tmp_path, "killed")
    study.optimize(ScriptObjective(["sh", "-c", "kill -9 $$"]), n_trials=1, catch=ScriptFailed)
    (trial,) = study.trials
    assert (trial.fail_reason or "").startswith(
        "ScriptFailed: command was killed by signal 9 (SIGKILL); stderr tail:")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_what_the_command_left_running_is_stopped_when_it_exits(tmp_path: Path) -> None:
    """A background process of the command (``cmd &`` in a wrapper that then exits) is in the
    command's process group: it is stopped when the trial ends, not left running."""
    pid_file = tmp_path / "pid"
    background = (f"{sys.executable} -c 'import os, time; "
                  f"open(\"{pid_file}\", \"w\").write(str(os.getpid())); time.sleep(60)' &")
    wait = f'while [ ! -s "{pid_file}" ]; do sleep 0.05; done'
    study = _study(tmp_path, "left")
    study.optimize(ScriptObjective(["sh", "-c", f"{background} {wait}; exit 0"]), n_trials=1)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)
    (trial,) = study.trials  # exit 0 without a report: FAIL, as before
    assert "exited with status 0 but reported no value" in (trial.fail_reason or "")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie that its new parent has not reaped yet does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


_SRC = str(Path(hpo.__file__).parent.parent)
_REPORTS = ("import hpo_plugins as hpo; trial = hpo.current_trial(); "
            "trial.report(trial.params['x'], 0)")


def test_a_pruner_defined_in_the_launching_script_is_said_not_to_reach_the_commands(
        tmp_path: Path) -> None:
    """The commands rebuild the study's pruner from its record: a class of ``__main__`` cannot
    be imported there, so they would run without pruning. The launcher says so."""
    launcher = tmp_path / "launch.py"
    launcher.write_text(textwrap.dedent(f"""
        import sys
        import hpo_plugins as hpo
        from hpo_plugins import hp
        from hpo_plugins.launchers import ScriptObjective
        from hpo_plugins.pruners import MedianPruner

        class MyPruner(MedianPruner):
            pass

        if __name__ == "__main__":
            hpo.minimize(ScriptObjective([sys.executable, "-c", {_REPORTS!r}]),
                         {{"x": hp.uniform("x", 0, 1)}}, n_trials=2, pruner=MyPruner(),
                         storage="sqlite:///{tmp_path}/s.db", show_progress_bar=False)
    """))
    done = subprocess.run([sys.executable, str(launcher)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": _SRC}, check=True, cwd=tmp_path)
    assert done.stderr.count("The study's pruner MyPruner is defined in the launching script "
                             "(__main__)") == 1, done.stderr


# --- stopping the commands of worker processes -----------------------------------------------

WORKER = textwrap.dedent("""
    import subprocess, sys, time
    # a command in a session of its own, as ScriptObjective starts it, that ignores SIGTERM
    command = subprocess.Popen([sys.executable, "-c",
                                "import signal, time; signal.signal(signal.SIGTERM, "
                                "signal.SIG_IGN); time.sleep(60)"], start_new_session=True)
    print(command.pid, flush=True)
    time.sleep(60)
""")


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_frozen_for_the_grace_is_killed_when_the_grace_is_cut_short(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A second Ctrl-C during the grace escaped before the launcher killed its frozen
    workers: they stayed stopped for good (and an executor waiting on one hung at exit)."""
    from hpo_plugins.launchers import _script

    worker = subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    command = int(worker.stdout.readline())
    worker.stdout.close()
    try:
        time.sleep(0.2)  # the command's interpreter starts and ignores SIGTERM

        def second_ctrl_c(groups: list[int], grace: float) -> None:
            deadline = time.monotonic() + 5  # SIGSTOP lands asynchronously
            while _state(worker.pid) != "T" and time.monotonic() < deadline:
                time.sleep(0.01)
            assert groups and _state(worker.pid) == "T"  # frozen while its command stops
            raise KeyboardInterrupt

        monkeypatch.setattr(_script, "stop_groups", second_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            _script.stop_worker_commands([worker.pid])
        assert worker.wait(timeout=10) == -9  # killed, not left stopped
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(command, 9)  # it ignored SIGTERM, and the fake grace ended at once


def test_only_handlers_that_stop_the_run_are_wrapped_while_workers_run() -> None:
    """A handler that returns (a user's "stop after this trial" flag) must not be wrapped: the
    workers would be frozen and the run would wait on them for ever."""
    import signal

    from hpo_plugins._sigterm import STOPS_THE_RUN
    from hpo_plugins.launchers._joblib import _commands_stopped_on_signals

    def flag(signum: int, frame: object) -> None:
        pass

    def raising(signum: int, frame: object) -> None:
        raise SystemExit(143)

    setattr(raising, STOPS_THE_RUN, True)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, raising)
        signal.signal(signal.SIGHUP, flag)
        with _commands_stopped_on_signals():
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            assert signal.getsignal(signal.SIGTERM) is not raising
            assert signal.getsignal(signal.SIGHUP) is flag
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is raising
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_script_ported_from_optuna_that_raises_optunas_trial_pruned_ends_pruned(
        tmp_path: Path) -> None:
    child = tmp_path / "optuna_style.py"
    child.write_text(textwrap.dedent("""
        import optuna
        import hpo_plugins as hpo
        trial = hpo.current_trial()
        trial.report(1.0, 0)
        raise optuna.TrialPruned()
    """))
    study = _study(tmp_path, "optuna")
    study.optimize(ScriptObjective([sys.executable, str(child)]), n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.PRUNED and trial.intermediate_values == {0: 1.0}
