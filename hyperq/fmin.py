"""``fmin``: the driver loop that asks an algorithm for trials, has them evaluated and stops."""
from __future__ import annotations

import logging
import math
import numbers
import os
import pickle
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np

from hyperq.analysis import TrialLog
from hyperq.base import (
    FINISHED_STATES, JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW,
    JOB_STATE_RUNNING, STATUS_OK, Ctrl, Domain, Trials, misc_from_values, spec_from_misc,
    utcnow, values_from_misc_vals,
)
from hyperq.evaluation import evaluate_trial
from hyperq.exceptions import AllTrialsFailed, InvalidArgument, NoTrialsFinished
from hyperq.progress import ProgressReporter
from hyperq.space import SearchSpace

logger = logging.getLogger(__name__)

Algo = Callable[..., list]


def space_eval(space: Any, hp_assignment: dict[str, Any]) -> Any:
    """The object the objective receives for ``hp_assignment`` (e.g. ``fmin``'s result).

    ``hp_assignment`` maps labels to values (choice labels to option indices); labels that
    the chosen branches do not use may be left out.
    """
    return SearchSpace(space).evaluate(values_from_misc_vals(hp_assignment))


def generate_trials_to_calculate(points: Sequence[dict[str, Any]],
                                 exp_key: str | None = None) -> Trials:
    """A Trials holding one NEW trial per point (``{label: value}``), evaluated first by fmin."""
    if isinstance(points, dict) or not all(isinstance(p, dict) for p in points):
        raise InvalidArgument("points must be a list of dicts mapping labels to values")
    trials = Trials(exp_key=exp_key)
    tids = trials.new_trial_ids(len(points))
    miscs = [misc_from_values(tid, p, list(p)) for tid, p in zip(tids, points)]
    docs = trials.new_trial_docs(tids, [None] * len(tids), [{"status": "new"}] * len(tids), miscs)
    trials.insert_trial_docs(docs)
    trials.refresh()
    return trials


def _as_rng(rstate: Any) -> np.random.Generator:
    if rstate is None:
        seed = os.environ.get("HYPERQ_FMIN_SEED") or os.environ.get("HYPEROPT_FMIN_SEED")
        return np.random.default_rng(int(seed) if seed else None)
    if isinstance(rstate, np.random.Generator):
        return rstate
    if isinstance(rstate, np.random.RandomState):
        return np.random.default_rng(rstate.randint(2**31 - 1))
    if isinstance(rstate, numbers.Integral) and not isinstance(rstate, bool):
        return np.random.default_rng(int(rstate))
    raise InvalidArgument(
        f"rstate must be a numpy Generator (np.random.default_rng(seed)) or an int seed, "
        f"got {type(rstate).__name__}"
    )


