"""Both storages word the same mistakes the same way, with what was expected and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hpo_plugins._frozen import Direction, TrialState
from hpo_plugins.exceptions import (
    DuplicateStudyError,
    StudyNotFoundError,
    TrialFinishedError,
    TrialNotFoundError,
)
from hpo_plugins.storages import InMemoryStorage, SQLStorage, Storage


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Storage]:
    if request.param == "memory":
        return InMemoryStorage
    return lambda: SQLStorage(f"sqlite:///{tmp_path}/m.db")


def test_mistakes_get_the_same_words_in_every_storage(make: Callable[[], Storage]) -> None:
    storage = make()
    study_id = storage.create_study("s", Direction.MINIMIZE)
    trial = storage.create_trial(study_id)
    storage.finish_trial(trial.trial_id, TrialState.COMPLETE, 1.0)
    with pytest.raises(StudyNotFoundError, match=r"^No study with id 999 in this storage\. "
                                                 r"Expected the id of an existing study "
                                                 r"\(storage\.get_study_id\(name\) gives it"):
        storage.get_study(999)
    with pytest.raises(TrialNotFoundError, match=r"^No trial with id 999 in this storage\. "
                                                 r"Expected the storage id of an existing trial "
                                                 r"\(FrozenTrial\.trial_id, which is not its "
                                                 r"number"):
        storage.get_trial(999)
    with pytest.raises(DuplicateStudyError, match=r"^A study named 's' already exists\. Open it "
                                                  r"with hpo\.load_study\('s', storage\)"):
        storage.create_study("s", Direction.MINIMIZE)
    with pytest.raises(TrialFinishedError, match=r"^Trial 0 is already COMPLETE; finished trials "
                                                 r"are immutable\. Report, set attributes"):
        storage.finish_trial(trial.trial_id, TrialState.FAIL, None)
    for n in range(25):
        storage.create_study(f"t{n:02d}", Direction.MINIMIZE)
    with pytest.raises(StudyNotFoundError, match=r"^No study named 'x' in .*\. Existing studies: "
                                                 r"\['s', 't00', .*'t18'\] \(and 6 more\)\.$"):
        storage.get_study_id("x")
    storage.close()
