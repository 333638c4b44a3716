"""One study per trial-directory root: two studies never write into each other's trial folders."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._artifacts import MARKER, claim_root
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.storages import get_storage

SPACE = {"x": hp.uniform("x", 0, 1)}


def _study(url: str, **kwargs: Any) -> hpo.Study:
    return hpo.create_study(SPACE, storage=url, study_name="good", seed=0, **kwargs)


def _write_in_trial_dir(study: hpo.Study, text: str) -> Path:
    """Ask a trial and write a file in its folder, as script mode writes its stdout.log."""
    trial = study.ask()
    path = Path(trial.log_dir) / "stdout.log"
    path.write_text(text)
    study.tell(trial, 0.5)
    return path


def test_the_first_study_records_itself_as_the_owner(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path}/a.db")
    log = _write_in_trial_dir(study, "a")
    assert log == tmp_path / "hpo_runs" / "good" / "trial_0000" / "stdout.log"
    owner = json.loads((tmp_path / "hpo_runs" / "good" / MARKER).read_text())
    created = study.storage.get_study(study.study_id).datetime_created
    assert owner == {"study": "good", "created": created.isoformat() if created else None}


@pytest.mark.parametrize(("name", "folder"), [
    ("../../escaped", "_.._.._escaped"), ("<tmp>/abs/study", "_<tmp>_abs_study"), ("..", "_.."),
    ("resnet/lr", "resnet/lr"),  # nested folders, as before
])
def test_a_study_name_never_leads_its_folder_out_of_hpo_runs(tmp_path: Path, name: str,
                                                            folder: str) -> None:
    """The name was joined to hpo_runs as it came: '../../x' wrote trial folders two levels
    above the working directory, an absolute path at that path, '..' into it."""
    name = name.replace("<tmp>", str(tmp_path))  # absolute, and never outside the test's folder
    folder = folder.replace("<tmp>", str(tmp_path).lstrip("/").replace("/", "_"))
    study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/a.db", study_name=name)
    log = _write_in_trial_dir(study, "a")
    assert log == tmp_path / "hpo_runs" / folder / "trial_0000" / "stdout.log"


def test_a_study_name_too_long_for_a_folder_still_gets_trial_folders(tmp_path: Path) -> None:
    """A name of more than 255 bytes (400 here: 200 two-byte letters) failed every trial that
    used its folder with OSError "File name too long". The folder is cut short, with a hash of
    the whole name: two long names that start alike keep apart; a short part stays as is."""
    long_names = ["sweep/" + "é" * 200 + end for end in ("a", "b")]
    logs = [_write_in_trial_dir(hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/a.db",
                                                 study_name=name), name[-1])
            for name in long_names]
    folders = [log.parent.parent for log in logs]
    assert [f.parent for f in folders] == [tmp_path / "hpo_runs" / "sweep"] * 2
    assert folders[0] != folders[1]
    assert all(f.name.startswith("é" * 90) and len(os.fsencode(f.name)) <= 200
               for f in folders)
    assert [log.read_text() for log in logs] == ["a", "b"]


def test_a_long_name_whose_folder_is_taken_still_gets_its_own(tmp_path: Path) -> None:
    """A name of 233 to 255 bytes fits as it is, but the ``-<creation time>`` a second study
    of that name adds made it too long: OSError "File name too long"."""
    name = "n" * 250
    first = _write_in_trial_dir(
        hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/a.db", study_name=name), "a")
    second = _write_in_trial_dir(
        hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/b.db", study_name=name), "b")
    assert first.parent.parent.name == name  # as it is: fits
    assert second.parent.parent != first.parent.parent
    assert len(second.parent.parent.name) <= 200 and "~" in second.parent.parent.name
    assert (first.read_text(), second.read_text()) == ("a", "b")


def test_a_study_of_the_same_name_in_another_storage_gets_its_own_folder(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = _study(f"sqlite:///{tmp_path}/a.db")
    first_log = _write_in_trial_dir(first, "first")
    second = _study(f"sqlite:///{tmp_path}/b.db")
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        second_log = _write_in_trial_dir(second, "second")
    assert first_log.read_text() == "first"  # not overwritten
    assert second_log.parent.name == "trial_0000"
    assert second_log.parent.parent.name.startswith("good-2")  # good-<creation time>
    assert second.trials[0].log_dir == str(second_log.parent)  # recorded with the trial
    assert "holds the trial folders of another study named 'good'" in caplog.text
    # both go on in their own folders, in any process that opens them
    assert Path(_write_in_trial_dir(_study(f"sqlite:///{tmp_path}/a.db"), "1").parent.parent) \
        == first_log.parent.parent
    assert _write_in_trial_dir(second, "2").parent.parent == second_log.parent.parent


def test_a_study_created_again_after_a_delete_does_not_overwrite_the_old_files(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    old_log = _write_in_trial_dir(_study(url), "old")
    storage = get_storage(url)
    storage.delete_study(storage.get_study_id("good"))
    new_log = _write_in_trial_dir(_study(url), "new")
    assert old_log.read_text() == "old" and new_log != old_log


def test_a_logdir_of_another_study_is_refused(tmp_path: Path) -> None:
    logdir = tmp_path / "runs"
    logdir.mkdir()
    (logdir / MARKER).write_text(json.dumps({"study": "other",
                                             "created": "2026-01-01T00:00:00"}))
    with pytest.raises(ConfigurationError, match=r"belongs to study 'other' \(created "
                                                 r"2026-01-01T00:00:00.*Pass another logdir="):
        _study(f"sqlite:///{tmp_path}/a.db", logdir=str(logdir))


def test_a_copy_under_the_same_name_shares_the_folder(tmp_path: Path) -> None:
    """A copy keeps the name and the creation time: it is a move, and goes on in place."""
    source, target = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    first = _write_in_trial_dir(_study(source), "0")
    hpo.copy_study("good", source, target)
    second = _write_in_trial_dir(_study(target), "1")
    assert second.parent == first.parent.parent / "trial_0001"


def test_a_claim_never_replaces_the_owner(tmp_path: Path) -> None:
    first = _study(f"sqlite:///{tmp_path}/a.db")
    second = _study(f"sqlite:///{tmp_path}/b.db")
    root = claim_root(first)
    assert claim_root(second) != root
    assert claim_root(first) == root
    assert json.loads((Path(root) / MARKER).read_text())["study"] == "good"


def _log_dirs_at_once(trials: list[Any]) -> tuple[list[Path], list[Exception]]:
    """Each trial's ``log_dir`` read by a thread of its own, all released at once."""
    import threading

    barrier = threading.Barrier(len(trials))
    folders: list[Path] = []
    errors: list[Exception] = []

    def make(trial: Any) -> None:
        barrier.wait()
        try:
            folders.append(Path(trial.log_dir).parent)
        except Exception as exc:  # any error is the failure looked for
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(t,)) for t in trials]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return folders, errors


