"""``HPOCallback`` for Keras 3: report each epoch to the current trial, stop when pruned.

It has the semantics and option names of :class:`hpo_plugins.lightning.HPOCallback`: the monitored
metric defaults to the study's ``metric``, the trial is found by itself when training starts,
nothing happens outside a study (one INFO message), pruning sets the framework's stop flag
(``model.stop_training``) and marks the trial, and a monitored metric that is not logged (or not
a scalar) fails the trial and stops the training instead of raising through Keras (the same rule
as Lightning's: only the objectives that own the whole trial, ``keras_tune`` and
``lightning_objective``, stop the study on a metric that never appeared). Mistakes in the
set-up itself (``val_loss`` monitored in a study that maximises, a second ``fit`` that starts
again at epoch 0) raise a ``ConfigurationError``: every trial would repeat them; another monitor
whose name reads as the opposite direction only warns. Two differences from Lightning's: here
``interval`` counts epochs as Keras' ``validation_freq`` does, and a second ``fit`` from epoch 0
raises (Lightning's fails the trial with a warning).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras

from hpo_plugins._callback_args import (
    NO_TRIAL_NOTICE,
    as_number,
    check_callback_arguments,
    check_monitor_direction,
    logged_names,
    not_a_scalar_reason,
)
from hpo_plugins._warn import warn_user
from hpo_plugins.context import current_trial_or_none
from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = ["HPOCallback"]

_logger = logging.getLogger("hpo_plugins.keras")

#: The fixes for a monitored metric that ``fit`` never logged, in ``HPOCallback``'s terms.
MISSING_METRIC_ADVICE = (
    "Pass validation data for 'val_*' metrics (with model.fit(validation_freq=k), pass "
    "HPOCallback(interval=k) too), compile the model with the metric, or monitor one of the "
    "logged names")


class HPOCallback(keras.callbacks.Callback):
    """Report a Keras training to the current trial and stop it when the pruner says so.

    At the end of each reporting epoch of ``fit`` the callback reports ``logs[monitor]`` to the
    trial at step ``epoch`` (0-based, as Keras numbers epochs) and asks the study's pruner. The
    reporting epochs follow Keras' own ``validation_freq`` rule: those whose 1-based number
    ``epoch + 1`` is a multiple of ``interval`` (every epoch by default). When the pruner says
    stop, it sets ``model.stop_training`` and marks the trial pruned; ``fit`` returns normally
    and the run loop records the trial PRUNED. A non-finite value (a diverged training) stops
    the training too and the trial ends FAIL.

    If ``monitor`` is not in the logs of a reporting epoch (the first one, with the default
    ``interval``), or is logged but is not one number (a per-class metric), the callback warns
    once (a ``UserWarning`` naming the metrics that were logged and the closest one, or the
    value's shape), stops the training, and the trial ends FAIL with that reason; the study goes
    on (:func:`keras_tune`, which owns the whole trial, stops it when the metric never
    appeared). A fit without a single reporting epoch gets a ``UserWarning`` at its end, as in
    the Lightning callback. Outside any study it logs once (INFO) and does nothing, so one
    training script runs with or without the tuner.

    If you validate only every ``k`` epochs (``fit(..., validation_freq=k)``), pass
    ``interval=k``: the callback then reports exactly at the epochs that hold ``val_*`` metrics,
    also with ``initial_epoch``, since both count epochs the same way.

    Args:
        monitor: The metric to report, a key of the epoch logs (``"val_loss"``,
            ``"val_accuracy"``...); default: the study's ``metric`` (``"val_loss"`` unless the
            study was created with another). The study's direction says whether lower or higher
            is better: Keras' own loss (``"val_loss"``, ``"loss"``) in a study that maximises is
            refused when ``fit`` starts, and another name that says the opposite
            (``"val_accuracy"`` in a study that minimises) warns.
        trial: The trial to report to; default: the current trial, found when ``fit`` starts
            (in the objective of ``hpo.minimize``, inside ``with trial:``, or in a process
            started with :data:`hpo_plugins.TRIAL_ENV`).
        interval: Report (and ask the pruner) only at the epochs whose number counted from 1 is
            a multiple of ``interval``: epochs ``interval - 1``, ``2 * interval - 1``, ...
            (0-based), as Keras validates with ``validation_freq=interval``.

    Raises:
        ConfigurationError: An argument has the wrong type or value. Raised through ``fit``:
            Keras' own loss is monitored in a study that maximises (when ``fit`` starts), or
            this ``fit`` reports an epoch below a step the trial already holds (a second
            ``fit`` in one trial without ``initial_epoch``).

    Example:
        >>> import hpo_plugins as hpo
        >>> from hpo_plugins.keras import HPOCallback
        >>> def objective(params):
        ...     model = build_model(params)
        ...     model.fit(x, y, validation_split=0.2, epochs=30, callbacks=[HPOCallback()])
        ...     # nothing to return: the trial's value is the last val_loss the callback saw
        >>> study = hpo.minimize(objective, space, n_trials=40,  # doctest: +SKIP
        ...                      pruner=hpo.pruners.HyperbandPruner())
    """

    _bound: Trial | None  # the trial this fit reports to
    _stopped: bool
    _floor: int | None  # the trial's last step before this fit; reports must pass it
    _due_epochs: int  # reporting epochs seen in this fit
    #: Compare the monitored name's direction with the study's when ``fit`` starts
    #: (``keras_tune``'s own reporter does not: it checked the direction before the study).
    _check_direction = True
    #: What to do about a monitored metric that was never logged (``keras_tune``'s reporter
    #: gives the advice that fits ``keras_tune``'s arguments).
    _missing_metric_advice = MISSING_METRIC_ADVICE

    def __init__(self, monitor: str | None = None, *, trial: Trial | None = None,
                 interval: int = 1) -> None:
        super().__init__()
        self.interval = check_callback_arguments(monitor, trial, interval)
        self.monitor = monitor
        self.trial = trial
        self._announced = False
        self._forget()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(monitor={self.monitor!r}, interval={self.interval!r})"

    def __deepcopy__(self, memo: dict[int, Any]) -> HPOCallback:
        """A fresh callback with the same options; the trial is shared, never copied."""
        return type(self)(self.monitor, trial=self.trial, interval=self.interval)

    # -- Keras hooks --------------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        """Find the trial (the one given, else the current one) for this fit.

        Raises:
            ConfigurationError: The monitored name implies the other direction than the study's.
        """
        self._forget()
        trial = self.trial if self.trial is not None else current_trial_or_none()
        if trial is None:
            self._announce()
            return
        if self._check_direction:
            check_monitor_direction(self.monitor or trial.study.metric, trial,
                                    explicit=self.monitor is not None, accuracy="val_accuracy")
        self._bound = trial
        self._floor = max(trial.intermediate_values, default=None)
        if trial.pruned or trial.fail_reason is not None:
            self._already_decided(trial)

    def _already_decided(self, trial: Trial) -> None:
        """Stop a fit of a trial that an earlier fit already pruned or failed (fine-tuning
        after the decision, say): it must not train on and add reports after the decision.
        Keras checks ``stop_training`` only after a batch, so this fit trains one batch and
        validates once; it reports nothing."""
        decision = "pruned" if trial.pruned else f"failed ({trial.fail_reason})"
        _logger.info("HPOCallback: trial %d was already %s in an earlier fit; this fit stops "
                     "after its first batch and reports nothing.", trial.number, decision)
        self._stopped = True
        self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Report at the reporting epochs; stop the training when the trial must end."""
        logs = dict(logs or {})
        if self._bound is None or self._stopped or not self._due(epoch, logs):
            return
        self._due_epochs += 1
        if self._judge(self._bound, epoch, logs):
            self._stopped = True
            self.model.stop_training = True

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        """Forget the trial once ``fit`` ends (a later ``evaluate`` reports nothing).

        Before that, warn when no epoch of the fit was a reporting one (fewer epochs than
        ``interval``, or another callback stopped the training first), as the Lightning
        callback warns about a fit without a validation: otherwise the only trace would be the
        run loop's generic "reported no value". It only warns: another fit of the same trial
        may still report.
        """
        if self._bound is not None and not self._due_epochs and not self._stopped:
            self._nothing_reported(self._bound)
        self._forget()

    # -- the decision -------------------------------------------------------------------------

    def _due(self, epoch: int, logs: Mapping[str, Any]) -> bool:
        """True at a reporting epoch: Keras' ``validation_freq`` rule with ``interval``."""
        return (epoch + 1) % self.interval == 0

    def _judge(self, trial: Trial, epoch: int, logs: dict[str, Any]) -> bool:
        """Report the monitored value; True when the trial must end (pruned or failed)."""
        key = self.monitor or trial.study.metric
        value = as_number(logs.get(key))
        if value is None:
            last = max(trial.intermediate_values, default=None)
            self._unusable_metric(trial, unusable_metric_reason(
                key, logs, last, advice=self._missing_metric_advice))
            return True
        check_step(trial, epoch, self._floor)
        trial.report(value, epoch)
        if not trial.should_prune():
            return False
        if trial.fail_reason is None:  # a non-finite value fails rather than prunes
            trial.mark_pruned()
            _logger.info("Trial %d pruned at step %d (%s=%.6g).", trial.number, epoch, key,
                         value)
        return True

    def _unusable_metric(self, trial: Trial, reason: str) -> None:
        """Fail the trial whose monitored metric is missing or not a scalar (keras_tune
        overrides this)."""
        warn_user(f"HPOCallback: {reason}; trial {trial.number} ends as FAIL.")
        trial.mark_failed(reason)

    def _nothing_reported(self, trial: Trial) -> None:
        """Warn that this fit reported nothing to ``trial`` (keras_tune overrides this)."""
        epochs = self.params.get("epochs") if isinstance(self.params, Mapping) else None
        warn_user(
            f"HPOCallback: no epoch of this fit of trial {trial.number} was a reporting one "
            f"(fit epochs={epochs}; it reports at the epochs whose number counted from 1 is a "
            f"multiple of interval={self.interval}), so it reported nothing. Run more epochs, "
            f"lower `interval`, or check the callbacks that stop the training early")

    # -- bookkeeping --------------------------------------------------------------------------

    def _forget(self) -> None:
        self._bound = None
        self._stopped = False
        self._floor = None
        self._due_epochs = 0

    def _announce(self) -> None:
        if not self._announced:
            self._announced = True
            _logger.info(NO_TRIAL_NOTICE)


