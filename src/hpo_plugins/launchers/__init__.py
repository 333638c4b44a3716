"""How trials run: in this process, or in parallel worker processes that share the storage.

``hpo.minimize(..., n_jobs=4)`` is shorthand for ``launcher=JoblibLauncher(n_jobs=4)``.
"""

from __future__ import annotations

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
    "ScriptFailed",
    "ScriptObjective",
    "SequentialLauncher",
    "current_params",
    "detect_gpus",
    "fail_orphans",
    "gpu_slots",
]
