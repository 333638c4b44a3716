"""What hpo_plugins writes into TensorBoard, as constants (importable without ``tensorboard``)."""

from __future__ import annotations

import reprlib
from typing import TYPE_CHECKING

from hpo_plugins._frozen import TrialState
from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = [
    "INTERMEDIATE_TAG",
    "STATE_CODES",
    "STATE_TAG",
    "TENSORBOARD_STATUS",
    "VALUE_TAG",
    "run_dir",
]

#: Scalar tag of the trial's final value (written when it ends; none for a FAIL trial).
VALUE_TAG = "hpo/value"
#: Scalar tag of every value the trial reports (``Trial.report``), at its step.
INTERMEDIATE_TAG = "hpo/intermediate"
#: Scalar tag of the trial's exact state, as a code of :data:`STATE_CODES`; written when it ends
#: (by the process that ends it), so a running trial has none.
STATE_TAG = "hpo/state"

#: The value of the ``hpo/state`` metric for each state. RUNNING's code is never written: a
#: running trial's ``state`` cell is empty.
STATE_CODES: dict[TrialState, int] = {
    TrialState.RUNNING: 0,
    TrialState.COMPLETE: 1,
    TrialState.PRUNED: 2,
    TrialState.FAIL: 3,
}

#: The HParams session status (``tensorboard.hparams.Status``) a finished trial ends with.
#: TensorBoard has no "aborted" status: a PRUNED trial ends as ``STATUS_UNKNOWN``, so that the
#: "Failure" filter keeps only trials that broke; its ``hpo/state`` is 2. A RUNNING trial has
#: no session end yet, which TensorBoard also shows as "Unknown", and no ``hpo/state`` yet.
TENSORBOARD_STATUS: dict[TrialState, str] = {
    TrialState.COMPLETE: "STATUS_SUCCESS",
    TrialState.PRUNED: "STATUS_UNKNOWN",
    TrialState.FAIL: "STATUS_FAILURE",
}


def run_dir(trial: Trial) -> str | None:
    """The TensorBoard run directory of ``trial``, or None when its study has no ``logdir``.

    It is the trial's own directory (``trial.log_dir``, ``<logdir>/trial_<number>``): a
    framework logger pointed at it writes its curves into the same run as the trial's HParams
    session. Adapters call it to decide where (and whether) to put their TensorBoard logger.

    Example:
        >>> import hpo_plugins as hpo
        >>> study = hpo.create_study(space={"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:")
        >>> run_dir(study.ask()) is None  # no logdir: leave the framework's logger alone
        True

    Raises:
        ConfigurationError: ``trial`` is not a running :class:`~hpo_plugins.Trial`.
    """
    from hpo_plugins.trial import Trial  # here: importing this module stays light

    if not isinstance(trial, Trial):
        raise ConfigurationError(
            f"Expected `trial` to be a Trial, as study.ask() or hpo.current_trial() return. "
            f"Received: trial={reprlib.repr(trial)} (of type {type(trial).__name__}). Inside an "
            f"objective, pass hpo.current_trial()."
        )
    return trial.log_dir if trial.study.logdir is not None else None
