"""Sampling whole spaces from their priors (hyperopt's ``pyll.stochastic``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from hyperq.pyll.base import rec_eval


def sample(expr: Any, rng: np.random.Generator | int | None = None) -> Any:
    """Draw one point of the space ``expr``: the object an objective would receive.

    ``rng`` is a ``numpy.random.Generator``, a seed, or None for fresh entropy.
    """
    if not isinstance(rng, np.random.Generator):
        if isinstance(rng, np.random.RandomState):
            rng = np.random.default_rng(rng.randint(2**31 - 1))
        else:
            rng = np.random.default_rng(rng)
    from hyperq.space import SearchSpace

    SearchSpace(expr)  # rejects duplicate labels, as fmin would
    return rec_eval(expr, sampler=lambda p: p.dist.sample(rng))
