"""``hpo-plugins plot``: five PNG files, and a clear error without matplotlib."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hpo_plugins.cli import EXIT_FAILURE, EXIT_OK

Run = Callable[..., tuple[int, str, str]]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("study", ["demo", "plain"])  # with trials, and without any
def test_plot_writes_five_pngs(cli: Run, url: str, tmp_path: Path, study: str) -> None:
    out_dir = tmp_path / "plots"
    code, out, err = cli("plot", "--study", study, "--storage", url, "--out", str(out_dir))
    assert (code, err) == (EXIT_OK, "")
    names = ["history.png", "parallel_coordinates.png", "slice.png", "intermediate_values.png",
             "param_importances.png"]
    assert out.splitlines() == [str(out_dir / n) for n in names]
    assert all((out_dir / n).read_bytes().startswith(PNG) for n in names)


def test_plot_without_matplotlib_names_the_extra(cli: Run, url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    code, out, err = cli("plot", "--study", "demo", "--storage", url, "--out", str(tmp_path))
    assert (code, out) == (EXIT_FAILURE, "")
    assert "pip install 'hpo_plugins[plot]'" in err and err.count("\n") == 1


def test_an_out_that_is_a_file_is_named_by_its_flag(cli: Run, url: str, tmp_path: Path) -> None:
    """The error came from Python's side: "Expected `out_dir` to be a folder"."""
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    code, out, err = cli("plot", "--study", "demo", "--storage", url, "--out", str(taken))
    assert (code, out) == (EXIT_FAILURE, "")
    assert f"--out {taken} is a file: expected a folder for the PNG files" in err
    assert "out_dir" not in err and taken.read_text() == "mine"
    code, out, err = cli("plot", "--study", "demo", "--storage", url, "--out",
                         str(taken / "plots"))  # a file on the way
    assert (code, out) == (EXIT_FAILURE, "")
    assert f"cannot create --out {taken / 'plots'}: Not a directory" in err, err
