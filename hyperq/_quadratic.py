"""A local quadratic model of the loss, for TPE's model steps (docs/tpe.md).

Fitted by least squares to the best trials in coordinates scaled per dimension; trusted only
when it predicts held-out points well (leave-one-out), and then minimized inside the box the
fitted trials span. A smooth bowl (a sphere, an ellipsoid, the basin of a learning-rate curve)
is then reached in a step instead of being sampled around.
"""
from __future__ import annotations

import math

import numpy as np


def n_features(d: int, full: bool) -> int:
    """Coefficients of a quadratic in ``d`` variables: with all cross terms, or diagonal."""
    return 1 + 2 * d + (d * (d - 1) // 2 if full else 0)


def fit_size(d: int, full: bool, per_coef: float) -> int:
    """How many trials a quadratic in ``d`` variables is fitted to: ``per_coef`` per
    coefficient."""
    return math.ceil(per_coef * n_features(d, full))


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


def _curved_part(b: np.ndarray, hess: np.ndarray, lam: np.ndarray, vec: np.ndarray,
                 flat: float, sure: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """``b`` and ``H`` (eigenvalues ``lam`` ascending, eigenvectors ``vec``) with the
    directions of curvature at most ``flat`` times the largest made flat-bottomed: no slope
    and a small positive curvature, so the minimum stays at the origin along them. Directions
    marked in ``sure`` (curving up beyond doubt) are kept however flat. None when nothing
    curves up, or (``flat=0``) anything does not."""
    top = lam[-1]
    if top <= 0 or (flat <= 0 and lam[0] <= 0):
        return None
    keep = lam > flat * top
    if sure is not None:
        keep |= sure & (lam > 1e-9 * top)
    if keep.all():
        return b, hess
    along = vec[:, keep]
    lam = np.where(keep, lam, max(flat, 1e-12) * top)
    return along @ (along.T @ b), (vec * lam) @ vec.T


def _curvature_se(vec: np.ndarray, r: np.ndarray, sigma: float, d: int, full: bool
                  ) -> np.ndarray:
    """Standard error of the fitted curvature along each column of ``vec``, for a fit whose
    design matrix has the QR factor ``r`` and whose residuals have standard deviation
    ``sigma``."""
    # The curvature along v is linear in the coefficients: 2 v_j^2 for each square term,
    # 2 v_j v_k for each cross term.
    a = np.zeros((r.shape[0], vec.shape[1]))
    a[1 + d:1 + 2 * d] = 2 * vec * vec
    if full and d > 1:
        iu, ju = np.triu_indices(d, 1)
        a[1 + 2 * d:] = 2 * vec[iu] * vec[ju]
    w = np.linalg.solve(r.T, a)
    return sigma * np.sqrt((w * w).sum(axis=0))


def model_minimum(obs: np.ndarray, losses: np.ndarray, scales: np.ndarray,
                  lows: np.ndarray, highs: np.ndarray, min_q2: float,
                  flat: float = 0.0, max_leverage: float = 0.99, per_coef: float = 1.5,
                  curved_t: float = 0.0, rng: np.random.Generator | None = None,
                  spread: float = 0.0) -> np.ndarray | None:
    """Where a quadratic fitted to ``obs`` (n x d, the best trial first) and their ``losses``
    has its minimum within the box the trials span and ``[lows, highs]``. The quadratic has
    all cross terms where there are ``per_coef`` trials per coefficient, else none (fitted
    to the first ``per_coef`` times as many trials as it then has). None when the fit
    predicts left-out trials worse than ``min_q2`` (1 - PRESS / total sum of squares, over
    the trials with leverage below ``max_leverage``: left out, a trial of higher leverage is
    an extrapolation that says nothing of the fit near the best trials), or curves down only.

    Directions whose curvature is below ``flat`` times the largest (a valley floor, the
    flat axes of an ill-conditioned bowl, a saddle) are not stepped along: the step is the
    minimum over the curved directions, from the best trial. Where nothing curves that much
    against the slope, the trials lie on a plane, and the step goes down it to the bounds.
    With ``flat=0`` a fit that is not a bowl in every direction gives None. With
    ``curved_t``, flatter directions are stepped along too where their curvature is at least
    ``curved_t`` standard errors above zero: a fit that is nearly exact (an ill-conditioned
    ellipsoid) is trusted along every direction it determines.

    With ``rng`` and ``spread``, the minimum is that of a quadratic drawn from the fit's
    uncertainty (coefficients perturbed by ``spread`` times their standard errors, with their
    correlations): for workers that ask while others are pending, so that a batch spreads
    where the fit is unsure instead of repeating one minimum."""
    n, d = obs.shape
    full = n >= fit_size(d, True, per_coef)
    m = fit_size(d, full, per_coef)
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
    loo = leverage < max_leverage
    if 2 * loo.sum() < len(loo):
        return None
    press = float((((y - x @ coef)[loo] / (1 - leverage[loo])) ** 2).sum())
    ss_loo = float(y[loo] @ y[loo])
    if ss_loo <= 0 or 1.0 - press / ss_loo < min_q2:
        return None
    resid = y - x @ coef
    sigma = math.sqrt(float(resid @ resid) / max(m - x.shape[1], 1))
    if rng is not None and spread > 0:
        coef = coef + spread * sigma * np.linalg.solve(r, rng.standard_normal(len(coef)))
    b, hess = _gradient_hessian(coef, d, full)
    lam, vec = np.linalg.eigh(hess)
    if flat > 0 and max(-lam[0], lam[-1]) <= flat * np.abs(b).max():
        # The best trials lie on a slope with no curvature worth the name: go down it to the
        # bounds (to the edge of the trials' span along unbounded axes).
        lo = np.where(np.isfinite(lows), (lows - origin) / scales, z.min(axis=0))
        hi = np.where(np.isfinite(highs), (highs - origin) / scales, z.max(axis=0))
        downhill = np.where(b > 0, lo, hi)
        return origin + scales * np.where(np.abs(b) > flat * np.abs(b).max(), downhill, 0.0)
    sure = None
    if curved_t > 0 and flat > 0 and lam[-1] > 0:
        sure = lam > curved_t * _curvature_se(vec, r, sigma, d, full)
    curved = _curved_part(b, hess, lam, vec, flat, sure)
    if curved is None:
        return None
    b, hess = curved
    lo = np.maximum(z.min(axis=0), (lows - origin) / scales)
    hi = np.minimum(z.max(axis=0), (highs - origin) / scales)
    return origin + scales * _box_minimum(b, hess, lo, hi)
