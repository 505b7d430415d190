"""Tree-structured Parzen Estimator (TPE) search, vectorized with numpy.

Finished trials are split by loss into a "below" (good) and an "above" group. For each
hyperparameter, a Parzen estimator (a mixture of one kernel per observation plus the prior) is
fitted to each group; candidates are drawn from the good-group density ``l(x)`` and the one
maximizing ``l(x) / g(x)`` is proposed. Parameters inside ``hp.choice`` branches are modeled
from the trials where they were active. See docs/tpe.md.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from hyperq import rand
from hyperq._history import History, history_for
from hyperq.base import Domain, Trials, docs_from_values
from hyperq.pyll.base import Param
from hyperq.pyll.distributions import Categorical, Normal, Numeric, RandInt, Uniform

_default_prior_weight = 1.0
_default_n_EI_candidates = 24
_default_gamma = 0.25
_default_n_startup_jobs = 20
_default_linear_forgetting = 25

_EPS = 1e-12


def linear_forgetting_weights(n: int, lf: int) -> np.ndarray:
    """Weights of ``n`` observations, oldest first: the newest ``lf`` weigh 1, older ramp up."""
    if n <= lf:
        return np.ones(n)
    ramp = np.linspace(1.0 / n, 1.0, num=n - lf)
    return np.concatenate([ramp, np.ones(lf)])


def split_trials(losses: np.ndarray, gamma: float, lf: int) -> np.ndarray:
    """Boolean mask of the "below" (good) trials: the best ``ceil(gamma * sqrt(n))``."""
    n = len(losses)
    n_below = min(int(math.ceil(gamma * math.sqrt(n))), lf) if n else 0
    n_below = max(1, n_below) if n else 0
    order = np.argsort(losses, kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[:n_below]] = True
    return mask


class _Numeric1D:
    """A Parzen estimator over one numeric hyperparameter in its internal coordinate."""

    def __init__(self, dist: Numeric | RandInt, obs: np.ndarray, weights: np.ndarray,
                 prior_weight: float) -> None:
        if isinstance(dist, RandInt):
            low, high, self.log, self.q = dist.low - 0.5, dist.high - 0.5, False, 1.0
            self.bounded, prior_mu, prior_sigma = True, None, None
            self.int_range = (dist.low, dist.high - 1)
        else:
            self.log, self.q, self.int_range = dist.log, dist.q, None
            if isinstance(dist, Uniform):
                low, high, self.bounded = dist.low, dist.high, True
            else:
                low, high, self.bounded = -np.inf, np.inf, False
                prior_mu, prior_sigma = dist.mu, dist.sigma
        if self.bounded:
            prior_mu, prior_sigma = 0.5 * (low + high), float(high - low)
        self.low, self.high = low, high
        x = obs if self.int_range is not None else dist.to_internal(obs)
        mus = np.append(x, prior_mu)
        order = np.argsort(mus, kind="stable")
        sorted_mus = mus[order]
        # Adaptive bandwidth: the larger gap to a neighbour, clipped to a sane range.
        gaps = np.diff(sorted_mus)
        left = np.concatenate([[sorted_mus[0] - low if self.bounded else prior_sigma], gaps])
        right = np.concatenate([gaps, [high - sorted_mus[-1] if self.bounded else prior_sigma]])
        sig_sorted = np.maximum(left, right)
        n = len(mus)
        sig_sorted = np.clip(sig_sorted, prior_sigma / min(100.0, 1.0 + n), prior_sigma)
        sigmas = np.empty(n)
        sigmas[order] = sig_sorted
        sigmas[-1] = prior_sigma
        w = np.append(weights, prior_weight)
        self.mus, self.sigmas = mus, sigmas
        self.log_w = np.log(w / w.sum())
        if self.bounded:
            self.log_mass = np.log(np.maximum(
                ndtr((high - mus) / sigmas) - ndtr((low - mus) / sigmas), _EPS))
        else:
            self.log_mass = np.zeros(n)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws, returned in the internal coordinate (unquantized)."""
        k = rng.choice(len(self.mus), size=size, p=np.exp(self.log_w))
        mu, sigma = self.mus[k], self.sigmas[k]
        if not self.bounded:
            return rng.normal(mu, sigma)
        a, b = ndtr((self.low - mu) / sigma), ndtr((self.high - mu) / sigma)
        u = rng.uniform(a, b)
        u = np.clip(u, _EPS, 1 - _EPS)
        return np.clip(mu + sigma * ndtri(u), self.low, self.high)

    def to_value(self, x: np.ndarray) -> np.ndarray:
        v = np.exp(x) if self.log else x
        if self.q is not None:
            v = np.round(v / self.q) * self.q
        if self.int_range is not None:
            v = np.clip(v, *self.int_range)
        return v

    def log_pdf(self, values: np.ndarray) -> np.ndarray:
        """Log density (log probability for quantized values) of ``values`` (not internal)."""
        v = np.asarray(values, dtype=float)[:, None]
        mus, sigmas = self.mus[None, :], self.sigmas[None, :]
        if self.q is None:
            x = np.log(np.maximum(v, _EPS)) if self.log else v
            z = (x - mus) / sigmas
            comp = -0.5 * z * z - np.log(sigmas) - 0.5 * math.log(2 * math.pi) - self.log_mass
            if self.log:
                comp = comp - x  # Jacobian of the log transform
        else:
            lo, hi = v - self.q / 2.0, v + self.q / 2.0
            if self.log:
                lo, hi = np.log(np.maximum(lo, _EPS)), np.log(np.maximum(hi, _EPS))
            if self.bounded:
                lo, hi = np.maximum(lo, self.low), np.minimum(hi, self.high)
            mass = ndtr((hi - mus) / sigmas) - ndtr((lo - mus) / sigmas)
            comp = np.log(np.maximum(mass, _EPS)) - self.log_mass
        return logsumexp(comp + self.log_w[None, :], axis=1)


