"""Median and percentile pruning: compare a trial with finished trials at the same step."""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Sequence

import numpy as np

from hyperq.exceptions import InvalidArgument
from hyperq.intermediate import PruningHistory

from .base import Pruner, check_int


class PercentilePruner(Pruner):
    """Stop a trial whose best value so far is worse than the ``percentile`` of the values
    finished trials reported at its latest step.

    Args:
        percentile: in (0, 100]; 50 is the median, 25 keeps only trials in the best quarter.
        n_startup_trials: decide only once this many finished trials reported at that step.
        n_warmup_steps: never stop a trial before this step.
        interval_steps: decide only every this many steps after the warm-up.
    """

    uses_rungs = False

    def __init__(self, percentile: float, n_startup_trials: int = 5, n_warmup_steps: int = 0,
                 interval_steps: int = 1) -> None:
        if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) \
                or not 0 < percentile <= 100:
            raise InvalidArgument(f"percentile must be in (0, 100], got {percentile!r}")
        self.percentile = float(percentile)
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, 1)
        self.n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, 0)
        self.interval_steps = check_int("interval_steps", interval_steps, 1)

    def should_prune(self, tid: int, reports: Sequence[Mapping[str, Any]],
                     history: PruningHistory) -> bool:
        step = reports[-1]["step"]
        if step < self.n_warmup_steps or (step - self.n_warmup_steps) % self.interval_steps:
            return False
        own = [r["value"] for r in reports if not math.isnan(r["value"])]
        if not own:
            return True  # only NaN so far: the training diverged
        others = [v for v in history.finished_values_at_step(step, tid) if not math.isnan(v)]
        if len(others) < self.n_startup_trials:
            return False
        return min(own) > float(np.percentile(others, self.percentile))


class MedianPruner(PercentilePruner):
    """:class:`PercentilePruner` at the 50th percentile (the median). Defaults: decide once 5
    finished trials reported at the step, from the first step on."""

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0,
                 interval_steps: int = 1) -> None:
        super().__init__(50.0, n_startup_trials, n_warmup_steps, interval_steps)
