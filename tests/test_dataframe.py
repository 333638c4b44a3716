"""``trials_dataframe()`` and the CLI views built from the same records: columns and cells."""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.cli import EXIT_OK, main
from hpo_plugins.cli._export import export_records
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.space import SearchSpace
from hpo_plugins.storages import SQLStorage, Storage

FIXED = ["number", "state", "value", "datetime_start", "datetime_complete", "duration_s",
         "last_step"]
SPACE = {"x": hp.uniform("x", 0, 1), "i": hp.uniformint("i", 1, 9), "n": hp.randint("n", 3, 40),
         "opt": hp.choice("opt", [{"m": hp.uniform("m", 0, 1)}, "plain"])}


def _space_columns() -> list[str]:
    return [f"params_{label}" for label in SearchSpace(SPACE).labels]


@pytest.fixture
def storage_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Counts the calls of every storage method, on every SQLStorage of this test."""
    calls: collections.Counter[str] = collections.Counter()
    for name in [n for n in dir(Storage) if not n.startswith("_")]:
        method = getattr(SQLStorage, name)
        if callable(method):
            monkeypatch.setattr(SQLStorage, name, _counted(method, name, calls))
    yield calls


def _counted(method: Callable[..., Any], name: str,
             calls: collections.Counter[str]) -> Callable[..., Any]:
    @functools.wraps(method)
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return method(*args, **kwargs)

    return counted


def _dataframe(url: str) -> None:
    hpo.load_study("s", url).trials_dataframe()


def _cli(command: str) -> Callable[[str], None]:
    def run(url: str) -> None:
        assert main([command, "--study", "s", "--storage", url]) == EXIT_OK

    return run


@pytest.mark.parametrize("read", [_dataframe, _cli("trials"), _cli("export")],
                         ids=["load_study-dataframe", "cli-trials", "cli-export"])
def test_reading_without_the_space_costs_the_same_storage_calls_for_any_number_of_trials(
        tmp_path: Path, storage_calls: collections.Counter[str],
        capsys: pytest.CaptureFixture[str], read: Callable[[str], None]) -> None:
    # Opened without its space, the study's stored description is read once per call, not
    # once per trial (each read counts the study's trials: quadratic time in all).
    url = f"sqlite:///{tmp_path}/s.db"
    study = hpo.create_study(SPACE, storage=url, study_name="s", sampler=RandomSampler(), seed=0)
    study.optimize(lambda p: p["x"], n_trials=2)
    storage_calls.clear()
    read(url)
    with_two = dict(storage_calls)
    study.optimize(lambda p: p["x"], n_trials=6)
    storage_calls.clear()
    read(url)
    capsys.readouterr()
    assert dict(storage_calls) == with_two
    assert with_two.get("get_study", 0) <= 2  # opening the study, and its description


@pytest.mark.parametrize("space", [SPACE, None], ids=["with-space", "no-space"])
def test_an_empty_study_has_every_column(space: Any) -> None:
    study = hpo.create_study(space, storage=":memory:")
    frame = study.trials_dataframe()
    params = _space_columns() if space is not None else []
    assert list(frame.columns) == [*FIXED, *params, "fail_reason"]
    assert frame[frame["state"] == "COMPLETE"].empty
    assert export_records(study) == (list(frame.columns), [])


def test_columns_do_not_depend_on_the_first_trial() -> None:
    # The first trial fails before it sets any attribute; later ones set two, in reverse order.
    def objective(params: dict[str, Any]) -> float:
        trial = hpo.current_trial()
        if trial.number == 0:
            raise RuntimeError("first fails")
        trial.set_user_attr("zeta", 1)
        trial.set_user_attr("alpha", 2)
        return 1.0

    study = hpo.minimize(objective, SPACE, n_trials=2, storage=":memory:",
                         sampler=RandomSampler(), catch=RuntimeError)
    frame = study.trials_dataframe()
    assert list(frame.columns) == [*FIXED, *_space_columns(), "user_attrs_alpha",
                                   "user_attrs_zeta", "fail_reason"]
    assert export_records(study)[0] == list(frame.columns)
    assert list(frame["fail_reason"].isna()) == [False, True]


def test_integer_parameters_are_integers_with_or_without_the_space(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    study = hpo.minimize(lambda p: p["x"], SPACE, n_trials=3, storage=url, study_name="s",
                         sampler=RandomSampler(), seed=0)
    with_space = study.trials_dataframe()
    without = hpo.load_study("s", url).trials_dataframe()
    assert dict(without.dtypes) == dict(with_space.dtypes)
    assert str(without["params_i"].dtype) == "int64"
    records = [{k: v for k, v in r.items() if k.startswith("params_")}
               for r in export_records(hpo.load_study("s", url))[1]]
    assert all(isinstance(r["params_i"], int) and isinstance(r["params_n"], int)
               for r in records)
    assert records == [{k: v for k, v in r.items() if k.startswith("params_")}
                       for r in export_records(study)[1]]
    assert without.equals(with_space)


def test_an_integer_column_with_empty_cells_stays_integer() -> None:
    """An integer parameter inactive in some trials (and ``last_step`` of a trial that reported
    nothing) keeps whole numbers: pandas' nullable ``Int64``, not floats with ``6.0``."""
    space = {"arch": hp.choice("arch", [{"n": hp.uniformint("n", 1, 8),
                                         "width": hp.choice("width", [32, 64])}, "linear"])}

    def objective(params: dict[str, Any]) -> float:
        if params["arch"] != "linear":
            hpo.current_trial().report(1.0, step=3)
        return 1.0

    study = hpo.create_study(space, storage=":memory:", sampler=RandomSampler(), seed=1)
    study.enqueue({"arch": "linear"})
    study.enqueue({"arch": {"n": 6, "width": 64}})
    study.optimize(objective, n_trials=2)
    frame = study.trials_dataframe()
    for column in ("params_n", "params_width", "last_step"):
        assert str(frame[column].dtype) == "Int64", column
    assert frame["params_n"].isna().tolist() == [True, False]
    assert frame["params_n"][1] == 6 and frame["params_width"][1] == 64
    assert frame["last_step"][1] == 3
    assert str(frame["number"].dtype) == "int64"  # a column without gaps is unchanged


def test_last_step_is_integer_also_when_no_trial_reported() -> None:
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:", seed=0)
    assert str(study.trials_dataframe()["last_step"].dtype) == "Int64"  # no trial yet
    study.optimize(lambda params: params["x"], n_trials=2)
    frame = study.trials_dataframe()
    assert str(frame["last_step"].dtype) == "Int64"
    assert frame["last_step"].isna().tolist() == [True, True]
