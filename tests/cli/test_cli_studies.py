"""``hpo-plugins studies`` and how every command finds its storage."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins.cli import EXIT_NOT_FOUND, EXIT_OK

Run = Callable[..., tuple[int, str, str]]


def test_one_aligned_line_per_study(cli: Run, url: str) -> None:
    code, out, err = cli("studies", "--storage", url)
    assert (code, err) == (EXIT_OK, "")
    header, demo, plain = out.splitlines()
    assert header.split() == ["study", "direction", "trials", "complete", "pruned", "fail",
                              "running", "waiting", "best"]
    best = hpo.load_study("demo", url).best_value
    assert demo.split() == ["demo", "minimize", "5", "3", "1", "1", "0", "0", f"{best:.6g}"]
    assert plain.split() == ["plain", "maximize", "0", "0", "0", "0", "0", "0", "-"]
    assert len(header) >= len(demo) == len(plain)  # right-aligned numbers end together


def test_studies_json_is_one_object_per_study_for_scripts(cli: Run, url: str,
                                                          tmp_path: Path) -> None:
    code, out, err = cli("studies", "--storage", url, "--json")
    assert (code, err) == (EXIT_OK, "")
    demo, plain = json.loads(out)
    study = hpo.load_study("demo", url)
    created = study.storage.get_study(study.study_id).datetime_created
    assert demo == {"study": "demo", "direction": "minimize", "trials": 5, "complete": 3,
                    "pruned": 1, "fail": 1, "running": 0, "waiting": 0,
                    "best": study.best_value, "created": created and created.isoformat()}
    assert plain["best"] is None and plain["trials"] == 0
    hpo.storages.get_storage(f"sqlite:///{tmp_path}/none.db").list_studies()  # creates it
    assert json.loads(cli("studies", "--storage", f"sqlite:///{tmp_path}/none.db",
                          "--json")[1]) == []


def test_the_environment_variable_and_the_default_file_are_honoured(
        cli: Run, url: str, nested_space: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_PLUGINS_STORAGE", url)
    assert cli("studies")[1].splitlines()[1].startswith("demo")
    monkeypatch.delenv("HPO_PLUGINS_STORAGE")
    hpo.create_study(nested_space, study_name="local")  # the default: ./hpo.db
    assert cli("studies")[1].splitlines()[1].startswith("local")


def test_an_empty_storage_says_so(cli: Run, tmp_path: Path) -> None:
    hpo.storages.get_storage(f"sqlite:///{tmp_path}/empty.db").list_studies()  # creates it
    code, out, _ = cli("studies", "--storage", f"sqlite:///{tmp_path}/empty.db")
    assert code == EXIT_OK and out.startswith("No studies in sqlite:///")


@pytest.mark.parametrize(("storage", "message"), [
    ("sqlite:///{tmp}/missing.db", "the SQLite file does not exist"),
    ("not-a-url", "cannot open the storage: expected --storage (or $HPO_PLUGINS_STORAGE) to be"),
    ("sqlite:///{tmp}/no_such_dir/x.db", "the SQLite file does not exist"),
    ("nosuch://host/db", "scheme 'nosuch', which SQLAlchemy does not know"),
    ("postgresql+nosuch://u@host/db", "scheme 'postgresql+nosuch'"),
])
def test_an_unknown_storage_is_one_line_and_exit_3(cli: Run, tmp_path: Path, storage: str,
                                                  message: str) -> None:
    code, out, err = cli("studies", "--storage", storage.format(tmp=tmp_path))
    assert (code, out) == (EXIT_NOT_FOUND, "")
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "missing.db").exists()  # reading never creates a database


def test_a_file_that_is_not_a_database_is_exit_3(cli: Run, tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_text("not sqlite")
    code, _, err = cli("studies", "--storage", f"sqlite:///{tmp_path}/junk.db")
    assert code == EXIT_NOT_FOUND and "cannot open the storage" in err


@pytest.mark.parametrize("content", ["another program's table", "an empty file"])
def test_a_database_of_another_program_is_exit_3_and_left_unchanged(
        cli: Run, tmp_path: Path, content: str) -> None:
    path = tmp_path / "theirs.db"
    if content == "an empty file":
        path.write_bytes(b"")
    else:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE orders (id INTEGER)")
            conn.commit()
    before = path.read_bytes()
    for command in (["studies"], ["trials", "--study", "x"], ["export", "--study", "x"]):
        code, out, err = cli(*command, "--storage", f"sqlite:///{path}")
        assert (code, out) == (EXIT_NOT_FOUND, "")
        assert "holds no hpo_plugins tables" in err
    assert path.read_bytes() == before  # no tables created, not even switched to WAL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]


def test_the_read_only_uri_form_is_read(cli: Run, url: str) -> None:
    path = url.removeprefix("sqlite:///")
    code, out, _ = cli("studies", "--storage", f"sqlite:///file:{path}?mode=ro&uri=true")
    assert code == EXIT_OK and out.splitlines()[1].startswith("demo")
    code, _, err = cli("studies", "--storage", f"sqlite:///file:{path}.gone?mode=ro&uri=true")
    assert code == EXIT_NOT_FOUND and f"no storage at {path}.gone: the SQLite file does not " \
        "exist" in err  # the URI form is read like a plain path, and nothing is created
