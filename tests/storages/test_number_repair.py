"""A study whose ``next_number`` fell behind its trials' numbers repairs itself (an upgrade
reviewer's finding: an hpo_plugins from before schema 2 still running on an upgraded database
numbers trials ``max + 1`` without raising the counter, and every later trial of the current
code failed on UNIQUE(study_id, number), for good, even after the old process stopped)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from hpo_plugins._frozen import Direction, TrialState
from hpo_plugins.exceptions import DuplicateParamsError
from hpo_plugins.storages import SQLStorage

pytest_plugins = ["conftest_postgres"]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/n.db"
    return str(request.getfixturevalue("clean_postgres_url"))


def _set_counter_back(url: str, study_id: int, value: int) -> None:
    """What a schema-1 writer leaves behind: trials numbered past the study's counter."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE hpo_studies SET next_number = :n WHERE study_id = :s"),
                     {"n": value, "s": study_id})
    engine.dispose()


def test_a_counter_behind_the_trials_is_repaired_with_a_warning(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLStorage(url)
    study_id = store.create_study("s", Direction.MINIMIZE)
    for _ in range(3):
        store.start_trial(study_id)
    _set_counter_back(url, study_id, 1)
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        started = store.start_trial(study_id)  # the quick path
    assert started is not None and started[0].number == 3
    assert "trial numbers were taken without the study's counter" in caplog.text
    assert "every machine must run the same version" in caplog.text
    _set_counter_back(url, study_id, 0)
    limited = store.start_trial(study_id, limit=100)  # the locked path
    assert limited is not None and limited[0].number == 4
    _set_counter_back(url, study_id, 2)
    created = store.create_trial(study_id, state=TrialState.WAITING, dedup_key="k")
    assert created is not None and created.number == 5
    assert [t.number for t in store.get_all_trials(study_id)] == [0, 1, 2, 3, 4, 5]
    store.close()


def test_other_integrity_errors_are_not_taken_for_it(url: str) -> None:
    store = SQLStorage(url)
    study_id = store.create_study("s", Direction.MINIMIZE)
    store.create_trial(study_id, dedup_key="k")
    with pytest.raises(DuplicateParamsError):
        store.create_trial(study_id, dedup_key="k")
    assert [t.number for t in store.get_all_trials(study_id)] == [0]
    store.close()
