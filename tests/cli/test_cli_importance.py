"""``hpo-plugins importance``: the ranking as a table or JSON; too few trials is explained."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from hpo_plugins.samplers import RandomSampler

Run = Callable[..., tuple[int, str, str]]

SPACE = {"x": hp.uniform("x", -1, 1), "units": hp.choice("units", [16, 32, 64]),
         "noise": hp.uniform("noise", 0, 1)}


def _ranked(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/imp.db"

    def objective(params: dict[str, Any]) -> float:
        return params["x"] ** 2 + 0.1 * math.log2(params["units"]) + 1e-4 * params["noise"]

    hpo.minimize(objective, SPACE, n_trials=60, storage=url, study_name="imp", seed=0,
                 sampler=RandomSampler())
    return url


def test_a_table_most_important_first(cli: Run, tmp_path: Path) -> None:
    url = _ranked(tmp_path)
    code, out, err = cli("importance", "--study", "imp", "--storage", url)
    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert lines[0].split() == ["param", "importance", "trials"]
    assert [line.split()[0] for line in lines[1:]] == ["x", "units", "noise"]
    assert lines[1].split()[2] == "60" and lines[1].split()[3].startswith("#####")
    code, out, _ = cli("importance", "--study", "imp", "--json", "--storage", url)
    shares = json.loads(out)
    assert list(shares) == ["x", "units", "noise"] and math.isclose(sum(shares.values()), 1.0)
    code, out, _ = cli("importance", "--study", "imp", "--json", "--bins", "2", "--storage",
                       url)
    two_bins = json.loads(out)  # x**2 is U-shaped: two bins cannot see it
    assert code == EXIT_OK and two_bins["x"] < shares["x"]


def test_too_few_trials_is_a_clear_failure(cli: Run, url: str) -> None:
    code, out, err = cli("importance", "--study", "plain", "--storage", url)
    assert (code, out) == (EXIT_FAILURE, "")
    assert "Expected at least 3 COMPLETE trials" in err and "Received 0" in err


def test_fewer_than_two_bins_is_a_bad_command_line(cli: Run, url: str) -> None:
    """Refused by argparse, before the storage is opened: exit 2 like any bad option."""
    code, out, err = cli("importance", "--study", "plain", "--bins", "1", "--storage", url)
    assert (code, out) == (EXIT_USAGE, "")
    assert "argument --bins: expected an integer >= 2, received 1" in err
