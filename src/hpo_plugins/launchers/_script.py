"""Script mode: any command becomes an objective, one process per trial.

The child finds its trial through the :data:`~hpo_plugins.context.TRIAL_ENV` environment
variable: ``hpo_plugins.current_trial().params`` (or :func:`current_params` with defaults for
runs without the tuner) and ``Trainer(callbacks=[HPOCallback()])`` report to the same storage, so
pruning works across processes. The trial's value is the last value the child reported.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpo_plugins._warn import warn_user
from hpo_plugins.context import current_trial, current_trial_or_none, trial_env
from hpo_plugins.exceptions import ConfigurationError, HPOError, TrialPruned

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

_NOT_STARTABLE = (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR)  # a bad command

__all__ = ["PARAMS_ENV", "PARAMS_FILE_ENV", "ScriptFailed", "ScriptObjective", "current_params"]

_logger = logging.getLogger(__name__)

#: The trial's natural params as JSON, for scripts that do not import hpo_plugins.
PARAMS_ENV = "HPO_PLUGINS_PARAMS"
#: Path of ``params.json`` in the trial directory (``params_via="json"``).
PARAMS_FILE_ENV = "HPO_PLUGINS_PARAMS_FILE"
_TAIL_CHARS = 4000
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
#: Seconds the command's processes get to exit after SIGTERM before they get SIGKILL.
_KILL_GRACE = 3.0
_PARAMS_FILE = "{params_file}"


class ScriptFailed(HPOError):
    """The trial's command exited with a non-zero status; the message ends with its stderr."""


def current_params(defaults: Any = None) -> Any:
    """The running trial's params, or ``defaults`` when the script runs without the tuner."""
    trial = current_trial_or_none()
    return defaults if trial is None else trial.params


