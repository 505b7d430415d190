"""``SparkTrials``: evaluate trials in parallel as Spark tasks (hyperopt's API, less overhead).

::

    from hyperq import fmin, tpe, SparkTrials
    best = fmin(objective, space, algo=tpe.suggest, max_evals=100,
                trials=SparkTrials(parallelism=8))

Each trial runs as one Spark task in a job of its own, in a job group of its own, so fmin can
cancel one trial (timeout, loss_threshold, early_stop_fn) with ``cancelJobGroup`` without
touching any other Spark job of the application. The objective and the space are cloudpickled
once per fmin call and shipped once as a broadcast variable; every Python worker loads them once
and keeps them while Spark reuses it for later trials. Trials are started from fmin's own loop
the moment a slot frees up (no polling interval).

An objective that raises is caught inside the task, so the Spark task succeeds and the trial
becomes an ERROR trial with the exception's type, message and traceback; Spark never retries it.
If a task is retried anyway (its executor or Python worker died), the retry does not run the
objective again: the trial becomes an ERROR trial that says what happened.

pyspark is an optional dependency: ``pip install 'hyperq[spark]'``. hyperq must be installed on
the executors too (as hyperopt must be for hyperopt's SparkTrials).
"""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import math
import numbers
import queue
import time
import uuid
from typing import Any, Callable

import cloudpickle

from hyperq._parallel import DispatchTrials, error_outcome, evaluate_outcome
from hyperq.base import (
    JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR, STATUS_FAIL, STATUS_OK, Domain,
)
from hyperq.exceptions import HyperqError, InvalidArgument

logger = logging.getLogger(__name__)

__all__ = ["SparkTrials", "SparkTaskFailed"]

#: the most trials SparkTrials runs at once; a larger ``parallelism`` is capped with a warning
MAX_PARALLELISM = 128
_SHUTDOWN_WAIT = 30.0  # seconds fmin waits for cancelled Spark jobs to wind down


class SparkTaskFailed(HyperqError):
    """The Spark task evaluating a trial failed outside the objective (recorded as its error)."""


def _require_pyspark() -> Any:
    try:
        import pyspark
    except ImportError as exc:
        raise ImportError(
            "SparkTrials needs pyspark, which is not installed: pip install 'hyperq[spark]'"
        ) from exc
    return pyspark


def _spark_context(spark_session: Any) -> Any:
    """The SparkContext of ``spark_session`` (default: the active session, else a new one)."""
    _require_pyspark()
    if spark_session is None:
        from pyspark.sql import SparkSession

        spark_session = SparkSession.builder.getOrCreate()
    try:
        return spark_session.sparkContext
    except Exception as exc:  # Spark Connect sessions have no SparkContext
        raise InvalidArgument(
            f"SparkTrials needs a classic Spark session with a SparkContext; this session has "
            f"none ({type(exc).__name__}: {exc}). Spark Connect is not supported: create the "
            "session with SparkSession.builder (without .remote()) on the driver"
        ) from exc


