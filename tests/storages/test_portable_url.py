"""``Storage.portable_url``: the documented way a storage says which database it reaches (it
was read from storages without being part of their contract)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.context import trial_env
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.storages import InMemoryStorage, SQLStorage, Storage

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


class _NoURL(SQLStorage):
    """A shared storage that cannot say where it lives (a client of a service, say)."""

    @property
    def portable_url(self) -> str | None:
        return None


def test_the_base_class_has_none_and_sql_storage_an_absolute_one(tmp_path: Path) -> None:
    assert InMemoryStorage().portable_url is None and Storage.portable_url is None
    tagged = InMemoryStorage()
    tagged.portable_url = "memory://tagged"  # a storage of one's own may set it as an attribute
    assert tagged.portable_url == "memory://tagged"
    store = SQLStorage(f"sqlite:///{tmp_path}/a.db")
    assert store.portable_url == f"sqlite:///{tmp_path}/a.db"
    store.close()


def test_two_handles_without_a_url_are_told_apart_with_a_message_that_says_why(
        tmp_path: Path) -> None:
    """The message read "Expected a trial of study 'p'. Received trial 0 of study 'p'"."""
    url = f"sqlite:///{tmp_path}/p.db"
    first = hpo.create_study(SPACE, study_name="p", storage=_NoURL(url))
    second = hpo.load_study("p", storage=_NoURL(url))
    trial = first.ask()
    with pytest.raises(ConfigurationError, match=r"Received trial 0 of study 'p' through "
                                                 r"_NoURL.*not known to reach the same "
                                                 r"database.*portable_url, which _NoURL "
                                                 r"has none and _NoURL has none"):
        second.tell(trial, 0.5)
    plain = hpo.load_study("p", storage=SQLStorage(url))  # same file, with URLs: one database
    plain.tell(hpo.load_study("p", storage=SQLStorage(url), space=SPACE).ask(), 0.25)
    assert [t.value for t in plain.trials if t.value is not None] == [0.25]


class _SharedWithoutURL(InMemoryStorage):
    """A storage that processes could share (a client of a service) but that names no URL."""

    multiprocess = True


def test_a_trial_of_a_storage_without_a_url_cannot_be_handed_to_a_child() -> None:
    study = hpo.create_study(SPACE, study_name="h", storage=_SharedWithoutURL())
    with pytest.raises(ConfigurationError, match=r"it has no portable_url, the URL the child "
                                                 r"process opens it from.*give the storage a "
                                                 r"portable_url"):
        trial_env(study.ask())
    memory = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(ConfigurationError, match=r"it is not multiprocess"):
        trial_env(memory.ask())


def test_a_trial_of_a_deleted_study_of_the_same_name_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    store = SQLStorage(url)
    old = hpo.create_study(SPACE, study_name="d", storage=store)
    trial = old.ask()
    hpo.delete_study("d", store)
    new = hpo.create_study(SPACE, study_name="d", storage=store)
    with pytest.raises(ConfigurationError, match=r"Received trial 0 of study 'd' \(another study "
                                                 r"of that name, deleted since: study id 1, now "
                                                 r"2\)"):
        new.tell(trial, 0.5)
    store.close()
