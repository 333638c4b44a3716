"""Every docstring example of the package runs (those marked ``+SKIP`` need a GPU, a cluster or
a user's own model), so an example in the API reference cannot silently go stale."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import hpo_plugins

_MODULES = sorted(info.name for info in pkgutil.walk_packages(hpo_plugins.__path__,
                                                              "hpo_plugins."))


def test_the_package_has_modules_with_examples() -> None:
    with_examples = [name for name in _MODULES
                     if ">>>" in (Path(importlib.import_module(name).__file__ or "")
                                  .read_text(encoding="utf-8"))]
    assert len(with_examples) >= 15, with_examples


@pytest.mark.parametrize("name", _MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write (hpo.db, runs/) write here
    module = importlib.import_module(name)
    result = doctest.testmod(module, raise_on_error=False, verbose=False,
                             optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
