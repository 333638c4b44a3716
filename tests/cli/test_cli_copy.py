"""``hpo-plugins copy``: a study goes to another storage whole; bad targets are refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE

pytest_plugins = ["conftest_postgres"]

Run = Callable[..., tuple[int, str, str]]


def _trials(url: str, name: str) -> list[hpo.FrozenTrial]:
    store = hpo.storages.get_storage(url)
    try:
        return [dataclasses.replace(t, trial_id=0)
                for t in store.get_all_trials(store.get_study_id(name))]
    finally:
        store.close()


def test_copy_to_a_new_sqlite_file(cli: Run, url: str, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/moved.db"
    code, out, err = cli("copy", "--study", "demo", "--to", target, "--storage", url)
    assert (code, err) == (EXIT_OK, "")
    assert f"Copied study 'demo' (5 trials) to sqlite:///{tmp_path}/moved.db as 'demo'." in out
    assert _trials(target, "demo") == _trials(url, "demo")
    code, out, _ = cli("trials", "--study", "demo", "--storage", target)
    assert code == EXIT_OK and "PRUNED" in out and "FAIL" in out


def test_copy_to_postgresql_under_another_name(cli: Run, url: str,
                                               clean_postgres_url: str) -> None:
    code, out, err = cli("copy", "--study", "demo", "--to", clean_postgres_url, "--to-study",
                         "shared", "--storage", url)
    assert code == EXIT_OK
    assert "does not take its logdir" in err  # renamed: it would share the trial folders
    assert "as 'shared'" in out and "5 trials" in out
    assert _trials(clean_postgres_url, "shared") == _trials(url, "demo")


def test_copy_within_the_same_storage_needs_another_name(cli: Run, url: str) -> None:
    code, _, err = cli("copy", "--study", "demo", "--to", url, "--storage", url)
    assert code == EXIT_USAGE and "pass --to-study with another name" in err
    code, out, _ = cli("copy", "--study", "demo", "--to", url, "--to-study", "demo2",
                       "--storage", url)
    assert code == EXIT_OK and "as 'demo2'" in out
    assert _trials(url, "demo2") == _trials(url, "demo")


def test_an_existing_study_at_the_target_is_refused(cli: Run, url: str, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/moved.db"
    assert cli("copy", "--study", "demo", "--to", target, "--storage", url)[0] == EXIT_OK
    code, _, err = cli("copy", "--study", "demo", "--to", target, "--storage", url)
    assert code == EXIT_FAILURE
    assert "already holds a study named 'demo'" in err and "--to-study" in err
    assert len(_trials(target, "demo")) == 5


@pytest.mark.parametrize("to", ["moved.db", "user:secret@host/db"])
def test_a_target_that_is_not_a_url_is_a_usage_error(cli: Run, url: str, to: str) -> None:
    code, _, err = cli("copy", "--study", "demo", "--to", to, "--storage", url)
    assert code == EXIT_USAGE and "expected --to to be a database URL" in err
    assert "secret" not in err


def test_a_missing_study_or_source_file_creates_nothing(cli: Run, url: str,
                                                        tmp_path: Path) -> None:
    target = tmp_path / "moved.db"
    code, _, err = cli("copy", "--study", "nope", "--to", f"sqlite:///{target}", "--storage",
                       url)
    assert code == EXIT_NOT_FOUND and "No study named 'nope'" in err
    assert not target.exists()
    code, _, err = cli("copy", "--study", "demo", "--to", f"sqlite:///{target}", "--storage",
                       f"sqlite:///{tmp_path}/typo.db")
    assert code == EXIT_NOT_FOUND and "does not exist" in err
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.parametrize("to", ["postgresql+psycopg://hpo:secret@127.0.0.1:1/hpo",
                                "mysql://hpo:secret@127.0.0.1/hpo"])
def test_a_target_that_cannot_be_opened_fails_before_anything_is_read(cli: Run, url: str,
                                                                      to: str) -> None:
    code, out, err = cli("copy", "--study", "demo", "--to", to, "--storage", url)
    assert (code, out) == (EXIT_NOT_FOUND, "")
    assert "cannot open the storage of --to" in err and "secret" not in err
    assert err.count("\n") == 1  # one line, although psycopg's message spans several


def test_an_empty_target_name_is_a_usage_error(cli: Run, url: str) -> None:
    code, _, err = cli("copy", "--study", "demo", "--to", url, "--to-study", " ", "--storage",
                       url)
    assert code == EXIT_USAGE and "expected --to-study to be a study name" in err
    store = hpo.storages.get_storage(url)
    assert [info.name for info in store.list_studies()] == ["demo", "plain"]
    store.close()
