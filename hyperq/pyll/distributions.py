"""Prior distributions of hyperparameters.

Every distribution is described in an *internal* coordinate where the search algorithms work:
log-scaled distributions are uniform or normal in ``log(value)``, and quantized ones round the
value (after ``exp`` for log scales) to a multiple of ``q``, exactly as hyperopt defines them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Distribution:
    """Base class; ``integer`` is set when values are whole numbers (``scope.int``, uniformint)."""

    integer: bool = False

    kind = "real"  # "real" (continuous or quantized numbers), "randint" or "categorical"

    def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
        """Draw values from the prior."""
        raise NotImplementedError

    def coerce(self, value: Any) -> Any:
        """``value`` as the Python type this distribution produces."""
        return int(round(float(value))) if self.integer else float(value)


@dataclass
class Numeric(Distribution):
    """Uniform or normal in the internal coordinate, optionally log-scaled and quantized."""

    q: float | None = None
    log: bool = False

    def to_value(self, x: np.ndarray) -> np.ndarray:
        """Internal coordinate -> value (exp for log scales, then quantization)."""
        v = np.exp(x) if self.log else np.asarray(x, dtype=float)
        if self.q is not None:
            v = np.round(v / self.q) * self.q
        return v

    def to_internal(self, value: np.ndarray) -> np.ndarray:
        """Value -> internal coordinate (log for log scales)."""
        v = np.asarray(value, dtype=float)
        if self.log:
            with np.errstate(divide="ignore"):
                return np.log(np.maximum(v, 1e-300))
        return v

    def _finish(self, x: np.ndarray, size: int | None) -> Any:
        v = self.to_value(x)
        if size is None:
            return self.coerce(v)
        return v.astype(int) if self.integer else v


@dataclass
class Uniform(Numeric):
    """Uniform on ``[low, high]`` in the internal coordinate (log-uniform when ``log``)."""

    low: float = 0.0
    high: float = 1.0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
        return self._finish(rng.uniform(self.low, self.high, size), size)

    @property
    def bounds(self) -> tuple[float, float]:
        """Bounds of the values (not of the internal coordinate)."""
        lo, hi = (math.exp(self.low), math.exp(self.high)) if self.log else (self.low, self.high)
        return lo, hi


@dataclass
class Normal(Numeric):
    """Normal(mu, sigma) in the internal coordinate (log-normal when ``log``)."""

    mu: float = 0.0
    sigma: float = 1.0

    def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
        return self._finish(rng.normal(self.mu, self.sigma, size), size)


@dataclass
class RandInt(Distribution):
    """Integers uniformly in ``[low, high)``."""

    low: int = 0
    high: int = 1
    kind = "randint"

    def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
        out = rng.integers(self.low, self.high, size)
        return int(out) if size is None else out

    def coerce(self, value: Any) -> int:
        return int(value)


@dataclass
class Categorical(Distribution):
    """An index into the options of ``hp.choice`` / ``hp.pchoice``, drawn with ``probs``."""

    probs: tuple[float, ...] = (1.0,)
    kind = "categorical"

    @property
    def n_options(self) -> int:
        """The number of options."""
        return len(self.probs)

    def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
        n = len(self.probs)
        uniform = all(p == self.probs[0] for p in self.probs)
        if uniform:
            out = rng.integers(0, n, size)
        else:
            out = rng.choice(n, size=size, p=np.asarray(self.probs))
        return int(out) if size is None else out

    def coerce(self, value: Any) -> int:
        return int(value)
