"""A plain Lightning training script that the tuner can drive, one process per trial.

Run alone, it trains with ``DEFAULTS``. Run by ``hpo-plugins run``, it reads the trial's params
from the environment the launcher sets, reports ``val_loss`` after each epoch through
``HPOCallback`` (to the same storage, so pruning works across processes) and stops when pruned.

    python examples/train_digits.py --epochs 5                   # alone
    python examples/train_digits.py --epochs 5 --accelerator gpu # alone, on the GPU
    hpo-plugins run --space examples/space.py:SPACE --n-trials 20 --n-jobs 2 --study digits \\
        --pruner asha -- python examples/train_digits.py --epochs 20
"""

from __future__ import annotations

import argparse
import logging
import warnings

import lightning.pytorch as L
from lightning_digits import DigitsData, DigitsMLP
from space import DEFAULTS

from hpo_plugins.launchers import current_params
from hpo_plugins.lightning import HPOCallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--accelerator", default="cpu",
                        help='Lightning accelerator: "cpu" (default), "gpu" or "auto"')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # Lightning 2.6 on torch 2.13 asks torch's pytree a deprecated question: not ours to fix
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    params = current_params(DEFAULTS)
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(max_epochs=args.epochs, callbacks=[HPOCallback()], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, accelerator=args.accelerator, devices=1)
    trainer.fit(DigitsMLP(**params), datamodule=DigitsData())
    print(f"val_loss={float(trainer.callback_metrics['val_loss']):.4f} params={params}")


if __name__ == "__main__":
    main()
