"""Hyperopt-style result dicts (``{"loss": x, "status": "ok", ...}``), read the same way by the
run loop, :meth:`Study.tell <hpo_plugins.Study.tell>` and :meth:`Study.add_trial
<hpo_plugins.Study.add_trial>`."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpo_plugins._numbers import read_number
from hpo_plugins.exceptions import ConfigurationError, TrialFinishedError

if TYPE_CHECKING:
    from hpo_plugins.trial import Trial

__all__ = ["ResultDict", "json_values", "read_result_dict", "store_other_keys"]

_logger = logging.getLogger(__name__)

#: The keys of a result dict that say its value and its status.
RESULT_KEYS = frozenset({"loss", "value", "status"})

#: Keys whose text, in a failed result dict, says why (added to the trial's reason).
_REASON_KEYS = ("reason", "error", "message", "failure")


@dataclasses.dataclass(frozen=True)
class ResultDict:
    """A result dict taken apart.

    Attributes:
        value: What ``"loss"`` (else ``"value"``) holds; None with a ``failure``.
        failure: Why the result is a failed trial (a status other than ok, no value, a None
            value), or None.
        others: The remaining keys (``"accuracy"``, ``"true_loss"``...), kept as user
            attributes, as Hyperopt keeps them in ``trials.results``.
    """

    value: Any
    failure: str | None
    others: dict[str, Any]


def read_result_dict(result: Mapping[Any, Any]) -> ResultDict:
    """Split ``result`` into its value, its failure and its other keys."""
    others = {str(k): v for k, v in result.items() if k not in RESULT_KEYS}
    status = str(result.get("status", "ok")).lower()
    if status not in ("ok", "complete"):
        # Hyperopt keeps a failed result whole (trials.losses() still shows its loss): a
        # finite loss or value is kept as a user attribute, and a text saying why joins the
        # reason
        for key in ("loss", "value"):
            number, _ = read_number(result.get(key))
            if number is not None and math.isfinite(number):
                others[key] = number
        said = next((f"{k}: {result[k]}" for k in _REASON_KEYS
                     if isinstance(result.get(k), str) and result[k].strip()), None)
        return ResultDict(None, f"the objective returned status {result.get('status')!r}"
                                + (f" ({said})" if said else ""), others)
    if "loss" not in result and "value" not in result:
        return ResultDict(None, f"the objective returned a dict without 'loss' or 'value': "
                                f"{sorted(map(str, result))}", others)
    key = "loss" if "loss" in result else "value"
    if result[key] is None:
        return ResultDict(None, f"the objective returned a dict whose {key!r} is None; "
                                f"expected a number", others)
    return ResultDict(result[key], None, others)


def store_other_keys(trial: Trial, others: Mapping[str, Any]) -> None:
    """Store ``others`` as the trial's user attributes; one that JSON cannot hold (a model, a
    figure) is left out with a warning, and never fails the trial."""
    for key, value in others.items():
        try:
            trial.set_user_attr(key, value)
        except TrialFinishedError:  # failed elsewhere meanwhile: its tell says what happens
            return
        except ConfigurationError as exc:
            _logger.warning("Trial %d: the key %r of the returned dict was not stored (%s). "
                            "Return JSON values (numbers, text, lists, dicts), or save the "
                            "object in trial.log_dir.", trial.number, key, exc)


def json_values(others: Mapping[str, Any]) -> dict[str, Any]:
    """``others`` without the values JSON cannot hold (each left out with a warning), for
    :meth:`Study.add_trial <hpo_plugins.Study.add_trial>`, which stores them at once."""
    from hpo_plugins.storages._base import json_copy

    kept = {}
    for key, value in others.items():
        try:
            kept[key] = json_copy(value, f"the key {key!r} of the result")
        except ConfigurationError as exc:
            _logger.warning("The key %r of the result dict was not stored (%s).", key, exc)
    return kept