def check_step(trial: Trial, epoch: int, floor: int | None) -> None:
    """Refuse a report at or below ``floor``, the trial's last step before this ``fit``, with the
    Keras fix (``initial_epoch``).

    That happens when a trial calls ``fit`` twice (fine-tuning after a frozen stage) and the
    second ``fit`` counts epochs from 0 again. The core refuses only steps that go back, so a
    first fit of one epoch followed by a second from epoch 0 would silently overwrite step 0.

    Raises:
        ConfigurationError: ``epoch`` is not above ``floor``.
    """
    last = floor
    if last is None or epoch > last:
        return
    raise ConfigurationError(
        f"Expected this fit to go on from the epochs trial {trial.number} already reported "
        f"(the last at step {last}). Received: epoch={epoch}, so a later model.fit in the same "
        f"trial counts its epochs from 0 again. Pass initial_epoch={last + 1} to it (and "
        f"epochs={last + 1} + the epochs to add), as Keras' fine-tuning recipe does.")


def unusable_metric_reason(key: str, logs: Mapping[str, Any], last: int | None = None, *,
                           advice: str = MISSING_METRIC_ADVICE) -> str:
    """Why ``logs[key]`` cannot be reported: it is not logged, or it is not a scalar.

    ``last`` is the trial's last reported step (None: the metric never appeared in the trial);
    ``advice``: see :func:`missing_metric_reason`.
    """
    if logs.get(key) is None:
        return missing_metric_reason(key, list(logs), last, advice=advice)
    return (f"{not_a_scalar_reason(key, logs[key])}; monitor a scalar metric, e.g. compile "
            f"keras.metrics.F1Score(average='macro') rather than a per-class one")


