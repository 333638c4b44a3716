"""Script mode: any command becomes an objective, one process per trial.

The child finds its trial through the :data:`~hpo_plugins.context.TRIAL_ENV` environment
variable: ``hpo_plugins.current_trial().params`` (or :func:`current_params` with defaults for
runs without the tuner) and ``Trainer(callbacks=[HPOCallback()])`` report to the same storage, so
pruning works across processes. The trial's value is the last value the child reported.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hpo_plugins.context import current_trial, current_trial_or_none, trial_env
from hpo_plugins.exceptions import ConfigurationError, HPOError, TrialPruned

_NOT_STARTABLE = (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR)  # a bad command

__all__ = ["PARAMS_ENV", "PARAMS_FILE_ENV", "ScriptFailed", "ScriptObjective", "current_params"]

_logger = logging.getLogger(__name__)

#: The trial's natural params as JSON, for scripts that do not import hpo_plugins.
PARAMS_ENV = "HPO_PLUGINS_PARAMS"
#: Path of ``params.json`` in the trial directory (``params_via="json"``).
PARAMS_FILE_ENV = "HPO_PLUGINS_PARAMS_FILE"
_TAIL_CHARS = 4000
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


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
        cwd: Working directory of the command (default: the current one).

    A non-zero exit raises :class:`ScriptFailed` with the tail of stderr (the trial ends FAIL
    with it; the study goes on because launchers catch it), unless the command pruned the
    trial (``raise hpo_plugins.TrialPruned()`` or ``mark_pruned()`` there): then it ends PRUNED.
    An exit 0 without any reported value ends FAIL with a reason that says how to report one.
    stdout and stderr of each trial go to ``stdout.log`` and ``stderr.log`` in its directory
    (``trial.log_dir``). On Linux the command is killed if its worker process dies.
    """

    def __init__(self, command: str | Sequence[str], *, params_via: str = "env",
                 cwd: str | None = None) -> None:
        if params_via not in ("env", "json", "args"):
            raise ConfigurationError(
                f'Expected `params_via` to be "env", "json" or "args". Received: '
                f"params_via={params_via!r}."
            )
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not argv:
            raise ConfigurationError("Expected a command to run per trial. Received: nothing.")
        self.command = [os.fspath(word) for word in argv]  # Path objects welcome
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
        env = {**os.environ, **trial_env(trial), PARAMS_ENV: json.dumps(params, default=repr)}
        argv = self._argv(trial, params, env)
        out_path = os.path.join(trial.log_dir, "stdout.log")
        err_path = os.path.join(trial.log_dir, "stderr.log")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                code = subprocess.run(argv, env=env, cwd=self.cwd, stdout=out, stderr=err,
                                      check=False, preexec_fn=_die_with_parent()).returncode
            except OSError as exc:
                raise _not_started(argv, exc) from exc
        if trial.pruned:  # the child marked it (mark_pruned, or an uncaught TrialPruned)
            raise TrialPruned(f"pruned by the command (exit status {code})")
        if code != 0:
            raise ScriptFailed(f"command exited with status {code}; stderr tail:\n"
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
            argv = [a.replace("{params_file}", path) for a in argv]
        elif self.params_via == "args":
            argv += _flag_args(trial.flat_params, trial.study)
        return argv


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
