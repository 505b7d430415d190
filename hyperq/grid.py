"""Grid search: every combination of a discrete space, each once (hyperopt has no grid search).

Discrete parameters (``choice``, ``pchoice``, ``randint``, the quantized ``q*`` distributions and
``uniformint``) contribute every value they can take. Continuous bounded parameters (``uniform``,
``loguniform``) are gridded at ``resolution`` evenly spaced points (log-spaced for log scales),
set per call with ``functools.partial(grid.suggest, resolution=10)`` or per label with
``resolution={"lr": 7}``. Unbounded (normal) parameters cannot be gridded: use a bounded one.
Conditional spaces enumerate only the combinations a branch actually uses. When every point has
been suggested, ``suggest`` returns an empty list and fmin stops.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from hyperq.base import JOB_STATE_CANCEL, Domain, Trials, docs_from_values, values_from_misc_vals
from hyperq.exceptions import BadSearchSpace
from hyperq.pyll.base import Param
from hyperq.pyll.distributions import Categorical, Normal, RandInt, Uniform
from hyperq.space import SearchSpace

MAX_VALUES_PER_PARAM = 100_000


def param_values(param: Param, resolution: int) -> list[Any]:
    """The grid values of one parameter."""
    dist = param.dist
    if isinstance(dist, Categorical):
        return list(range(dist.n_options))
    if isinstance(dist, RandInt):
        return list(range(dist.low, dist.high))
    if isinstance(dist, Normal):
        raise BadSearchSpace(
            f"grid search cannot enumerate the unbounded parameter {param.label!r}; "
            "use hp.uniform / hp.quniform (or their log forms) with bounds instead"
        )
    assert isinstance(dist, Uniform)
    lo, hi = dist.bounds
    if dist.q is not None:
        # Values are round(x / q) * q for x in [lo, hi], so a multiple of q just outside the
        # bounds can occur too (quniform(1, 10, 3) gives 0 for x < 1.5): take every k whose
        # rounding interval ((k - 1/2) q, (k + 1/2) q) overlaps (lo, hi).
        first = math.floor(lo / dist.q - 0.5 + 1e-9) + 1
        last = math.ceil(hi / dist.q + 0.5 - 1e-9) - 1
        count = last - first + 1
        if count > MAX_VALUES_PER_PARAM:
            raise BadSearchSpace(
                f"{param.label!r} has {count} grid values; use a larger q for grid search"
            )
        values = [k * dist.q for k in range(first, last + 1)]
    else:
        pts = np.linspace(dist.low, dist.high, resolution)
        values = list(np.exp(pts) if dist.log else pts)
    return [dist.coerce(v) for v in values]


def iter_grid(space: SearchSpace, resolution: int | Mapping[str, int] = 5
              ) -> Iterator[dict[str, Any]]:
    """Every distinct assignment of the active parameters, in a fixed order."""
    cache: dict[str, list[Any]] = {}

    def values_of(param: Param) -> list[Any]:
        if param.label not in cache:
            res = resolution.get(param.label, 5) if isinstance(resolution, Mapping) \
                else resolution
            if not isinstance(res, int) or res < 1:
                raise BadSearchSpace(f"grid resolution must be an int >= 1, got {res!r}")
            cache[param.label] = param_values(param, res)
        return cache[param.label]

    prefix: list[int] = []
    while True:
        sizes: list[int] = []

        def choose(param: Param) -> Any:
            i = len(sizes)
            options = values_of(param)
            sizes.append(len(options))
            if i >= len(prefix):
                prefix.append(0)
            return options[prefix[i]]

        yield space.assign(choose)
        del prefix[len(sizes):]
        # Advance the odometer: bump the deepest decision that has options left.
        k = len(sizes) - 1
        while k >= 0 and prefix[k] + 1 >= sizes[k]:
            k -= 1
        if k < 0:
            return
        prefix[k] += 1
        del prefix[k + 1:]


def _key(values: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, round(float(v), 12)) for k, v in values.items()))


def suggest(new_ids: Sequence[int], domain: Domain, trials: Trials, seed: int,
            resolution: int | Mapping[str, int] = 5, shuffle: bool = False
            ) -> list[dict[str, Any]]:
    """The next grid points not yet in ``trials`` (an empty list when the grid is done).

    With ``shuffle=True`` the remaining points are visited in random order.
    """
    seen = {_key(values_from_misc_vals(t["misc"]["vals"])) for t in trials.trials
            if t["state"] != JOB_STATE_CANCEL}
    fresh: list[dict[str, Any]] = []
    if shuffle:
        remaining = [v for v in iter_grid(domain.space, resolution) if _key(v) not in seen]
        rng = np.random.default_rng(seed)
        picks = rng.permutation(len(remaining))[:len(new_ids)]
        fresh = [remaining[i] for i in picks]
    else:
        for values in iter_grid(domain.space, resolution):
            k = _key(values)
            if k not in seen:
                seen.add(k)
                fresh.append(values)
                if len(fresh) == len(new_ids):
                    break
    return docs_from_values(trials, domain, new_ids[:len(fresh)], fresh)


def grid_size(space: Any, resolution: int | Mapping[str, int] = 5) -> int:
    """How many points the grid of ``space`` has."""
    return sum(1 for _ in iter_grid(SearchSpace(space), resolution))