class _Categorical1D:
    """A smoothed categorical estimator over option indices."""

    def __init__(self, dist: Categorical, obs: np.ndarray, weights: np.ndarray,
                 prior_weight: float) -> None:
        n = dist.n_options
        counts = np.bincount(obs.astype(int), weights=weights, minlength=n)[:n]
        p = counts + prior_weight * np.asarray(dist.probs) * n / max(n, 1)
        self.p = p / p.sum()

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(len(self.p), size=size, p=self.p).astype(float)

    def to_value(self, x: np.ndarray) -> np.ndarray:
        return x

    def log_pdf(self, values: np.ndarray) -> np.ndarray:
        return np.log(self.p[np.asarray(values, dtype=int)])


def _estimator(param: Param, obs: np.ndarray, weights: np.ndarray, prior_weight: float
               ) -> _Numeric1D | _Categorical1D:
    if isinstance(param.dist, Categorical):
        return _Categorical1D(param.dist, obs, weights, prior_weight)
    return _Numeric1D(param.dist, obs, weights, prior_weight)


def _propose(param: Param, hist: History, below_mask: np.ndarray, rng: np.random.Generator,
             n_candidates: int, prior_weight: float, lf: int) -> Any:
    rows, values = hist.column(param.label)
    if len(rows) == 0:
        return param.dist.sample(rng)
    below = below_mask[rows]
    # Forgetting acts within each group, so good old trials keep their full weight.
    l_obs, g_obs = values[below], values[~below]
    l_est = _estimator(param, l_obs, linear_forgetting_weights(len(l_obs), lf), prior_weight)
    g_est = _estimator(param, g_obs, linear_forgetting_weights(len(g_obs), lf), prior_weight)
    cand = l_est.to_value(l_est.sample(rng, n_candidates))
    score = l_est.log_pdf(cand) - g_est.log_pdf(cand)
    return cand[int(np.argmax(score))]


def suggest(new_ids: Sequence[int], domain: Domain, trials: Trials, seed: int,
            prior_weight: float = _default_prior_weight,
            n_startup_jobs: int = _default_n_startup_jobs,
            n_EI_candidates: int = _default_n_EI_candidates,
            gamma: float = _default_gamma,
            linear_forgetting: int = _default_linear_forgetting,
            verbose: bool = True) -> list[dict[str, Any]]:
    """One NEW trial document per id, proposed by TPE (random until ``n_startup_jobs``)."""
    hist, _pending = history_for(trials)
    n_obs = len(hist.losses)
    if n_obs < n_startup_jobs:
        return rand.suggest(new_ids, domain, trials, seed)
    rng = np.random.default_rng(seed)
    below_mask = split_trials(hist.loss_array(), gamma, linear_forgetting)
    values = []
    for _ in new_ids:
        proposal = {
            label: _propose(p, hist, below_mask, rng, n_EI_candidates, prior_weight,
                            linear_forgetting)
            for label, p in domain.params.items()
        }
        values.append(domain.space.active(proposal))
    return docs_from_values(trials, domain, new_ids, values)
