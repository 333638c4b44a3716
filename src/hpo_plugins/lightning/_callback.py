"""``HPOCallback`` for ``lightning.pytorch`` (the ``lightning`` package)."""

from __future__ import annotations

from hpo_plugins.exceptions import missing_dependency

try:
    import lightning.pytorch as L
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise missing_dependency("lightning", "lightning") from exc

from hpo_plugins.lightning._base import HPOCallbackBase
from hpo_plugins.lightning._resume import best_checkpoint_class, checkpoint_class

__all__ = ["HPOCallback"]


class HPOCallback(HPOCallbackBase, L.Callback):
    """Report a Lightning training to the current trial and stop it when the pruner says so.

    At the end of every validation run of ``fit`` (the sanity check excepted) the callback reports
    ``trainer.callback_metrics[monitor]`` to the trial, at step ``trainer.current_epoch``, or
    the number of training batches so far when validation runs more than once per epoch
    (``val_check_interval`` below 1.0, an integer number of batches smaller than an epoch, or a
    duration; it is ``trainer.global_step`` without gradient accumulation). When
    ``trial.should_prune()`` answers True it sets ``trainer.should_stop`` and marks the trial
    pruned; the run loop records it PRUNED after ``fit`` returns. Nothing is raised through
    Lightning, so its loggers finish normally. One fit per trial reports: a fit with a new
    Trainer, whose steps start again from 0, fails the trial (continue the same Trainer instead).
    A fit of a trial already pruned or failed stops before it trains.

    If ``monitor`` is not among the logged metrics at a validation end, the callback warns once
    (a ``UserWarning`` naming the metrics that were logged, and the closest one when a name is
    close: ``did you mean 'val_loss'?``), stops the training and the trial ends FAIL with that
    reason; it raises nothing, so the study goes on (:func:`lightning_objective`, which owns the
    whole trial, stops the study when the metric never appeared). A fit that reports nothing
    (no validation ran) gets a ``UserWarning`` at its end. Outside any study it logs once
    (INFO) and does nothing, so one training script runs with or without the tuner.
    ``copy.deepcopy`` keeps the ``trial``.

    Under ``strategy="ddp_spawn"`` rank 0 re-opens the trial from the study's storage (a
    database, e.g. the default SQLite file; an in-memory study raises
    :class:`~hpo_plugins.exceptions.ConfigurationError` when ``fit`` starts the workers), reports
    once per step, and broadcasts the decision to every rank. For ``pytorch_lightning`` use
    :class:`hpo_plugins.lightning.pl.HPOCallback`, which behaves the same.

    Args:
        monitor: The metric to report, a key of ``trainer.callback_metrics``; default: the
            study's ``metric`` (``"val_loss"`` unless the study was created with another). The
            study's direction says whether lower or higher is better.
        trial: The trial to report to; default: the current trial, found when ``fit`` starts
            (in the objective of ``hpo.minimize``, or in a process started with
            :data:`hpo_plugins.TRIAL_ENV`), else the trial that was current when the callback
            was made, if it still runs (a ``fit`` in a thread the objective started, which the
            trial's context does not reach). A callback that finds none while a trial runs in
            another thread warns that it reports nothing.
        interval: Report (and ask the pruner) at every ``interval``-th validation run only.

    Raises:
        ConfigurationError: An argument has the wrong type or value.

    Example:
        >>> import lightning.pytorch as L
        >>> import hpo_plugins as hpo
        >>> from hpo_plugins.lightning import HPOCallback
        >>> def objective(params):  # MyModule, MyData: your LightningModule and data
        ...     trainer = L.Trainer(max_epochs=20, callbacks=[HPOCallback()], logger=False)
        ...     trainer.fit(MyModule(**params), datamodule=MyData())
        ...     # nothing to return: the trial's value is the last val_loss the callback saw
        >>> pruner = hpo.pruners.SuccessiveHalvingPruner()
        >>> study = hpo.minimize(objective, space, n_trials=40,
        ...                      pruner=pruner)  # doctest: +SKIP
    """


#: The checkpoint ``lightning_objective(resume_lost_trials=True)`` keeps for every trial (see
#: :mod:`hpo_plugins.lightning._resume`); made here so that ``ddp_spawn`` can pickle it. Internal:
#: the objective adds it, users do not.
LastCheckpoint = checkpoint_class(L.callbacks.Checkpoint, __name__)
#: The ``ModelCheckpoint`` of ``lightning_objective(save_checkpoint=True)``: it carries a lost
#: trial's best checkpoint over to its retry (internal, like ``LastCheckpoint``).
BestCheckpoint = best_checkpoint_class(L.callbacks.ModelCheckpoint, __name__)
