"""Acquisition criteria for a Gaussian belief about a value to maximize (hyperopt's
``criteria``): expected improvement over a threshold, its logarithm, and the upper
confidence bound."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import erfcx, ndtr

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def EI_empirical(samples: Any, thresh: float) -> float:  # noqa: N802 - hyperopt's name
    """Mean of ``max(sample - thresh, 0)``: expected improvement estimated from samples."""
    return float(np.maximum(np.asarray(samples, dtype=float) - thresh, 0.0).mean())


def EI_gaussian_empirical(mean: float, var: float, thresh: float,  # noqa: N802
                          rng: np.random.Generator, N: int) -> float:  # noqa: N803
    """:func:`EI_empirical` of ``N`` draws from Normal(mean, var)."""
    return EI_empirical(rng.normal(mean, math.sqrt(var), N), thresh)


def EI_gaussian(mean: float, var: float, thresh: float) -> float:  # noqa: N802
    """``E[max(X - thresh, 0)]`` for ``X ~ Normal(mean, var)``, in closed form."""
    sigma = math.sqrt(var)
    s = (mean - thresh) / sigma
    return float(sigma * (s * ndtr(s) + _INV_SQRT_2PI * math.exp(-0.5 * s * s)))


def logEI_gaussian(mean: float, var: float, thresh: float) -> float:  # noqa: N802
    """``log(EI_gaussian(mean, var, thresh))``, finite even when EI underflows to 0."""
    sigma = math.sqrt(var)
    s = (mean - thresh) / sigma
    if s > -1.0:
        return math.log(EI_gaussian(mean, var, thresh))
    # s * Phi(s) + phi(s) = exp(-s^2/2) * (s/2 * erfcx(-s/sqrt2) + 1/sqrt(2 pi)); the scaled
    # complementary error function keeps the bracket representable far into the tail.
    bracket = 0.5 * s * float(erfcx(-s / _SQRT2)) + _INV_SQRT_2PI
    if bracket <= 0.0:  # beyond double precision: use the asymptotic phi(s) / s^2
        bracket = _INV_SQRT_2PI / (s * s)
    return math.log(sigma) - 0.5 * s * s + math.log(bracket)


def UCB(mean: float, var: float, zscore: float) -> float:  # noqa: N802 - hyperopt's name
    """Upper confidence bound: ``mean + sqrt(var) * zscore``."""
    return float(mean + math.sqrt(var) * zscore)
