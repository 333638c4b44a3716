"""The examples in the pruners' docstrings run and say what they show."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from hpo_plugins.pruners import _hyperband, _median, _patient, _successive_halving, _threshold


@pytest.mark.parametrize("module", [_median, _successive_halving, _hyperband, _threshold,
                                    _patient],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
