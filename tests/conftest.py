"""Shared fixtures: storages of every kind and a nested space with every Hyperopt expression."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from hpo_plugins import hp
from hpo_plugins.storages import InMemoryStorage, Storage


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own directory so default files (hpo.db, hpo_runs/) never leak."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPO_PLUGINS_TRIAL", raising=False)
    monkeypatch.delenv("HPO_PLUGINS_STORAGE", raising=False)


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Storage]:
    """Each study-level test runs once in memory and once on a SQLite file."""
    if request.param == "memory":
        yield InMemoryStorage()
        return
    from hpo_plugins.storages import SQLStorage

    store = SQLStorage(f"sqlite:///{tmp_path}/study.db")
    yield store
    store.close()


@pytest.fixture
def nested_space() -> dict[str, Any]:
    """The issue's example: a log-scaled rate and a choice of networks with their own params."""
    return {
        "lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
        "net": hp.choice("net", [
            {"kind": "mlp", "layers": hp.quniform("mlp_layers", 1, 4, 1),
             "dropout": hp.uniform("mlp_dropout", 0, 0.5)},
            {"kind": "cnn", "filters": hp.choice("cnn_filters", [16, 32, 64])},
        ]),
    }


@pytest.fixture
def every_kind_space() -> dict[str, Any]:
    """Every Hyperopt expression, nested in dicts, lists, tuples and choices."""
    return {
        "c": hp.choice("c", [
            {"u": hp.uniform("u", -1, 1), "qu": hp.quniform("qu", 0, 10, 2)},
            [hp.loguniform("lu", -3, 0), (hp.qloguniform("qlu", 0, 3, 1), "fixed")],
            hp.pchoice("pc", [(0.3, "a"), (0.7, hp.randint("ri", 2, 7))]),
        ]),
        "n": hp.normal("n", 0, 1),
        "qn": hp.qnormal("qn", 0, 5, 1),
        "ln": hp.lognormal("ln", 0, 0.5),
        "qln": hp.qlognormal("qln", 1, 0.5, 1),
        "ui": hp.uniformint("ui", 1, 8),
        "r": hp.randint("r", 5),
    }
