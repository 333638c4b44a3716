"""What the Lightning and Keras ``HPOCallback``s share: argument checks and metric reading.

Framework-free, so each adapter imports it without pulling in the other framework.
"""

from __future__ import annotations

from typing import Any

from hpo_plugins.exceptions import ConfigurationError

__all__ = ["NO_TRIAL_NOTICE", "as_number", "check_callback_arguments", "check_monitor"]

#: Logged once by an ``HPOCallback`` that runs outside any trial (it then does nothing).
NO_TRIAL_NOTICE = ("HPOCallback: no trial is active, so it reports nothing. Run the training "
                   "inside a study (hpo.minimize, study.optimize) to tune it.")


def as_number(value: Any) -> float | None:
    """A logged metric (number, NumPy, 0-d tensor or backend scalar) as a float; None if missing
    or not a scalar."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def check_monitor(monitor: object) -> None:
    """Check a ``monitor=`` argument: a non-empty metric name, or None for the default."""
    if monitor is not None and not (isinstance(monitor, str) and monitor):
        raise ConfigurationError(
            f"Expected `monitor` to be a metric name or None. Received: monitor={monitor!r}.")


def check_callback_arguments(monitor: object, trial: object, interval: object) -> None:
    """Check ``HPOCallback(monitor, trial=..., interval=...)`` the same way for every framework."""
    from hpo_plugins.trial import Trial

    check_monitor(monitor)
    if trial is not None and not isinstance(trial, Trial):
        raise ConfigurationError(
            f"Expected `trial` to be a Trial or None. Received: trial={trial!r} (of type "
            f"{type(trial).__name__}).")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigurationError(
            f"Expected `interval` to be an integer >= 1. Received: interval={interval!r}.")
