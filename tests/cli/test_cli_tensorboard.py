"""``hpo-plugins tensorboard``: clear errors.

The command serving a logdir (and stopping on SIGTERM) is tested end to end in
``tests/tensorboard/test_tb_dashboard.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

from hpo_plugins.cli import EXIT_FAILURE, EXIT_NOT_FOUND

Run = Callable[..., tuple[int, str, str]]


def test_a_study_without_logdir_is_a_clear_error(cli: Run, url: str) -> None:
    code, out, err = cli("tensorboard", "--study", "plain", "--storage", url)
    assert (code, out) == (EXIT_FAILURE, "")
    assert "study 'plain' has no logdir" in err and err.count("\n") == 1


def test_an_unknown_study_is_exit_3(cli: Run, url: str) -> None:
    assert cli("tensorboard", "--study", "nope", "--storage", url)[0] == EXIT_NOT_FOUND


def test_a_deleted_logdir_is_a_clear_error(cli: Run, url: str, tmp_path: Any) -> None:
    os.rename(tmp_path / "runs", tmp_path / "moved")
    code, _, err = cli("tensorboard", "--study", "demo", "--storage", url)
    assert code == EXIT_FAILURE and "does not exist" in err


def test_without_tensorboard_the_error_names_the_extra(
        cli: Run, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # find_spec() then finds nothing
    code, _, err = cli("tensorboard", "--study", "demo", "--storage", url)
    assert code == EXIT_FAILURE and "pip install 'hpo_plugins[tensorboard]'" in err
