"""Hyperopt's own TPE (``hyperopt.tpe.suggest``) driven from a history snapshot.

Hyperopt's ``fmin`` owns its loop; here each ``sample`` builds a fresh ``hyperopt.Trials`` from
the study's history, in the document format ``fmin`` would have written, and asks
``tpe.suggest`` for one new document. Hyperopt sees nothing of our storage, workers or pruning.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from hyperopt import Domain, Trials, tpe, trials_from_docs
from hyperopt.base import JOB_STATE_DONE, STATUS_OK

from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers._base import History, Sampler, ranked_for_model
from hpo_plugins.samplers._random import check_int, check_real
from hpo_plugins.space import SearchSpace

__all__ = ["RUNNING_POLICIES", "HyperoptTPESampler"]

_logger = logging.getLogger(__name__)

#: Accepted values of ``HyperoptTPESampler(running_policy=...)``.
RUNNING_POLICIES = ("liar", "ignore")

_SEED_BOUND = 2**31 - 1
_MAX_CACHED = 200_000  # documents kept per space before the cache starts over
_PENDING = (TrialState.RUNNING, TrialState.WAITING)


class HyperoptTPESampler(Sampler):
    """Hyperopt's Tree-structured Parzen Estimator, one suggestion per ``sample``.

    Policies (where this bridge differs from ``fmin(algo=tpe.suggest)``):

    * **Start-up.** While fewer than ``n_startup_trials`` trials are *finished* (COMPLETE or
      PRUNED) the trial is drawn from the prior, like :class:`RandomSampler`. Hyperopt counts
      running trials toward its start-up; with many parallel workers that would let TPE start
      on a handful of results. Afterwards Hyperopt's own random phase is switched off
      (``n_startup_jobs=0``).
    * **Finished trials.** COMPLETE and PRUNED trials reach Hyperopt with the losses of
      :func:`~hpo_plugins.samplers.ranked_for_model`: COMPLETE ones by value (sign-adjusted so
      lower is better), PRUNED ones after every COMPLETE one, the deeper last step first, then
      the better last value. FAIL trials are ignored.
    * **Running trials** (RUNNING, and WAITING trials that hold enqueued parameters), as chosen
      by ``running_policy``:

      - ``"liar"`` (default): passed in with the worst loss of the finished trials (a constant
        liar), so that parallel workers do not all propose the same point. With no finished
        trial there is no loss to lie with and they are left out.
      - ``"ignore"``: left out.

    Hyperopt's ``tpe.suggest`` needs a ``hyperopt.Domain``; building one is slow, so each
    sampler keeps one per space (by fingerprint), with the documents of trials it has already
    converted (reused only while a trial's parameters are unchanged). These caches never change
    an answer and are not pickled. Hyperopt's random seed is drawn from the trial's ``rng``.

    Args:
        n_startup_trials: Finished trials drawn from the prior before TPE starts.
        n_ei_candidates: Candidates drawn from the good-trials density; the one with the best
            expected improvement is proposed (Hyperopt's ``n_EI_candidates``).
        gamma: Fraction of the trials (Hyperopt uses ``gamma * sqrt(n)``, capped at 25) that
            form the good-trials density.
        prior_weight: Weight of the prior in the Parzen estimators.
        running_policy: ``"liar"`` or ``"ignore"``, see above.

    Raises:
        ConfigurationError: An argument is out of range or ``running_policy`` is unknown.

    Example:
        >>> import numpy as np
        >>> from hpo_plugins import hp
        >>> from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
        >>> from hpo_plugins.samplers import History, HyperoptTPESampler
        >>> from hpo_plugins.space import SearchSpace
        >>> space = SearchSpace({"x": hp.uniform("x", -1, 1)})
        >>> done = [FrozenTrial(trial_id=i, number=i, state=TrialState.COMPLETE, value=x * x,
        ...                     params={"x": x}) for i, x in enumerate([-0.8, 0.1, 0.5])]
        >>> sampler = HyperoptTPESampler(n_startup_trials=3)
        >>> params = sampler.sample(space, History(done, Direction.MINIMIZE, number=3),
        ...                         np.random.default_rng(0))
        >>> -1 <= params["x"] <= 1
        True
    """

    def __init__(self, *, n_startup_trials: int = 20, n_ei_candidates: int = 24,
                 gamma: float = 0.25, prior_weight: float = 1.0,
                 running_policy: str = "liar") -> None:
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=0)
        self.n_ei_candidates = check_int("n_ei_candidates", n_ei_candidates, minimum=1)
        self.gamma = check_real("gamma", gamma, low=0.0, high=1.0, open_low=True)
        self.prior_weight = check_real("prior_weight", prior_weight, low=0.0, open_low=True)
        self.running_policy = _check_policy(running_policy)
        self._bridges: dict[str, _Bridge] = {}  # space fingerprint -> Domain and documents

    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        """Propose flat internal parameters (see the class doc for the policies)."""
        if history.n_finished < self.n_startup_trials:
            _logger.debug("Start-up: %d of %d trials finished, sampling the prior",
                          history.n_finished, self.n_startup_trials)
            return space.sample_prior(rng)
        bridge = self._bridge(space)
        trials = bridge.trials(self._observations(history))
        seed = int(rng.integers(_SEED_BOUND))
        (doc,) = self._suggest()([history.number], bridge.domain, trials, seed)
        return _flat_params(space, doc["misc"]["vals"])

    def hyperopt_trials(self, space: SearchSpace, history: History) -> Trials:
        """The ``hyperopt.Trials`` that ``tpe.suggest`` receives for ``history``.

        One finished document per trial Hyperopt sees (``tid`` = trial number, ``result`` =
        ``{"status": "ok", "loss": loss}``, ``misc["vals"]`` holding ``[value]`` for active
        labels and ``[]`` for inactive ones), with the losses of the class doc's policies.
        Useful to inspect what the model is fitted on.
        """
        return self._bridge(space).trials(self._observations(history))

    def _observations(self, history: History) -> list[tuple[FrozenTrial, float]]:
        """(trial, loss) pairs Hyperopt sees: finished ones ranked, then running ones lied."""
        ranked = ranked_for_model(history)
        if self.running_policy == "ignore" or not ranked:
            return ranked
        worst = max(loss for _, loss in ranked)
        return ranked + [(t, worst) for t in history.in_states(*_PENDING) if t.params]

    def _suggest(self) -> Callable[..., list[dict[str, Any]]]:
        return functools.partial(
            tpe.suggest, n_startup_jobs=0, n_EI_candidates=self.n_ei_candidates,
            gamma=self.gamma, prior_weight=self.prior_weight, verbose=False,
        )

    def _bridge(self, space: SearchSpace) -> _Bridge:
        key = space.fingerprint
        bridge = self._bridges.get(key)
        if bridge is None:
            bridge = self._bridges[key] = _Bridge(space)
        return bridge

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_bridges"] = {}  # Hyperopt graphs: rebuilt on demand in the receiving process
        return state


def _check_policy(value: Any) -> str:
    if value not in RUNNING_POLICIES:
        allowed = " or ".join(f'"{p}"' for p in RUNNING_POLICIES)
        raise ConfigurationError(
            f"Expected `running_policy` to be {allowed}. Received: running_policy={value!r}."
        )
    return str(value)


def _no_objective(_: Any) -> float:  # pragma: no cover - tpe.suggest never calls it
    raise RuntimeError("HyperoptTPESampler's Domain has no objective; the Study evaluates.")


class _Bridge:
    """What one space needs to talk to Hyperopt: its ``Domain`` and the documents already built.

    A document's ``misc`` part (``tid``, ``idxs``, ``vals``) depends only on the trial's number
    and parameters. Each is kept under (trial_id, number) and reused while the trial's
    parameters are equal, so a ``sample`` over n trials builds only the new documents' ``misc``
    (finished trials never change). Hyperopt only reads these dicts.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.domain = Domain(_no_objective, space.space)
        self.labels = list(space.params)
        self._miscs: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any]]] = {}

    def trials(self, observations: Iterable[tuple[FrozenTrial, float]]) -> Trials:
        """A ``hyperopt.Trials`` holding one finished document per (trial, loss).

        Hyperopt's per-document validation is skipped (``validate=False``): it would cost as
        much as building the documents, whose shape the tests check against it instead.
        """
        docs = [_doc(t.number, self._misc(t), loss) for t, loss in observations]
        return trials_from_docs(docs, validate=False)

    def _misc(self, trial: FrozenTrial) -> dict[str, Any]:
        key = (trial.trial_id, trial.number)
        hit = self._miscs.get(key)
        if hit is not None and hit[0] == trial.params:
            return hit[1]
        if len(self._miscs) >= _MAX_CACHED:
            self._miscs.clear()
        misc = _misc(self.domain.cmd, self.labels, trial.number, trial.params)
        self._miscs[key] = (dict(trial.params), misc)
        return misc


