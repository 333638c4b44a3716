"""Hyperopt's own TPE (the algorithm of ``hyperopt.tpe.suggest``) driven from a history snapshot.

Hyperopt's ``fmin`` owns its loop; here each ``sample`` hands the study's history to the body of
``tpe.suggest`` and reads back one proposal. Hyperopt sees nothing of our storage, workers or
pruning.

Why not call ``tpe.suggest`` itself: at 1,000 trials (10 parameters) more than half of one call
is bookkeeping that does not depend on the new proposal. It rebuilds its posterior graph
(``build_posterior``, about 15 %), re-reads every document of the ``hyperopt.Trials`` into
per-label columns (``miscs_to_idxs_vals``, about 30 %), and splits the good and bad trials with
Python set look-ups over numpy scalars (``ap_split_trials``, about 15 %); a bridge must also
build those documents and the ``Trials`` first. :class:`_Bridge` builds the graph once per space
(with a vectorised split, :func:`_fast_split`), feeds it the columns straight from the history,
and evaluates it as ``tpe.suggest`` does (same memo, candidate ids and seed), so the proposal is
the one ``tpe.suggest`` returns on the equivalent ``Trials``: the tests check this against
``tpe.suggest`` itself, and benchmark runs give byte-identical results to the former bridge that
called it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hyperopt import Domain, Trials, pyll, tpe, trials_from_docs
from hyperopt.base import JOB_STATE_DONE, STATUS_OK, miscs_update_idxs_vals

from hpo_plugins._checks import check_int, check_real
from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.samplers._base import History, Sampler, ranked_for_model
from hpo_plugins.space import SearchSpace

__all__ = ["RUNNING_POLICIES", "HyperoptTPESampler"]

_logger = logging.getLogger(__name__)

#: Accepted values of ``HyperoptTPESampler(running_policy=...)``.
RUNNING_POLICIES = ("liar", "ignore")

_SEED_BOUND = 2**31 - 1
_MAX_SPACES = 8  # compiled spaces kept per sampler (least recently used dropped first)
_GAMMA_CAP = 25  # Hyperopt's cap on the size of the good group (tpe.DEFAULT_LF)
_PENDING = (TrialState.RUNNING, TrialState.WAITING)


@dataclass(frozen=True)
class _Observations:
    """What the TPE model is fitted on, in Hyperopt's order (by trial number).

    Attributes:
        numbers: Trial numbers (Hyperopt's ``tid``), ascending.
        params: Each trial's flat internal parameters (active labels only).
        losses: Each trial's loss (lower is better).
        n_below: Size of the good group, or None for Hyperopt's own rule
            ``min(ceil(gamma * sqrt(len(losses))), 25)`` (every policy of the class; the
            experimental policies of ``benchmarks/samplers.py`` set it).
    """

    numbers: tuple[int, ...]
    params: tuple[Mapping[str, Any], ...]
    losses: tuple[float, ...]
    n_below: int | None = None


class HyperoptTPESampler(Sampler):
    """Hyperopt's Tree-structured Parzen Estimator, one suggestion per ``sample``.

    Sequentially (no running trial) the proposal is exactly the one ``tpe.suggest`` makes on a
    ``hyperopt.Trials`` holding the finished trials, with the same seed. Policies (where this
    bridge differs from ``fmin(algo=tpe.suggest)``):

    * **Start-up.** While fewer than ``n_startup_trials`` trials are *finished* (COMPLETE or
      PRUNED) the trial is drawn from the prior, like :class:`RandomSampler`. Hyperopt counts
      running trials toward its start-up; with many parallel workers that would let TPE start
      on a handful of results. Afterwards Hyperopt's own random phase is switched off
      (``n_startup_jobs=0``).
    * **Finished trials.** COMPLETE and PRUNED trials reach Hyperopt with the losses of
      :func:`~hpo_plugins.samplers.ranked_for_model`: COMPLETE ones by value (sign-adjusted so
      lower is better), PRUNED ones after every COMPLETE one, the deeper last step first, then
      the better last value, one pruned before any report last; FAIL trials that diverged
      (a NaN or infinite report or value) after them. Other FAIL trials are ignored.
    * **Running trials** (RUNNING, and WAITING trials that hold enqueued parameters), as chosen
      by ``running_policy``:

      - ``"liar"`` (default): passed in with the worst loss of the finished trials (a constant
        liar), so that parallel workers do not all propose the same point. With no finished
        trial there is no loss to lie with and they are left out.
      - ``"ignore"``: left out.

      Why ``"liar"``: TPE uses losses only through their ranks, so the liar puts every running
      trial in the *bad* group and counts it in ``n`` for the good-group size
      ``ceil(gamma * sqrt(n))``, which is exactly how ``fmin``'s parallel path treats a pending
      document (loss ``+inf``); the proposal is then the one ``tpe.suggest`` makes on that
      ``Trials``. In the 8-worker simulation of ``benchmarks/samplers.py`` (25 seeds on 4
      problems; 50 seeds and 4 more problems for the closest rival) it ties with ``fmin``, and
      no alternative beat either: sizing the good group from finished trials only, weighing
      running trials 2x, or as much as a good trial, in the bad density, and Hyperopt's
      start-up count all tied within the seed-to-seed spread (``hpo_tpe_x_*`` there). Running
      trials in the *good* group (a "believer") was clearly worse on every problem, and
      ``"ignore"`` on most: running trials must push proposals apart, and the liar does.

    The sampler keeps, per space (by fingerprint, at most 8), the compiled Hyperopt ``Domain``
    and TPE graph. They depend only on the space and never change an answer; they are shared
    by every study the instance serves, used under no lock (evaluating the graph only reads
    it) and not pickled. Hyperopt's random seed is drawn from the trial's ``rng``.

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
        >>> from hpo_plugins import Direction, FrozenTrial, TrialState
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
        self._bridges: OrderedDict[str, _Bridge] = OrderedDict()  # fingerprint -> compiled
        self._lock = threading.Lock()  # guards _bridges only

    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        """Propose flat internal parameters (see the class doc for the policies)."""
        if history.n_finished < self.n_startup_trials:
            _logger.debug("Start-up: %d of %d trials finished, sampling the prior",
                          history.n_finished, self.n_startup_trials)
            return space.sample_prior(rng)
        seed = int(rng.integers(_SEED_BOUND))
        vals = self._bridge(space).suggest(
            history.number, self._observations(history), seed,
            n_candidates=self.n_ei_candidates, gamma=self.gamma,
            prior_weight=self.prior_weight)
        return _flat_params(space, vals)

    def hyperopt_trials(self, space: SearchSpace, history: History) -> Trials:
        """A ``hyperopt.Trials`` on which ``tpe.suggest`` proposes what :meth:`sample` does.

        One finished document per trial the model sees (``tid`` = trial number, ``result`` =
        ``{"status": "ok", "loss": loss}``, ``misc["vals"]`` holding ``[value]`` for active
        labels and ``[]`` for inactive ones), with the losses of the class doc's policies.
        Useful to inspect what the model is fitted on; :meth:`sample` never builds it.
        """
        obs = self._observations(history)
        cmd = self._bridge(space).domain.cmd
        labels = list(space.params)
        docs = [_doc(n, _misc(cmd, labels, n, p), loss)
                for n, p, loss in zip(obs.numbers, obs.params, obs.losses)]
        return trials_from_docs(docs, validate=False)

    def _observations(self, history: History) -> _Observations:
        """Finished trials ranked, plus running ones as the running policy says, by number."""
        pairs = ranked_for_model(history)
        if self.running_policy == "liar" and pairs:
            worst = max(loss for _, loss in pairs)
            pairs += [(t, worst) for t in history.in_states(*_PENDING) if t.params]
        return _sorted_observations(pairs)

    def _bridge(self, space: SearchSpace) -> _Bridge:
        key = space.fingerprint
        with self._lock:
            bridge = self._bridges.get(key)
            if bridge is not None:
                self._bridges.move_to_end(key)
                return bridge
        bridge = _Bridge(space)  # compiled outside the lock: a race only builds it twice
        with self._lock:
            self._bridges[key] = bridge
            while len(self._bridges) > _MAX_SPACES:
                self._bridges.popitem(last=False)
        return bridge

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_bridges"] = OrderedDict()  # Hyperopt graphs: rebuilt on demand when received
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bridges = OrderedDict()
        self._lock = threading.Lock()


def _check_policy(value: Any) -> str:
    if value not in RUNNING_POLICIES:
        allowed = " or ".join(f'"{p}"' for p in RUNNING_POLICIES)
        raise ConfigurationError(
            f"Expected `running_policy` to be {allowed}. Received: running_policy={value!r}."
        )
    return str(value)


def _sorted_observations(pairs: Sequence[tuple[FrozenTrial, float]],
                         n_below: int | None = None) -> _Observations:
    """(trial, loss) pairs in Hyperopt's order: ``tpe.suggest`` sorts its documents by tid."""
    ordered = sorted(pairs, key=lambda pair: pair[0].number)
    return _Observations(tuple(t.number for t, _ in ordered), tuple(t.params for t, _ in ordered),
                         tuple(float(loss) for _, loss in ordered), n_below)


def _no_objective(_: Any) -> float:  # pragma: no cover - TPE never calls it
    raise RuntimeError("HyperoptTPESampler's Domain has no objective; the Study evaluates.")


class _Bridge:
    """One space compiled for Hyperopt's TPE: its ``Domain`` and its posterior graph.

    ``tpe.suggest`` builds the posterior graph with fresh placeholder nodes for the observations,
    ``gamma`` and ``prior_weight`` on every call. Here the graph is built once with placeholders
    of our own, and every call binds them in the evaluation memo (``pyll.rec_eval`` copies the
    memo and never changes the graph), so one graph serves any history and any settings.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.domain = Domain(_no_objective, space.space)
        self.labels = list(self.domain.params)
        self._obs = {"idxs": pyll.Literal(), "vals": pyll.Literal()}
        self._obs_loss = {"idxs": pyll.Literal(), "vals": pyll.Literal()}
        self._gamma, self._prior_weight = pyll.Literal(0.25), pyll.Literal(1.0)
        vh = self.domain.vh
        self._posterior = tpe.build_posterior(
            vh.v_expr, vh.idxs_by_label(), vh.vals_by_label(), self._obs["idxs"],
            self._obs["vals"], self._obs_loss["idxs"], self._obs_loss["vals"], self._gamma,
            self._prior_weight)
        _use_fast_split(self._posterior)
        self._offsets = {  # tpe.suggest's shift of hp.randint(label, low, high) proposals
            label: param.pos_args[0].obj for label, param in self.domain.params.items()
            if param.name == "randint" and len(param.pos_args) == 2}

    def suggest(self, new_id: int, obs: _Observations, seed: int, *, n_candidates: int,
                gamma: float, prior_weight: float) -> dict[str, list[Any]]:
        """The ``misc["vals"]`` of the document ``tpe.suggest([new_id], ...)`` would return.

        Mirrors the body of ``hyperopt.tpe.suggest`` (hyperopt 0.3) after its start-up branch:
        the same fake candidate ids, random generator, memo and read-back.
        """
        tids = obs.numbers
        fake_id_0 = (max(max(tids), new_id) if tids else new_id) + 2
        fake_ids = list(range(fake_id_0, fake_id_0 + n_candidates))
        idxs, vals = self._columns(obs)
        memo = {
            self.domain.s_new_ids: fake_ids, self.domain.s_rng: np.random.default_rng(seed),
            self._obs_loss["idxs"]: tids, self._obs_loss["vals"]: list(obs.losses),
            self._obs["idxs"]: idxs, self._obs["vals"]: vals,
            self._gamma: gamma if obs.n_below is None else _gamma_for(obs.n_below, len(tids)),
            self._prior_weight: float(prior_weight),
        }
        # memo_gc only frees intermediate values early (no node is evaluated twice either way);
        # its bookkeeping costs about a tenth of the evaluation.
        idxs, vals = pyll.rec_eval(self._posterior, memo=memo, memo_gc=False,
                                   print_node_on_error=False)
        for label, offset in self._offsets.items():
            vals[label] = [val + offset for val in vals[label]]
        misc: dict[str, Any] = {"tid": new_id}
        miscs_update_idxs_vals([misc], idxs, vals, idxs_map={fake_ids[0]: new_id},
                               assert_all_vals_used=False)
        return dict(misc["vals"])

    def _columns(self, obs: _Observations) -> tuple[dict[str, list[int]], dict[str, list[Any]]]:
        """Per label, the tids where it is active and its values: ``miscs_to_idxs_vals``."""
        idxs: dict[str, list[int]] = {label: [] for label in self.labels}
        vals: dict[str, list[Any]] = {label: [] for label in self.labels}
        for number, params in zip(obs.numbers, obs.params):
            for label, value in params.items():
                idxs[label].append(number)
                vals[label].append(value)
        return idxs, vals


_FAST_SPLIT = "hpo_plugins_ap_split_trials"


def _fast_split(o_idxs: Any, o_vals: Any, l_idxs: Any, l_vals: Any, gamma: float,
                gamma_cap: int = _GAMMA_CAP) -> tuple[np.ndarray, np.ndarray]:
    """``hyperopt.tpe.ap_split_trials`` with array masks instead of Python set look-ups.

    The same split, values, order and dtypes (an empty group is ``np.asarray([])``, as there);
    at 1,000 trials Hyperopt's element-by-element loops take a fifth of a TPE call.
    """
    o_idxs, o_vals, l_idxs, l_vals = map(np.asarray, [o_idxs, o_vals, l_idxs, l_vals])
    n_below = min(int(np.ceil(gamma * np.sqrt(len(l_vals)))), gamma_cap)
    l_order = np.argsort(l_vals)
    groups = []
    for keep in (l_idxs[l_order[:n_below]], l_idxs[l_order[n_below:]]):
        mask = np.isin(o_idxs, keep)
        groups.append(o_vals[mask] if mask.any() else np.asarray([]))
    return groups[0], groups[1]


if not hasattr(pyll.scope, _FAST_SPLIT):  # registered once per process (module reloads too)
    _fast_split.__name__ = _FAST_SPLIT
    pyll.scope.define(_fast_split)


def _use_fast_split(graph: Any) -> None:
    """Point this graph's (and only this graph's) good/bad split nodes at :func:`_fast_split`."""
    for node in pyll.dfs(pyll.as_apply(graph)):
        if node.name == "ap_split_trials":
            node.name = _FAST_SPLIT


def _gamma_for(n_below: int, n: int) -> float:
    """A ``gamma`` for which Hyperopt's ``ceil(gamma * sqrt(n))`` is exactly ``n_below``."""
    return (min(n_below, _GAMMA_CAP) - 0.5) / math.sqrt(max(n, 1))


