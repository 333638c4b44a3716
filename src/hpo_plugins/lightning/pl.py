"""The same adapter for the ``pytorch_lightning`` namespace.

``lightning.pytorch`` and ``pytorch_lightning`` hold the same code under different classes: a
``pytorch_lightning.Trainer`` rejects a ``lightning.pytorch`` module (``TypeError``). It does not
check callback classes, but only the matching pair is tested: use this module's ``HPOCallback``
with a ``pytorch_lightning`` Trainer. :func:`lightning_objective` picks the namespace of the
module it builds by itself.

Example:
    >>> import pytorch_lightning as pl
    >>> from hpo_plugins.lightning.pl import HPOCallback
    >>> trainer = pl.Trainer(max_epochs=5, callbacks=[HPOCallback()], logger=False)
"""

from __future__ import annotations

from hpo_plugins.exceptions import missing_dependency

try:
    import pytorch_lightning
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise missing_dependency("pytorch_lightning", "lightning") from exc

from hpo_plugins.lightning._base import HPOCallbackBase
from hpo_plugins.lightning._objective import LightningObjective, lightning_objective
from hpo_plugins.lightning._resume import best_checkpoint_class, checkpoint_class

__all__ = ["HPOCallback", "LightningObjective", "lightning_objective"]


class HPOCallback(HPOCallbackBase, pytorch_lightning.Callback):
    """:class:`hpo_plugins.lightning.HPOCallback` for ``pytorch_lightning``: same options, same
    behaviour.

    Args:
        monitor: The metric to report; default: the study's ``metric`` (``"val_loss"``).
        trial: The trial to report to; default: the current trial, found when ``fit`` starts,
            else the trial current when the callback was made, if it still runs.
        interval: Report (and ask the pruner) at every ``interval``-th validation run only.

    Example:
        >>> import pytorch_lightning as pl
        >>> trainer = pl.Trainer(callbacks=[HPOCallback(monitor="val_acc")], logger=False)
    """


#: The checkpoint ``lightning_objective(resume_lost_trials=True)`` keeps for every trial (see
#: :mod:`hpo_plugins.lightning._resume`); made here so that ``ddp_spawn`` can pickle it. Internal:
#: the objective adds it, users do not.
LastCheckpoint = checkpoint_class(pytorch_lightning.callbacks.Checkpoint, __name__)
#: The ``ModelCheckpoint`` of ``lightning_objective(save_checkpoint=True)``: it carries a lost
#: trial's best checkpoint over to its retry (internal, like ``LastCheckpoint``).
BestCheckpoint = best_checkpoint_class(pytorch_lightning.callbacks.ModelCheckpoint, __name__)
