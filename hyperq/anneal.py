"""Simulated-annealing-style search: perturb one of the best trials, less and less over time."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from hyperq._normal import ndtr, ndtri

from hyperq import rand
from hyperq._history import History, history_for
from hyperq.base import Domain, Trials, docs_from_values
from hyperq.pyll.base import Param
from hyperq.pyll.distributions import Categorical, Normal, RandInt, Uniform


def _base_value(hist: History, label: str, row: int) -> float | None:
    rows, values = hist.column(label)
    i = int(np.searchsorted(rows, row))
    if i < len(rows) and rows[i] == row:
        return float(values[i])
    return None


def _truncnorm(rng: np.random.Generator, mu: float, sigma: float, low: float, high: float
               ) -> float:
    a, b = ndtr((low - mu) / sigma), ndtr((high - mu) / sigma)
    u = float(np.clip(rng.uniform(a, b), 1e-12, 1 - 1e-12))
    return float(np.clip(mu + sigma * ndtri(u), low, high))


def _perturb(param: Param, base: float, shrink: float, rng: np.random.Generator) -> Any:
    dist = param.dist
    if isinstance(dist, Categorical):
        return dist.sample(rng) if rng.uniform() < shrink else int(base)
    if isinstance(dist, RandInt):
        width = (dist.high - dist.low) * shrink
        x = _truncnorm(rng, base, max(width, 0.5), dist.low - 0.5, dist.high - 0.5)
        return int(np.clip(round(x), dist.low, dist.high - 1))
    x0 = float(dist.to_internal(base))
    if isinstance(dist, Uniform):
        x = _truncnorm(rng, x0, (dist.high - dist.low) * shrink, dist.low, dist.high)
    else:
        assert isinstance(dist, Normal)
        x = float(rng.normal(x0, dist.sigma * shrink))
    return dist.coerce(dist.to_value(np.asarray(x)))


def suggest(new_ids: Sequence[int], domain: Domain, trials: Trials, seed: int,
            avg_best_idx: float = 2.0, shrink_coef: float = 0.1) -> list[dict[str, Any]]:
    """One NEW trial per id: a perturbation of a good trial (random while there is none).

    The trial to perturb is the one ranked ``floor(Exponential(avg_best_idx))`` by loss; the
    perturbation width shrinks as ``1 / (1 + n_trials * shrink_coef)``.
    """
    hist, _pending = history_for(trials)
    n = len(hist.losses)
    if n == 0:
        return rand.suggest(new_ids, domain, trials, seed)
    rng = np.random.default_rng(seed)
    order = np.argsort(hist.loss_array(), kind="stable")
    shrink = 1.0 / (1.0 + n * shrink_coef)
    values = []
    for _ in new_ids:
        row = int(order[min(int(rng.exponential(avg_best_idx)), n - 1)])
        proposal = {}
        for label, param in domain.params.items():
            base = _base_value(hist, label, row)
            proposal[label] = (param.dist.sample(rng) if base is None
                               else _perturb(param, base, shrink, rng))
        values.append(domain.space.active(proposal))
    return docs_from_values(trials, domain, new_ids, values)
