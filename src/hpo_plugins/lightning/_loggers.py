"""Keep Lightning's TensorBoard loggers from writing HParams sessions into a study's logdir.

Lightning's ``TensorBoardLogger`` (``default_hp_metric=True``, its default) writes an HParams
experiment and session of its own, with an ``hp_metric`` of -1, whenever it logs the module's
hyperparameters (``save_hyperparameters()``). Under a study's logdir that session either
takes over the trial's row in TensorBoard's HParams dashboard (TensorBoard keeps one
experiment config per run, whichever it reads first, so the study's ``value`` and ``state``
columns disappear) or adds a second row for the trial (a logger in a sub-folder such as
``lightning_logs/version_0``). The study writes the trial's HParams data itself, so the
callback turns that default off for the loggers that write under the logdir; what they log
explicitly (``log_hyperparams(params, metrics)``) they still write.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = ["quiet_hp_metric"]

_logger = logging.getLogger("hpo_plugins.lightning")

#: (study name, logdir) pairs whose loggers' ``hp_metric`` was turned off in this process: the
#: explanation is logged once per study, then at DEBUG (it repeated for every trial).
_explained: set[tuple[str, str]] = set()


def quiet_hp_metric(trainer: Any, trial: Trial) -> None:
    """Turn off ``default_hp_metric`` of ``trainer``'s TensorBoard loggers that write under
    ``trial``'s study logdir (Lightning logs the hyperparameters after ``setup``)."""
    logdir = trial.study.logdir
    if logdir is None:
        return
    root = os.path.realpath(logdir)
    for logger in getattr(trainer, "loggers", None) or []:
        if getattr(logger, "_default_hp_metric", None) is not True:
            continue  # not a TensorBoardLogger, or already off
        save_dir = getattr(logger, "save_dir", None)
        if save_dir is None or not _within(os.path.realpath(os.fspath(save_dir)), root):
            continue
        logger._default_hp_metric = False
        key = (trial.study.study_name, root)
        level = logging.DEBUG if key in _explained else logging.INFO
        _explained.add(key)
        _logger.log(level, "Trial %d: %s writes under the study's logdir %s; its default "
                     "`hp_metric` HParams session is turned off so that TensorBoard's HParams "
                     "dashboard shows the study's own row for this trial (pass "
                     "default_hp_metric=False to the logger to make this explicit).",
                     trial.number, type(logger).__name__, logdir)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
