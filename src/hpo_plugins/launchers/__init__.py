"""How trials run: in this process, or in parallel worker processes that share the storage.

``hpo.minimize(..., n_jobs=4)`` is shorthand for ``launcher=JoblibLauncher(n_jobs=4)``. A
launcher of your own subclasses :class:`Launcher`; its ``run`` receives the run's
:class:`RunSettings` and has each worker call :func:`run_one` (ask, objective, tell).
"""

from __future__ import annotations

from hpo_plugins._optimize import run_one
from hpo_plugins._run_settings import RunSettings
from hpo_plugins.launchers._base import Launcher, SequentialLauncher
from hpo_plugins.launchers._dask import DaskLauncher
from hpo_plugins.launchers._gpus import detect_gpus, gpu_slots
from hpo_plugins.launchers._joblib import JoblibLauncher
from hpo_plugins.launchers._script import (
    PARAMS_ENV,
    PARAMS_FILE_ENV,
    ScriptFailed,
    ScriptObjective,
    current_params,
)
from hpo_plugins.launchers._state import fail_orphans

__all__ = [
    "PARAMS_ENV",
    "PARAMS_FILE_ENV",
    "DaskLauncher",
    "JoblibLauncher",
    "Launcher",
    "RunSettings",
    "ScriptFailed",
    "ScriptObjective",
    "SequentialLauncher",
    "current_params",
    "detect_gpus",
    "fail_orphans",
    "gpu_slots",
    "run_one",
]
