"""Test suites shipped with hpo_plugins, so that plugins can prove they keep our contracts.

A new storage is correct when its test module subclasses :class:`StorageConformance` and passes::

    import pytest
    from hpo_plugins.testing import StorageConformance

    class TestMyStorage(StorageConformance):
        @pytest.fixture
        def storage(self, tmp_path):
            store = MyStorage(tmp_path / "db")
            yield store
            store.close()

The suites need pytest (a test dependency, not a runtime one).
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401 - fail here, with a clear message, rather than deep inside
except ImportError as exc:  # pragma: no cover - pytest is installed wherever tests run
    from hpo_plugins.exceptions import MissingDependencyError

    raise MissingDependencyError(
        "hpo_plugins.testing holds pytest test suites and needs pytest. "
        "Install it with: pip install pytest"
    ) from exc

from hpo_plugins.testing.storage_conformance import StorageConformance

__all__ = ["StorageConformance"]
