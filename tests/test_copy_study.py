"""``hpo.copy_study``: a study moves to another storage whole, and resumes there."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError, DuplicateStudyError, StudyNotFoundError
from hpo_plugins.samplers import GridSampler, RandomSampler
from hpo_plugins.storages import InMemoryStorage, Storage

pytest_plugins = ["conftest_postgres"]


def _objective(params: dict[str, Any]) -> float:
    """Reports a curve; trial 1 is pruned, trial 2 fails, the others complete."""
    trial = hpo.current_trial()
    for step in range(3):
        trial.report(params["lr"] * (3 - step), step)
        if trial.number == 1 and step == 1:
            raise hpo.TrialPruned()
    if trial.number == 2:
        raise ValueError("diverged")
    trial.set_user_attr("epochs", 3)
    return float(params["lr"])


def _every_state(storage: Any, space: dict[str, Any], name: str = "demo") -> hpo.Study:
    """A maximised study with COMPLETE, PRUNED and FAIL trials, a study user attribute, a
    WAITING (enqueued) trial and a RUNNING one (asked, never told)."""
    study = hpo.maximize(_objective, space, n_trials=4, storage=storage, study_name=name,
                         sampler=RandomSampler(), seed=3, catch=ValueError)
    study.set_user_attr("dataset", "digits")
    study.ask()
    study.enqueue({"lr": 0.05, "net": {"kind": "cnn", "filters": 32}})
    return study


def _without_ids(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [dataclasses.replace(t, trial_id=0) for t in trials]


def _study_info(storage: Storage, name: str) -> Any:
    return storage.get_study(storage.get_study_id(name))


def test_every_trial_and_setting_is_copied(nested_space: dict[str, Any],
                                           tmp_path: Path) -> None:
    source = InMemoryStorage()
    study = _every_state(source, nested_space)
    url = f"sqlite:///{tmp_path}/copy.db"
    assert hpo.copy_study("demo", source, url) == 6
    copy = hpo.load_study("demo", url)
    states = [t.state for t in copy.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                      TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING]
    assert _without_ids(copy.trials) == _without_ids(study.trials)  # curves, attrs, times
    assert copy.trials[2].fail_reason and "diverged" in copy.trials[2].fail_reason
    assert copy.best_value == study.best_value and copy.best_params == study.best_params
    assert copy.user_attrs == {"dataset": "digits"}
    before, after = _study_info(source, "demo"), _study_info(copy.storage, "demo")
    assert after.direction is hpo.Direction.MAXIMIZE
    assert after.attrs["copied_from"] == {"study": "demo", "storage": source.describe()}
    assert {k: v for k, v in after.attrs.items() if k != "copied_from"} == dict(before.attrs)
    assert _study_info(source, "demo").n_trials == after.n_trials  # the source is untouched
    assert after.datetime_created == before.datetime_created
    copy.storage.close()


def test_the_copy_resumes_where_the_original_stopped(nested_space: dict[str, Any],
                                                     tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/laptop.db"
    _every_state(source, nested_space)
    target = f"sqlite:///{tmp_path}/server.db"
    hpo.copy_study("demo", source, target)
    resumed = hpo.maximize(_objective, nested_space, n_trials=2, storage=target,
                           study_name="demo", catch=ValueError)
    numbers = [t.number for t in resumed.trials]
    assert numbers == list(range(7))  # the enqueued trial, then one new
    # the enqueued trial ran first, with its parameters
    assert resumed.trials[5].state is TrialState.COMPLETE
    assert resumed.trials[5].natural["net"] == {"kind": "cnn", "filters": 32}
    assert resumed.trials[6].state is TrialState.COMPLETE
    assert isinstance(resumed.sampler, RandomSampler)  # the recorded settings came along
    resumed.storage.close()


def test_a_copied_grid_never_repeats_a_point(tmp_path: Path) -> None:
    space = {"x": hp.choice("x", [1, 2, 3]), "y": hp.quniform("y", 0, 3, 1)}
    source = InMemoryStorage()

    def objective(params: dict[str, Any]) -> float:
        return float(params["x"] * params["y"])

    hpo.minimize(objective, space, n_trials=5, storage=source, study_name="grid",
                 sampler=GridSampler(), seed=0)
    target = InMemoryStorage()
    hpo.copy_study("grid", source, target)
    resumed = hpo.minimize(objective, space, n_trials=50, storage=target, study_name="grid",
                           sampler=GridSampler(), seed=0)
    points = [tuple(sorted(t.params.items())) for t in resumed.trials]
    assert len(points) == 12 and len(set(points)) == 12  # the whole grid, each point once
    # the copied trials hold their points in the new storage: a second insert is refused
    first = resumed.trials[0]
    with pytest.raises(hpo.exceptions.DuplicateParamsError):
        target.create_trial(resumed.study_id, params=dict(first.params),
                            dedup_key=hpo.storages._base.params_key(first.params))


def test_copy_from_sqlite_to_a_postgresql_server(nested_space: dict[str, Any], tmp_path: Path,
                                                 clean_postgres_url: str) -> None:
    source = f"sqlite:///{tmp_path}/laptop.db"
    study = _every_state(source, nested_space)
    assert hpo.copy_study("demo", source, clean_postgres_url, "shared") == 6
    copy = hpo.load_study("shared", clean_postgres_url)
    assert _without_ids(copy.trials) == _without_ids(study.trials)
    assert copy.trials[0].datetime_start == study.trials[0].datetime_start
    copy.storage.close()
    study.storage.close()


def test_copy_within_one_storage_under_another_name(nested_space: dict[str, Any]) -> None:
    storage = InMemoryStorage()
    study = _every_state(storage, nested_space)
    assert hpo.copy_study("demo", storage, storage, "demo-copy") == 6
    assert [info.name for info in storage.list_studies()] == ["demo", "demo-copy"]
    copy = hpo.load_study("demo-copy", storage)
    assert _without_ids(copy.trials) == _without_ids(study.trials)


def test_an_existing_destination_study_is_refused_and_left_alone(
        nested_space: dict[str, Any]) -> None:
    source, target = InMemoryStorage(), InMemoryStorage()
    _every_state(source, nested_space)
    hpo.minimize(lambda p: 1.0, nested_space, n_trials=1, storage=target, study_name="demo")
    with pytest.raises(DuplicateStudyError, match=r"already holds a study named 'demo'.*"
                                                  r"to_study_name"):
        hpo.copy_study("demo", source, target)
    assert _study_info(target, "demo").n_trials[TrialState.COMPLETE] == 1
    assert len(target.get_all_trials(target.get_study_id("demo"))) == 1


def test_a_missing_source_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    target = f"sqlite:///{tmp_path}/copy.db"
    with pytest.raises(StudyNotFoundError, match="does not exist"):
        hpo.copy_study("demo", f"sqlite:///{missing}", target)
    assert not missing.exists() and not (tmp_path / "copy.db").exists()
    with pytest.raises(StudyNotFoundError, match="No study named 'nope'"):
        hpo.copy_study("nope", InMemoryStorage(), target)
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize(("args", "name"), [((3, InMemoryStorage(), InMemoryStorage()),
                                             "from_study_name"),
                                            (("a", InMemoryStorage(), InMemoryStorage(), 4),
                                             "to_study_name"),
                                            (("a", InMemoryStorage(), InMemoryStorage(), " "),
                                             "to_study_name")])
def test_names_must_be_text(args: tuple[Any, ...], name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"Expected `{name}` to be the name of a study"):
        hpo.copy_study(*args)


class _OldCustomStorage(InMemoryStorage):
    """A storage written before ``import_study`` existed: it inherits the base's default."""

    import_study = Storage.import_study


