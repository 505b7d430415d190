"""Ready-made ``early_stop_fn`` rules for fmin."""
from __future__ import annotations

import math
from typing import Any, Callable

from hyperq.base import JOB_STATE_DONE, STATUS_OK, Trials


def no_progress_loss(iteration_stop_count: int = 20, percent_increase: float = 0.0
                     ) -> Callable[..., tuple[bool, list[Any]]]:
    """Stop when the best loss has not improved for ``iteration_stop_count`` finished trials.

    An improvement must beat the best loss by more than ``percent_increase`` percent of its
    magnitude. Failed or errored trials count as trials without progress (they never crash
    the rule).
    """
    if iteration_stop_count < 1:
        raise ValueError("iteration_stop_count must be >= 1")

    def stop_fn(trials: Trials, best_loss: float | None = None, iteration_no_progress: int = 0,
                n_seen: int = 0) -> tuple[bool, list[Any]]:
        docs = trials.trials
        best = math.inf if best_loss is None else best_loss
        for t in docs[n_seen:]:
            r = t.get("result") or {}
            loss = r.get("loss")
            ok = (t.get("state") == JOB_STATE_DONE and r.get("status") == STATUS_OK
                  and loss is not None and math.isfinite(loss))
            if t.get("state", JOB_STATE_DONE) < JOB_STATE_DONE:
                break  # not finished yet: look at it next time
            n_seen += 1
            threshold = best - abs(best) * percent_increase / 100.0 if math.isfinite(best) else best
            if ok and loss < threshold and math.isfinite(best):
                best, iteration_no_progress = loss, 0
            else:
                # As in hyperopt, the trial that sets the first best loss counts as a trial
                # without progress: no_progress_loss(10) stops after 10 trials if the first
                # one stays the best.
                if ok and loss < threshold:
                    best = loss
                iteration_no_progress += 1
        return (iteration_no_progress >= iteration_stop_count,
                [None if math.isinf(best) else best, iteration_no_progress, n_seen])

    return stop_fn
