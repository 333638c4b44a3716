"""``Study.trials_dataframe()``: one row per trial, stable columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import FrozenTrial

if TYPE_CHECKING:
    import pandas as pd

    from hpo_plugins.study import Study

__all__ = ["trial_row", "trials_dataframe"]


def trial_row(study: Study, trial: FrozenTrial) -> dict[str, Any]:
    """The flat record of one trial (also used by CSV/JSON exports)."""
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.value,
        "value": trial.value,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "duration_s": None if trial.duration is None else trial.duration.total_seconds(),
        "last_step": trial.last_step,
    }
    for label, shown in _display(study, trial).items():
        row[f"params_{label}"] = shown
    for key, value in sorted(trial.user_attrs.items()):
        row[f"user_attrs_{key}"] = value
    if trial.fail_reason is not None:
        row["fail_reason"] = trial.fail_reason
    return row


def _display(study: Study, trial: FrozenTrial) -> dict[str, Any]:
    if study.space is not None:
        return study.space.display(trial.params)
    described = study.storage.get_study(study.study_id).attrs.get("space") or []
    out: dict[str, Any] = {}
    for param in described:
        label = param["label"]
        raw = trial.params.get(label)
        options = param.get("options") or []
        out[label] = options[int(raw)] if raw is not None and options else raw
    return out


def trials_dataframe(study: Study) -> pd.DataFrame:
    """Build the dataframe; pandas is imported here, not at package import."""
    import pandas as pd

    rows = [trial_row(study, t) for t in study.trials]
    frame = pd.DataFrame(rows)
    if "fail_reason" not in frame.columns:
        frame["fail_reason"] = None
    return frame
