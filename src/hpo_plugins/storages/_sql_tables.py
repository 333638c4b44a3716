"""The tables of the SQL storage and the UTC timestamp column type."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

__all__ = ["UTCDateTime", "schema_metadata", "studies_table", "trials_table", "values_table",
           "version_table"]
_UTC = _dt.timezone.utc


# -- schema -----------------------------------------------------------------------------------


class UTCDateTime(sa.types.TypeDecorator[_dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL stores ``timestamptz``; values are converted to UTC when read. SQLite keeps no
    time zone: values are written as naive UTC text in SQLAlchemy's own SQLite format
    (``2024-05-01 12:00:00.000000``, so text order is time order) and get ``tzinfo=UTC`` back.
    The SQLite processors are plain functions rather than SQLAlchemy's chain of converters,
    because a snapshot of a study parses three timestamps per trial.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_datetime_out
        return super().bind_processor(dialect)

    def result_processor(self, dialect: sa.Dialect,
                         coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_datetime_in
        return super().result_processor(dialect, coltype)

    def process_bind_param(self, value: _dt.datetime | None,
                           dialect: sa.Dialect) -> _dt.datetime | None:
        return None if value is None else value.astimezone(_UTC)

    def process_result_value(self, value: _dt.datetime | None,
                             dialect: sa.Dialect) -> _dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)


def _sqlite_datetime_out(value: _dt.datetime | None) -> str | None:
    """Aware datetime -> ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, without the offset."""
    if value is None:
        return None
    return value.astimezone(_UTC).isoformat(" ", "microseconds")[:26]


def _sqlite_datetime_in(value: str | None) -> _dt.datetime | None:
    """Stored text -> aware UTC datetime.

    Appending the offset is ten times faster than ``datetime.replace(tzinfo=...)``.
    """
    return None if value is None else _dt.datetime.fromisoformat(value + "+00:00")


schema_metadata = sa.MetaData()

version_table = sa.Table(
    "hpo_schema_version", schema_metadata,
    sa.Column("schema_version", sa.Integer, primary_key=True, autoincrement=False),
)

# sqlite_autoincrement: ids of deleted studies and trials are never handed out again, so a
# stale handle in another process can never write into somebody else's trial.
studies_table = sa.Table(
    "hpo_studies", schema_metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("attrs", sa.Text, nullable=False),
    sa.Column("datetime_created", UTCDateTime, nullable=False),
    # The number the study's next trial takes (see "Numbers" in the module docstring).
    sa.Column("next_number", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("name", name="uq_hpo_studies_name"),
    sqlite_autoincrement=True,
)

trials_table = sa.Table(
    "hpo_trials", schema_metadata,
    sa.Column("trial_id", sa.Integer, primary_key=True),
    sa.Column("study_id", sa.Integer,
              sa.ForeignKey("hpo_studies.study_id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("natural", sa.Text, nullable=True),
    sa.Column("user_attrs", sa.Text, nullable=False),
    sa.Column("system_attrs", sa.Text, nullable=False),
    sa.Column("dedup_key", sa.String, nullable=True),
    sa.Column("datetime_start", UTCDateTime, nullable=True),
    sa.Column("datetime_complete", UTCDateTime, nullable=True),
    sa.Column("last_heartbeat", UTCDateTime, nullable=True),
    # Serves get_all_trials (by study, by number) and max(number) for the next number.
    sa.UniqueConstraint("study_id", "number", name="uq_hpo_trials_number"),
    sa.UniqueConstraint("study_id", "dedup_key", name="uq_hpo_trials_dedup_key"),
    # Serves the limit count, the oldest WAITING trial and the stale-heartbeat scan.
    sa.Index("ix_hpo_trials_study_state", "study_id", "state", "number"),
    sqlite_autoincrement=True,
)

# value is nullable because SQLite stores NaN as NULL; NULL is read back as NaN.
values_table = sa.Table(
    "hpo_trial_values", schema_metadata,
    sa.Column("trial_id", sa.Integer,
              sa.ForeignKey("hpo_trials.trial_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Double, nullable=True),
)