def test_threads_making_the_first_trial_folders_at_once_all_succeed(tmp_path: Path) -> None:
    """Dask runs one trial per worker thread: the first trial folders of a study are made by
    several threads of one process at once, each claiming the free root."""
    for round_ in range(10):
        study = hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/t{round_}.db",
                                 study_name=f"t{round_}", seed=0)
        folders, errors = _log_dirs_at_once([study.ask() for _ in range(6)])
        assert errors == []
        assert set(folders) == {tmp_path / "hpo_runs" / f"t{round_}"}
        assert not list(folders[0].glob("*.tmp"))


def test_a_refused_logdir_stores_nothing(tmp_path: Path) -> None:
    """The refusal comes after the study was written: it is taken back, or every later open
    of the study would be refused too."""
    logdir = tmp_path / "runs"
    _write_in_trial_dir(hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/a.db",
                                         study_name="a", logdir=str(logdir)), "a")
    other = f"sqlite:///{tmp_path}/b.db"
    with pytest.raises(ConfigurationError, match="Pass another logdir="):
        hpo.create_study(SPACE, storage=other, study_name="b", logdir=str(logdir))
    assert get_storage(other).list_studies() == []  # a new study: not stored
    kept = hpo.create_study(SPACE, storage=other, study_name="b", logdir=str(tmp_path / "b"))
    with pytest.raises(ConfigurationError, match="Pass another logdir="):
        hpo.create_study(SPACE, storage=other, study_name="b", logdir=str(logdir))
    resumed = hpo.create_study(SPACE, storage=other, study_name="b")  # its stored logdir
    assert resumed.logdir == kept.logdir == str(tmp_path / "b")