def _misc(cmd: Any, labels: Sequence[str], tid: int, params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``misc`` of ``fmin``'s document: ``[value]`` / ``[tid]`` if active, else ``[]``."""
    idxs: dict[str, list[Any]] = {}
    vals: dict[str, list[Any]] = {}
    for label in labels:
        active = label in params
        idxs[label] = [tid] if active else []
        vals[label] = [params[label]] if active else []
    return {"tid": tid, "cmd": cmd, "workdir": None, "idxs": idxs, "vals": vals}


def _doc(tid: int, misc: dict[str, Any], loss: float) -> dict[str, Any]:
    """The document ``fmin`` would have stored for a finished trial."""
    return {
        "state": JOB_STATE_DONE, "tid": tid, "spec": None,
        "result": {"status": STATUS_OK, "loss": loss}, "misc": misc,
        "exp_key": None, "owner": None, "version": 0, "book_time": None, "refresh_time": None,
    }


def _flat_params(space: SearchSpace, vals: Mapping[str, list[Any]]) -> dict[str, Any]:
    """Hyperopt's ``misc["vals"]`` as flat internal parameters with plain Python numbers."""
    out: dict[str, Any] = {}
    for label, values in vals.items():
        if not values:
            continue
        param = space.params[label]
        out[label] = int(values[0]) if param.is_choice or param.kind == "randint" else float(
            values[0])
    return out
