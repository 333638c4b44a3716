"""Benchmark problems with known optima, declared twice: in Hyperopt's language and in Optuna's.

Each :class:`Problem` holds one Hyperopt space (used by ``hpo_plugins`` and by ``hyperopt.fmin``),
an Optuna ``suggest`` function that draws the same parameters (same labels, bounds and log
scales; conditional suggests for the nested space) and returns the same nested natural value
that ``hyperopt.space_eval`` builds, and one objective over that natural value. All three
optimiser families therefore evaluate exactly the same function.

Problems:

* ``branin`` (2-d): Branin-Hoo on ``[-5, 10] x [0, 15]``, minimum 0.397887.
* ``hartmann6`` (6-d): Hartmann 6 on ``[0, 1]^6``, minimum -3.322368.
* ``mixed10`` (10-d): a shifted sphere (3 dims), a Rosenbrock valley (2 dims), Levy (3 dims)
  and two log-scaled "learning-rate-like" parameters; minimum 0.
* ``nested`` (conditional, up to 5 active parameters of 10): a choice between an ``svm``
  branch (best 0.25), a ``tree`` branch (best 0.10) and an ``mlp`` branch whose nested optimizer
  choice holds the global minimum 0 (``adam``, ``beta1 = 0.9``, ``lr = 1e-3``,
  ``dropout = 0.3``); the ``sgd`` option of that branch bottoms out at 0.08.
* ``rosenbrock10``, ``levy10``, ``ackley10`` (10-d): the classic functions on their usual
  domains (``[-5, 10]``, ``[-10, 10]``, ``[-32.768, 32.768]``), minimum 0.
* ``bbob_*`` (5-d): BBOB functions f1, f2, f6, f8, f10, f15 on ``[-5, 5]^5``
  (:mod:`benchmarks._bbob`), minimum 0.
* ``nested2`` (conditional, 11 parameters, 4 to 5 active): a choice of three branches, each
  with parameters of its own: ``a`` (two uniforms and a log-uniform; best 0.3), ``b`` (an integer
  ``quniform``, a uniform and a 3-way choice; best 0.2), ``c`` (four uniforms of a bumpy bowl;
  best 0.04736, the global minimum).
* ``svc_digits``, ``rf_wine``: real tuning tasks on data scikit-learn ships, kept small so a
  run takes seconds; the value is the 3-fold cross-validated error (1 - accuracy), its
  "optimum" 0. ``svc_digits``: ``SVC`` on the first 300 ``load_digits`` images, log ``C`` and
  log ``gamma``. ``rf_wine``: a 5-tree ``RandomForestClassifier`` on ``load_wine`` with
  ``max_depth``, ``min_samples_leaf``, ``max_features`` and ``criterion``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hyperopt import hp

from benchmarks._bbob import BBOB

__all__ = ["PROBLEMS", "Problem"]

Suggest = Callable[[Any], Any]
Objective = Callable[[Any], float]


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes:
        name: Short name used on the command line and in tables.
        dims: Number of parameters in the space (all branches counted).
        space: The Hyperopt space (``hp`` expressions nested in dicts).
        suggest: ``suggest(optuna_trial) -> natural value`` with Optuna's suggest API.
        objective: ``objective(natural value) -> loss`` (lower is better).
        optimum: The known global minimum of ``objective``.
    """

    name: str
    dims: int
    space: Any
    suggest: Suggest
    objective: Objective
    optimum: float

    def regret(self, best: float) -> float:
        """Best value found minus the known optimum."""
        return float(best) - self.optimum


# -- Branin ------------------------------------------------------------------------------------

def _branin(p: Mapping[str, float]) -> float:
    x1, x2 = float(p["x1"]), float(p["x2"])
    b, c, t = 5.1 / (4.0 * math.pi**2), 5.0 / math.pi, 1.0 / (8.0 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


_BRANIN_SPACE = {"x1": hp.uniform("x1", -5.0, 10.0), "x2": hp.uniform("x2", 0.0, 15.0)}


def _branin_suggest(trial: Any) -> dict[str, float]:
    return {"x1": trial.suggest_float("x1", -5.0, 10.0),
            "x2": trial.suggest_float("x2", 0.0, 15.0)}


# -- Hartmann 6 --------------------------------------------------------------------------------

_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
])
_H6_P = 1e-4 * np.array([
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
])
_H6_LABELS = tuple(f"h{i}" for i in range(6))