def test_a_storage_without_import_study_is_refused_and_left_empty(
        nested_space: dict[str, Any]) -> None:
    source = InMemoryStorage()
    _every_state(source, nested_space)
    target = _OldCustomStorage()  # it can still be created and used for everything else
    with pytest.raises(NotImplementedError, match="_OldCustomStorage cannot import a study"):
        hpo.copy_study("demo", source, target)
    assert target.list_studies() == []


class _LooseSource(InMemoryStorage):
    """A source storage with a looser idea of JSON: its fourth trial holds a set."""

    def get_all_trials(self, study_id: int,
                       states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        trials = super().get_all_trials(study_id, states)
        if states is None and len(trials) > 3:  # what the copy reads: every trial
            trials[3] = dataclasses.replace(trials[3], user_attrs={"epochs": {1, 2}})
        return trials


def test_a_copy_that_fails_midway_leaves_nothing(nested_space: dict[str, Any],
                                                 tmp_path: Path) -> None:
    source = _LooseSource()
    _every_state(source, nested_space)
    target = f"sqlite:///{tmp_path}/copy.db"
    with pytest.raises(ConfigurationError, match="user attrs"):
        hpo.copy_study("demo", source, target)  # fails at the fourth trial of six
    store = hpo.storages.get_storage(target)
    assert store.list_studies() == []
    store.close()


def test_running_trials_are_copied_with_a_warning(nested_space: dict[str, Any],
                                                  caplog: pytest.LogCaptureFixture) -> None:
    source = InMemoryStorage()
    _every_state(source, nested_space)
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        hpo.copy_study("demo", source, InMemoryStorage())
    assert "had 1 RUNNING trial when copied" in caplog.text
    assert "Copy a study while nothing runs on it" in caplog.text
    assert "Trials [4] have no heartbeat (asked by hand)" in caplog.text



def test_a_copied_trial_whose_worker_died_is_failed_and_rerun_in_the_copy(
        nested_space: dict[str, Any]) -> None:
    source = InMemoryStorage()
    study = hpo.create_study(nested_space, study_name="demo", storage=source, max_retries=1,
                             heartbeat_interval=0.01, grace_period=0.05, seed=1)
    lost = study.ask()  # its worker beats, then dies: the heartbeat goes stale
    source.record_heartbeat(lost.trial_id)
    target = InMemoryStorage()
    hpo.copy_study("demo", source, target)
    time.sleep(0.1)
    copy = hpo.create_study(nested_space, study_name="demo", storage=target, max_retries=1,
                            heartbeat_interval=0.01, grace_period=0.05)
    rerun = copy.ask()
    assert copy.trials[0].state is TrialState.FAIL
    assert "heartbeat" in (copy.trials[0].fail_reason or "")
    assert rerun.params == lost.params and rerun.number == 1  # re-queued by max_retries=1
    assert source.get_trial(lost.trial_id).state is TrialState.RUNNING  # source untouched


def test_a_source_url_of_another_program_is_left_as_it_was(tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    foreign = tmp_path / "foreign.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE t (a INTEGER)")
    connection.commit()
    connection.close()
    before = hashlib.md5(foreign.read_bytes()).hexdigest()
    with pytest.raises(hpo.exceptions.StorageError, match="holds no hpo_plugins tables"):
        hpo.copy_study("demo", f"sqlite:///{foreign}", InMemoryStorage())
    assert hashlib.md5(foreign.read_bytes()).hexdigest() == before  # no tables, no WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db"]


def test_a_copy_under_another_name_does_not_share_the_logdir(
        nested_space: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = InMemoryStorage()
    hpo.minimize(lambda p: p["lr"], nested_space, n_trials=2, storage=storage,
                 study_name="orig", logdir=str(tmp_path / "runs"), seed=0)
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        hpo.copy_study("orig", storage, storage, "dup")
    assert "does not take its logdir" in caplog.text
    assert _study_info(storage, "dup").attrs["logdir"] is None
    assert _study_info(storage, "orig").attrs["logdir"] == str(tmp_path / "runs")
    dup = hpo.load_study("dup", storage)
    assert dup.artifact_root == os.path.join("hpo_runs", "dup")  # its own trial folders


def test_a_bad_storage_argument_is_named(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'a.db'}"
    hpo.create_study(space={"x": hp.uniform("x", 0, 1)}, storage=source, study_name="s")
    with pytest.raises(ConfigurationError, match=r"^`to_storage`: Expected `storage` to be .*"
                                                 r"sqlite:///b\.db"):
        hpo.copy_study("s", source, "b.db")
    with pytest.raises(ConfigurationError, match=r"^`from_storage`: Expected `storage`"):
        hpo.copy_study("s", 5, source)
