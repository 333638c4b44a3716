"""Our Tree-structured Parzen Estimator (draft for tuning)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_plugins._frozen import TrialState
from hpo_plugins.samplers._base import History, Sampler, ranked_for_model
from hpo_plugins.samplers._random import check_bool, check_int, check_real
from hpo_plugins.samplers._tpe_kernels import ParzenMixture
from hpo_plugins.samplers._tpe_space import Group, dims_of, groups
from hpo_plugins.space import SearchSpace

__all__ = ["TPESampler"]

_logger = logging.getLogger(__name__)

_PENDING = (TrialState.RUNNING, TrialState.WAITING)

# tuning knobs (private while experimenting)
CFG: dict[str, Any] = {
    "bandwidth": "neighbour",
    "bw_factor": 1.0,
    "min_bw": 0.01,
    "magic": True,
    "gamma_rule": "linear",
    "max_good": 25,
    "ramp": True,
    "liar_weight": 1.0,
    "cat_rule": "optuna",
    "local_split": True,
    "joint": True,
}


@dataclass(frozen=True)
class _Observations:
    """Every usable trial as one matrix: finished ones best first, then pending ones."""

    values: np.ndarray  # (N, L) natural/internal values, NaN where inactive
    numbers: np.ndarray  # (N,) trial numbers
    n_finished: int
    column: dict[str, int]

    @classmethod
    def of(cls, space: SearchSpace, history: History, *, liar: bool) -> _Observations:
        finished = [t for t, _ in ranked_for_model(history)]
        pending = [t for t in history.in_states(*_PENDING) if t.params] if liar else []
        trials = finished + pending
        labels = list(space.params)
        nan = math.nan
        values = np.array([[t.params.get(lbl, nan) for lbl in labels] for t in trials],
                          dtype=float).reshape(len(trials), len(labels))
        numbers = np.array([t.number for t in trials], dtype=float)
        return cls(values, numbers, len(finished), {lbl: i for i, lbl in enumerate(labels)})


class TPESampler(Sampler):
    """Draft."""

    def __init__(self, *, n_startup_trials: int = 10, n_ei_candidates: int = 24,
                 gamma: float = 0.1, multivariate: bool = True, constant_liar: bool = True,
                 prior_weight: float = 1.0) -> None:
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, minimum=0)
        self.n_ei_candidates = check_int("n_ei_candidates", n_ei_candidates, minimum=1)
        self.gamma = check_real("gamma", gamma, low=0.0, high=1.0, open_low=True,
                                open_high=False)
        self.multivariate = check_bool("multivariate", multivariate)
        self.constant_liar = check_bool("constant_liar", constant_liar)
        self.prior_weight = check_real("prior_weight", prior_weight, low=0.0, open_low=True)

    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        if history.n_finished < self.n_startup_trials:
            return space.sample_prior(rng)
        obs = _Observations.of(space, history, liar=self.constant_liar)
        gs = groups(space, multivariate=self.multivariate)
        if not self.multivariate or not CFG["joint"]:
            flat: dict[str, Any] = {}
            for group in gs:
                if group.is_active(flat):
                    vals, _ = self._propose(group, obs, rng, self.n_ei_candidates)
                    best = int(np.argmax(_))
                    flat.update({k: v[best] for k, v in vals.items()})
            return _plain(space, flat)
        m = self.n_ei_candidates
        cand: dict[str, np.ndarray] = {}
        score = np.zeros(m)
        for group in gs:
            active = _active_mask(group, cand, m)
            rows = np.flatnonzero(active)
            vals, s = self._propose(group, obs, rng, len(rows)) if len(rows) else ({}, None)
            for lbl in group.labels:
                col = np.full(m, np.nan)
                if len(rows):
                    col[rows] = vals[lbl]
                cand[lbl] = col
            if len(rows):
                score[rows] += s
        best = int(np.argmax(score))
        flat = {k: v[best] for k, v in cand.items() if not np.isnan(v[best])}
        return _plain(space, flat)

    def n_good(self, n: int) -> int:
        if CFG["gamma_rule"] == "linear":
            k = math.ceil(self.gamma * n)
        else:
            k = math.ceil(self.gamma * math.sqrt(n))
        return max(1, min(k, CFG["max_good"], n))

    def _propose(self, group: Group, obs: _Observations, rng: np.random.Generator,
                 m: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """m candidates for the group drawn from l, and their log l - log g."""
        cols = [obs.column[lbl] for lbl in group.labels]
        sub = obs.values[:, cols]
        active = ~np.isnan(sub).any(axis=1)
        finished = np.flatnonzero(active[:obs.n_finished])
        pending = obs.n_finished + np.flatnonzero(active[obs.n_finished:])
        if not CFG["local_split"]:
            k = self.n_good(obs.n_finished)
            good, bad = finished[finished < k], finished[finished >= k]
        else:
            k = self.n_good(len(finished)) if len(finished) else 0
            good, bad = finished[:k], finished[k:]
        bad = np.concatenate([bad, pending])
        n_num = len(group.numeric)
        z = np.column_stack([e.encode(sub[:, i]) for i, e in enumerate(group.numeric)]
                            ) if n_num else np.empty((len(sub), 0))
        cats = np.nan_to_num(sub[:, n_num:]).astype(np.intp)
        dims = dims_of(group)
        lw = self._fit(group, z[good], cats[good], _weights(obs.numbers[good], False), dims)
        wb = _weights(obs.numbers[bad], CFG["ramp"])
        wb[len(bad) - len(pending):] *= CFG["liar_weight"]
        gw = self._fit(group, z[bad], cats[bad], wb, dims)
        cz, cc = lw.sample(rng, m)
        natural = [e.decode(cz[:, i]) for i, e in enumerate(group.numeric)]
        if n_num:
            cz = np.column_stack([e.encode(x) for e, x in zip(group.numeric, natural)])
        score = lw.log_pdf(cz, cc) - gw.log_pdf(cz, cc)
        out = {e.param.label: x for e, x in zip(group.numeric, natural)}
        out.update({p.label: cc[:, j].astype(float) for j, p in enumerate(group.categorical)})
        return out, score

    def _fit(self, group: Group, z: np.ndarray, cats: np.ndarray, w: np.ndarray,
             dims: Any) -> ParzenMixture:
        n = len(z)
        steps = np.array([e.step for e in group.numeric])
        if CFG["bandwidth"] == "scott":
            sigma = _scott(z, w, self.prior_weight, steps, n)
        else:
            sigma = _neighbour(z, steps, n, dims)
        if CFG["cat_rule"] == "optuna":
            n_opt = np.asarray(dims.n_options, dtype=float)
            a = self.prior_weight / (n + 1)
            lam = n_opt * a / (1 + n_opt * a)
        else:
            lam = np.full(len(dims.n_options), 0.2)
        return ParzenMixture.fit(z, cats, w, dims, sigma=sigma, cat_lambda=lam,
                                 prior_weight=self.prior_weight)


def _weights(numbers: np.ndarray, ramp: bool) -> np.ndarray:
    n = len(numbers)
    w = np.ones(n)
    if not ramp or n <= 25:
        return w
    order = np.argsort(np.argsort(numbers))  # 0 oldest
    ramp_w = np.linspace(1.0 / n, 1.0, num=n - 25)
    older = order < n - 25
    w[older] = ramp_w[order[older]]
    return w


def _min_bw(steps: np.ndarray, n: int) -> np.ndarray:
    mb = np.full(len(steps), CFG["min_bw"])
    if CFG["magic"]:
        mb = np.maximum(mb, 1.0 / min(100.0, 1.0 + n + 1))
    return np.maximum(mb, steps)


def _scott(z: np.ndarray, w: np.ndarray, pw: float, steps: np.ndarray, n: int) -> np.ndarray:
    d = z.shape[1]
    if n == 0:
        return np.ones(d)
    sw = w.sum()
    mean = (w @ z) / sw
    var = (w @ (z - mean) ** 2 + pw / 12.0) / (sw + pw)
    h = CFG["bw_factor"] * np.sqrt(var) * (n ** (-1.0 / (d + 4)))
    return np.clip(h, _min_bw(steps, n), 1.0)


def _neighbour(z: np.ndarray, steps: np.ndarray, n: int, dims: Any) -> np.ndarray:
    if n == 0:
        return np.ones((0, z.shape[1]))
    low = np.where(np.isfinite(dims.low), dims.low, z.min(axis=0) - 0.5)
    high = np.where(np.isfinite(dims.high), dims.high, z.max(axis=0) + 0.5)
    order = np.argsort(z, axis=0)
    zs = np.take_along_axis(z, order, axis=0)
    ext = np.vstack([low, zs, high])
    gaps = np.maximum(ext[1:-1] - ext[:-2], ext[2:] - ext[1:-1])
    if n >= 2:
        gaps[0] = ext[2] - ext[1]
        gaps[-1] = ext[-2] - ext[-3]
    sig = np.empty_like(gaps)
    np.put_along_axis(sig, order, gaps, axis=0)
    sig = sig * CFG["bw_factor"]
    return np.clip(sig, _min_bw(steps, n), 1.0)


def _active_mask(group: Group, cand: dict[str, np.ndarray], m: int) -> np.ndarray:
    mask = np.zeros(m, dtype=bool)
    for conj in group.condition:
        hit = np.ones(m, dtype=bool)
        for lbl, idx in conj:
            hit &= cand[lbl] == idx
        mask |= hit
    return mask


def _plain(space: SearchSpace, flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lbl, v in flat.items():
        p = space.params[lbl]
        out[lbl] = int(v) if p.is_choice or p.kind == "randint" else float(v)
    return out
