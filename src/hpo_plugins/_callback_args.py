"""What the Lightning and Keras ``HPOCallback``s share: argument checks and metric reading.

Framework-free, so each adapter imports it without pulling in the other framework.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hpo_plugins._direction import infer_direction
from hpo_plugins._numbers import is_integer
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins._frozen import FrozenTrial
    from hpo_plugins.trial import Trial

__all__ = [
    "NO_TRIAL_NOTICE",
    "DirectionProblem",
    "as_number",
    "check_callback_arguments",
    "check_monitor",
    "check_monitor_direction",
    "close_match",
    "logged_names",
    "monitor_direction_problem",
    "not_a_scalar_reason",
    "raise_recorded_stop",
]

#: Logged once by an ``HPOCallback`` that runs outside any trial (it then does nothing).
NO_TRIAL_NOTICE = ("HPOCallback: no trial is active, so it reports nothing. Run the training "
                   "inside a study (hpo.minimize, study.optimize) to tune it.")


def as_number(value: Any) -> float | None:
    """A logged metric (number, NumPy, 0-d tensor or backend scalar) as a float; None if missing
    or not a scalar (tell the two apart with ``value is None``; see :func:`not_a_scalar_reason`).
    """
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


#: How validation metrics' names start (``val_loss``, ``val/loss``, ``valid_acc``...).
_VALIDATION_PREFIXES = ("val_", "val/", "val-", "valid_", "valid/", "validation_",
                        "validation/")


def _validation(name: str) -> bool:
    """Whether ``name`` reads as a validation metric's."""
    return name.startswith(_VALIDATION_PREFIXES)


def close_match(key: str, names: Iterable[str]) -> str | None:
    """The logged name most like a monitored ``key`` that is missing, or None if none is close.

    A missing monitor is most often a typo (``val_los``, ``val_acc`` for Keras'
    ``val_accuracy``); naming the likely intended metric saves reading the whole list.
    ``difflib``'s default cutoff (0.6) keeps unrelated names out: ``val_acc`` does not suggest
    ``val_loss``. A validation metric (``val_*``, ``val/*``, ``valid_*``...) is only matched to
    validation metrics: a missing ``val_loss`` next to a logged ``loss`` or ``train_loss`` means
    that no validation logged it, and tuning on the training loss instead would be the wrong
    fix.

    With several validation loaders Lightning logs ``val_loss/dataloader_idx_0``, ...: for a
    missing ``val_loss`` the first of those is the match, though ``difflib`` finds it too far.

    Example:
        >>> close_match("val_los", ["train_loss", "val_acc", "val_loss"])
        'val_loss'
        >>> close_match("val_loss", ["val_loss/dataloader_idx_1", "val_loss/dataloader_idx_0"])
        'val_loss/dataloader_idx_0'
        >>> close_match("val_loss", ["loss", "train_loss"]) is None
        True
        >>> close_match("val_loss", ["train/loss", "val/loss"])  # another separator
        'val/loss'
    """
    candidates = sorted({name for name in names if name != key
                         and (_validation(name) or not _validation(key))})
    per_loader = [name for name in candidates if name.startswith(f"{key}/dataloader_idx_")]
    if per_loader:  # Lightning's name for the metric of each of several validation loaders
        return per_loader[0]
    matches = difflib.get_close_matches(key, candidates, n=1)
    return matches[0] if matches else None


def logged_names(key: str, names: Iterable[str], *, suggest: bool = True) -> str:
    """``logged: 'a', 'b'``, the names the framework logged, for a message about a missing
    ``key``; with ``suggest``, followed by ``; did you mean 'b'?`` when one is close.

    Both adapters word the list this way, so a user reads the same message from either.
    Leave ``suggest`` off when ``key`` was logged before and is missing now: the name is right
    then, and a look-alike would send the user after the wrong mistake.

    Example:
        >>> logged_names("val_los", ["val_loss", "train_loss"])
        "logged: 'train_loss', 'val_loss'; did you mean 'val_loss'?"
        >>> logged_names("val_loss", [])
        'logged: none'
    """
    listed = sorted(set(names))
    text = f"logged: {', '.join(repr(name) for name in listed) or 'none'}"
    match = close_match(key, listed) if suggest else None
    return text if match is None else f"{text}; did you mean {match!r}?"


def not_a_scalar_reason(key: str, value: Any) -> str:
    """Why a metric that *is* logged cannot be reported: its value is not one number.

    A per-class metric (Keras' ``F1Score()``, torchmetrics' ``F1Score(average=None)``) logs a
    vector; saying "not logged" there would send the user looking for the wrong mistake. The
    adapters append their own fix (which argument makes the metric a scalar).

    Example:
        >>> import numpy as np
        >>> not_a_scalar_reason("val_f1_score", np.array([0.7, 0.6]))
        "the monitored metric 'val_f1_score' is logged but is not a scalar (shape (2,))"
    """
    shape = getattr(value, "shape", None)
    try:
        what = f"shape {tuple(int(n) for n in shape)}" if shape is not None else None
    except (TypeError, ValueError):  # an unknown dimension, or a shape that is not a sequence
        what = None
    if what is None:
        text = repr(value)
        what = f"{text if len(text) <= 60 else text[:57] + '...'} of type {type(value).__name__}"
    return f"the monitored metric {key!r} is logged but is not a scalar ({what})"


