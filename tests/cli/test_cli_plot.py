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
