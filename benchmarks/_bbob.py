"""BBOB-style test functions (Hansen et al. 2009, "Real-parameter black-box optimization
benchmarking: noiseless functions definitions"), written from the published definitions.

Each function keeps its standard transformations (``T_osz``, ``T_asy``, the conditioning
``Lambda``, the rotations ``R`` and ``Q``) and its optimum ``f_opt = 0`` at ``x_opt``. Instances are
ours, not COCO's: ``x_opt`` uniform in ``[-4, 4]^d`` (``[-3, 3]^d`` for Rosenbrock) and random
rotations, all drawn from a fixed seed per function, so results are comparable between runs but
not with published COCO tables.

Example:
    >>> f = BBOB["f1_sphere"]
    >>> float(f(f.x_opt))
    0.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["BBOB", "BBOBFunction"]

DIM = 5


def t_osz(x: np.ndarray) -> np.ndarray:
    """The oscillation transformation ``T_osz``, elementwise."""
    xh = np.where(x != 0, np.log(np.abs(np.where(x != 0, x, 1.0))), 0.0)
    c1, c2 = np.where(x > 0, 10.0, 5.5), np.where(x > 0, 7.9, 3.1)
    return np.sign(x) * np.exp(xh + 0.049 * (np.sin(c1 * xh) + np.sin(c2 * xh)))


def t_asy(x: np.ndarray, beta: float) -> np.ndarray:
    """The asymmetry transformation ``T_asy^beta``."""
    i = np.arange(len(x)) / max(len(x) - 1, 1)
    pos = np.maximum(x, 0.0)
    return np.where(x > 0, pos ** (1.0 + beta * i * np.sqrt(pos)), x)


def lam(alpha: float, d: int) -> np.ndarray:
    """The diagonal of the conditioning matrix ``Lambda^alpha``."""
    return alpha ** (0.5 * np.arange(d) / max(d - 1, 1))


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@dataclass(frozen=True)
class BBOBFunction:
    """One instance: ``f(x)`` with its ``x_opt`` (``f(x_opt) = 0``)."""

    name: str
    x_opt: np.ndarray
    rot_r: np.ndarray
    rot_q: np.ndarray
    body: Callable[[BBOBFunction, np.ndarray], float]

    def __call__(self, x: np.ndarray) -> float:
        return float(self.body(self, np.asarray(x, dtype=float)))


def _sphere(f: BBOBFunction, x: np.ndarray) -> float:
    return float(np.sum((x - f.x_opt) ** 2))


def _ellipsoid(z: np.ndarray) -> float:
    return float(np.sum(10.0 ** (6.0 * np.arange(len(z)) / (len(z) - 1)) * z**2))


def _ellipsoid_separable(f: BBOBFunction, x: np.ndarray) -> float:
    return _ellipsoid(t_osz(x - f.x_opt))


def _ellipsoid_rotated(f: BBOBFunction, x: np.ndarray) -> float:
    return _ellipsoid(t_osz(f.rot_r @ (x - f.x_opt)))


def _attractive_sector(f: BBOBFunction, x: np.ndarray) -> float:
    z = f.rot_q @ (lam(10.0, len(x)) * (f.rot_r @ (x - f.x_opt)))
    s = np.where(z * f.x_opt > 0, 100.0, 1.0)
    return float(t_osz(np.array([np.sum((s * z) ** 2)]))[0] ** 0.9)


def _rosenbrock(f: BBOBFunction, x: np.ndarray) -> float:
    z = max(1.0, np.sqrt(len(x)) / 8.0) * (x - f.x_opt) + 1.0
    return float(np.sum(100.0 * (z[:-1] ** 2 - z[1:]) ** 2 + (z[:-1] - 1.0) ** 2))


def _rastrigin_rotated(f: BBOBFunction, x: np.ndarray) -> float:
    inner = t_asy(t_osz(f.rot_r @ (x - f.x_opt)), 0.2)
    z = f.rot_r @ (lam(10.0, len(x)) * (f.rot_q @ inner))
    return float(10.0 * (len(x) - np.sum(np.cos(2.0 * np.pi * z))) + np.sum(z**2))


def _make(name: str, seed: int, body: Callable[[BBOBFunction, np.ndarray], float],
          x_range: float = 4.0) -> BBOBFunction:
    rng = np.random.default_rng(seed)
    x_opt = rng.uniform(-x_range, x_range, DIM)
    return BBOBFunction(name, x_opt, _rotation(rng, DIM), _rotation(rng, DIM), body)


BBOB: dict[str, BBOBFunction] = {f.name: f for f in [
    _make("f1_sphere", 1, _sphere),
    _make("f2_ellipsoid", 2, _ellipsoid_separable),
    _make("f6_attractive_sector", 6, _attractive_sector),
    _make("f8_rosenbrock", 8, _rosenbrock, x_range=3.0),
    _make("f10_ellipsoid_rotated", 10, _ellipsoid_rotated),
    _make("f15_rastrigin_rotated", 15, _rastrigin_rotated),
]}
"""Five-dimensional instances on ``[-5, 5]^5``, by name."""