def _hartmann6(p: Mapping[str, float]) -> float:
    x = np.array([float(p[k]) for k in _H6_LABELS])
    inner = np.sum(_H6_A * (x - _H6_P) ** 2, axis=1)
    return float(-np.sum(_H6_ALPHA * np.exp(-inner)))


_H6_SPACE = {k: hp.uniform(k, 0.0, 1.0) for k in _H6_LABELS}


def _hartmann6_suggest(trial: Any) -> dict[str, float]:
    return {k: trial.suggest_float(k, 0.0, 1.0) for k in _H6_LABELS}


# -- Mixed 10-d --------------------------------------------------------------------------------

_SPHERE_SHIFT = {"s0": 1.5, "s1": -2.0, "s2": 0.5}
_ROSEN = ("r0", "r1")
_LEVY = ("l0", "l1", "l2")
_LR_BEST, _REG_BEST = 3e-3, 1e-4
_LR_BOUNDS, _REG_BOUNDS = (1e-5, 1e-1), (1e-6, 1.0)


def _levy(x: np.ndarray) -> float:
    w = 1.0 + (x - 1.0) / 4.0
    head = math.sin(math.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(math.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + math.sin(2.0 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


def _mixed10(p: Mapping[str, float]) -> float:
    sphere = sum((float(p[k]) - s) ** 2 for k, s in _SPHERE_SHIFT.items())
    a, b = float(p["r0"]), float(p["r1"])
    rosen = 100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2
    levy = _levy(np.array([float(p[k]) for k in _LEVY]))
    lr = (math.log10(float(p["lr"])) - math.log10(_LR_BEST)) ** 2
    reg = 0.5 * (math.log10(float(p["reg"])) - math.log10(_REG_BEST)) ** 2
    return float(sphere + 0.1 * rosen + levy + lr + reg)


_MIXED10_SPACE: dict[str, Any] = {
    **{k: hp.uniform(k, -5.0, 5.0) for k in _SPHERE_SHIFT},
    **{k: hp.uniform(k, -2.0, 2.0) for k in _ROSEN},
    **{k: hp.uniform(k, -10.0, 10.0) for k in _LEVY},
    "lr": hp.loguniform("lr", math.log(_LR_BOUNDS[0]), math.log(_LR_BOUNDS[1])),
    "reg": hp.loguniform("reg", math.log(_REG_BOUNDS[0]), math.log(_REG_BOUNDS[1])),
}


def _mixed10_suggest(trial: Any) -> dict[str, float]:
    out = {k: trial.suggest_float(k, -5.0, 5.0) for k in _SPHERE_SHIFT}
    out.update({k: trial.suggest_float(k, -2.0, 2.0) for k in _ROSEN})
    out.update({k: trial.suggest_float(k, -10.0, 10.0) for k in _LEVY})
    out["lr"] = trial.suggest_float("lr", *_LR_BOUNDS, log=True)
    out["reg"] = trial.suggest_float("reg", *_REG_BOUNDS, log=True)
    return out


# -- Nested conditional space ------------------------------------------------------------------

_C_BOUNDS, _GAMMA_BOUNDS, _MLP_LR_BOUNDS = (1e-3, 1e3), (1e-5, 10.0), (1e-5, 1.0)


def _log_hp(label: str, bounds: tuple[float, float]) -> Any:
    return hp.loguniform(label, math.log(bounds[0]), math.log(bounds[1]))


_NESTED_SPACE = {"model": hp.choice("model", [
    {"kind": "svm", "C": _log_hp("svm_C", _C_BOUNDS),
     "gamma": _log_hp("svm_gamma", _GAMMA_BOUNDS)},
    {"kind": "tree", "depth": hp.uniformint("tree_depth", 1, 20),
     "min_leaf": hp.uniform("tree_min_leaf", 0.0, 1.0)},
    {"kind": "mlp", "lr": _log_hp("mlp_lr", _MLP_LR_BOUNDS),
     "dropout": hp.uniform("mlp_dropout", 0.0, 0.8),
     "optimizer": hp.choice("mlp_opt", [
         {"name": "sgd", "momentum": hp.uniform("sgd_momentum", 0.0, 0.99)},
         {"name": "adam", "beta1": hp.uniform("adam_beta1", 0.5, 0.999)},
     ])},
])}


def _nested_suggest(trial: Any) -> dict[str, Any]:
    kind = trial.suggest_categorical("model", ["svm", "tree", "mlp"])
    if kind == "svm":
        model = {"kind": kind, "C": trial.suggest_float("svm_C", *_C_BOUNDS, log=True),
                 "gamma": trial.suggest_float("svm_gamma", *_GAMMA_BOUNDS, log=True)}
    elif kind == "tree":
        model = {"kind": kind, "depth": trial.suggest_int("tree_depth", 1, 20),
                 "min_leaf": trial.suggest_float("tree_min_leaf", 0.0, 1.0)}
    else:
        model = {"kind": kind, "lr": trial.suggest_float("mlp_lr", *_MLP_LR_BOUNDS, log=True),
                 "dropout": trial.suggest_float("mlp_dropout", 0.0, 0.8),
                 "optimizer": _nested_optimizer(trial)}
    return {"model": model}


def _nested_optimizer(trial: Any) -> dict[str, Any]:
    name = trial.suggest_categorical("mlp_opt", ["sgd", "adam"])
    if name == "sgd":
        return {"name": name, "momentum": trial.suggest_float("sgd_momentum", 0.0, 0.99)}
    return {"name": name, "beta1": trial.suggest_float("adam_beta1", 0.5, 0.999)}


def _nested(p: Mapping[str, Any]) -> float:
    m = p["model"]
    if m["kind"] == "svm":
        return 0.25 + 0.02 * ((math.log10(m["C"]) - 1.5) ** 2
                              + (math.log10(m["gamma"]) + 2.5) ** 2)
    if m["kind"] == "tree":
        return 0.10 + 0.004 * (float(m["depth"]) - 7.0) ** 2 + 0.5 * (m["min_leaf"] - 0.15) ** 2
    opt = m["optimizer"]
    if opt["name"] == "sgd":
        tail = 0.08 + 0.5 * (opt["momentum"] - 0.9) ** 2
    else:
        tail = 2.0 * (opt["beta1"] - 0.9) ** 2
    return float(0.05 * (math.log10(m["lr"]) + 3.0) ** 2 + 0.5 * (m["dropout"] - 0.3) ** 2
                 + tail)


# -- Flat boxes: classic 10-d functions and BBOB functions --------------------------------------

def _box(name: str, bounds: Sequence[tuple[float, float]], f: Callable[[np.ndarray], float],
         optimum: float) -> Problem:
    """A problem on a box of uniform parameters ``x0, x1, ...``."""
    labels = [f"x{i}" for i in range(len(bounds))]
    space = {lbl: hp.uniform(lbl, lo, hi) for lbl, (lo, hi) in zip(labels, bounds)}

    def suggest(trial: Any) -> dict[str, float]:
        return {lbl: trial.suggest_float(lbl, lo, hi) for lbl, (lo, hi) in zip(labels, bounds)}

    def objective(p: Mapping[str, Any]) -> float:
        return float(f(np.array([float(p[lbl]) for lbl in labels])))

    return Problem(name, len(labels), space, suggest, objective, optimum)


def _rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def _ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(-20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d))
                 - np.exp(np.sum(np.cos(2.0 * np.pi * x)) / d) + 20.0 + math.e)


# -- Second nested space: every branch has parameters of its own -------------------------------

_NESTED2_SPACE = {"algo": hp.choice("algo", [
    {"k": "a", "a1": hp.uniform("a1", -5.0, 5.0), "a2": hp.uniform("a2", -5.0, 5.0),
     "a3": hp.loguniform("a3", math.log(1e-4), 0.0)},
    {"k": "b", "b1": hp.quniform("b1", 1, 64, 1), "b2": hp.uniform("b2", 0.0, 1.0),
     "b3": hp.choice("b3", ["x", "y", "z"])},
    {"k": "c", **{f"c{i}": hp.uniform(f"c{i}", -3.0, 3.0) for i in range(1, 5)}},
])}


def _nested2_suggest(trial: Any) -> dict[str, Any]:
    k = trial.suggest_categorical("algo", ["a", "b", "c"])
    if k == "a":
        return {"algo": {"k": k, "a1": trial.suggest_float("a1", -5.0, 5.0),
                         "a2": trial.suggest_float("a2", -5.0, 5.0),
                         "a3": trial.suggest_float("a3", 1e-4, 1.0, log=True)}}
    if k == "b":
        return {"algo": {"k": k, "b1": float(trial.suggest_int("b1", 1, 64)),
                         "b2": trial.suggest_float("b2", 0.0, 1.0),
                         "b3": trial.suggest_categorical("b3", ["x", "y", "z"])}}
    return {"algo": {"k": k, **{f"c{i}": trial.suggest_float(f"c{i}", -3.0, 3.0)
                                for i in range(1, 5)}}}


def _nested2(p: Mapping[str, Any]) -> float:
    a = p["algo"]
    if a["k"] == "a":
        return float(0.3 + 0.05 * ((a["a1"] - 1.0) ** 2 + (a["a2"] + 2.0) ** 2)
                     + 0.1 * (math.log10(a["a3"]) + 2.0) ** 2)
    if a["k"] == "b":
        return float(0.2 + 0.0005 * (a["b1"] - 40.0) ** 2 + (a["b2"] - 0.7) ** 2
                     + {"x": 0.1, "y": 0.0, "z": 0.2}[a["b3"]])
    x = np.array([a[f"c{i}"] for i in range(1, 5)])
    return float(0.05 * np.sum((x - 0.5) ** 2) + 0.1 * np.sum(np.sin(3.0 * x) ** 2))


# -- Real tuning tasks on scikit-learn's bundled data --------------------------------------------

@functools.cache
def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name == "digits":
        x, y = datasets.load_digits(return_X_y=True)
        return x[:300] / 16.0, y[:300]
    x, y = datasets.load_wine(return_X_y=True)
    return (x - x.mean(axis=0)) / x.std(axis=0), y


def _cv_error(model: Any, data: str) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x, y = _data(data)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    return float(1.0 - np.mean(cross_val_score(model, x, y, cv=folds)))


_SVC_SPACE = {"C": hp.loguniform("C", math.log(1e-2), math.log(1e3)),
              "gamma": hp.loguniform("gamma", math.log(1e-5), math.log(1e-1))}


def _svc_suggest(trial: Any) -> dict[str, float]:
    return {"C": trial.suggest_float("C", 1e-2, 1e3, log=True),
            "gamma": trial.suggest_float("gamma", 1e-5, 1e-1, log=True)}


def _svc_digits(p: Mapping[str, Any]) -> float:
    from sklearn.svm import SVC

    return _cv_error(SVC(C=float(p["C"]), gamma=float(p["gamma"])), "digits")


_RF_SPACE = {"max_depth": hp.uniformint("max_depth", 1, 12),
             "min_samples_leaf": hp.uniformint("min_samples_leaf", 1, 20),
             "max_features": hp.uniform("max_features", 0.05, 1.0),
             "criterion": hp.choice("criterion", ["gini", "entropy"])}


def _rf_suggest(trial: Any) -> dict[str, Any]:
    return {"max_depth": trial.suggest_int("max_depth", 1, 12),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 20),
            "max_features": trial.suggest_float("max_features", 0.05, 1.0),
            "criterion": trial.suggest_categorical("criterion", ["gini", "entropy"])}


