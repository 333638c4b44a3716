"""Which way a Keras metric is better: a table of names, and the explicit direction checks."""

from __future__ import annotations

import pytest

from hpo_plugins import Direction
from hpo_plugins._direction import resolve_direction
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras import infer_direction

MIN, MAX = Direction.MINIMIZE, Direction.MAXIMIZE


@pytest.mark.parametrize(("objective", "expected"), [
    ("loss", MIN),
    ("val_loss", MIN),
    ("val_sparse_categorical_crossentropy", MIN),
    ("val_mean_squared_error", MIN),
    ("val_mse", MIN),
    ("mae", MIN),
    ("val_kl_divergence", MIN),
    ("accumulated_loss", MIN),  # "acc" counts only as a whole part of the name
    ("accuracy", MAX),
    ("val_accuracy", MAX),
    ("val_sparse_categorical_accuracy", MAX),
    ("val_acc", MAX),
    ("val_auc", MAX),
    ("val_auc_1", MAX),
    ("val_precision", MAX),
    ("val_recall", MAX),
    ("val_f1_score", MAX),
    ("val_iou", MAX),
    ("val_mean_io_u", MAX),  # Keras snake-cases MeanIoU as mean_io_u
    ("val_io_u_1", MAX),
    ("val_one_hot_mean_io_u", MAX),
    ("val_sensitivity_at_specificity", MAX),
    ("val_specificity_at_sensitivity", MAX),
    ("val_ratio_u", None),  # "io_u" counts only as whole parts
    ("VAL_ACCURACY", MAX),
    ("val_true_positives", None),  # says neither
    ("val_loss_accuracy", None),  # says both
    ("val_precision_error", None),
    ("score", None),
])
def test_direction_read_from_the_name(objective: str, expected: Direction | None) -> None:
    assert infer_direction(objective) is expected


def test_the_names_keras_logs_for_its_iou_metrics_are_maximised() -> None:
    import keras

    metrics = [keras.metrics.MeanIoU(num_classes=2), keras.metrics.BinaryIoU(),
               keras.metrics.IoU(num_classes=2, target_class_ids=[0]),
               keras.metrics.OneHotIoU(num_classes=2, target_class_ids=[0]),
               keras.metrics.OneHotMeanIoU(num_classes=2)]

    directions = {m.name: infer_direction(f"val_{m.name}") for m in metrics}

    assert directions == {"mean_io_u": MAX, "binary_io_u": MAX, "io_u": MAX,
                          "one_hot_io_u": MAX, "one_hot_mean_io_u": MAX}


@pytest.mark.parametrize(("objective", "direction", "expected"), [
    ("val_loss", None, MIN),
    ("val_accuracy", None, MAX),
    ("val_loss", "minimize", MIN),
    ("val_accuracy", "MAXIMIZE", MAX),
    ("val_true_positives", "maximize", MAX),  # ambiguous names take the explicit direction
    ("val_custom", Direction.MINIMIZE, MIN),
])
def test_resolved_direction(objective: str, direction: str | Direction | None,
                            expected: Direction) -> None:
    assert resolve_direction(objective, direction) is expected


@pytest.mark.parametrize(("objective", "direction", "message"), [
    ("val_loss", "maximize",
     r"objective='val_loss' is a metric to minimize, but direction='maximize' was given"),
    ("val_true_positives", None,
     r"Cannot tell whether objective='val_true_positives'.*Pass direction='minimize' or "
     r"direction='maximize'"),
    ("val_loss", "lower", r'Expected `direction` to be "minimize" or "maximize"'),
    ("", None, r"Expected `objective` to be a metric name"),
    (None, None, r"Expected `objective` to be a metric name"),
])
def test_direction_errors(objective: str, direction: str | None, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        resolve_direction(objective, direction)


def test_another_name_against_its_direction_warns_and_keeps_the_given_one() -> None:
    """Word rules can misread a chosen name; only Keras' own loss names are certain."""
    with pytest.warns(UserWarning, match=r"objective='val_accuracy' is a metric to maximize, "
                                         r"but direction='minimize'.*ignore this warning"):
        assert resolve_direction("val_accuracy", "minimize") is MIN
