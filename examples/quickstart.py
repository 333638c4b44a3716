"""Quickstart: tune a scikit-learn classifier on the digits data set, on CPU, in about a minute.

The space is nested: the model family is a choice and each family has its own parameters.
Results go to the default SQLite file ``hpo.db``; run the script again and the study resumes
(``max_trials`` makes it complete the study rather than add to it).

    python examples/quickstart.py --trials 40
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import hpo_plugins as hpo
from hpo_plugins import hp

SPACE = {
    "model": hp.choice("model", [
        {"type": "svc", "C": hp.loguniform("svc_C", math.log(1e-2), math.log(1e3)),
         "gamma": hp.loguniform("svc_gamma", math.log(1e-5), math.log(1e-1))},
        {"type": "forest", "n_estimators": hp.quniform("rf_trees", 10, 150, 10),
         "max_depth": hp.choice("rf_depth", [None, hp.uniformint("rf_max_depth", 2, 20)])},
        {"type": "logreg", "C": hp.loguniform("lr_C", math.log(1e-3), math.log(1e2))},
    ]),
}


def build(params: dict[str, Any]) -> Any:
    """Turn the natural nested params into a scikit-learn estimator."""
    m = params["model"]
    if m["type"] == "svc":
        return make_pipeline(StandardScaler(), SVC(C=m["C"], gamma=m["gamma"]))
    if m["type"] == "forest":
        return RandomForestClassifier(n_estimators=int(m["n_estimators"]),
                                      max_depth=m["max_depth"], random_state=0, n_jobs=1)
    return make_pipeline(StandardScaler(), LogisticRegression(C=m["C"], max_iter=300))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="total trials in the study")
    parser.add_argument("--storage", default=None, help="database URL (default: sqlite hpo.db)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("hpo_plugins._optimize").setLevel(logging.WARNING)
    x, y = load_digits(return_X_y=True)

    def objective(params: dict[str, Any]) -> float:
        accuracy = cross_val_score(build(params), x, y, cv=3).mean()
        return 1.0 - float(accuracy)  # the error rate, minimised

    study = hpo.minimize(objective, SPACE, max_trials=args.trials, study_name="quickstart",
                         storage=args.storage, seed=0, show_progress_bar=True)
    print(f"trials in the study: {len(study.trials)}")
    print(f"best error rate: {study.best_value:.4f} (trial {study.best_trial.number})")
    print(f"best params: {study.best_params}")
    print(study.trials_dataframe()[["number", "state", "value", "params_model"]].tail())


if __name__ == "__main__":
    main()
