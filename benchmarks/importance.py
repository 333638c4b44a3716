"""Parameter importances against Optuna's evaluators, on objectives whose answer is known.

For each objective and number of trials, random search runs ``--seeds`` studies; each study's
trials are given to ``hpo_plugins.importance.param_importances`` and, copied into an Optuna
study, to Optuna's fANOVA and mean-decrease-impurity evaluators (scikit-learn). The table shows
each method's mean shares of ``x1``, ``x2``, ``x3`` beside the true split of the objective's
variance (``x3`` never matters), and how often each method ranks ``x1 > x2 > x3``.

    python -m benchmarks.importance              # 5 seeds, 60 and 300 trials (about a minute)
    python -m benchmarks.importance --seeds 20
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.samplers import RandomSampler

LABELS = ("x1", "x2", "x3")
SPACE = {label: hp.uniform(label, -1, 1) for label in LABELS}

#: name -> (objective, true variance shares of x1, x2, x3 for x uniform on [-1, 1]).
#: Var(a*x) = a^2/3 and Var(a*x^2) = 4*a^2/45, so the shares follow from the coefficients.
OBJECTIVES: dict[str, tuple[Callable[[dict[str, float]], float], tuple[float, ...]]] = {
    "10*x1 + x2": (lambda p: 10 * p["x1"] + p["x2"], (100 / 101, 1 / 101, 0.0)),
    "x1^2 + 0.3*x2^2": (lambda p: p["x1"] ** 2 + 0.3 * p["x2"] ** 2,
                        (1 / 1.09, 0.09 / 1.09, 0.0)),
}


def _optuna_shares(trials: list[hpo.FrozenTrial]) -> dict[str, list[float]]:
    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        get_param_importances,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    distributions: dict[str, Any] = {
        label: optuna.distributions.FloatDistribution(-1, 1) for label in LABELS}
    for trial in trials:
        study.add_trial(optuna.trial.create_trial(params=dict(trial.params),
                                                  distributions=distributions,
                                                  value=trial.value))
    shares = {}
    for name, evaluator in (("optuna fANOVA", FanovaImportanceEvaluator(seed=0)),
                            ("optuna MDI", MeanDecreaseImpurityImportanceEvaluator(seed=0))):
        found = get_param_importances(study, evaluator=evaluator)
        shares[name] = [float(found[label]) for label in LABELS]
    return shares


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, nargs="+", default=[60, 300])
    args = parser.parse_args(argv)
    print("| objective | trials | method | x1 | x2 | x3 | ranked x1 > x2 > x3 |")
    print("|---|---|---|---|---|---|---|")
    for name, (objective, truth) in OBJECTIVES.items():
        for n_trials in args.trials:
            found: dict[str, list[list[float]]] = {}
            for seed in range(args.seeds):
                study = hpo.minimize(objective, SPACE, n_trials=n_trials, storage=":memory:",
                                     seed=seed, sampler=RandomSampler())
                ours = hpo.importance.param_importances(study)
                found.setdefault("hpo_plugins", []).append([ours[label] for label in LABELS])
                for method, shares in _optuna_shares(study.trials).items():
                    found.setdefault(method, []).append(shares)
            print(f"| {name} | {n_trials} | truth | "
                  + " | ".join(f"{v:.3f}" for v in truth) + " | - |")
            for method, rows in found.items():
                table = np.array(rows)
                ordered = np.mean([(r[0] > r[1] > r[2]) for r in rows])
                print(f"| {name} | {n_trials} | {method} | "
                      + " | ".join(f"{v:.3f}" for v in table.mean(axis=0))
                      + f" | {ordered:.0%} |", flush=True)


if __name__ == "__main__":
    main()
