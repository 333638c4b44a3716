"""The examples in the docstrings of the TensorBoard, plotting and CLI modules run."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

import hpo_plugins.tensorboard
from hpo_plugins import plotting
from hpo_plugins.cli import _table
from hpo_plugins.tensorboard import _mapping, _observer


@pytest.mark.parametrize("module", [hpo_plugins.tensorboard, _observer, _mapping, plotting,
                                    _table], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