def _check_args(fn: Any, algo: Any, max_evals: Any, timeout: Any, loss_threshold: Any,
                max_queue_len: Any, early_stop_fn: Any) -> None:
    if not callable(fn):
        raise InvalidArgument(f"fn must be a callable objective, got {type(fn).__name__}")
    if not callable(algo):
        raise InvalidArgument(
            "algo must be a suggest function such as hyperq.tpe.suggest or hyperq.rand.suggest"
        )
    if max_evals is not None and (isinstance(max_evals, bool) or not isinstance(
            max_evals, numbers.Integral) or max_evals < 0):
        raise InvalidArgument(f"max_evals must be a non-negative int or None, got {max_evals!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, numbers.Real) or timeout <= 0):
        # hyperopt's wording, which scripts and hyperopt's tests match on
        raise InvalidArgument("The timeout argument should be None or a positive value. "
                              f"Given value: {timeout}")
    if loss_threshold is not None and (isinstance(loss_threshold, bool) or not isinstance(
            loss_threshold, numbers.Real) or math.isnan(loss_threshold)):
        raise InvalidArgument("The loss_threshold argument should be None or a numeric value. "
                              f"Given value: {loss_threshold}")
    if isinstance(max_queue_len, bool) or not isinstance(max_queue_len, numbers.Integral) \
            or max_queue_len < 1:
        raise InvalidArgument(f"max_queue_len must be an int >= 1, got {max_queue_len!r}")
    if early_stop_fn is not None and not callable(early_stop_fn):
        raise InvalidArgument("early_stop_fn must be callable: (trials, *args) -> (stop, args)")
    if max_evals is None and timeout is None and loss_threshold is None and early_stop_fn is None:
        raise InvalidArgument(
            "fmin needs a stop rule: give max_evals, timeout, loss_threshold or early_stop_fn"
        )


def fmin_pass_expr_memo_ctrl(f: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an objective to be called as ``f(expr=..., memo=..., ctrl=...)`` (hyperopt's
    decorator; same as ``fmin(..., pass_expr_memo_ctrl=True)``)."""
    f.fmin_pass_expr_memo_ctrl = True
    return f


def partial(fn: Callable[..., Any], **kwargs: Any) -> Callable[..., Any]:
    """``functools.partial`` that keeps ``fmin_pass_expr_memo_ctrl`` (hyperopt's helper)."""
    import functools

    rval = functools.partial(fn, **kwargs)
    if hasattr(fn, "fmin_pass_expr_memo_ctrl"):
        rval.fmin_pass_expr_memo_ctrl = fn.fmin_pass_expr_memo_ctrl
    return rval


def __getattr__(name: str) -> Any:
    if name == "FMinIter":  # hyperopt.fmin.FMinIter; defined on top of this module's loop
        from hyperq.fmin_iter import FMinIter

        return FMinIter
    raise AttributeError(f"module 'hyperq.fmin' has no attribute {name!r}")


def load_trials(path: str) -> Trials:
    """Load a Trials saved by fmin's ``trials_save_file``."""
    with open(path, "rb") as f:
        trials = pickle.load(f)
    if not isinstance(trials, Trials):
        raise InvalidArgument(f"{path} does not hold a saved Trials object")
    return trials


def save_trials(trials: Trials, path: str) -> None:
    """Write ``trials`` to ``path`` atomically (a crash never leaves a half-written file)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".hyperq-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(trials, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class _Saver:
    """Saves trials after trials finish, throttled so saving costs at most ~1/3 of the run."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.last_end = 0.0
        self.last_cost = 0.0

    def maybe_save(self, trials: Trials, force: bool = False) -> None:
        if not self.path:
            return
        now = time.monotonic()
        if force or now - self.last_end >= 2 * self.last_cost:
            save_trials(trials, self.path)
            self.last_end = time.monotonic()
            self.last_cost = self.last_end - now


class _Run:
    """One call of fmin: the loop state and its stop rules."""

    def __init__(self, domain: Domain, trials: Trials, algo: Algo, max_evals: int,
                 timeout: float | None, loss_threshold: float | None, rng: np.random.Generator,
                 catch_eval_exceptions: bool, verbose: bool, max_queue_len: int,
                 progress: ProgressReporter, early_stop_fn: Callable | None, saver: _Saver
                 ) -> None:
        self.domain, self.trials, self.algo = domain, trials, algo
        self.max_evals, self.timeout, self.loss_threshold = max_evals, timeout, loss_threshold
        self.rng, self.catch = rng, catch_eval_exceptions
        self.verbose, self.max_queue_len = verbose, max_queue_len
        self.progress, self.early_stop_fn, self.saver = progress, early_stop_fn, saver
        self.early_stop_args: list[Any] = []
        self.start = time.monotonic()
        self.best_loss = math.inf
        self.n_finished = 0
        self.n_total = 0  # trials that count against max_evals (all but cancelled)
        self.stop_reason = ""
        self.trial_log = TrialLog(logger, space=domain.space, enabled=verbose)
        self.trial_log.prime(trials)

    def log(self, msg: str, *args: Any) -> None:
        if self.verbose:
            logger.info(msg, *args)

    # -- bookkeeping --------------------------------------------------------------------------
    def _scan(self) -> tuple[int, int]:
        """Recount from the store; returns (queued, running). O(n): used at start and async."""
        self.trials.refresh()
        queued = running = finished = total = 0
        best = math.inf
        for t in self.trials.trials:
            state = t["state"]
            if state == JOB_STATE_CANCEL:
                continue
            total += 1
            if state == JOB_STATE_NEW:
                queued += 1
            elif state == JOB_STATE_RUNNING:
                running += 1
            else:
                finished += 1
                r = t["result"]
                if state == JOB_STATE_DONE and r.get("status") == STATUS_OK:
                    loss = r.get("loss")
                    if loss is not None and loss < best:
                        best = loss
        newly = finished - self.n_finished
        self.n_finished, self.n_total, self.best_loss = finished, total, best
        if newly > 0:
            self.progress.update(newly, best)
            self.trial_log.scan(self.trials.trials)
        return queued, running

    def _finished_one(self, trial: dict[str, Any]) -> None:
        self.n_finished += 1
        r = trial["result"]
        if trial["state"] == JOB_STATE_DONE and r.get("status") == STATUS_OK:
            loss = r.get("loss")
            if loss is not None and loss < self.best_loss:
                self.best_loss = loss
        self.progress.update(1, self.best_loss)
        self.trial_log.finished(trial)

    def should_stop(self, newly_finished: bool) -> bool:
        if self.n_finished >= self.max_evals:
            self.stop_reason = "max_evals"
        elif self.timeout is not None and time.monotonic() - self.start >= self.timeout:
            self.stop_reason = "timeout"
        elif self.loss_threshold is not None and self.best_loss <= self.loss_threshold:
            self.stop_reason = "loss_threshold"
        elif self.early_stop_fn is not None and newly_finished and self.n_finished > 0:
            stop, args = self.early_stop_fn(self.trials, *self.early_stop_args)
            self.early_stop_args = list(args) if args is not None else []
            if stop:
                self.stop_reason = "early_stop_fn"
        return bool(self.stop_reason)

    # -- suggesting ---------------------------------------------------------------------------
    def suggest(self, n: int) -> list[dict[str, Any]]:
        """Ask the algorithm for up to ``n`` trials and store them; returns the stored docs."""
        ids = self.trials.new_trial_ids(n)
        self.trials.refresh()
        seed = int(self.rng.integers(2**31 - 1))
        docs = self.algo(ids, self.domain, self.trials, seed)
        if not docs:
            return []
        self.trials.insert_trial_docs(docs)
        self.trials.refresh()
        self.n_total += len(docs)
        return self.trials._dynamic_trials[-len(docs):]

    # -- evaluating in this process -----------------------------------------------------------
    def evaluate(self, trial: dict[str, Any]) -> None:
        now = utcnow()
        trial["state"] = JOB_STATE_RUNNING
        trial["book_time"] = trial["refresh_time"] = now
        trial["owner"] = f"{os.uname().nodename}:{os.getpid()}"
        ctrl = Ctrl(self.trials, current_trial=trial)
        try:  # the evaluation path of every backend (hyperq/evaluation.py)
            outcome = evaluate_trial(self.domain, spec_from_misc(trial["misc"]), ctrl)
        except KeyboardInterrupt:
            trial["state"], trial["owner"], trial["book_time"] = JOB_STATE_NEW, None, None
            raise
        if not outcome.ok:
            exc = outcome.exception
            trial["state"] = JOB_STATE_ERROR
            trial["misc"]["error"] = outcome.error
            trial["misc"]["traceback"] = outcome.traceback
            trial["refresh_time"] = utcnow()
            if not self.catch and exc is not None:
                self.n_finished += 1
                raise exc
            logger.error("trial %s failed: %s: %s", trial["tid"], type(exc).__name__, exc)
        else:
            result = outcome.result
            trial["result"] = result
            trial["state"] = JOB_STATE_DONE
            trial["refresh_time"] = utcnow()
            if result.get("failure"):
                logger.warning("trial %s: %s", trial["tid"], result["failure"])
        self._finished_one(trial)

    def run_sync(self) -> None:
        queued, running = self._scan()
        pending: list[dict[str, Any]] = []
        for t in self.trials.trials:
            if t["state"] == JOB_STATE_RUNNING:  # left over from an interrupted run
                t["state"], t["owner"] = JOB_STATE_NEW, None
            if t["state"] == JOB_STATE_NEW:
                pending.append(t)
        newly = True
        while not self.should_stop(newly):
            want = min(self.max_queue_len - len(pending), self.max_evals - self.n_total)
            if want > 0:
                docs = self.suggest(want)
                if not docs and not pending:
                    self.stop_reason = "search space exhausted"
                    break
                pending.extend(docs)
            if not pending:
                break
            self.evaluate(pending.pop(0))
            self.saver.maybe_save(self.trials)
            newly = True
        self.trials.refresh()

    # -- waiting for other processes ----------------------------------------------------------
    def run_async(self) -> None:
        queued, running = self._scan()
        finished_before = self.n_finished
        while not self.should_stop(self.n_finished != finished_before):
            finished_before = self.n_finished
            target = self.trials.desired_queue_len(self.max_queue_len)
            want = min(target - queued, self.max_evals - self.n_total)
            if want > 0:
                docs = self.suggest(want)
                if not docs and queued == 0 and running == 0:
                    self.stop_reason = "search space exhausted"
                    break
                queued += len(docs)
            if queued == 0 and running == 0 and self.n_total >= self.max_evals:
                break
            wait = 1.0
            if self.timeout is not None:
                wait = max(0.0, min(wait, self.timeout - (time.monotonic() - self.start)))
            self.trials.wait_for_change(wait)
            queued, running = self._scan()
            if self.n_finished != finished_before:
                self.saver.maybe_save(self.trials)

    def finish(self) -> None:
        if self.stop_reason and self.stop_reason != "max_evals":
            n = self.trials.cancel_queued()
            if n:
                self.log("cancelled %d queued trials (%s)", n, self.stop_reason)
        if self.stop_reason:
            self.log("stopped: %s after %d trials, best loss %s", self.stop_reason,
                     self.n_finished, self.best_loss)
        self.trials.refresh()


def fmin(fn: Callable[..., Any], space: Any, algo: Algo | None = None,
         max_evals: int | None = None, timeout: float | None = None,
         loss_threshold: float | None = None, trials: Trials | None = None,
         rstate: np.random.Generator | None = None, allow_trials_fmin: bool = True,
         pass_expr_memo_ctrl: bool | None = None, catch_eval_exceptions: bool = False,
         verbose: bool = True, return_argmin: bool = True,
         points_to_evaluate: Sequence[dict[str, Any]] | None = None, max_queue_len: int = 1,
         show_progressbar: bool | Callable = True, early_stop_fn: Callable | None = None,
         trials_save_file: str = "", pruner: Any = None) -> Any:
    """Minimize ``fn`` over ``space`` with the hyperopt contract.

    Args:
        fn: the objective. It receives a point of ``space`` and returns a loss, or a dict with
            ``loss`` and ``status`` (STATUS_OK / STATUS_FAIL) plus any other keys, which are kept
            in the trial's ``result``. An ``attachments`` dict is stored with the trial.
        space: the search space (``hp.*`` expressions inside dicts, lists, tuples).
        algo: a suggest function: ``tpe.suggest`` (default), ``rand.suggest``,
            ``anneal.suggest``, ``grid.suggest``, or a ``functools.partial`` of one.
        max_evals: stop when this many trials, counting those already in ``trials``, finished.
        timeout: stop after this many seconds (checked between trials).
        loss_threshold: stop when the best loss is at or below this.
        trials: where trials are stored and evaluated (``Trials``, ``MongoTrials``, ...).
        rstate: a ``numpy.random.Generator`` (or int seed) for reproducible runs.
        early_stop_fn: ``f(trials, *args) -> (stop, args)``, called after trials finish.
        trials_save_file: a file to save trials to as they finish, and resume from.
        catch_eval_exceptions: record an objective's exception as an ERROR trial and go on,
            instead of raising it.
        verbose: log what happens (the progress bar is governed by ``show_progressbar``).
        return_argmin: return ``trials.argmin`` (choice indices) rather than the best point.
        points_to_evaluate: points (``{label: value}``) to evaluate first.
        max_queue_len: how many trials to suggest at once.
        pruner: a :mod:`hyperq.pruners` pruner (e.g. ``MedianPruner()``) that stops trials
            early from what they report with ``hyperq.get_trial().report(step, value)``.

    Returns:
        The best trial's ``{label: value}`` (pass it to ``space_eval`` for the point itself),
        or with ``return_argmin=False`` the best point itself (None if ``trials`` lists no
        trial; :class:`AllTrialsFailed` if none succeeded).
    """
    if algo is None:
        from hyperq import tpe

        algo = tpe.suggest
    if allow_trials_fmin and trials is not None and hasattr(trials, "fmin"):
        return trials.fmin(
            fn, space, algo=algo, max_evals=max_evals, timeout=timeout,
            loss_threshold=loss_threshold, rstate=rstate,
            pass_expr_memo_ctrl=pass_expr_memo_ctrl,
            catch_eval_exceptions=catch_eval_exceptions, verbose=verbose,
            return_argmin=return_argmin, points_to_evaluate=points_to_evaluate,
            max_queue_len=max_queue_len, show_progressbar=show_progressbar,
            early_stop_fn=early_stop_fn, trials_save_file=trials_save_file,
            **({"pruner": pruner} if pruner is not None else {}),
        )
    if isinstance(space, str) and space == "annotated":
        from hyperq.annotated import space_from_annotations

        fn, space = space_from_annotations(fn)
    _check_args(fn, algo, max_evals, timeout, loss_threshold, max_queue_len, early_stop_fn)
    rng = _as_rng(rstate)
    domain = Domain(fn, space, pass_expr_memo_ctrl=pass_expr_memo_ctrl)
    if pruner is not None:
        from hyperq.pruners import check_pruner

        domain.pruner = check_pruner(pruner)

    if trials_save_file and os.path.exists(trials_save_file):
        trials = load_trials(trials_save_file)
        logger.info("resuming from %s with %d trials", trials_save_file, len(trials))
    elif trials is None:
        trials = Trials()
    max_evals = sys.maxsize if max_evals is None else int(max_evals)
    trials.prepare_fmin(domain)  # before queueing points: workers need the domain they name
    if points_to_evaluate:
        if isinstance(points_to_evaluate, dict):
            raise InvalidArgument("points_to_evaluate must be a list of dicts, not one dict")
        trials.refresh()
        if len(trials) == 0:
            points = [domain.space.check_point(p) for p in points_to_evaluate]
            tids = trials.new_trial_ids(len(points))
            from hyperq.base import docs_from_values

            trials.insert_trial_docs(docs_from_values(trials, domain, tids, points))
            trials.refresh()

    progress = ProgressReporter(show_progressbar, total=None if max_evals == sys.maxsize
                                else max_evals)
    run = _Run(domain, trials, algo, max_evals, timeout, loss_threshold, rng,
               catch_eval_exceptions, verbose, max_queue_len, progress, early_stop_fn,
               _Saver(trials_save_file))
    try:
        with progress:
            if trials.asynchronous:
                run.run_async()
            else:
                run.run_sync()
        run.finish()
    finally:
        try:
            trials.end_fmin()
        finally:
            if trials_save_file:
                run.saver.maybe_save(trials, force=True)

    if return_argmin:
        if not any(t["state"] in FINISHED_STATES for t in trials.trials):
            n_cancel = sum(1 for t in trials.trials if t["state"] == JOB_STATE_CANCEL)
            raise NoTrialsFinished(
                f"fmin stopped ({run.stop_reason or 'nothing to evaluate'}) before any trial "
                f"finished ({n_cancel} cancelled), so there is no argmin; raise timeout or "
                "max_evals, or make the objective faster"
            )
        return trials.argmin
    if len(trials) == 0:
        return None
    # As in hyperopt: AllTrialsFailed when trials ran but none succeeded.
    return space_eval(space, trials.argmin)