def missing_metric_reason(key: str, logged: list[str], last: int | None = None, *,
                          advice: str = MISSING_METRIC_ADVICE) -> str:
    """Why a trial fails when ``key`` is not among the ``logged`` metric names.

    A metric that never appeared in the trial (``last`` None) is most often a typo, so the
    closest logged name is suggested, followed by ``advice``, the fixes in the caller's own
    terms (``HPOCallback``'s arguments, or ``keras_tune``'s); one reported up to step ``last``
    is the right name, and the message says so instead.
    """
    if last is not None:
        return (f"the monitored metric {key!r} was reported up to step {last} but was not "
                f"logged by fit at the end of this epoch "
                f"({logged_names(key, logged, suggest=False)}). Log it at every reporting "
                f"epoch: pass the validation data to every fit that reports a 'val_*' metric, "
                f"and compile every model with the metric")
    numbered = sorted(name for name in logged if re.fullmatch(re.escape(key) + r"_\d+", name))
    if numbered:
        return (f"the monitored metric {key!r} was not logged by fit at the end of the epoch, "
                f"but {numbered[0]!r} was ({logged_names(key, logged, suggest=False)}): Keras "
                f"numbers a metric's default name when another metric object of that name "
                f"already exists in the process. Call keras.backend.clear_session() before "
                f"building each model (keras_tune does), or name the metric, e.g. "
                f"keras.metrics.AUC(name='auc')")
    return (f"the monitored metric {key!r} was not logged by fit at the end of the epoch "
            f"({logged_names(key, logged)}). {advice}")
