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
the executors too (as hyperopt must be for hyperopt's SparkTrials). In local mode the tasks run
with the driver's own interpreter (``sys.executable``), so a venv's packages are what they load;
``SparkTrials(python=...)``, ``$PYSPARK_PYTHON`` or ``spark.pyspark.python`` choose another.
"""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import math
import numbers
import platform
import queue
import sys
import threading
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


def _executor_python(sc: Any, python: str | None) -> tuple[str, str]:
    """The interpreter the trials' Python tasks run with, and why that one.

    pyspark itself starts ``$PYSPARK_PYTHON`` or else ``python3`` from the executors' PATH, which
    on a driver running in a venv is usually another Python with other packages. In local mode
    the executors are this machine, so the driver's own interpreter is the right default.
    """
    if python is not None:
        return python, "SparkTrials(python=...)"
    import os

    if os.environ.get("PYSPARK_PYTHON"):
        return os.environ["PYSPARK_PYTHON"], "$PYSPARK_PYTHON"
    conf = sc.getConf()
    for key in ("spark.pyspark.python", "spark.pyspark.driver.python"):
        if conf.get(key, None):
            return conf.get(key), key
    if str(sc.master).startswith("local"):
        return sys.executable, "the driver's interpreter (local mode)"
    return sc.pythonExec, "Spark's default (python3 on the executors' PATH)"


def _driver_runtime() -> dict[str, str]:
    """What pickled the domain: compared with the executor's when loading it fails."""
    return {"python": sys.executable, "version": platform.python_version(),
            "cloudpickle": getattr(cloudpickle, "__version__", "?")}


def _load_failure(exc: BaseException, driver: dict[str, str]) -> str:
    """An error message naming both interpreters and what differs between them."""
    here = _driver_runtime()
    differs = [f"{label} {here[key]} here, {driver[key]} on the driver"
               for key, label in (("version", "Python"), ("cloudpickle", "cloudpickle"))
               if here[key] != driver[key]]
    mismatch = "; versions differ: " + ", ".join(differs) if differs else ""
    return (f"the Spark executor could not load the objective and search space: "
            f"{type(exc).__name__}: {exc}. The executor runs {here['python']} (Python "
            f"{here['version']}, cloudpickle {here['cloudpickle']}); the driver pickled them "
            f"with {driver['python']} (Python {driver['version']}, cloudpickle "
            f"{driver['cloudpickle']}){mismatch}. Run the executors with the driver's packages: "
            "SparkTrials(python=...) or $PYSPARK_PYTHON naming a Python where hyperq and the "
            "objective's modules are installed at the same versions")


_LOADED: dict[str, Domain] = {}  # domains loaded by this Python worker, by content hash
_PYTHON_EXEC_LOCK = threading.Lock()


def _spark_task(bcast: Any, key: str, tid: int, vals: dict[str, Any], exp_key: str | None,
                driver: dict[str, str], rows: Any, *, history: Any = None) -> list[bytes]:
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
            return [cloudpickle.dumps(error_outcome(str(type(exc)), _load_failure(exc, driver)))]
        _LOADED.clear()
        _LOADED[key] = domain
    return [evaluate_outcome(domain, tid, vals, exp_key, history)]


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
        python: the interpreter that runs the trials' Python tasks. Default: ``$PYSPARK_PYTHON``
            or ``spark.pyspark.python`` when set; else, in local mode, the driver's own
            interpreter (so a venv's packages are used); else Spark's default. It must have
            hyperq and the objective's modules at the driver's versions.
    """

    _RUNTIME_ATTRS = DispatchTrials._RUNTIME_ATTRS + (
        "_sc", "_spark_session", "_executor", "_bcast", "_base_rdd", "_outbox", "_groups",
        "_futures", "_run_id", "_cancelled", "_driver_runtime")

    def __init__(self, parallelism: int | None = None, timeout: float | None = None,
                 loss_threshold: float | None = None, spark_session: Any = None,
                 python: str | None = None) -> None:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, numbers.Real) or timeout <= 0):
            raise InvalidArgument(f"timeout must be a positive number of seconds or None, "
                                  f"got {timeout!r}")
        if loss_threshold is not None and (isinstance(loss_threshold, bool) or not isinstance(
                loss_threshold, numbers.Real) or math.isnan(loss_threshold)):
            raise InvalidArgument(f"loss_threshold must be a number or None, "
                                  f"got {loss_threshold!r}")
        if python is not None and (not isinstance(python, str) or not python):
            raise InvalidArgument(f"python must be the path of a Python interpreter, "
                                  f"got {python!r}")
        self._spark_session = spark_session
        self._sc = _spark_context(spark_session)
        self.requested_python = python
        self.python, how = _executor_python(self._sc, python)
        logger.info("SparkTrials runs trials with %s (%s)", self.python, how)
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
        self._driver_runtime = _driver_runtime()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._sc = None  # acquired again when the loaded trials are used by fmin
        self._spark_session = None
        self.__dict__.setdefault("requested_python", None)
        self.__dict__.setdefault("python", None)

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
            self.python, how = _executor_python(self._sc, self.requested_python)
            logger.info("SparkTrials runs trials with %s (%s)", self.python, how)
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
                                 trial["misc"]["vals"], self._exp_key, self._driver_runtime,
                                 history=self._pruning_history())
        self._futures[tid] = self._executor.submit(self._run_job, tid, group, task)

    def _run_job(self, tid: int, group: str, task: Callable[..., list[bytes]]) -> None:
        """In a dispatcher thread: run the trial's one-task Spark job and post the outcome."""
        try:
            if tid in self._cancelled:  # cancelled before this thread got to submit its job
                return
            self._sc.setJobGroup(group, f"hyperq trial {tid}", interruptOnCancel=True)
            blobs = self._python_rdd(task).collect()
            outcome = cloudpickle.loads(blobs[0])
        except BaseException as exc:
            message = _short_spark_error(exc)
            if "ModuleNotFoundError" in message or "ImportError" in message:
                message += (f" (the executors run {self.python}, which lacks packages the "
                            f"driver's {sys.executable} has: install hyperq and the objective's "
                            "modules there, or choose another interpreter with "
                            "SparkTrials(python=...) or $PYSPARK_PYTHON)")
            outcome = error_outcome(str(SparkTaskFailed),
                                    f"the Spark job of this trial failed: {message}")
        self._outbox.put((tid, outcome))

    def _python_rdd(self, task: Callable[..., list[bytes]]) -> Any:
        """The trial's RDD, its Python function bound to ``self.python``.

        pyspark reads the interpreter from ``SparkContext.pythonExec`` when it wraps the
        function (the first access of ``_jrdd``); it is swapped only for that moment, under a
        lock, so other Spark jobs of the application keep their own interpreter.
        """
        rdd = self._base_rdd.mapPartitions(task)
        if self.python is None:
            return rdd
        with _PYTHON_EXEC_LOCK:  # also while reading: another trial's thread may have swapped it
            saved = self._sc.pythonExec
            self._sc.pythonExec = self.python
            try:
                rdd._jrdd  # noqa: B018  (wraps the function with the interpreter set above)
            finally:
                self._sc.pythonExec = saved
        return rdd

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