def _rf_wine(p: Mapping[str, Any]) -> float:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=5, max_depth=int(p["max_depth"]),
        min_samples_leaf=int(p["min_samples_leaf"]), max_features=float(p["max_features"]),
        criterion=str(p["criterion"]), random_state=0, n_jobs=1)
    return _cv_error(model, "wine")


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", 2, _BRANIN_SPACE, _branin_suggest, _branin,
                      0.39788735772973816),
    "hartmann6": Problem("hartmann6", 6, _H6_SPACE, _hartmann6_suggest, _hartmann6,
                         -3.322368011415515),
    "mixed10": Problem("mixed10", 10, _MIXED10_SPACE, _mixed10_suggest, _mixed10, 0.0),
    "nested": Problem("nested", 10, _NESTED_SPACE, _nested_suggest, _nested, 0.0),
    "rosenbrock10": _box("rosenbrock10", [(-5.0, 10.0)] * 10, _rosenbrock, 0.0),
    "levy10": _box("levy10", [(-10.0, 10.0)] * 10, _levy, 0.0),
    "ackley10": _box("ackley10", [(-32.768, 32.768)] * 10, _ackley, 0.0),
    **{f"bbob_{name}": _box(f"bbob_{name}", [(-5.0, 5.0)] * 5, f, 0.0)
       for name, f in BBOB.items()},
    "nested2": Problem("nested2", 11, _NESTED2_SPACE, _nested2_suggest, _nested2,
                       0.047363204675235755),
    "svc_digits": Problem("svc_digits", 2, _SVC_SPACE, _svc_suggest, _svc_digits, 0.0),
    "rf_wine": Problem("rf_wine", 4, _RF_SPACE, _rf_suggest, _rf_wine, 0.0),
}
"""The problems by name, in report order."""
