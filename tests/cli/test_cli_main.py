"""The command line itself: help on every command, exit codes, errors as one line."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pytest

import hpo_plugins.cli as cli_module
from hpo_plugins.cli import COMMANDS, EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, Command

Run = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_every_command_has_help_with_the_storage_option(cli: Run, name: str) -> None:
    code, out, _ = cli(name, "--help")
    assert code == EXIT_OK
    assert f"usage: hpo-plugins {name}" in out and "--storage URL" in out
    assert "HPO_PLUGINS_STORAGE" in out


def test_top_level_help_lists_every_command_and_the_exit_codes(cli: Run) -> None:
    code, out, _ = cli("--help")
    assert code == EXIT_OK
    assert all(c.name in out for c in COMMANDS)
    assert "3 storage or study not found" in out


@pytest.mark.parametrize("argv", [[], ["nope"], ["trials"], ["studies", "--bogus"],
                                  ["export", "--study", "demo", "--format", "xml"]])
def test_usage_errors_exit_2(cli: Run, argv: list[str]) -> None:
    code, out, err = cli(*argv)
    assert (code, out) == (EXIT_USAGE, "")
    assert "error:" in err


def test_exit_codes_are_distinct() -> None:
    assert len({EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND}) == 4


def _crash(args: argparse.Namespace) -> int:
    raise RuntimeError("something broke")


def test_an_unexpected_error_is_one_line_without_traceback(
        cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = Command("crash", "crash", "crash", lambda parser: None, _crash)
    monkeypatch.setattr(cli_module, "COMMANDS", (*COMMANDS, crash))  # how `run` will plug in
    code, _, err = cli("crash")
    assert code == EXIT_FAILURE
    assert err.strip() == ("hpo-plugins: error: unexpected RuntimeError: something broke "
                           "(run with -vv for the traceback)")
    code, _, err = cli("crash", "-vv")
    assert code == EXIT_FAILURE and "Traceback" in err


def test_the_console_script_is_main() -> None:
    (script,) = entry_points(group="console_scripts", name="hpo-plugins")
    assert script.load() is cli_module.main


def test_storage_and_verbose_may_come_before_the_command(cli: Run, tmp_path: Any) -> None:
    """`hpo-plugins --storage URL studies`, as Optuna's command line takes it."""
    import hpo_plugins as hpo

    url = f"sqlite:///{tmp_path}/g.db"
    hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=url, study_name="g")
    code, out, err = cli("--storage", url, "studies")
    assert (code, err) == (EXIT_OK, "") and out.split("\n")[1].split()[0] == "g"
    assert cli("--storage", url, "studies", "--storage", url)[0] == EXIT_OK  # the same: fine
    code, _, err = cli("--storage", url, "studies", "--storage", f"sqlite:///{tmp_path}/o.db")
    assert code == EXIT_USAGE and "--storage is given twice" in err


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_signal_ignored_as_nohup_does_stays_ignored() -> None:
    """Under ``nohup`` SIGHUP is ignored: run and tensorboard then caught it anyway, so a
    logout stopped a command started so that it would survive one."""
    from hpo_plugins.cli._base import caught_signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert caught_signals() == [signal.SIGTERM]
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        assert caught_signals() == [signal.SIGTERM, signal.SIGHUP]
    finally:
        signal.signal(signal.SIGHUP, previous)
