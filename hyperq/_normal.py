"""The standard normal CDF and its inverse, with scipy imported on first use (importing scipy
would otherwise be most of ``import hyperq``'s time, paid again by every worker process)."""
from __future__ import annotations

from typing import Any


def ndtr(x: Any) -> Any:
    """Standard normal CDF, elementwise."""
    from scipy.special import ndtr as _ndtr

    return _ndtr(x)


def ndtri(p: Any) -> Any:
    """Inverse of :func:`ndtr`, elementwise."""
    from scipy.special import ndtri as _ndtri

    return _ndtri(p)
