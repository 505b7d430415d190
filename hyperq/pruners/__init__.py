"""Pruners: decide from intermediate reports whether a running trial should stop early.

Pass one to ``fmin(..., pruner=...)`` or to :class:`hyperq.AskTell`:

- :class:`MedianPruner` / :class:`PercentilePruner`: stop a trial whose best value so far is
  worse than the median (a percentile) of what finished trials reported at the same step.
- :class:`ASHAPruner`: asynchronous successive halving; at steps ``min_resource *
  reduction_factor**k`` only the best ``1 / reduction_factor`` of the trials go on.
- :class:`HyperbandPruner`: several ASHA brackets with different minimum resources, trials
  spread over them, so an aggressive and a cautious schedule hedge each other.

See ``docs/pruning.md``.
"""
from __future__ import annotations

from .base import Pruner, check_pruner
from .halving import ASHAPruner, HyperbandPruner
from .percentile import MedianPruner, PercentilePruner

__all__ = ["Pruner", "check_pruner", "MedianPruner", "PercentilePruner", "ASHAPruner", "HyperbandPruner"]
