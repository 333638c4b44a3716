"""warn_user: a warning names the user's line, wherever the user's code lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hpo_plugins

_SRC = str(Path(hpo_plugins.__file__).parent.parent)
_SLIP = ("from hpo_plugins import hp\n"
         "from hpo_plugins.space import SearchSpace\n"
         "SearchSpace({'lr': hp.loguniform('lr', 1e-5, 1e-1)})\n")


def _warnings_of(argv: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, str(cwd)])}
    done = subprocess.run([sys.executable, "-W", "always", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True)
    return done.stderr


def test_python_dash_c_code_is_the_users(tmp_path: Path) -> None:
    """``<string>`` (also ``<ipython-input-...>``) is user code, not a library frame."""
    err = _warnings_of(["-c", _SLIP], tmp_path)
    assert "<string>:3: UserWarning: hp.loguniform('lr', low=1e-05" in err, err


def test_a_users_own_package_is_the_users(tmp_path: Path) -> None:
    """A package of the user's (wherever installed) is not taken for a framework."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "train.py").write_text(_SLIP)
    err = _warnings_of(["-c", "import mypkg.train"], tmp_path)
    assert f"{tmp_path / 'mypkg' / 'train.py'}:3: UserWarning" in err, err
