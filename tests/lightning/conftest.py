"""Fixtures of the Lightning adapter tests: quiet CPU trainers, studies, a counting storage.

The model and data live in ``lit_digits.py`` (importable by processes that ``ddp_spawn``
starts). Lightning's warnings that these tiny runs cannot avoid are filtered here by message,
one by one; everything else still fails the test (``filterwarnings = error``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

import hpo_plugins as hpo
from hpo_plugins.pruners import Pruner
from hpo_plugins.storages import InMemoryStorage, Storage

torch.set_num_threads(1)  # the test machines are small and shared

_UNAVOIDABLE = (
    # torch 2.13 deprecates a pytree class that Lightning 2.6.6 still uses, on every fit
    "ignore:.*LeafSpec.*:FutureWarning",
    # num_workers=0 is on purpose: the data are in memory (only raised on machines with >2 CPUs)
    "ignore:The '\\w+_dataloader' does not have many workers:UserWarning",
    # tests ask for accelerator="cpu" on purpose (only raised where a GPU exists)
    "ignore:GPU available but not used:UserWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply the filters above to the tests of this directory only."""
    for item in items:
        if "/tests/lightning/" in str(item.path):
            for spec in _UNAVOIDABLE:
                item.add_marker(pytest.mark.filterwarnings(spec))


@pytest.fixture(autouse=True)
def _no_stale_master_port() -> Iterator[None]:
    """Each test starts without ``MASTER_PORT`` and leaves none behind.

    ``ddp_spawn`` (and ``ddp_fork``) set ``os.environ["MASTER_PORT"]`` in this process to a free
    port and never remove it; a later run would then reuse that port, which may no longer be
    free. A value set before the test is put back afterwards.
    """
    before = os.environ.pop("MASTER_PORT", None)
    try:
        yield
    finally:
        os.environ.pop("MASTER_PORT", None)
        if before is not None:
            os.environ["MASTER_PORT"] = before


class CountingStorage(InMemoryStorage):
    """An in-memory storage that also keeps every report it receives, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[tuple[int, int, float]] = []

    def set_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        self.reports.append((trial_id, step, value))
        super().set_intermediate_value(trial_id, step, value)

    def steps_of(self, trial_id: int) -> list[int]:
        """The steps reported for ``trial_id``, repeats included, in order."""
        return [step for tid, step, _ in self.reports if tid == trial_id]


@pytest.fixture
def trainer_kwargs() -> dict[str, Any]:
    """A quiet single-process CPU trainer without logger or checkpoints."""
    return {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "enable_checkpointing": False}


@pytest.fixture
def counting_storage() -> CountingStorage:
    return CountingStorage()


@pytest.fixture
def make_study() -> Callable[..., hpo.Study]:
    """``make_study(storage=None, pruner=None, **kwargs)``: a seeded study over one param."""

    def make(storage: Storage | str | None = None, pruner: Pruner | None = None,
             **kwargs: Any) -> hpo.Study:
        space = {"hidden": hpo.hp.choice("hidden", [8, 16])}
        return hpo.create_study(space, storage=storage or ":memory:", pruner=pruner, seed=0,
                                sampler=hpo.samplers.RandomSampler(), heartbeat_interval=None,
                                **kwargs)

    return make
