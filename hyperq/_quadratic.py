"""A local quadratic model of the loss, for TPE's model steps (docs/tpe.md).

Fitted by least squares to the best trials in coordinates scaled per dimension; trusted only
when it predicts held-out points well (leave-one-out), and then minimized inside the box the
fitted trials span. A smooth bowl (a sphere, an ellipsoid, the basin of a learning-rate curve)
is then reached in a step instead of being sampled around.
"""
from __future__ import annotations

import numpy as np


def n_features(d: int, full: bool) -> int:
    """Coefficients of a quadratic in ``d`` variables: with all cross terms, or diagonal."""
    return 1 + 2 * d + (d * (d - 1) // 2 if full else 0)


def _design(z: np.ndarray, full: bool) -> np.ndarray:
    n, d = z.shape
    cols = [np.ones((n, 1)), z, z * z]
    if full and d > 1:
        iu, ju = np.triu_indices(d, 1)
        cols.append(z[:, iu] * z[:, ju])
    return np.concatenate(cols, axis=1)


def _gradient_hessian(coef: np.ndarray, d: int, full: bool) -> tuple[np.ndarray, np.ndarray]:
    """The model as ``c + b.z + z.H.z / 2``: returns ``b`` and ``H``."""
    b = coef[1:1 + d]
    hess = np.diag(2.0 * coef[1 + d:1 + 2 * d])
    if full and d > 1:
        iu, ju = np.triu_indices(d, 1)
        hess[iu, ju] = coef[1 + 2 * d:]
        hess[ju, iu] = coef[1 + 2 * d:]
    return b, hess


def _box_minimum(b: np.ndarray, hess: np.ndarray, lo: np.ndarray, hi: np.ndarray
                 ) -> np.ndarray:
    """Minimum of the convex ``b.z + z.H.z / 2`` over the box ``[lo, hi]``: solve, clamp the
    coordinates that leave the box to the bound they cross, solve for the rest, repeat."""
    d = len(b)
    z = np.zeros(d)
    free = np.ones(d, dtype=bool)
    for _ in range(d + 1):
        fixed = ~free
        rhs = -b[free] - hess[np.ix_(free, fixed)] @ z[fixed]
        z[free] = np.linalg.solve(hess[np.ix_(free, free)], rhs) if free.any() else z[free]
        out = free & ((z < lo) | (z > hi))
        if not out.any():
            break
        z[out] = np.clip(z[out], lo[out], hi[out])
        free &= ~out
    return np.clip(z, lo, hi)


def model_minimum(obs: np.ndarray, losses: np.ndarray, scales: np.ndarray,
                  lows: np.ndarray, highs: np.ndarray, min_q2: float) -> np.ndarray | None:
    """Where a quadratic fitted to ``obs`` (n x d, the best trial first) and their ``losses``
    has its minimum (with all cross terms where there are twice as many trials as
    coefficients, else without, from the first twice as many trials), within the box the trials span and ``[lows, highs]``; None when the fit
    predicts left-out trials worse than ``min_q2`` (1 - PRESS / total sum of squares) or is
    not a bowl."""
    n, d = obs.shape
    full = n >= 2 * n_features(d, True)
    m = 2 * n_features(d, full)
    if n < m:
        return None
    obs, losses = obs[:m], losses[:m]
    origin = obs[0]
    z = (obs - origin) / scales
    x = _design(z, full)
    y = losses - losses.mean()
    ss_tot = float(y @ y)
    if not np.isfinite(ss_tot) or ss_tot <= 0:
        return None
    q, r = np.linalg.qr(x)
    if np.abs(np.diag(r)).min() < 1e-10 * np.abs(np.diag(r)).max():
        return None  # the trials do not determine the quadratic (e.g. on a grid line)
    coef = np.linalg.solve(r, q.T @ y)
    leverage = np.minimum((q * q).sum(axis=1), 1 - 1e-9)
    press = float((((y - x @ coef) / (1 - leverage)) ** 2).sum())
    if 1.0 - press / ss_tot < min_q2:
        return None
    b, hess = _gradient_hessian(coef, d, full)
    try:
        np.linalg.cholesky(hess)
    except np.linalg.LinAlgError:
        return None
    lo = np.maximum(z.min(axis=0), (lows - origin) / scales)
    hi = np.minimum(z.max(axis=0), (highs - origin) / scales)
    return origin + scales * _box_minimum(b, hess, lo, hi)