class ScriptObjective:
    """Runs ``command`` once per trial and reads the trial's value from what it reported.

    Args:
        command: The command, as a list or a shell-like string (split with ``shlex``).
        params_via: How params reach the command besides the environment variables that are
            always set (``HPO_PLUGINS_TRIAL`` and ``HPO_PLUGINS_PARAMS``): ``"env"`` only;
            ``"json"`` also writes ``params.json`` in the trial directory (path in
            ``HPO_PLUGINS_PARAMS_FILE``, and ``{params_file}`` in the command is replaced by it);
            ``"args"`` also appends ``--<label> <value>`` for every active parameter.
        cwd: Working directory of the command (default: the current one). One that does not
            exist when the objective is made gets a warning (Dask workers may have it).

    Raises:
        ConfigurationError: ``command`` is not a string or a list of strings and paths, or is
            empty; ``params_via`` is unknown; ``cwd`` is not a path, or is a file.

    A non-zero exit raises :class:`ScriptFailed` with the tail of stderr (the trial ends FAIL
    with it; the study goes on because launchers catch it), unless the command pruned the
    trial (``raise hpo_plugins.TrialPruned()`` or ``mark_pruned()`` there): then it ends PRUNED.
    An exit 0 without any reported value ends FAIL with a reason that says how to report one.
    stdout and stderr of each trial go to ``stdout.log`` and ``stderr.log`` in its directory
    (``trial.log_dir``). The command's stdin is empty (``/dev/null``): a prompt in it fails
    at once instead of waiting for input nobody sees.

    The command runs in a process group (a session) of its own, so that every process it
    starts can be stopped with it: a wrapper (``bash train.sh``, ``sh -c``, ``uv run``) would
    otherwise leave its children running. Whenever the trial ends (the command exited, or this
    process is interrupted: Ctrl-C, ``SystemExit``, the worker shutting down), what is left of
    that group gets SIGTERM, then SIGKILL after a short grace. Being in its own session, the
    command no longer gets the terminal's Ctrl-C itself: this process gets it and stops the
    group. On Linux the command (the process this starts, not its children) is also killed if
    its worker process dies at once (``kill -9``), where no clean-up can run.
    """

    def __init__(self, command: str | Sequence[str | os.PathLike[str]], *,
                 params_via: str = "env", cwd: str | os.PathLike[str] | None = None) -> None:
        if params_via not in ("env", "json", "args"):
            raise ConfigurationError(
                f'Expected `params_via` to be "env", "json" or "args". Received: '
                f"params_via={params_via!r}."
            )
        argv = _command_words(command)
        if not argv:
            raise ConfigurationError("Expected a command to run per trial. Received: nothing.")
        words = [os.fspath(word) for word in argv]  # Path objects welcome
        if params_via != "json" and any(_PARAMS_FILE in word for word in words):
            raise ConfigurationError(
                f'Expected {_PARAMS_FILE} in the command only with params_via="json" (it is '
                f"replaced by the path of the params.json that mode writes). Received: "
                f"params_via={params_via!r}, so every trial would get the text {_PARAMS_FILE}. "
                f'Pass params_via="json", or take the params from ${PARAMS_ENV}.')
        _check_cwd(cwd)
        self.command = words
        self.params_via = params_via
        self.cwd = cwd

    @property
    def hpo_study_key(self) -> str:
        """What ``hpo.minimize`` adds to the derived study name: the command and how params
        reach it, so two commands over one space get two studies."""
        return json.dumps([self.command, self.params_via])

    def __call__(self, params: Any) -> None:
        """Run the command for the current trial; the run loop takes its last reported value."""
        trial = current_trial()
        if not getattr(self, "_pruner_checked", False):
            self._pruner_checked = True
            _check_pruner_travels(trial)
        env = {**os.environ, **trial_env(trial), PARAMS_ENV: json.dumps(params, default=repr)}
        argv = self._argv(trial, params, env)
        out_path = os.path.join(trial.log_dir, "stdout.log")
        err_path = os.path.join(trial.log_dir, "stderr.log")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                process = subprocess.Popen(argv, env=env, cwd=self.cwd,
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                           start_new_session=True,
                                           preexec_fn=_die_with_parent())
            except OSError as exc:
                raise _not_started(argv, exc) from exc
            try:
                code = process.wait()
            finally:  # also on KeyboardInterrupt or SystemExit: nothing it started runs on
                _stop_group(process)
        if trial.pruned:  # the child marked it (mark_pruned, or an uncaught TrialPruned)
            raise TrialPruned(f"pruned by the command ({_exit_status(code)})")
        if code != 0 and trial.fail_reason is None:  # else the child's reason (a NaN report)
            raise ScriptFailed(f"command {_exit_status(code)}; stderr tail:\n"
                               f"{_tail(err_path)}")
        if trial.last_value is None and trial.fail_reason is None:
            trial.mark_failed(
                "the command exited with status 0 but reported no value: report one from the "
                "script with Trainer(callbacks=[HPOCallback()]) (Lightning), the Keras callback, "
                "or hpo_plugins.current_trial().report(value, step)")

    def _argv(self, trial: Any, params: Any, env: dict[str, str]) -> list[str]:
        argv = list(self.command)
        if self.params_via == "json":
            path = os.path.join(trial.log_dir, "params.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(params, handle, default=repr, indent=2)
            env[PARAMS_FILE_ENV] = path
            argv = [a.replace(_PARAMS_FILE, path) for a in argv]
        elif self.params_via == "args":
            argv += _flag_args(trial.flat_params, trial.study)
        return argv


def _command_words(command: Any) -> list[Any]:
    """``command`` as a list of words: a string split as a shell would, a list (any iterable)
    as is; anything else (None, a number, one Path) is refused, as is a word that is not a
    string or a path (``subprocess`` would only fail on it at trial 0)."""
    expected = ("Expected `command` to be the command to run per trial, as a string "
                "('python train.py --epochs 5') or a list of strings and paths (['python', "
                "'train.py']).")
    if isinstance(command, str):
        return shlex.split(command)
    words: list[Any] | None = None
    if not isinstance(command, (bytes, os.PathLike)):  # iterable, but not a list of words
        with contextlib.suppress(TypeError):
            words = list(command)
    if words is None:
        fix = (" For one script, pass [path] or str(path)."
               if isinstance(command, os.PathLike) else "")
        raise ConfigurationError(f"{expected} Received: command={command!r} (of type "
                                 f"{type(command).__name__}).{fix}")
    bad = next((w for w in words if not isinstance(w, (str, os.PathLike))
                or not isinstance(os.fspath(w), str)), None)
    if bad is not None:
        raise ConfigurationError(
            f"{expected} Received: command={words!r}, whose word {bad!r} is of type "
            f"{type(bad).__name__}. Convert each word to a string first.")
    return words


def _check_cwd(cwd: Any) -> None:
    """Refuse a ``cwd`` that is not a path, or a file, now: ``subprocess`` would fail on it at
    every trial, and the first trial only shows its bare ``OSError``. A directory missing here
    is only warned about: the machines that run the command (Dask workers) may have it."""
    if cwd is None:
        return
    if not isinstance(cwd, (str, os.PathLike)) or not isinstance(os.fspath(cwd), str):
        raise ConfigurationError(
            f"Expected `cwd` to be a directory path (str or pathlib.Path), or None for the "
            f"current directory. Received: cwd={cwd!r} (of type {type(cwd).__name__}).")
    if os.path.isdir(cwd):
        return
    where = "" if os.path.isabs(cwd) else f" (relative to {os.getcwd()!r})"
    if os.path.exists(cwd):
        raise ConfigurationError(
            f"Expected `cwd` to be a directory for the command to run in. Received: "
            f"cwd={os.fspath(cwd)!r}, which is a file{where}. Pass its folder, or another "
            f"directory.")
    warn_user(f"ScriptObjective's cwd={os.fspath(cwd)!r} does not exist on this machine"
              f"{where}: a trial whose command runs here stops the run. Create it first, "
              f"unless only the machines that run the commands (Dask workers) have it.")


def _flag_args(flat: Mapping[str, Any], study: Any) -> list[str]:
    """``--<label> <value>`` per active parameter (see :func:`_flag_value`)."""
    shown = study.space.display(flat) if study.space is not None else dict(flat)
    args: list[str] = []
    for label, value in shown.items():
        if label in flat:
            args += [f"--{label}", _flag_value(value)]
    return args


def _flag_value(value: Any) -> str:
    """A flat value as a command-line word: whole floats without ``.0`` (so ``type=int``
    parses ``hp.quniform(..., q=1)`` values), everything else as ``str``; a choice arrives as
    its option when the options are plain literals of one type, else as the option's index.

    Example:
        >>> [_flag_value(v) for v in (112.0, 0.25, "adam", 3, True)]
        ['112', '0.25', 'adam', '3', 'True']
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _exit_status(code: int) -> str:
    """How the command ended, for a reason: ``exited with status 3``, or ``was killed by
    signal 9 (SIGKILL)`` for the negative codes of :mod:`subprocess`.

    Example:
        >>> _exit_status(3), _exit_status(-9)
        ('exited with status 3', 'was killed by signal 9 (SIGKILL)')
    """
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:  # a real-time signal, which has no name
        name = ""
    return f"was killed by signal {-code}{name}"


def _check_pruner_travels(trial: Trial) -> None:
    """Warn when the commands cannot rebuild the study's pruner: they open the study from its
    stored record and import the pruner's class by module, which a class defined in the
    launching script (``__main__``) is not, so they would run without pruning (NopPruner)."""
    pruner = trial.study.pruner
    module = type(pruner).__module__
    if module in ("__main__", "__mp_main__"):
        warn_user(f"The study's pruner {type(pruner).__qualname__} is defined in the launching "
                  f"script ({module}): the commands of script mode open the study in their own "
                  f"process and cannot import it, so they run without pruning (NopPruner). "
                  f"Define the pruner in a module the command can import, or use a built-in "
                  f"pruner of hpo_plugins.pruners.")


def _stop_group(process: subprocess.Popen[bytes], grace: float = _KILL_GRACE) -> None:
    """Stop every process left in the command's process group, and reap the command.

    The command leads its own group (``start_new_session``), so the group id is its pid and
    holds whatever it started that did not leave the group: a wrapper's children, a background
    job. They get SIGTERM (time to save a checkpoint, flush logs), and SIGKILL if any is still
    there after ``grace`` seconds. A group with nobody left costs one ``killpg`` call. Without
    process groups (Windows), the command alone is killed if it still runs.
    """
    if not hasattr(os, "killpg"):
        if process.poll() is None:
            process.kill()
        process.wait()
        return
    group = process.pid
    if _signal_group(group, signal.SIGTERM):
        deadline = time.monotonic() + grace
        try:
            # the command itself is reaped here (poll), else it stayed a member as a zombie
            while (process.poll() is None or _group_alive(group)) and (
                    time.monotonic() < deadline):
                time.sleep(0.02)
        finally:  # also when a second Ctrl-C or SIGTERM cuts the grace short
            _signal_group(group, signal.SIGKILL)
    process.wait()


def stop_worker_commands(workers: Sequence[int] | None = None,
                         grace: float = _KILL_GRACE) -> None:
    """Give the script-mode commands of worker processes their SIGTERM grace before the
    workers are killed (Ctrl-C, SIGTERM, an error elsewhere in a parallel run).

    A launcher that kills a worker at once (SIGKILL, as joblib's loky does to a whole process
    tree when a run is cut short) would kill the command with it, without the time to save a
    checkpoint that a sequential run gives. So each worker that runs a command is frozen first
    (SIGSTOP: it must not record its trial's end as "killed by SIGTERM", which the run's own
    clean-up records as interrupted or, for SIGTERM, lost), then the commands' groups get
    SIGTERM and, after ``grace`` seconds, SIGKILL; the caller then kills the workers (or, when
    the wait is cut short by an exception, a second Ctrl-C, this function kills them itself:
    a frozen worker must never outlive the run).
    ``workers``: their pids, by default this process's children that are joblib's loky
    workers (found by their command line: no other child of the user's is ever frozen). Linux
    only (``/proc``); elsewhere nothing is done.
    """
    stats = _proc_stats()
    if workers is None:
        me = os.getpid()
        workers = [int(f[0]) for f in stats if int(f[3]) == me and _is_loky_worker(int(f[0]))]
    chosen = set(workers)
    running = [(int(f[3]), int(f[0])) for f in stats  # (worker, command leading its group)
               if int(f[3]) in chosen and int(f[4]) == int(f[0])]
    frozen = {worker for worker, _ in running}
    for worker in frozen:
        with contextlib.suppress(OSError):
            os.kill(worker, signal.SIGSTOP)
    try:
        stop_groups([group for _, group in running], grace)
    except BaseException:  # a second Ctrl-C cut the grace short: no worker stays frozen
        for worker in frozen:
            with contextlib.suppress(OSError):
                os.kill(worker, signal.SIGKILL)
        raise


def _is_loky_worker(pid: int) -> bool:
    """Whether process ``pid`` is a worker of joblib's loky (its command line says so)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"loky.backend.popen_loky" in handle.read()
    except OSError:
        return False


def stop_groups(groups: Sequence[int], grace: float = _KILL_GRACE) -> None:
    """SIGTERM every process of ``groups``, then SIGKILL what is left after ``grace`` s."""
    alive = [g for g in groups if _signal_group(g, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    try:
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [g for g in alive if _group_alive(g)]
    finally:  # also when a second Ctrl-C or SIGTERM cuts the grace short
        for group in alive:
            _signal_group(group, signal.SIGKILL)


def _proc_stats() -> list[list[str]]:
    """``[pid, comm, state, ppid, pgrp, ...]`` of every process, from ``/proc/<pid>/stat``
    (the command name, which may hold spaces, is read up to its last parenthesis)."""
    try:
        names = [n for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []
    stats = []
    for name in names:
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                head, _, rest = handle.read().decode(errors="replace").rpartition(")")
        except OSError:  # gone meanwhile
            continue
        stats.append([name, head, *rest.split()])
    return stats


def _signal_group(group: int, signum: int) -> bool:
    """Send ``signum`` to process group ``group``; False when the group has no process left
    (0 only asks whether it has one)."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its user: nothing this process can stop
        return False
    return True


def _group_alive(group: int) -> bool:
    """Whether process group ``group`` still has a process that is not a zombie.

    The command's children that died after it are reaped by PID 1, which in a container may
    take its time or never do it; as zombies they still count as members for ``killpg``, and
    waiting for them would last the whole grace. On Linux ``/proc`` tells them apart;
    elsewhere any member counts.
    """
    if not _signal_group(group, 0):
        return False
    if not os.path.isdir("/proc"):
        return True
    return any(int(fields[4]) == group and fields[2] != "Z" for fields in _proc_stats())


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` (Linux) that makes the command get SIGKILL if this process dies.

    When a launcher kills a worker (Ctrl-C, another trial's error) or the worker is killed, its
    command would otherwise run on, orphaned. ``prctl`` is looked up here, in the parent, so
    the child, which runs between ``fork`` and ``exec`` beside this process's other threads,
    only calls it; if the parent already died before that, the child exits at once. Elsewhere,
    or without a usable libc, None (no such guard).
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # died before the signal was armed
            os._exit(1)

    return arm


@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


def _tail(path: str) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - _TAIL_CHARS))
        return handle.read().decode("utf-8", errors="replace")


def _not_started(argv: list[str], exc: OSError) -> BaseException:
    """What a command that could not be started becomes: a failed trial (:class:`ScriptFailed`)
    when the command itself is at fault (missing, not executable, no ``#!`` line); else the
    error itself (a bad ``cwd``, out of memory, too many open files), which stops the run,
    since every trial would fail the same way for a reason outside the command."""
    if exc.filename not in (argv[0], None) or exc.errno not in (*_NOT_STARTABLE, errno.ENOENT):
        return exc
    if exc.errno == errno.ENOENT:
        return ScriptFailed(
            f"Expected an executable command; {argv[0]!r} was not found ({exc.strerror}). "
            f"Check the command's spelling and PATH, or give its full path.")
    return ScriptFailed(
        f"Expected an executable command; {argv[0]!r} could not be started "
        f"({exc.strerror or exc}). Make it executable (chmod +x) with a #! line, or run it "
        f"through its interpreter, e.g. `bash {argv[0]}` or `python {argv[0]}`.")
