"""Which way a metric is better, read from its name (Keras, Lightning and torchmetrics names).

Keras names logged metrics after the loss and the compiled metrics, with ``val_`` in front of
the validation ones and sometimes a ``_1`` suffix; Lightning users log names of their own choice,
usually in the same style (``val_loss``, ``val_acc``). The rules are a table of words: a name is a
loss when it holds a *minimise* word, a score when it holds a *maximise* word, and ambiguous
when it holds both or neither. Long words match anywhere in the name (``"*loss*"``); short
abbreviations only as a whole ``_``-separated part (``"val_acc"`` but not ``"accumulated"``).
Keras snake-cases its IoU metrics' class names into ``io_u`` (``MeanIoU`` logs ``mean_io_u``), so
that pair of parts is read as the one word ``iou``.

Framework-free: both adapters' ``HPOCallback`` use it (``keras_tune`` also to pick a direction).
"""

from __future__ import annotations

import difflib
import re

from hpo_plugins._frozen import Direction
from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import ConfigurationError

__all__ = ["infer_direction", "resolve_direction"]

_MINIMIZE_WORDS = ("loss", "error", "crossentropy", "hinge", "divergence")
_MINIMIZE_PARTS = frozenset({"mse", "mae", "mape", "msle", "rmse", "logcosh"})
_MAXIMIZE_WORDS = ("accuracy", "auc", "precision", "recall", "sensitivity", "specificity")
_MAXIMIZE_PARTS = frozenset({"acc", "f1", "fbeta", "iou", "r2"})
#: Keras' own names for the compiled loss: nothing about them can be misread.
_CERTAIN_LOSSES = frozenset({"loss", "val_loss"})
#: Parts that turn a name's direction around or make it unclear: scikit-learn's negated scores
#: (``neg_mean_squared_error``, ``neg_log_loss``), ``1_minus_acc``, ``inaccuracy``,
#: ``val_loss_improvement``. A name with one says no direction (the user must name it).
_REVERSING_PARTS = frozenset({
    "neg", "negative", "negated", "minus", "inv", "inverse", "inverted", "reciprocal",
    "inaccuracy", "imprecision", "improvement", "reduction", "decrease", "drop", "gain",
    "delta", "diff", "change",
})
#: ``io_u`` as whole parts: Keras' name for ``IoU`` (``mean_io_u``, ``one_hot_io_u``, ``io_u_1``).
_KERAS_IOU = re.compile(r"(?<![a-z0-9])io_u(?![a-z0-9])")


def infer_direction(objective: str) -> Direction | None:
    """The direction a metric name implies, or None when the name is ambiguous.

    Args:
        objective: A metric name as Keras logs it.

    Returns:
        ``Direction.MINIMIZE`` for losses and errors, ``Direction.MAXIMIZE`` for accuracy, AUC,
        precision, recall, sensitivity, specificity (and F1, IoU, R2), None when the name says
        neither or both, or holds a part that turns it around (``neg``, ``minus``, ``inv``,
        ``improvement``, ``drop``, ``delta``, ...).

    Example:
        >>> infer_direction("val_loss").value, infer_direction("val_accuracy").value
        ('minimize', 'maximize')
        >>> infer_direction("val_mean_io_u").value  # keras.metrics.MeanIoU
        'maximize'
        >>> infer_direction("val_true_positives") is None
        True
        >>> infer_direction("val_neg_mse") is None  # a negated loss: the user says which way
        True
    """
    name = _KERAS_IOU.sub("iou", objective.lower())
    parts = set(re.split(r"[^a-z0-9]+", name))
    if parts & _REVERSING_PARTS:
        return None
    smaller = any(w in name for w in _MINIMIZE_WORDS) or bool(parts & _MINIMIZE_PARTS)
    larger = any(w in name for w in _MAXIMIZE_WORDS) or bool(parts & _MAXIMIZE_PARTS)
    if smaller == larger:
        return None
    return Direction.MINIMIZE if smaller else Direction.MAXIMIZE


def resolve_direction(objective: str, direction: str | Direction | None) -> Direction:
    """The study's direction: the explicit one, checked against the name, else the inferred one.

    A ``direction`` that contradicts another name's words (``"val_accuracy"`` with
    ``"minimize"``) only warns: the words of a name a user chose can mislead the rules.

    Raises:
        ConfigurationError: ``objective`` is not a name; ``direction`` is not minimize/maximize;
            it contradicts Keras' own loss (``"loss"`` or ``"val_loss"`` with ``"maximize"``);
            or the name is ambiguous and no direction was given.
    """
    if not (isinstance(objective, str) and objective):
        raise ConfigurationError(
            f"Expected `objective` to be a metric name such as 'val_loss'. Received: "
            f"objective={objective!r}.{_objective_object_hint(objective)}")
    implied = infer_direction(objective)
    if direction is None:
        if implied is None:
            raise ConfigurationError(
                f"Cannot tell whether objective={objective!r} should be minimised or "
                f"maximised.{_spelling_hint(objective)} Pass direction='minimize' or "
                f"direction='maximize'.")
        return implied
    given = Direction.parse(direction)
    if implied is None or given is implied:
        return given
    message = (f"objective={objective!r} is a metric to {implied.value}, but "
               f"direction={given.value!r} was given. Expected direction={implied.value!r} (or "
               f"leave direction out).")
    if objective in _CERTAIN_LOSSES:
        raise ConfigurationError(message)
    warn_user(f"{message} The name was read by word rules, which a chosen name can "
              f"mislead: if direction={given.value!r} is right, ignore this warning.")
    return given


def _objective_object_hint(objective: object) -> str:
    """How to write Keras Tuner's ``kt.Objective(name, direction)`` (or a list of them) here;
    "" for anything else."""
    name, way = getattr(objective, "name", None), getattr(objective, "direction", None)
    if isinstance(name, str) and way in ("min", "max"):
        return (f" Keras Tuner's Objective becomes objective={name!r}, "
                f"direction={'minimize' if way == 'min' else 'maximize'!r}.")
    if isinstance(objective, (list, tuple)):
        return " One metric is optimised: pass its name, e.g. objective='val_loss'."
    return ""


#: Names Keras and Lightning users monitor most, for the hint of :func:`_spelling_hint`.
_COMMON_NAMES = tuple(f"{prefix}{name}" for prefix in ("", "val_") for name in (
    "loss", "accuracy", "acc", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "auc", "precision", "recall", "mae", "mse", "rmse",
    "mean_absolute_error", "mean_squared_error", "root_mean_squared_error", "f1_score"))


def _spelling_hint(objective: str) -> str:
    """`` Is it a misspelling of 'val_loss'?`` when ``objective`` is close to a common metric
    name whose direction is known (a typo would otherwise send the user to pick a direction
    for a metric that is never logged), else ''."""
    known = [name for name in _COMMON_NAMES if infer_direction(name) is not None]
    close = difflib.get_close_matches(objective, known, n=1, cutoff=0.8)
    return f" Is it a misspelling of {close[0]!r}?" if close else ""
