"""``hpo-plugins delete``: a study and its trials leave the storage, and only with consent."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE

Run = Callable[..., tuple[int, str, str]]


def _names(url: str) -> list[str]:
    store = hpo.storages.get_storage(url)
    try:
        return [info.name for info in store.list_studies()]
    finally:
        store.close()


def test_delete_with_yes_removes_the_study_and_keeps_the_others(cli: Run, url: str,
                                                                tmp_path: Path) -> None:
    code, out, err = cli("delete", "--study", "demo", "--yes", "--storage", url)
    assert (code, err) == (EXIT_OK, "")
    assert "Deleted study 'demo' and its 5 trials" in out
    assert str(tmp_path / "runs") in out  # where the trials' files stay
    assert _names(url) == ["plain"]
    code, _, err = cli("trials", "--study", "demo", "--storage", url)
    assert code == EXIT_NOT_FOUND and "No study named 'demo'" in err


def test_without_a_terminal_delete_needs_yes(cli: Run, url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = cli("delete", "--study", "demo", "--storage", url)
    assert code == EXIT_USAGE
    assert "pass --yes" in err and "study 'demo' and its 5 trials" in err
    assert _names(url) == ["demo", "plain"]


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("\n", False), ("no\n", False)])
def test_on_a_terminal_delete_asks_first(cli: Run, url: str, monkeypatch: pytest.MonkeyPatch,
                                         answer: str, deleted: bool) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal(answer))
    code, out, _ = cli("delete", "--study", "plain", "--storage", url)
    assert code == EXIT_OK
    assert "Delete study 'plain' and its 0 trials" in out  # the question
    assert _names(url) == (["demo"] if deleted else ["demo", "plain"])
    assert ("Nothing deleted." in out) is not deleted


def test_delete_of_an_unknown_study_or_file_changes_nothing(cli: Run, url: str,
                                                            tmp_path: Path) -> None:
    code, _, err = cli("delete", "--study", "nope", "--yes", "--storage", url)
    assert code == EXIT_NOT_FOUND and "Existing studies: " in err and "'demo'" in err
    assert _names(url) == ["demo", "plain"]
    missing = tmp_path / "missing.db"
    code, _, err = cli("delete", "--study", "demo", "--yes", "--storage", f"sqlite:///{missing}")
    assert code == EXIT_NOT_FOUND and "does not exist" in err
    assert not missing.exists()


def test_delete_names_the_folder_of_the_trial_directories(cli: Run, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/dirs.db"

    def objective(params: dict[str, float]) -> float:
        folder = hpo.current_trial().log_dir  # creates hpo_runs/<study>/trial_<n>
        return params["x"] + 0 * len(folder)

    hpo.minimize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=2, storage=url,
                 study_name="dirs")
    code, out, _ = cli("delete", "--study", "dirs", "--yes", "--storage", url)
    assert code == EXIT_OK
    assert out.splitlines()[-1].startswith(f"Files the trials wrote are left on disk: "
                                           f"{tmp_path / 'hpo_runs' / 'dirs'}. A new study of "
                                           f"this name will not write there")
    assert (tmp_path / "hpo_runs" / "dirs" / "trial_0000").is_dir()  # left alone


def test_delete_names_each_logdir_of_a_moved_study_not_their_parent(
        cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study resumed with another logdir has trial folders in runs/a and runs/b: their
    common parent, runs/, holds other studies' folders too and was named as this study's."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/moved.db"
    space = {"x": hpo.hp.uniform("x", 0, 1)}

    def objective(params: dict[str, float]) -> float:
        return params["x"] + 0 * len(hpo.current_trial().log_dir)

    for logdir in ("runs/a", "runs/b"):
        hpo.minimize(objective, space, n_trials=1, storage=url, study_name="moved",
                     logdir=str(tmp_path / logdir))
    (tmp_path / "runs" / "other_study").mkdir()
    code, out, _ = cli("delete", "--study", "moved", "--yes", "--storage", url)
    assert code == EXIT_OK
    assert out.splitlines()[-1].startswith(
        f"Files the trials wrote are left on disk: {tmp_path / 'runs' / 'b'}, "
        f"{tmp_path / 'runs' / 'a'}. A new study of this name will not write there"), out


def test_delete_of_a_copy_does_not_claim_the_original_s_folders(
        cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy's trials keep the paths the original's trials wrote: deleting the copy named
    the original's live folders as its own files, to delete."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/copies.db"

    def objective(params: dict[str, float]) -> float:
        return params["x"] + 0 * len(hpo.current_trial().log_dir)

    hpo.minimize(objective, {"x": hpo.hp.uniform("x", 0, 1)}, n_trials=2, storage=url,
                 study_name="orig", logdir=str(tmp_path / "runs" / "orig"))
    hpo.copy_study("orig", url, url, to_study_name="copy2")
    code, out, _ = cli("delete", "--study", "copy2", "--yes", "--storage", url)
    assert code == EXIT_OK
    assert "Files the trials wrote are left on disk" not in out, out
    store = hpo.storages.get_storage(url)
    try:
        created = store.get_study(store.get_study_id("orig")).datetime_created
    finally:
        store.close()
    assert created is not None
    assert out.splitlines()[-1] == (
        f"{tmp_path / 'runs' / 'orig'} holds the files of study 'orig' (created "
        f"{created.isoformat()}), which this one was probably copied from: keep it for that "
        f"study.")
    hpo.copy_study("orig", url, url, to_study_name="copy3")
    # the original's own deletion still names them as its files
    code, out, _ = cli("delete", "--study", "orig", "--yes", "--storage", url)
    assert f"Files the trials wrote are left on disk: {tmp_path / 'runs' / 'orig'}." in out
    # once the original is gone, a copy's deletion no longer says to keep them for it
    code, out, _ = cli("delete", "--study", "copy3", "--yes", "--storage", url)
    assert out.splitlines()[-1].endswith(
        "which is not in this storage (deleted, or kept in another one): delete it once no "
        "study needs it.")


def test_ctrl_d_at_the_question_deletes_nothing(cli: Run, url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):  # at its end: input() raises EOFError, as after Ctrl-D
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal(""))
    code, out, err = cli("delete", "--study", "plain", "--storage", url)
    assert (code, err) == (EXIT_OK, "")
    assert "Nothing deleted." in out
    assert _names(url) == ["demo", "plain"]
