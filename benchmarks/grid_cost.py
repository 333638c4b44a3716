"""What a GridSampler trial costs as a large nested grid fills up.

A conditional space of 1 to 3 layers, each a dense or a convolution layer with its own
parameters, times a batch size: 992,670 grid points (17,110 with at most 2 layers). The
objective does nothing, so the figures are the loop's own cost per trial (ask, which must find
a point no trial holds, and tell), by blocks of trials, in memory. Each ask used to rebuild a
canonical key for every trial of the study, so a trial's cost grew with the study; the
sampler now remembers each trial's key.

No peer is measured: Optuna's GridSampler takes no conditional space, and Hyperopt has no grid.

    python -m benchmarks.grid_cost                    # 6 blocks of 500 trials, 3 layers
    python -m benchmarks.grid_cost --layers 2 --whole # the whole 17,110-point grid, timed
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from hyperopt.pyll import scope

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.samplers import GridSampler


def _layer(i: int) -> Any:
    return hp.choice(f"t{i}", [
        {"kind": "dense", "units": scope.int(hp.quniform(f"u{i}", 16, 128, 16))},
        {"kind": "conv", "filters": hp.uniformint(f"f{i}", 8, 32),
         "kernel": hp.choice(f"k{i}", [(3, 3), (5, 5)])}])


def space(layers: int) -> dict[str, Any]:
    """A stack of 1 to ``layers`` layers and a batch size."""
    shared = [_layer(i) for i in range(layers)]
    stacks = [tuple(shared[:depth]) for depth in range(1, layers + 1)]
    return {"net": hp.choice("depth", stacks),
            "batch": scope.int(2 ** hp.quniform("log_batch", 4, 8, 1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--block", type=int, default=500, help="trials per block")
    parser.add_argument("--whole", action="store_true", help="run the whole grid, timed")
    args = parser.parse_args()
    sampler = GridSampler()
    study = hpo.create_study(space(args.layers), storage=":memory:", sampler=sampler)
    size = sampler.grid_size(study.space)  # type: ignore[arg-type]
    print(f"grid of {size:,} points ({args.layers} layers at most), objective: nothing")
    if args.whole:
        began = time.perf_counter()
        study.optimize(lambda params: 0.0)
        seconds = time.perf_counter() - began
        print(f"| whole grid | {len(study.trials):,} trials | {seconds:.1f} s | "
              f"{1000 * seconds / len(study.trials):.2f} ms/trial |")
        return
    print("| trials | ms per trial |")
    print("|---|---|")
    for block in range(args.blocks):
        began = time.perf_counter()
        study.optimize(lambda params: 0.0, n_trials=args.block)
        per_trial = 1000 * (time.perf_counter() - began) / args.block
        print(f"| {block * args.block}-{(block + 1) * args.block - 1} | {per_trial:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
