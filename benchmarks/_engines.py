"""One ask/tell interface over our study, Optuna's and Hyperopt's, for simulated parallel runs.

``benchmarks/parallel.py`` simulates workers by keeping several asked trials open before telling
the oldest. To compare the cost of parallelism with our peers' in the same run, each engine is
driven through the same two calls: :meth:`Engine.ask` proposes a configuration (the open trials
are visible to the engine as running), :meth:`Engine.tell` evaluates it and reports the value.

The peers run in the setting their documentation recommends for parallel workers:

* Optuna: ``TPESampler(seed=..., constant_liar=True)``, its documented option for parallel
  and distributed optimisation (running trials are penalised so workers spread out);
* Hyperopt: one ``tpe.suggest`` call per proposal with the open trials inserted as NEW
  documents, which is what its parallel backends (``MongoTrials``, ``SparkTrials``) do;
  ``tpe.suggest`` treats those as having an infinite loss.

Every engine is seeded, so each run is deterministic and independent of the machine's load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

import hpo_plugins as hpo

ENGINES = ("hpo_plugins", "optuna", "hyperopt")

Objective = Callable[[dict[str, Any]], float]
_SEED_BOUND = 2 ** 31 - 1


class Engine(Protocol):
    """What the simulation needs from an optimiser."""

    def ask(self) -> Any:
        """Propose one configuration; it stays running until :meth:`tell`."""

    def tell(self, handle: Any) -> float:
        """Evaluate the configuration of ``handle``, report it, return its value."""


class _Ours:
    """Our default sampler through ``create_study`` in memory."""

    def __init__(self, objective: Objective, space: dict[str, Any], seed: int) -> None:
        self.objective = objective
        self.study = hpo.create_study(space=space, storage=":memory:", seed=seed,
                                      heartbeat_interval=None)

    def ask(self) -> hpo.Trial:
        return self.study.ask()

    def tell(self, handle: hpo.Trial) -> float:
        value = self.objective(handle.params)
        self.study.tell(handle, value)
        return value


class _Optuna:
    """Optuna's TPE with its constant liar; every parameter is a ``suggest_float``."""

    def __init__(self, objective: Objective, bounds: dict[str, tuple[float, float]],
                 seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.objective, self.bounds = objective, bounds
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        self.study = optuna.create_study(sampler=sampler, direction="minimize")

    def ask(self) -> tuple[Any, dict[str, float]]:
        trial = self.study.ask()
        params = {name: trial.suggest_float(name, low, high)
                  for name, (low, high) in self.bounds.items()}
        return trial, params

    def tell(self, handle: tuple[Any, dict[str, float]]) -> float:
        trial, params = handle
        value = self.objective(params)
        self.study.tell(trial, value)
        return value


class _Hyperopt:
    """Hyperopt's ``tpe.suggest`` on a ``Trials`` that holds the open proposals as NEW."""

    def __init__(self, objective: Objective, space: dict[str, Any], seed: int) -> None:
        from hyperopt import Domain, Trials

        self.domain, self.trials = Domain(objective, space), Trials()
        self.rstate = np.random.default_rng(seed)  # seeds each suggest as fmin does

    def ask(self) -> dict[str, Any]:
        from hyperopt import tpe

        new_ids = self.trials.new_trial_ids(1)
        self.trials.refresh()
        docs = tpe.suggest(new_ids, self.domain, self.trials,
                           int(self.rstate.integers(_SEED_BOUND)))
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()
        return next(d for d in self.trials.trials if d["tid"] == new_ids[0])

    def tell(self, handle: dict[str, Any]) -> float:
        from hyperopt.base import JOB_STATE_DONE, Ctrl, spec_from_misc

        result = self.domain.evaluate(spec_from_misc(handle["misc"]),
                                      Ctrl(self.trials, current_trial=handle))
        handle["result"], handle["state"] = result, JOB_STATE_DONE
        self.trials.refresh()
        return float(result["loss"])


def make_engine(name: str, objective: Objective, space: dict[str, Any],
                bounds: dict[str, tuple[float, float]], seed: int) -> Engine:
    """The engine ``name`` (one of :data:`ENGINES`) on a problem given both ways: a Hyperopt
    ``space`` and, for Optuna, the same uniform ``bounds``."""
    if name == "hpo_plugins":
        return _Ours(objective, space, seed)
    if name == "optuna":
        return _Optuna(objective, bounds, seed)
    if name == "hyperopt":
        return _Hyperopt(objective, space, seed)
    raise ValueError(f"engine must be one of {ENGINES}, got {name!r}")
