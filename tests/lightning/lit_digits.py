"""A tiny classifier on scikit-learn's digits, in both Lightning namespaces, for the tests.

Kept in a module of its own (not in ``conftest.py``) so that processes started by
``strategy="ddp_spawn"`` can import the classes by a unique name when they unpickle the trainer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as L
import numpy as np
import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins.pruners import Pruner

N_TRAIN = 1400


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels scaled to [0, 1] and labels, shuffled once with a fixed seed."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return (torch.tensor(x[order] / 16.0, dtype=torch.float32),
            torch.tensor(y[order], dtype=torch.long))


def loaders(batch_size: int = 200, n_train: int = N_TRAIN) -> tuple[DataLoader, DataLoader]:
    """Train and validation loaders (no worker processes, fixed shuffling)."""
    x, y = digits_arrays()
    train = TensorDataset(x[:n_train], y[:n_train])
    val = TensorDataset(x[N_TRAIN:], y[N_TRAIN:])
    generator = torch.Generator().manual_seed(0)
    return (DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator,
                       num_workers=0),
            DataLoader(val, batch_size=512, num_workers=0))


class _DataLogic:
    def __init__(self, batch_size: int = 200) -> None:
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return loaders(self.batch_size)[0]

    def val_dataloader(self) -> DataLoader:
        return loaders(self.batch_size)[1]


class _ClassifierLogic:
    """An MLP whose ``val_loss`` and ``val_acc`` are logged at every validation."""

    log: Any

    def __init__(self, hidden: int = 16, lr: float = 0.05, log_val: bool = True) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        self.lr = lr
        self.log_val = log_val

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        if self.log_val:
            self.log("val_loss", nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class DigitsData(_DataLogic, L.LightningDataModule):
    """The digits as a ``lightning.pytorch`` data module."""


class DigitsClassifier(_ClassifierLogic, L.LightningModule):
    """The MLP as a ``lightning.pytorch`` module."""


class PLDigitsData(_DataLogic, pl.LightningDataModule):
    """The digits as a ``pytorch_lightning`` data module."""


class PLDigitsClassifier(_ClassifierLogic, pl.LightningModule):
    """The MLP as a ``pytorch_lightning`` module."""


class PruneAt(Pruner):
    """A deterministic pruner: prunes trial ``number`` once it reports at ``step`` or later.

    A real implementation of the pruner contract (pure, constructor stores its arguments), so
    it can be recorded with the study and rebuilt in a child process.
    """

    def __init__(self, *, number: int = 1, step: int = 2) -> None:
        self.number = number
        self.step = step

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        last = trial.last_step
        return trial.number == self.number and last is not None and last >= self.step


class RankRecorder(DigitsClassifier):
    """Writes, on every rank, how many epochs it trained and its ``should_stop`` at the end.

    Each rank logs ``val_loss`` plus ``1000 * rank``, without syncing, so a report that came
    from another rank than 0 shows in the stored curve.
    """

    def __init__(self, record_dir: str = ".", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record_dir = record_dir

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("val_loss", loss + 1000.0 * self.global_rank)

    def on_fit_end(self) -> None:
        path = f"{self.record_dir}/rank{self.global_rank}.txt"
        with open(path, "a") as out:
            out.write(f"{self.current_epoch} {self.trainer.should_stop}\n")
