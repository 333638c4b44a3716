"""Parzen estimators for :class:`~hpo_plugins.samplers.TPESampler`: mixtures of product kernels.

Everything here works in the *model space* of :mod:`hpo_plugins.samplers._tpe_space`: a numeric
parameter is a coordinate ``z`` (bounded ones on ``[0, 1]``, unbounded ones on the real line with
a normal prior), a categorical one an option index. A :class:`ParzenMixture` is

    p(z, c) = sum_i w_i K_i(z, c) + w_0 prior(z, c),     sum_i w_i + w_0 = 1,

with one product kernel ``K_i`` per observation: a normal density per numeric coordinate,
centred on the observation and *truncated* to the parameter's bounds (so no mass leaks outside
the support), times a categorical kernel per option index that keeps the observed option with
probability ``1 - lam`` and otherwise draws from the parameter's prior ``pi``, i.e.
``K(c) = (1 - lam) [c = observed] + lam pi(c)`` (Aitchison-Aitken's kernel, smoothed towards the
prior instead of the uniform so that a ``pchoice`` option of probability 0 stays impossible).
The prior component is the parameter's own prior: uniform on the bounds, the declared normal for
``hp.normal``-like kinds, the declared probabilities of a ``pchoice``.

Every function is vectorised over observations and candidates: no Python loop runs over them.

Example:
    >>> import numpy as np
    >>> dims = Dims(low=np.array([0.0]), high=np.array([1.0]), prior_sd=np.array([np.nan]),
    ...             n_options=(), cat_prior=())
    >>> mix = ParzenMixture.fit(np.array([[0.5]]), np.empty((1, 0), int), np.ones(1), dims,
    ...                         sigma=np.array([[0.1]]), cat_lambda=np.empty(0),
    ...                         prior_weight=0.0)
    >>> round(float(np.exp(mix.log_pdf(np.array([[0.5]]), np.empty((1, 0), int)))[0]), 4)
    3.9894
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["Dims", "ParzenMixture", "logsumexp", "neighbour_bandwidths", "sample_truncnorm",
           "truncnorm_log_mass"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_U_EPS = 1e-12  # keeps inverse-CDF draws off 0 and 1


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """``log(sum(exp(a), axis))``, stable, and ``-inf`` where every term is ``-inf``.

    (scipy's version validates its input on every call, which costs more than the sum here.)

    Example:
        >>> a = np.array([[0.0, 0.0], [-np.inf, -np.inf]])
        >>> logsumexp(a, axis=1).round(4).tolist()
        [0.6931, -inf]
    """
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis)


def neighbour_bandwidths(z: np.ndarray, low: np.ndarray, high: np.ndarray,
                         min_bandwidth: np.ndarray, max_bandwidth: np.ndarray, *,
                         consider_endpoints: bool) -> np.ndarray:
    """Per-kernel, per-coordinate bandwidths: the larger gap to the neighbouring observations.

    Bergstra et al.'s (2011) heuristic, which Hyperopt and Optuna use too: along each
    coordinate, sort the observations with the two ends of the range added, and give each
    kernel the larger of the gaps to its two neighbours, so that kernels are narrow where
    observations are dense and wide where they are sparse. Unless ``consider_endpoints``, the
    outermost kernels ignore the gap to the end of the range (which would make them as wide as
    the empty space beside them). The result is clipped to ``[min_bandwidth, max_bandwidth]``.
    Unbounded coordinates use ``[min(z, 0), max(z, 1)]`` as their range.

    Args:
        z: ``(n, d)`` observations.
        low: ``(d,)`` lower ends (``-inf`` when unbounded).
        high: ``(d,)`` upper ends (``inf`` when unbounded).
        min_bandwidth: ``(d,)`` smallest bandwidth allowed.
        max_bandwidth: ``(d,)`` largest bandwidth allowed.
        consider_endpoints: Whether the outermost kernels see the ends of the range.

    Returns:
        ``(n, d)`` bandwidths.

    Example:
        >>> z = np.array([[0.5], [0.3], [0.4]])
        >>> neighbour_bandwidths(z, np.zeros(1), np.ones(1), np.full(1, 0.01), np.ones(1),
        ...                      consider_endpoints=True).ravel().round(2).tolist()
        [0.5, 0.3, 0.1]
        >>> neighbour_bandwidths(z, np.zeros(1), np.ones(1), np.full(1, 0.01), np.ones(1),
        ...                      consider_endpoints=False).ravel().round(2).tolist()
        [0.1, 0.1, 0.1]
    """
    if len(z) == 0:
        return np.empty_like(z)
    lo = np.where(np.isfinite(low), low, np.minimum(z.min(axis=0), 0.0))
    hi = np.where(np.isfinite(high), high, np.maximum(z.max(axis=0), 1.0))
    order = np.argsort(z, axis=0, kind="stable")
    ext = np.vstack([lo, np.take_along_axis(z, order, axis=0), hi])  # (n + 2, d)
    left, right = ext[1:-1] - ext[:-2], ext[2:] - ext[1:-1]
    gaps = np.maximum(left, right)
    if not consider_endpoints and len(z) >= 2:
        gaps[0], gaps[-1] = right[0], left[-1]
    out = np.empty_like(gaps)
    np.put_along_axis(out, order, gaps, axis=0)
    return np.clip(out, min_bandwidth, max_bandwidth)


@dataclass(frozen=True)
class Dims:
    """The model-space description of the parameters a mixture covers.

    Attributes:
        low: Lower bound per numeric coordinate (0, or ``-inf`` when unbounded).
        high: Upper bound per numeric coordinate (1, or ``inf`` when unbounded).
        prior_sd: Standard deviation of the normal prior (centred on 0.5) per unbounded
            coordinate; NaN for bounded ones, whose prior is uniform on ``[0, 1]``.
        n_options: Number of options per categorical parameter.
        cat_prior: Prior probabilities per categorical parameter.
    """

    low: np.ndarray
    high: np.ndarray
    prior_sd: np.ndarray
    n_options: tuple[int, ...]
    cat_prior: tuple[np.ndarray, ...]

    @property
    def max_bandwidth(self) -> np.ndarray:
        """Widest kernel per coordinate: the range of a bounded one, the prior's spread of an
        unbounded one."""
        return np.where(np.isnan(self.prior_sd), self.high - self.low, self.prior_sd)

    @property
    def n_numeric(self) -> int:
        """Number of numeric coordinates."""
        return len(self.low)

    @property
    def n_categorical(self) -> int:
        """Number of categorical parameters."""
        return len(self.n_options)


def truncnorm_log_mass(mu: np.ndarray, sigma: np.ndarray, low: np.ndarray,
                       high: np.ndarray) -> np.ndarray:
    """``log(Phi((high - mu) / sigma) - Phi((low - mu) / sigma))``, elementwise.

    The kernels' centres lie inside their bounds, so the mass is at least ``Phi(0) - Phi(-inf)
    = 0.5`` on one side and the difference never loses precision.

    Example:
        >>> float(np.exp(truncnorm_log_mass(np.array(0.0), np.array(1.0), np.array(0.0),
        ...                                 np.array(np.inf))))
        0.5
    """
    return np.log(ndtr((high - mu) / sigma) - ndtr((low - mu) / sigma))


def sample_truncnorm(rng: np.random.Generator, mu: np.ndarray, sigma: np.ndarray,
                     low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """One draw per element from normals truncated to ``[low, high]`` (inverse CDF).

    Example:
        >>> x = sample_truncnorm(np.random.default_rng(0), np.zeros(1000), np.ones(1000),
        ...                      np.zeros(1000), np.full(1000, 0.1))
        >>> bool(((x >= 0) & (x <= 0.1)).all())
        True
    """
    a, b = ndtr((low - mu) / sigma), ndtr((high - mu) / sigma)
    u = np.clip(a + (b - a) * rng.random(np.shape(mu)), _U_EPS, 1.0 - _U_EPS)
    return np.clip(mu + sigma * ndtri(u), low, high)


@dataclass(frozen=True)
class ParzenMixture:
    """A weighted mixture of product kernels plus the prior, over numeric and categorical dims.

    Build it with :meth:`fit`. Shapes: ``n`` kernels, ``d`` numeric coordinates, ``k``
    categorical parameters.

    Attributes:
        log_weights: ``(n,)`` log weights of the kernels.
        log_prior_weight: Log weight of the prior component (``-inf`` without one).
        mu: ``(n, d)`` kernel centres.
        sigma: ``(n, d)`` kernel bandwidths.
        log_mass: ``(n, d)`` log of each truncated kernel's mass inside the bounds.
        cats: ``(n, k)`` observed option per kernel.
        cat_lambda: ``(k,)`` probability that a categorical kernel leaves its option.
        dims: The model-space description.
    """

    log_weights: np.ndarray
    log_prior_weight: float
    mu: np.ndarray
    sigma: np.ndarray
    log_mass: np.ndarray
    cats: np.ndarray
    cat_lambda: np.ndarray
    dims: Dims

    @classmethod
    def fit(cls, z: np.ndarray, cats: np.ndarray, weights: np.ndarray, dims: Dims, *,
            sigma: np.ndarray, cat_lambda: np.ndarray, prior_weight: float) -> ParzenMixture:
        """One kernel per row of ``z``/``cats`` with the given bandwidths and weights.

        Args:
            z: ``(n, d)`` numeric observations in model space.
            cats: ``(n, k)`` categorical observations (option indices).
            weights: ``(n,)`` non-negative observation weights.
            dims: The model-space description.
            sigma: ``(n, d)`` (or broadcastable) kernel bandwidths.
            cat_lambda: ``(k,)`` categorical kernel bandwidths in ``[0, 1]``.
            prior_weight: Weight of the prior component, relative to an observation of weight 1.
        """
        sigma = np.broadcast_to(np.asarray(sigma, dtype=float), z.shape)
        total = float(np.sum(weights)) + prior_weight
        with np.errstate(divide="ignore"):
            log_w = np.log(weights / total)
            log_prior = math.log(prior_weight / total) if prior_weight > 0 else -math.inf
        return cls(log_w, log_prior, z, sigma, truncnorm_log_mass(z, sigma, dims.low, dims.high),
                   cats.astype(np.intp), np.asarray(cat_lambda, dtype=float), dims)

    @property
    def n_kernels(self) -> int:
        """Number of observation kernels (the prior not counted)."""
        return len(self.log_weights)

    def log_pdf(self, z: np.ndarray, cats: np.ndarray) -> np.ndarray:
        """``(m,)`` log density at ``m`` points (``z``: ``(m, d)``, ``cats``: ``(m, k)``)."""
        parts = [self._log_prior(z, cats) + self.log_prior_weight]
        if self.n_kernels:
            per_kernel = self._log_kernels(z, cats) + self.log_weights
            parts.append(logsumexp(per_kernel, axis=1))
        return np.asarray(logsumexp(np.stack(parts), axis=0))

    def _log_kernels(self, z: np.ndarray, cats: np.ndarray) -> np.ndarray:
        """``(m, n)``: log of every kernel at every point, as one matrix product.

        ``-sum_d (z_d - mu_d)^2 / (2 s_d^2) - c`` expands to ``[z^2, z, 1]`` times
        ``[-1 / (2 s^2), mu / s^2, -sum mu^2 / (2 s^2) - c]``.
        """
        inv_var = 1.0 / self.sigma**2
        const = np.sum(np.log(self.sigma) + self.log_mass, axis=1) + self.dims.n_numeric * (
            _LOG_SQRT_2PI)
        offset = -0.5 * np.sum(self.mu**2 * inv_var, axis=1) - const
        left = np.hstack([z**2, z, np.ones((len(z), 1))])
        right = np.hstack([-0.5 * inv_var, self.mu * inv_var, offset[:, None]])
        log_k = np.minimum(left @ right.T, -const)  # the quadratic form is never negative
        return log_k + self._log_cat_kernels(cats)

    def _log_cat_kernels(self, cats: np.ndarray) -> np.ndarray | float:
        """``(m, n)``: log of every categorical kernel at every point (0 without choices)."""
        if not self.dims.n_categorical:
            return 0.0
        lam = self.cat_lambda
        prior = np.stack([probs[cats[:, j]] for j, probs in enumerate(self.dims.cat_prior)],
                         axis=1)  # (m, k): pi(c) of each point's option
        with np.errstate(divide="ignore"):
            log_same, log_other = np.log(1.0 - lam + lam * prior), np.log(lam * prior)
        same = cats[:, None, :] == self.cats[None, :, :]  # (m, n, k)
        return np.sum(np.where(same, log_same[:, None, :], log_other[:, None, :]), axis=2)

    def _log_prior(self, z: np.ndarray, cats: np.ndarray) -> np.ndarray:
        sd = self.dims.prior_sd
        unbounded = ~np.isnan(sd)
        zu = z[:, unbounded]
        out = np.sum(-0.5 * ((zu - 0.5) / sd[unbounded]) ** 2 - np.log(sd[unbounded])
                     - _LOG_SQRT_2PI, axis=1)
        for j, probs in enumerate(self.dims.cat_prior):
            with np.errstate(divide="ignore"):
                out = out + np.log(probs)[cats[:, j]]
        return np.asarray(out)

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` draws: ``(z (size, d), cats (size, k))``."""
        log_w = np.append(self.log_weights, self.log_prior_weight)
        probs = np.exp(log_w - logsumexp(log_w, axis=0))
        which = rng.choice(len(probs), size=size, p=probs / probs.sum())
        from_prior = which == self.n_kernels
        z, cats = self._sample_prior(rng, size)
        k = which[~from_prior]
        if len(k):
            z[~from_prior] = sample_truncnorm(rng, self.mu[k], self.sigma[k], self.dims.low,
                                              self.dims.high)
            cats[~from_prior] = self._sample_cat_kernels(rng, k)
        return z, cats

    def _sample_cat_kernels(self, rng: np.random.Generator, kernels: np.ndarray) -> np.ndarray:
        cats = self.cats[kernels].copy()
        jump = rng.random(cats.shape) < self.cat_lambda
        return np.where(jump, self._sample_cat_prior(rng, len(kernels)), cats)

    def _sample_prior(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        sd = self.dims.prior_sd
        z = rng.random((size, self.dims.n_numeric))
        unbounded = ~np.isnan(sd)
        z[:, unbounded] = 0.5 + sd[unbounded] * rng.standard_normal((size, int(unbounded.sum())))
        return z, self._sample_cat_prior(rng, size)

    def _sample_cat_prior(self, rng: np.random.Generator, size: int) -> np.ndarray:
        cats = np.empty((size, self.dims.n_categorical), dtype=np.intp)
        for j, probs in enumerate(self.dims.cat_prior):
            cats[:, j] = rng.choice(len(probs), size=size, p=probs)
        return cats
