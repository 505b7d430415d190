"""``FMinIter``: hyperopt's step-by-step driver (libraries such as hyperopt-sklearn use it).

It runs hyperq's fmin loop on a :class:`~hyperq.base.Domain` the caller built, ``N`` trials at a
time (:meth:`FMinIter.run`), one per iteration (``for trials in it: ...``), or up to
``max_evals`` (:meth:`FMinIter.exhaust`).
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from hyperq.base import JOB_STATE_CANCEL, Domain, Trials
from hyperq.fmin import _as_rng, _Run, _Saver
from hyperq.progress import ProgressReporter


class FMinIter:
    """Conducts the search of ``algo`` over ``domain``, storing trials in ``trials``."""

    #: record an objective's exception as an ERROR trial instead of raising it
    catch_eval_exceptions = False

    def __init__(self, algo: Callable[..., list], domain: Domain, trials: Trials,
                 rstate: np.random.Generator | int | None, asynchronous: bool | None = None,
                 max_queue_len: int = 1, poll_interval_secs: float = 1.0,
                 max_evals: int = sys.maxsize, timeout: float | None = None,
                 loss_threshold: float | None = None, verbose: bool = False,
                 show_progressbar: bool = True, early_stop_fn: Callable | None = None,
                 trials_save_file: str = "") -> None:
        self.algo, self.domain, self.trials = algo, domain, trials
        self.rstate = _as_rng(rstate)
        self.asynchronous = trials.asynchronous if asynchronous is None else asynchronous
        self.max_queue_len, self.poll_interval_secs = max_queue_len, poll_interval_secs
        self.max_evals, self.timeout, self.loss_threshold = max_evals, timeout, loss_threshold
        self.verbose, self.show_progressbar = verbose, show_progressbar
        self.early_stop_fn, self.early_stop_args = early_stop_fn, []
        self.trials_save_file = trials_save_file
        self._early_stopped = False
        trials.prepare_fmin(domain)

    def _n_counted(self) -> int:
        self.trials.refresh()
        return sum(1 for t in self.trials.trials if t["state"] != JOB_STATE_CANCEL)

    def run(self, N: int, block_until_done: bool = True) -> None:  # noqa: N803
        """Evaluate up to ``N`` more trials (fewer if a stop rule fires)."""
        limit = min(self.max_evals, self._n_counted() + int(N))
        progress = ProgressReporter(bool(self.show_progressbar and self.verbose), total=limit)
        run = _Run(self.domain, self.trials, self.algo, limit, self.timeout,
                   self.loss_threshold, self.rstate, self.catch_eval_exceptions, self.verbose,
                   self.max_queue_len, progress, self.early_stop_fn,
                   _Saver(self.trials_save_file))
        run.early_stop_args = list(self.early_stop_args)
        try:
            with progress:
                if self.trials.asynchronous:
                    run.run_async()
                else:
                    run.run_sync()
            run.finish()
        finally:
            self.trials.end_fmin()
            if self.trials_save_file:
                run.saver.maybe_save(self.trials, force=True)
        self.early_stop_args = run.early_stop_args
        self._early_stopped = run.stop_reason == "early_stop_fn"

    def __iter__(self) -> "FMinIter":
        return self

    def __next__(self) -> Trials:
        self.run(1)
        if self._early_stopped or len(self.trials) >= self.max_evals:
            raise StopIteration
        return self.trials

    def exhaust(self) -> "FMinIter":
        """Run until ``max_evals`` trials (or a stop rule)."""
        self.run(self.max_evals - len(self.trials))
        self.trials.refresh()
        return self
