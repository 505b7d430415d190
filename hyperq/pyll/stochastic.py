"""Random nodes and sampling whole spaces from their priors (hyperopt's ``pyll.stochastic``).

The prior functions (``scope.uniform``, ``scope.normal``, ``scope.randint``, ...) draw from the
``rng`` keyword argument of their node; :func:`recursive_set_rng_kwarg` sets it on every such
node of a graph, and :func:`sample` does that on a copy of a space and evaluates it.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from hyperq.pyll.base import Param, as_apply, clone, dfs, rec_eval, scope

#: names of the scope functions that draw from an ``rng`` keyword argument
implicit_stochastic_symbols: set[str] = set()


def implicit_stochastic(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a scope function as drawing from its ``rng`` keyword argument."""
    implicit_stochastic_symbols.add(fn.__name__)
    return fn


def _need_rng(rng: Any, name: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(
            f"scope.{name} needs an rng to draw from; sample the space with "
            "hyperq.pyll.stochastic.sample(space, rng) or set one with recursive_set_rng_kwarg"
        )
    return rng


def _q(draw: Any, q: float) -> Any:
    return np.round(draw / q) * q


@implicit_stochastic
@scope.define
def rng_from_seed(seed: Any) -> np.random.Generator:
    return np.random.default_rng(seed)


@implicit_stochastic
@scope.define
def uniform(low: float, high: float, rng: Any = None, size: Any = ()) -> Any:
    return _need_rng(rng, "uniform").uniform(low, high, size=size)


@implicit_stochastic
@scope.define
def loguniform(low: float, high: float, rng: Any = None, size: Any = ()) -> Any:
    return np.exp(_need_rng(rng, "loguniform").uniform(low, high, size=size))


@implicit_stochastic
@scope.define
def quniform(low: float, high: float, q: float, rng: Any = None, size: Any = ()) -> Any:
    return _q(_need_rng(rng, "quniform").uniform(low, high, size=size), q)


@implicit_stochastic
@scope.define
def qloguniform(low: float, high: float, q: float, rng: Any = None, size: Any = ()) -> Any:
    return _q(np.exp(_need_rng(rng, "qloguniform").uniform(low, high, size=size)), q)


@implicit_stochastic
@scope.define
def normal(mu: float, sigma: float, rng: Any = None, size: Any = ()) -> Any:
    return _need_rng(rng, "normal").normal(mu, sigma, size=size)


@implicit_stochastic
@scope.define
def qnormal(mu: float, sigma: float, q: float, rng: Any = None, size: Any = ()) -> Any:
    return _q(_need_rng(rng, "qnormal").normal(mu, sigma, size=size), q)


@implicit_stochastic
@scope.define
def lognormal(mu: float, sigma: float, rng: Any = None, size: Any = ()) -> Any:
    return np.exp(_need_rng(rng, "lognormal").normal(mu, sigma, size=size))


@implicit_stochastic
@scope.define
def qlognormal(mu: float, sigma: float, q: float, rng: Any = None, size: Any = ()) -> Any:
    return _q(np.exp(_need_rng(rng, "qlognormal").normal(mu, sigma, size=size)), q)


@implicit_stochastic
@scope.define
def randint(low: int, high: int | None = None, rng: Any = None, size: Any = ()) -> Any:
    """Integers in ``[0, low)`` (one bound) or ``[low, high)``."""
    return _need_rng(rng, "randint").integers(low, high, size)


@implicit_stochastic
@scope.define
def categorical(p: Any, rng: Any = None, size: Any = ()) -> Any:
    """Index ``i`` drawn with probability ``p[i]``."""
    p = np.asarray(p, dtype=float).ravel()
    out = _need_rng(rng, "categorical").choice(len(p), size=None if size == () else size,
                                               p=p / p.sum())
    return int(out) if size == () else out


@implicit_stochastic
@scope.define
def randint_via_categorical(p: Any, rng: Any = None, size: Any = ()) -> Any:
    return categorical(p, rng, size)


def recursive_set_rng_kwarg(expr: Any, rng: Any = None) -> Any:
    """Make every random node of ``expr`` draw from ``rng`` (in place); returns ``expr``."""
    if rng is None:
        rng = np.random.default_rng()
    lrng = as_apply(rng)
    for node in dfs(expr):
        if node.name in implicit_stochastic_symbols:
            for pair in node.named_args:
                if pair[0] == "rng":
                    pair[1] = lrng
                    break
            else:
                node.named_args.append(["rng", lrng])
    return expr


def _as_generator(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.RandomState):
        return np.random.default_rng(rng.randint(2**31 - 1))
    return np.random.default_rng(rng)


def sample(expr: Any, rng: np.random.Generator | int | None = None, **kwargs: Any) -> Any:
    """Draw one point of the space ``expr``: the object an objective would receive.

    ``rng`` is a ``numpy.random.Generator``, a seed, or None for fresh entropy. Other keyword
    arguments go to :func:`~hyperq.pyll.base.rec_eval`.
    """
    rng = _as_generator(rng)
    from hyperq.space import SearchSpace

    SearchSpace(expr)  # rejects duplicate labels, as fmin would
    node = as_apply(expr)
    nodes = dfs(node)
    priors = {id(n.pos_args[1]) for n in nodes if isinstance(n, Param)}
    if any(n.name in implicit_stochastic_symbols and id(n) not in priors for n in nodes):
        # random nodes outside hyperparameters (scope.normal(0, 1), scope.one_of(...)) draw
        # from rng too; set it on a copy so the caller's space is left as it was
        node = recursive_set_rng_kwarg(clone(node), as_apply(rng))
    return rec_eval(node, sampler=lambda p: p.dist.sample(rng), **kwargs)
