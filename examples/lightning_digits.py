"""Tune a PyTorch Lightning MLP on scikit-learn's digits, with asynchronous successive halving.

The space is nested: the number of hidden layers (1 to 3) decides how many ``units`` parameters
exist, and the optimiser choice brings its own parameters (Adam: learning rate and weight decay;
SGD: learning rate and momentum). Every trial reports its validation loss after each epoch through
``HPOCallback`` and successive halving stops the weak ones early. On a CPU the defaults take
about two minutes. Results go to the default SQLite file ``hpo.db`` (run the script again and the
study resumes; ``--trials`` is the study's total) and each trial's directory under ``hpo_runs/``
holds its ``metrics.csv`` and best checkpoint.

    python examples/lightning_digits.py                  # 30 trials of up to 27 epochs
    python examples/lightning_digits.py --trials 60 --storage sqlite:///digits.db
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from hyperopt.pyll import scope
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.lightning import lightning_objective


def _units(n_layers: int) -> tuple[Any, ...]:
    """One ``units`` parameter per hidden layer, labelled by depth and position.

    ``hp.quniform`` gives floats (``160.0``); ``scope.int`` hands the model whole numbers.
    """
    return tuple(scope.int(hp.quniform(f"units_{n_layers}_{i}", 16, 256, 16))
                 for i in range(n_layers))


SPACE = {
    "layers": hp.choice("n_layers", [_units(1), _units(2), _units(3)]),
    "dropout": hp.uniform("dropout", 0.0, 0.5),
    "optimizer": hp.choice("optimizer", [
        {"name": "adam", "lr": hp.loguniform("adam_lr", math.log(1e-4), math.log(3e-2)),
         "weight_decay": hp.loguniform("adam_weight_decay", math.log(1e-6), math.log(1e-2))},
        {"name": "sgd", "lr": hp.loguniform("sgd_lr", math.log(1e-3), math.log(0.5)),
         "momentum": hp.uniform("sgd_momentum", 0.0, 0.95)},
    ]),
}


class DigitsData(L.LightningDataModule):
    """The 1,797 8x8 digits: 70 % for training, 30 % for validation (a fixed split)."""

    def __init__(self, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        x, y = load_digits(return_X_y=True)
        order = np.random.default_rng(seed).permutation(len(y))
        x = torch.tensor(x[order] / 16.0, dtype=torch.float32)
        y = torch.tensor(y[order], dtype=torch.long)
        cut = int(0.7 * len(y))
        self.train_set = TensorDataset(x[:cut], y[:cut])
        self.val_set = TensorDataset(x[cut:], y[cut:])
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=len(self.val_set))


class DigitsMLP(L.LightningModule):
    """An MLP whose shape and optimiser come from the natural params of ``SPACE``."""

    def __init__(self, layers: Sequence[float], dropout: float, optimizer: dict[str, Any]
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        blocks: list[nn.Module] = []
        width = 64
        for units in layers:
            blocks += [nn.Linear(width, int(units)), nn.ReLU(), nn.Dropout(dropout)]
            width = int(units)
        self.net = nn.Sequential(*blocks, nn.Linear(width, 10))
        self.optimizer = dict(optimizer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(dim=1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        opt = self.optimizer
        if opt["name"] == "adam":
            return torch.optim.Adam(self.parameters(), lr=opt["lr"],
                                    weight_decay=opt["weight_decay"])
        return torch.optim.SGD(self.parameters(), lr=opt["lr"], momentum=opt["momentum"])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="total trials in the study")
    parser.add_argument("--epochs", type=int, default=27, help="epochs of an unpruned trial")
    parser.add_argument("--storage", default=None,
                        help="database URL (default: the SQLite file hpo.db)")
    parser.add_argument("--study", default="lightning_digits", help="study name")
    return parser.parse_args(argv)


def tune(args: argparse.Namespace, data: DigitsData) -> hpo.Study:
    """Run (or resume) the study: successive halving over ``SPACE``, best checkpoints kept."""
    objective = lightning_objective(
        DigitsMLP, datamodule=data, save_checkpoint=True, seed=0,
        trainer_kwargs={"max_epochs": args.epochs, "accelerator": "cpu", "devices": 1,
                        "num_sanity_val_steps": 0, "log_every_n_steps": 10})
    # rungs at steps 1, 3, 9 (after 2, 4, 10 epochs): at each, about one trial in three goes on
    pruner = hpo.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return hpo.minimize(objective, SPACE, max_trials=args.trials, study_name=args.study,
                        storage=args.storage, seed=0, pruner=pruner, show_progress_bar=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lightning.pytorch", "lightning.fabric", "hpo_plugins._optimize",
                  "hpo_plugins.lightning"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")  # in-memory data
    # Lightning 2.6 on torch 2.13 asks torch's pytree a deprecated question: not ours to fix
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    torch.set_num_threads(1)  # tiny batches: one thread is fastest and leaves the other cores
    data = DigitsData()
    report(tune(args, data), data)


def report(study: hpo.Study, data: DigitsData) -> None:
    """Print the outcome, the best model's accuracy and where everything was written."""
    states = [t.state.value for t in study.trials]
    best = study.best_trial
    epochs = sum((t.last_step or 0) + 1 for t in study.trials if t.intermediate_values)
    print(f"study {study.study_name!r} in {where(study.storage.describe())}")
    print(f"trials: {len(states)} ({states.count('COMPLETE')} complete, "
          f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed), "
          f"{epochs} epochs trained in total")
    print(f"best trial: {best.number}, val_loss {best.value:.4f}, params {study.best_params}")
    checkpoint = best.user_attrs["checkpoint"]
    print(f"best checkpoint: {checkpoint}")
    print(f"its validation accuracy: {accuracy(checkpoint, data):.4f}")
    print(f"every trial's metrics.csv and checkpoint: {os.path.dirname(best.log_dir or '')}")


def where(url: str) -> str:
    """A SQLite URL as the absolute path of its file; other URLs as they are."""
    prefix = "sqlite:///"
    return os.path.abspath(url[len(prefix):]) if url.startswith(prefix) else url


def accuracy(checkpoint: str, data: DigitsData) -> float:
    """Reload a checkpoint (the module saved its hyperparameters) and score it."""
    model = DigitsMLP.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    x, y = data.val_set.tensors
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


if __name__ == "__main__":
    main()