def _misc(cmd: Any, labels: Sequence[str], tid: int, params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``misc`` of ``fmin``'s document: ``[value]`` / ``[tid]`` if active, else ``[]``."""
    idxs: dict[str, list[Any]] = {}
    vals: dict[str, list[Any]] = {}
    own_tid: list[Any] = [tid]
    empty: list[Any] = []  # shared by the inactive labels: Hyperopt only reads it
    for label in labels:
        if label in params:
            idxs[label], vals[label] = own_tid, [params[label]]
        else:
            idxs[label] = vals[label] = empty
    return {"tid": tid, "cmd": cmd, "workdir": None, "idxs": idxs, "vals": vals}


def _doc(tid: int, misc: dict[str, Any], loss: float) -> dict[str, Any]:
    """The document ``fmin`` would have stored for a finished trial."""
    return {
        "state": JOB_STATE_DONE, "tid": tid, "spec": None,
        "result": {"status": STATUS_OK, "loss": loss}, "misc": misc,
        "exp_key": None, "owner": None, "version": 0, "book_time": None, "refresh_time": None,
    }


def _flat_params(space: SearchSpace, vals: dict[str, list[Any]]) -> dict[str, Any]:
    """Hyperopt's ``misc["vals"]`` as flat internal parameters with plain Python numbers."""
    out: dict[str, Any] = {}
    for label, values in vals.items():
        if not values:
            continue
        param = space.params[label]
        out[label] = int(values[0]) if param.is_choice or param.kind == "randint" else float(
            values[0])
    return out