def _task_slots(sc: Any) -> int:
    """How many tasks the cluster runs at once: default parallelism / ``spark.task.cpus``."""
    try:
        cpus = int(sc.getConf().get("spark.task.cpus", "1"))
    except (TypeError, ValueError):
        cpus = 1
    return max(1, int(sc.defaultParallelism) // max(1, cpus))


def _resolve_parallelism(parallelism: int | None, slots: int) -> int:
    if parallelism is None:
        n = slots
    elif isinstance(parallelism, bool) or not isinstance(parallelism, numbers.Integral) \
            or parallelism < 1:
        raise InvalidArgument(f"parallelism must be a positive int or None (the cluster's task "
                              f"slots), got {parallelism!r}")
    else:
        n = int(parallelism)
        if n > slots:
            logger.warning("parallelism=%d exceeds the cluster's %d task slots; trials beyond "
                           "that wait in Spark's queue", n, slots)
    if n > MAX_PARALLELISM:
        logger.warning("parallelism %d is capped at %d", n, MAX_PARALLELISM)
        n = MAX_PARALLELISM
    return n


_LOADED: dict[str, Domain] = {}  # domains loaded by this Python worker, by content hash


def _spark_task(bcast: Any, key: str, tid: int, vals: dict[str, Any], exp_key: str | None,
                rows: Any) -> list[bytes]:
    """The body of a trial's Spark task (runs in the executor's Python worker)."""
    for _ in rows:  # consume the input so that Spark reuses this Python worker
        pass
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is not None and ctx.attemptNumber() > 0:
        return [cloudpickle.dumps(error_outcome(
            str(SparkTaskFailed), f"the Spark task of this trial failed before (attempt "
            f"{ctx.attemptNumber() + 1}; its executor or Python worker died?); the objective "
            "is not run again"))]
    domain = _LOADED.get(key)
    if domain is None:
        try:
            domain = cloudpickle.loads(bcast.value)
        except Exception as exc:
            return [cloudpickle.dumps(error_outcome(
                str(type(exc)), f"the Spark executor could not load the objective and search "
                f"space: {exc}; make sure hyperq and the modules they use are installed on the "
                "executors"))]
        _LOADED.clear()
        _LOADED[key] = domain
    return [evaluate_outcome(domain, tid, vals, exp_key)]


def _short_spark_error(exc: BaseException) -> str:
    """The informative line of a (often very long) Spark/py4j error."""
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "Exception:" in ln or "Error:" in ln:
            return ln[:1000]
    return (lines[0] if lines else type(exc).__name__)[:1000]


class SparkTrials(DispatchTrials):
    """Trials evaluated as Spark tasks, at most ``parallelism`` at once.

    Args:
        parallelism: how many trials run at once (default: the cluster's task slots, i.e.
            ``defaultParallelism / spark.task.cpus``; at most 128, larger values are capped
            with a warning).
        timeout: seconds after which fmin stops and cancels running trials (as fmin's
            ``timeout``; when both are given the smaller applies).
        loss_threshold: fmin stops when a loss is at or below this (as fmin's
            ``loss_threshold``; when both are given the first reached applies).
        spark_session: the SparkSession to use (default: the active one, else a new one).
    """

    _RUNTIME_ATTRS = DispatchTrials._RUNTIME_ATTRS + (
        "_sc", "_spark_session", "_executor", "_bcast", "_base_rdd", "_outbox", "_groups",
        "_futures", "_run_id", "_cancelled")

    def __init__(self, parallelism: int | None = None, timeout: float | None = None,
                 loss_threshold: float | None = None, spark_session: Any = None) -> None:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, numbers.Real) or timeout <= 0):
            raise InvalidArgument(f"timeout must be a positive number of seconds or None, "
                                  f"got {timeout!r}")
        if loss_threshold is not None and (isinstance(loss_threshold, bool) or not isinstance(
                loss_threshold, numbers.Real) or math.isnan(loss_threshold)):
            raise InvalidArgument(f"loss_threshold must be a number or None, "
                                  f"got {loss_threshold!r}")
        self._spark_session = spark_session
        self._sc = _spark_context(spark_session)
        self.requested_parallelism = parallelism
        self.parallelism = _resolve_parallelism(parallelism, _task_slots(self._sc))
        self.timeout = timeout
        self.loss_threshold = loss_threshold
        super().__init__()

    def _reset_runtime(self) -> None:
        super()._reset_runtime()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._bcast: Any = None
        self._base_rdd: Any = None
        self._outbox: queue.Queue = queue.Queue()
        self._groups: dict[int, str] = {}
        self._cancelled: dict[int, str] = {}  # tid -> group, cancelled while fmin runs
        self._futures: dict[int, concurrent.futures.Future] = {}
        self._run_id = uuid.uuid4().hex[:12]

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._sc = None  # acquired again when the loaded trials are used by fmin
        self._spark_session = None

    @property
    def slots(self) -> int:
        return self.parallelism

    def fmin(self, fn: Callable[..., Any], space: Any, algo: Any = None,
             max_evals: int | None = None, **kwargs: Any) -> Any:
        """``hyperq.fmin`` with ``trials=self`` and this object's timeout and loss_threshold."""
        timeout = kwargs.get("timeout")
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout if timeout is None else min(timeout, self.timeout)
        threshold = kwargs.get("loss_threshold")
        if self.loss_threshold is not None:
            kwargs["loss_threshold"] = (self.loss_threshold if threshold is None
                                        else max(threshold, self.loss_threshold))
        return super().fmin(fn, space, algo=algo, max_evals=max_evals, **kwargs)

    # -- hyperopt's SparkTrials counters ------------------------------------------------------
    def count_successful_trials(self) -> int:
        """Trials that finished with status 'ok'."""
        return sum(1 for t in self.trials
                   if t["state"] == JOB_STATE_DONE and t["result"].get("status") == STATUS_OK)

    def count_failed_trials(self) -> int:
        """Trials whose objective raised or returned status 'fail'."""
        return sum(1 for t in self.trials if t["state"] == JOB_STATE_ERROR or (
            t["state"] == JOB_STATE_DONE and t["result"].get("status") == STATUS_FAIL))

    def count_cancelled_trials(self) -> int:
        """Trials cancelled because fmin stopped early."""
        return self.count_by_state_synced(JOB_STATE_CANCEL)

    def count_total_trials(self) -> int:
        """All trials of this object."""
        return len(self.trials)

    # -- runtime ------------------------------------------------------------------------------
    def _start_runtime(self) -> None:
        if self._sc is None:
            self._sc = _spark_context(None)
        self._bcast = self._sc.broadcast(self._domain_blob)
        self._base_rdd = self._sc.parallelize([0], 1)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.parallelism, thread_name_prefix="hyperq-spark")

    def _launch(self, trial: dict[str, Any]) -> None:
        assert self._executor is not None
        tid = trial["tid"]
        group = f"hyperq-{self._run_id}-trial-{tid}"
        self._groups[tid] = group
        task = functools.partial(_spark_task, self._bcast, self._domain_key, tid,
                                 trial["misc"]["vals"], self._exp_key)
        self._futures[tid] = self._executor.submit(self._run_job, tid, group, task)

    def _run_job(self, tid: int, group: str, task: Callable[..., list[bytes]]) -> None:
        """In a dispatcher thread: run the trial's one-task Spark job and post the outcome."""
        try:
            if tid in self._cancelled:  # cancelled before this thread got to submit its job
                return
            self._sc.setJobGroup(group, f"hyperq trial {tid}", interruptOnCancel=True)
            blobs = self._base_rdd.mapPartitions(task).collect()
            outcome = cloudpickle.loads(blobs[0])
        except BaseException as exc:
            outcome = error_outcome(str(SparkTaskFailed),
                                    f"the Spark job of this trial failed: {_short_spark_error(exc)}")
        self._outbox.put((tid, outcome))

    def _collect(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        done = []
        try:
            done.append(self._outbox.get(timeout=timeout) if timeout > 0
                        else self._outbox.get_nowait())
            while True:
                done.append(self._outbox.get_nowait())
        except queue.Empty:
            pass
        for tid, _ in done:
            self._groups.pop(tid, None)
            self._futures.pop(tid, None)
        return done

    def _abort(self, tids: list[int]) -> None:
        for tid in tids:
            group = self._groups.pop(tid, None)
            if group is not None:
                self._cancelled[tid] = group
                self._sc.cancelJobGroup(group)
                logger.info("cancelled the Spark job of trial %s", tid)

    def _stop_runtime(self) -> None:
        futures = [f for f in self._futures.values() if not f.done()]
        deadline = time.monotonic() + _SHUTDOWN_WAIT
        while futures and time.monotonic() < deadline:
            _, pending = concurrent.futures.wait(futures, timeout=0.25)
            futures = list(pending)
            for group in self._cancelled.values():  # a job submitted just after its cancel
                self._sc.cancelJobGroup(group)
        if futures:
            logger.warning("%d cancelled Spark jobs have not ended after %.0f s",
                           len(futures), _SHUTDOWN_WAIT)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        if self._bcast is not None and not any(not f.done() for f in futures):
            try:
                self._bcast.destroy()
            except Exception as exc:  # the context may be gone already
                logger.debug("could not destroy the broadcast: %s", exc)
        self._executor = self._bcast = self._base_rdd = None
        self._groups, self._futures, self._cancelled = {}, {}, {}
