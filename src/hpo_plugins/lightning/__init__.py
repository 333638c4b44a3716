"""PyTorch Lightning adapter: ``HPOCallback`` and ``lightning_objective``.

``HPOCallback`` (this package, for ``lightning.pytorch``; :mod:`hpo_plugins.lightning.pl` for
``pytorch_lightning``) reports a training to the current trial and stops it when the pruner says
so. :func:`lightning_objective` turns a LightningModule class (or factory) into an objective.
See ``docs/lightning.md``.

``HPOCallback`` is imported on first use, so that ``import hpo_plugins.lightning.pl`` works where
only ``pytorch_lightning`` is installed; without ``lightning`` it raises
:class:`~hpo_plugins.exceptions.MissingDependencyError` naming the ``pip install`` to run.
Nothing here imports TensorFlow, except through Lightning's ``TensorBoardLogger``, which
:func:`lightning_objective` uses when the study has a ``logdir`` (see ``docs/lightning.md``).

Example:
    >>> from hpo_plugins.lightning import HPOCallback, lightning_objective
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo_plugins.lightning._objective import LightningObjective, lightning_objective

if TYPE_CHECKING:
    from hpo_plugins.lightning._callback import HPOCallback

__all__ = ["HPOCallback", "LightningObjective", "lightning_objective"]


def __getattr__(name: str) -> Any:
    if name == "HPOCallback":
        from hpo_plugins.lightning._callback import HPOCallback

        return HPOCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
