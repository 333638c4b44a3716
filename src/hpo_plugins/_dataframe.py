"""``Study.trials_dataframe()``: one row per trial, stable columns.

The same records feed the CLI's ``trials`` table and its CSV/JSON ``export``, so the three views
always agree. Parameters are shown from the space's description: the study's own space when it
has one, else the description stored with the study (``load_study(name)``, the CLI), read once
per call however many trials there are. Either way a parameter looks the same: a choice shows
its option, an integer parameter an ``int``, any other a ``float``, and an inactive one None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import FrozenTrial
from hpo_plugins.space import CHOICE_KINDS

if TYPE_CHECKING:
    import pandas as pd

    from hpo_plugins.study import Study

__all__ = ["FIXED_COLUMNS", "space_description", "trial_records", "trials_dataframe"]

#: The columns every table of trials starts with, in this order.
FIXED_COLUMNS = ("number", "state", "value", "datetime_start", "datetime_complete",
                 "duration_s", "last_step")


def space_description(study: Study) -> list[Mapping[str, Any]]:
    """The description of every parameter (:meth:`~hpo_plugins.space.SearchSpace.describe`).

    From the study's space when it has one, else from the storage (one read); empty for a study
    that never recorded a space.
    """
    if study.space is not None:
        return list(study.space.describe())
    return list(study.storage.get_study(study.study_id).attrs.get("space") or [])


def trial_records(study: Study, trials: Sequence[FrozenTrial]
                  ) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and one record per trial, each record holding every column.

    The columns do not depend on which trials exist: :data:`FIXED_COLUMNS`, then
    ``params_<label>`` for every parameter of the space in its order, then ``user_attrs_<key>``
    for every key any of ``trials`` set (sorted), then ``fail_reason``. A record leaves a cell it
    has no value for as None.
    """
    described = space_description(study)
    keys = sorted({key for trial in trials for key in trial.user_attrs})
    columns = [*FIXED_COLUMNS, *(f"params_{p['label']}" for p in described),
               *(f"user_attrs_{key}" for key in keys), "fail_reason"]
    records = []
    for trial in trials:
        row = _row(trial, described)
        records.append({column: row.get(column) for column in columns})
    return columns, records


def _row(trial: FrozenTrial, described: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.value,
        "value": trial.value,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "duration_s": None if trial.duration is None else trial.duration.total_seconds(),
        "last_step": trial.last_step,
        "fail_reason": trial.fail_reason,
    }
    for param in described:
        row[f"params_{param['label']}"] = _shown(param, trial.params)
    for key, value in trial.user_attrs.items():
        row[f"user_attrs_{key}"] = value
    return row


def _shown(param: Mapping[str, Any], flat: Mapping[str, Any]) -> Any:
    """A parameter's cell, as :meth:`~hpo_plugins.space.SearchSpace.display` shows it."""
    raw = flat.get(str(param["label"]))
    if raw is None:
        return None  # inactive in this trial
    if param["kind"] in CHOICE_KINDS:
        options = param.get("options")
        return options[int(raw)] if options else raw
    return int(raw) if param.get("integer") else float(raw)


def trials_dataframe(study: Study) -> pd.DataFrame:
    """Build the dataframe; pandas is imported here, not at package import."""
    import pandas as pd

    columns, records = trial_records(study, study.trials)
    frame = pd.DataFrame(records, columns=columns)
    for column in columns:
        if column == "last_step" or _integers_with_gaps(records, column):
            # last_step always: a study whose trials reported nothing yet has None only
            # pandas would make 6 a 6.0 beside an empty cell: the nullable integer keeps 6
            frame[column] = frame[column].astype("Int64")
    return frame


def _integers_with_gaps(records: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether ``column`` holds ints (not bools) and at least one empty cell (an inactive
    conditional parameter, a trial that reported no step)."""
    values = [record[column] for record in records]
    present = [v for v in values if v is not None]
    return (0 < len(present) < len(values)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in present))