def check_monitor(monitor: object) -> None:
    """Check a ``monitor=`` argument: a non-empty metric name, or None for the default.

    The error says what a user coming from another library most likely meant: Optuna's
    ``PyTorchLightningPruningCallback(trial, "val_loss")`` passes the trial first, Ray Tune's
    ``TuneReportCallback({"loss": "val_loss"})`` a mapping of names.
    """
    if monitor is not None and not (isinstance(monitor, str) and monitor):
        from hpo_plugins._frozen import FrozenTrial
        from hpo_plugins.trial import Trial

        hint = ""
        if isinstance(monitor, (Trial, FrozenTrial)):
            hint = (" The trial goes by keyword, HPOCallback(trial=trial), or not at all: "
                    "inside a run the callback finds the running trial by itself (Optuna's "
                    "callback takes it first).")
        elif isinstance(monitor, dict):
            hint = (" HPOCallback reports one metric, by its logged name: "
                    "HPOCallback('val_loss') (Ray Tune's callback takes a dict of names).")
        raise ConfigurationError(
            f"Expected `monitor` to be a metric name or None. Received: "
            f"monitor={monitor!r}.{hint}")


def check_callback_arguments(monitor: object, trial: object, interval: object) -> int:
    """Check ``HPOCallback(monitor, trial=..., interval=...)`` the same way for every framework.

    Returns:
        ``interval`` as a Python int (a NumPy integer is accepted, as Python's own ints are).
    """
    from hpo_plugins.trial import Trial

    check_monitor(monitor)
    if trial is not None and not isinstance(trial, Trial):
        raise ConfigurationError(
            f"Expected `trial` to be a Trial or None. Received: trial={trial!r} (of type "
            f"{type(trial).__name__}).")
    if not is_integer(interval) or interval < 1:
        raise ConfigurationError(
            f"Expected `interval` to be an integer >= 1. Received: interval={interval!r}.")
    return int(interval)


@dataclasses.dataclass(frozen=True)
class DirectionProblem:
    """A monitored metric whose name says the opposite of the study's direction.

    Attributes:
        message: What was expected, what came in and how to fix it.
        certain: True only for ``val_loss``, the library's default metric, in a study that
            maximises (typically ``hpo.maximize`` without ``metric=``): nothing about that name
            can be misread, so the adapters raise. Any other name is read by word rules that
            can misread it (``val_neg_mse`` is recognised, other phrasings may not be), so the
            adapters only warn.
    """

    message: str
    certain: bool


def monitor_direction_problem(key: str, trial: Trial, *, explicit: bool,
                              accuracy: str = "val_acc") -> DirectionProblem | None:
    """How the monitored metric ``key`` contradicts the study's direction, or None.

    Only a name that says its direction (:func:`hpo_plugins._direction.infer_direction`) is
    checked: ``val_accuracy`` in a study that minimises, or the default ``val_loss`` in one that
    maximises, would be optimised the wrong way without a word, the pruner keeping the worst
    trials. A name that says neither (``val_true_positives``) is the study's business.
    ``explicit`` tells a ``monitor=`` the user gave from the study's metric used by default.
    ``accuracy``: the validation accuracy's name in the caller's framework, which the fix
    suggests (Lightning modules usually log ``val_acc``, Keras logs ``val_accuracy``).
    """
    from hpo_plugins._study_open import DEFAULT_METRIC

    implied = infer_direction(key)
    wanted = trial.study.direction
    if implied is None or implied is wanted:
        return None
    certain = key == DEFAULT_METRIC
    if explicit:
        given = f"monitor={key!r}"
        fix = (f"Run the study with hpo.{implied.value}(..., metric={key!r}) (or "
               f"create_study(direction={implied.value!r}, metric={key!r})), or monitor a "
               f"metric to {wanted.value}")
    elif certain:
        given = (f"the study's metric {key!r}, monitored by default (the default metric "
                 f"when hpo.{wanted.value} or create_study get no metric=)")
        fix = (f"Name the metric the study optimises: hpo.{wanted.value}(..., "
               f"metric={accuracy!r}) (any logged name) with HPOCallback(), or pass "
               f"HPOCallback(monitor=...)")
    else:
        given = f"the study's metric {key!r} (monitored by default)"
        fix = (f"Check the study's direction and metric=, or monitor a metric to "
               f"{wanted.value} with HPOCallback(monitor=...)")
    # no trial number: the same warning for every trial is then shown once, not once per trial
    message = (f"Expected a metric to {wanted.value}, as the study {trial.study.study_name!r} "
               f"does. Received: {given}, which reads as a metric to {implied.value}. {fix}.")
    if not certain:
        message += (" If the name misleads the rules (they read words such as 'loss', "
                    "'error', 'acc', 'f1' in it), the run is right: ignore this warning")
    return DirectionProblem(message, certain)


def check_monitor_direction(key: str, trial: Trial, *, explicit: bool,
                            accuracy: str = "val_acc") -> None:
    """Raise a certain :func:`monitor_direction_problem`, warn about any other.

    Raises:
        ConfigurationError: ``val_loss`` is monitored in a study that maximises.
    """
    problem = monitor_direction_problem(key, trial, explicit=explicit, accuracy=accuracy)
    if problem is None:
        return
    if problem.certain:
        raise ConfigurationError(f"HPOCallback: {problem.message}")
    warn_user(f"HPOCallback: {problem.message}.")


def raise_recorded_stop(frozen: FrozenTrial, attr: str) -> None:
    """An objective's ``after_trial``: raise the set-up error stored under ``attr`` on the
    finished trial, to stop the study even when ``catch=`` caught it in the trial.

    It reads the finished trial, not the objective: with ``n_jobs`` > 1 the trial ran on a copy
    of the objective in a worker process, and only the launching process runs study callbacks.

    Raises:
        ConfigurationError: ``frozen`` holds such an error.
    """
    message = frozen.system_attrs.get(attr)
    if message is not None:
        raise ConfigurationError(str(message))
