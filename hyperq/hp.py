"""Search-space constructors with hyperopt's names, arguments and semantics.

Each function checks its arguments when the space is defined, so a mistake is reported where it
was made, with the label and the fix.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from hyperq.exceptions import BadSearchSpace
from hyperq.pyll.base import Apply, Param, Switch
from hyperq.pyll.distributions import Categorical, Normal, RandInt, Uniform

__all__ = [
    "choice", "pchoice", "randint", "uniform", "quniform", "uniformint", "loguniform",
    "qloguniform", "normal", "qnormal", "lognormal", "qlognormal",
]


def _check_label(label: Any) -> str:
    if not isinstance(label, str):
        raise BadSearchSpace(
            f"hyperparameter labels must be strings, got {label!r} ({type(label).__name__}); "
            "name the parameter with a string such as 'learning_rate'"
        )
    return label


def _number(label: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadSearchSpace(
            f"{label!r}: {name} must be a real number, got {value!r} ({type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value):
        raise BadSearchSpace(f"{label!r}: {name} must be finite, got {value!r}")
    return value


def _bounds(label: str, low: Any, high: Any, what: str = "") -> tuple[float, float]:
    lo, hi = _number(label, "low", low), _number(label, "high", high)
    if lo >= hi:
        raise BadSearchSpace(
            f"{label!r}: low ({low!r}) must be less than high ({high!r}){what}; swap or widen them"
        )
    return lo, hi


def _positive(label: str, name: str, value: Any) -> float:
    v = _number(label, name, value)
    if v <= 0:
        raise BadSearchSpace(f"{label!r}: {name} must be positive, got {value!r}")
    return v


def uniform(label: str, low: float, high: float) -> Param:
    """A float uniformly distributed in ``[low, high]``."""
    lo, hi = _bounds(_check_label(label), low, high)
    return Param(label, Uniform(low=lo, high=hi))


def quniform(label: str, low: float, high: float, q: float) -> Param:
    """``round(uniform(low, high) / q) * q``: a float on a grid of step ``q``."""
    lo, hi = _bounds(_check_label(label), low, high)
    return Param(label, Uniform(low=lo, high=hi, q=_positive(label, "q", q)))


def uniformint(label: str, low: int, high: int, q: float = 1.0) -> Apply:
    """An integer uniformly distributed in ``[low, high]`` (both ends included)."""
    lo, hi = _bounds(_check_label(label), low, high)
    step = _positive(label, "q", q)
    if step != int(step):
        raise BadSearchSpace(f"{label!r}: uniformint needs a whole-number q, got {q!r}")
    return Apply("int", [Param(label, Uniform(low=lo, high=hi, q=step, integer=True))])


def loguniform(label: str, low: float, high: float) -> Param:
    """``exp(uniform(low, high))``: bounds are given in log space, as in hyperopt.

    For values between 1e-5 and 1e-1 write ``hp.loguniform(label, math.log(1e-5), math.log(1e-1))``.
    """
    lo, hi = _bounds(_check_label(label), low, high, " (both are logarithms of the bounds)")
    return Param(label, Uniform(low=lo, high=hi, log=True))


def qloguniform(label: str, low: float, high: float, q: float) -> Param:
    """``round(exp(uniform(low, high)) / q) * q`` (bounds in log space)."""
    lo, hi = _bounds(_check_label(label), low, high, " (both are logarithms of the bounds)")
    return Param(label, Uniform(low=lo, high=hi, q=_positive(label, "q", q), log=True))


def normal(label: str, mu: float, sigma: float) -> Param:
    """A float drawn from Normal(mu, sigma)."""
    _check_label(label)
    return Param(label, Normal(mu=_number(label, "mu", mu), sigma=_positive(label, "sigma", sigma)))


def qnormal(label: str, mu: float, sigma: float, q: float) -> Param:
    """``round(normal(mu, sigma) / q) * q``."""
    _check_label(label)
    return Param(label, Normal(mu=_number(label, "mu", mu), sigma=_positive(label, "sigma", sigma),
                               q=_positive(label, "q", q)))


def lognormal(label: str, mu: float, sigma: float) -> Param:
    """``exp(normal(mu, sigma))``: always positive."""
    _check_label(label)
    return Param(label, Normal(mu=_number(label, "mu", mu), sigma=_positive(label, "sigma", sigma),
                               log=True))


def qlognormal(label: str, mu: float, sigma: float, q: float) -> Param:
    """``round(exp(normal(mu, sigma)) / q) * q``."""
    _check_label(label)
    return Param(label, Normal(mu=_number(label, "mu", mu), sigma=_positive(label, "sigma", sigma),
                               q=_positive(label, "q", q), log=True))


def randint(label: str, *args: int, **kwargs: int) -> Param:
    """An integer in ``[0, upper)`` (``randint(label, upper)``) or ``[low, high)``."""
    _check_label(label)
    if kwargs:
        bound = dict(zip(("low", "high"), args))  # randint(label, 3, high=7) as in hyperopt
        if len(args) > 2 or set(kwargs) - {"low", "high", "upper"} or set(kwargs) & set(bound) \
                or ("upper" in kwargs and (args or len(kwargs) > 1)):
            raise BadSearchSpace(
                f"{label!r}: call randint(label, upper) or randint(label, low, high)"
            )
        bound.update(kwargs)
        args = tuple(bound[k] for k in ("low", "high", "upper") if k in bound)
    if len(args) == 1:
        low, high = 0, args[0]
    elif len(args) == 2:
        low, high = args
    else:
        raise BadSearchSpace(f"{label!r}: call randint(label, upper) or randint(label, low, high)")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            if not (isinstance(v, numbers.Real) and float(v).is_integer()):
                raise BadSearchSpace(f"{label!r}: randint {name} must be an integer, got {v!r}")
    low, high = int(low), int(high)
    if low >= high:
        raise BadSearchSpace(
            f"{label!r}: randint needs low < high (the range is [low, high)), got {low}, {high}"
        )
    return Param(label, RandInt(low=low, high=high))


def choice(label: str, options: Sequence[Any]) -> Switch:
    """One of ``options`` (each may be a nested space); trials record the option's index."""
    _check_label(label)
    if isinstance(options, np.ndarray):  # hp.choice('depth', np.arange(1, 10)), as in hyperopt
        options = list(options)
    if isinstance(options, (str, bytes, dict)) or not isinstance(options, Sequence):
        raise BadSearchSpace(f"{label!r}: choice needs a list or tuple of options, got {options!r}")
    if len(options) == 0:
        raise BadSearchSpace(f"{label!r}: choice needs at least one option, got an empty list")
    n = len(options)
    return Switch(Param(label, Categorical(probs=tuple([1.0 / n] * n))), list(options))


def pchoice(label: str, p_options: Sequence[tuple[float, Any]]) -> Switch:
    """One of the options, drawn with the given probabilities: ``[(p, option), ...]``."""
    _check_label(label)
    if len(p_options) == 0:
        raise BadSearchSpace(f"{label!r}: pchoice needs at least one (probability, option) pair")
    probs, options = [], []
    for item in p_options:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise BadSearchSpace(
                f"{label!r}: pchoice takes (probability, option) pairs, got {item!r}"
            )
        p = _number(label, "probability", item[0])
        if p < 0:
            raise BadSearchSpace(f"{label!r}: pchoice probability {p} is negative")
        probs.append(p)
        options.append(item[1])
    total = sum(probs)
    if not math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-6):
        raise BadSearchSpace(
            f"{label!r}: pchoice probabilities must sum to 1, they sum to {total:g}"
        )
    probs = [p / total for p in probs]
    return Switch(Param(label, Categorical(probs=tuple(probs))), options)
