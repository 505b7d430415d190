"""The worker loop behind ``hyperq-worker``: claim a trial, evaluate it, write the result.

- Requests per trial: one claim and one fenced finish. A trial that runs longer than the
  heartbeat interval also sends a heartbeat per interval. A worker that finishes a trial claims
  the next at once and keeps going until the queue is empty (it drains before sleeping).
- Idle workers wait on a change stream where the server has one (no polling reads). Elsewhere
  they poll, and the fleet shares a budget of ``fleet_rate`` checks per second: each worker
  learns from the registry how many workers there are and spaces its checks accordingly.
- A janitor thread refreshes the registry entry and scans for expired leases on a timer
  (also paced by fleet size), whether or not a trial is running.
- The objective runs in the main thread. SIGTERM/SIGINT interrupt it: the trial is handed back
  (retry budget untouched) and the worker exits with status 0. When the lease is lost (the
  trial was re-queued), the objective is interrupted too, and its result is never written.
- Transient server errors are retried with backoff and logged; the worker exits only on
  errors retrying cannot fix: refused credentials, a refused signature (status 3), or a server
  unreachable for longer than ``reconnect_timeout`` (status 2).
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from hyperq.evaluation import Outcome, evaluate_trial, plain, storable
from hyperq.intermediate import TrialHandle, trial_context

from .attachments import AttachmentMap
from .connection import AUTH_CODES, StoreUnavailable, is_transient
from .domain import DomainCache, DomainLoadError, runtime_versions
from .job import LeasedJob, LeaseLost
from .pruning import MongoHistory
from .queue import ANY_EXP, JOB_STATE_DONE, JOB_STATE_ERROR
from .signing import SignatureError, verify_trial
from .store import JobStore, new_worker_id
from .wakeups import ChangeFeed, FleetPace, new_work_pipeline, open_feed

log = logging.getLogger(__name__)

__all__ = ["Worker", "WorkerConfig", "WorkerInterrupted", "LeaseLost", "EXIT_OK",
           "EXIT_UNAVAILABLE", "EXIT_REFUSED", "_plain"]

EXIT_OK = 0
EXIT_UNAVAILABLE = 2
EXIT_REFUSED = 3

#: fleet-wide lease-expiry scans per second (each costs about two requests)
SCANS_PER_S = 1.0
#: fleet-wide registry refreshes per second at most (each costs two requests)
REGISTRY_PER_S = 3.0
#: for this long after its last trial a worker polls at BUSY_SHARE of the fleet rate: while a
#: driver is feeding the queue, a queue found empty is refilled within the driver's next turn
BUSY_WINDOW_S = 2.0
BUSY_SHARE = 0.3

_plain = plain  # kept for callers of the old name


class WorkerInterrupted(BaseException):
    """Raised inside the objective when the worker receives SIGTERM or SIGINT."""


class LeaseLostInterrupt(BaseException):
    """Raised inside the objective when the worker finds its lease lost."""


@dataclass
class WorkerConfig:
    """Options of one worker process (see ``hyperq-worker --help``)."""

    exp_key: Any = ANY_EXP
    max_jobs: int | None = None
    idle_timeout: float | None = None
    workdir: str | None = None
    poll_interval: float = 0.005
    heartbeat: float = 2.0
    lease: float | None = None
    secret: bytes | None = None
    fleet_rate: float = 25.0
    watch: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lease_s(self) -> float:
        """Lease length: ``lease`` if given, else 10 heartbeats (at least heartbeat + 1 s)."""
        if self.lease is not None:
            return float(self.lease)
        return max(10 * self.heartbeat, self.heartbeat + 1.0)


class _Heartbeat(threading.Thread):
    """Extends one trial's lease every ``interval`` s; a trial shorter than that sends none."""

    def __init__(self, worker: "Worker", job: LeasedJob, interval: float) -> None:
        super().__init__(name=f"hyperq-heartbeat-{job.tid}", daemon=True)
        self.worker, self.job, self.interval = worker, job, interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        first = True
        while not self.stop_event.wait(self.interval):
            try:
                if not self.job.heartbeat():
                    log.warning("lost the lease of trial %s (it was re-queued); stopping its "
                                "objective", self.job.tid)
                    return
                if first:  # long trials show in the registry; short ones never pay for it
                    first = False
                    self.worker.registry_beat(state="running", current={
                        "exp_key": self.job.doc.get("exp_key"), "tid": self.job.tid})
            except Exception as exc:  # the server is away: keep trying, the lease decides
                log.debug("heartbeat failed: %s", exc)

    def stop(self) -> None:
        self.stop_event.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=5)


class _Janitor(threading.Thread):
    """Registry refreshes and lease-expiry scans on timers paced by the fleet's size."""

    def __init__(self, worker: "Worker") -> None:
        super().__init__(name="hyperq-janitor", daemon=True)
        self.worker = worker
        self.stop_event = threading.Event()

    def run(self) -> None:
        w = self.worker
        scans = FleetPace(SCANS_PER_S)
        next_beat = next_scan = time.monotonic()
        while not self.stop_event.is_set():
            now = time.monotonic()
            try:
                if now >= next_beat:
                    w.registry_beat()
                    w.fleet = max(1, w.store.registry.count_live(ANY_EXP))
                    next_beat = now + w.registry_period()
                if now >= next_scan:
                    w.n_scans += 1
                    w.store.registry.expire_leases(w.config.exp_key)
                    next_scan = now + scans.interval(w.fleet)
            except Exception as exc:
                log.debug("janitor: %s", exc)
                next_beat = min(next_beat, now + 1.0)
                next_scan = max(next_scan, now + 0.5)
            self.stop_event.wait(max(0.01, min(next_beat, next_scan) - time.monotonic()))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


class Worker:
    """A stateless worker serving one experiment (or all) from a :class:`JobStore`."""

    def __init__(self, store: JobStore, config: WorkerConfig | None = None) -> None:
        self.store = store
        self.config = config or WorkerConfig()
        self.worker_id = new_worker_id()
        self.domains = DomainCache(store, self.config.secret)
        self.n_done = 0
        self.n_error = 0
        self.fleet = 1
        self.n_polls = 0         # idle checks for work (reads)
        self.n_empty_claims = 0  # claims that found nothing
        self.n_scans = 0         # lease-expiry scans
        self._stop = False
        self._wake = threading.Event()
        self._interruptible = False
        self._objective_thread: int | None = None
        self._signals = False
        self._pending_interrupt: type[BaseException] | None = None
        self._feed: ChangeFeed | None = None

    # -- signals --------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGUSR1:  # sent by the heartbeat: the lease is lost
            if self._interruptible:
                self._interruptible = False
                raise LeaseLostInterrupt("lease lost")
            return
        name = signal.Signals(signum).name
        log.warning("%s received: %s", name, "still stopping" if self._stop else "stopping")
        self._stop = True
        self._wake.set()
        if self._interruptible:
            self._interruptible = False
            raise WorkerInterrupted(name)

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: hand the running trial back and stop; SIGUSR1: lease lost."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                signal.signal(sig, self._on_signal)
            self._signals = True

    def stop(self) -> None:
        """Ask the loop to stop after the current trial (thread-safe)."""
        self._stop = True
        self._wake.set()

    def _interrupt_objective(self) -> None:
        """Stop the running objective (called when the lease is found lost)."""
        thread = self._objective_thread
        if not self._interruptible or thread is None or thread == threading.get_ident():
            return
        if self._signals and thread == threading.main_thread().ident:
            signal.pthread_kill(thread, signal.SIGUSR1)
        else:  # a worker run in a thread: raise in it at its next bytecode
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread),
                                                       ctypes.py_object(LeaseLostInterrupt))

    # -- registry -------------------------------------------------------------------------
    def registry_period(self) -> float:
        """Seconds between registry refreshes: a third of the lease, longer for big fleets."""
        return max(self.config.lease_s / 3, self.fleet / REGISTRY_PER_S)

    def registry_beat(self, **fields: Any) -> None:
        """Refresh this worker's registry entry (and set ``fields``)."""
        window = int(max(self.config.lease_s, 3 * self.registry_period()) * 1000)
        fields.setdefault("n_done", self.n_done)
        fields.setdefault("n_error", self.n_error)
        fields["lease_ms"] = window
        self.store.registry.beat(self.worker_id, fields)

    def _registry_info(self, state: str) -> dict[str, Any]:
        exp = self.config.exp_key
        return {"host": socket.gethostname(), "pid": os.getpid(),
                "serves": "*" if exp is ANY_EXP else exp, "state": state, "current": None,
                "lease_ms": int(self.config.lease_s * 1000), "heartbeat_s": self.config.heartbeat,
                "n_done": self.n_done, "n_error": self.n_error, "versions": runtime_versions()}

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Serve trials until stopped, ``max_jobs`` done, or idle for ``idle_timeout``.

        Returns the exit status: 0 on a normal stop, 3 when a payload was refused (signature),
        2 when the server stayed unreachable longer than its reconnect timeout or refused the
        credentials.
        """
        cfg = self.config
        if cfg.workdir:
            os.makedirs(cfg.workdir, exist_ok=True)
            os.chdir(cfg.workdir)
        janitor = None
        try:
            self.store.ensure_indexes()
            self.store.register_worker(self.worker_id, self._registry_info("idle"))
            if cfg.watch:
                pace = FleetPace(cfg.fleet_rate)
                self._feed = self.store.retry(
                    lambda: open_feed(self.store.jobs, new_work_pipeline(cfg.exp_key),
                                      pace=lambda: pace.interval(self.fleet)), "watch for work")
            log.info("worker %s serving %s on %s (%s)", self.worker_id,
                     "every experiment" if cfg.exp_key is ANY_EXP
                     else f"exp_key={cfg.exp_key!r}", self.store.target.display,
                     "change stream" if self._feed else f"polling, {cfg.fleet_rate:g}/s per fleet")
            janitor = _Janitor(self)
            janitor.start()
            return self._loop()
        except StoreUnavailable as exc:
            log.error("%s", exc)
            return EXIT_UNAVAILABLE
        finally:
            if janitor is not None:
                janitor.stop()
            if self._feed is not None:
                self._feed.close()
            try:
                self.store.registry.stopped(self.worker_id)
            except Exception:
                pass
            log.info("worker %s stopped: %d done, %d error; %d idle checks, %d empty claims, "
                     "%d lease scans", self.worker_id, self.n_done, self.n_error, self.n_polls,
                     self.n_empty_claims, self.n_scans)

    def _loop(self) -> int:
        cfg = self.config
        idle_since = time.monotonic()
        pace = FleetPace(cfg.fleet_rate, floor_s=cfg.poll_interval)
        busy_pace = FleetPace(cfg.fleet_rate * BUSY_SHARE, floor_s=cfg.poll_interval)
        work_seen = True  # right after start-up, or a wake-up, or a trial: try to claim
        while not self._stop:
            if cfg.max_jobs is not None and self.n_done + self.n_error >= cfg.max_jobs:
                log.info("max_jobs=%d reached", cfg.max_jobs)
                break
            doc = self._claim() if work_seen or self._has_new() else None
            if doc is None and work_seen:
                self.n_empty_claims += 1
            if doc is not None:
                status = self._run_trial(doc)
                if status is not None:
                    return status
                idle_since = time.monotonic()
                work_seen = True  # drain the queue before sleeping
                continue
            work_seen = False
            idle = time.monotonic() - idle_since
            if cfg.idle_timeout is not None and idle > cfg.idle_timeout:
                log.info("idle for %.1f s: exiting (--idle-timeout)", cfg.idle_timeout)
                break
            if self._feed is not None:
                work_seen = self._feed.wait(1.0)
            else:
                busy = self.n_done + self.n_error > 0 and idle < BUSY_WINDOW_S
                self._wake.wait((busy_pace if busy else pace).interval(self.fleet))
        return EXIT_OK

    def _has_new(self) -> bool:
        """An idle poll: a read (cheaper for the server than a claim that finds nothing)."""
        if self._feed is not None:
            return False
        self.n_polls += 1
        try:
            return self.store.retry(lambda: self.store.has_new(self.config.exp_key),
                                    "look for work")
        except PyMongoError as exc:
            if is_transient(exc):
                raise
            log.error("looking for work failed: %s; retrying in 1 s", exc)
            self._wake.wait(1.0)
            return False

    def _claim(self) -> dict[str, Any] | None:
        """One claim, retried through transient errors (logged, with backoff)."""
        cfg = self.config

        def do() -> Any:
            try:
                return self.store.claim(self.worker_id, cfg.exp_key, cfg.lease_s)
            except OperationFailure as exc:
                if exc.code in AUTH_CODES:
                    raise StoreUnavailable(f"MongoDB refused this worker: {exc}") from None
                raise

        try:
            return self.store.retry(do, "claim a trial")
        except PyMongoError as exc:  # not transient, not fatal: say so and carry on
            if is_transient(exc):
                raise
            log.error("claim failed: %s; retrying in 1 s", exc)
            self._wake.wait(1.0)
            return None

    # -- one trial ----------------------------------------------------------------------------
    def _run_trial(self, doc: dict[str, Any]) -> int | None:
        """Evaluate one claimed trial; returns an exit status if the worker must stop."""
        store, cfg = self.store, self.config
        job = store.job(doc)
        tid = job.tid
        log.debug("claimed trial %s (exp_key=%r, attempt %s)", tid, doc.get("exp_key"),
                  doc.get("attempt"))
        job.on_lost(self._interrupt_objective)
        hb = _Heartbeat(self, job, cfg.heartbeat)
        hb.start()
        try:
            try:
                if cfg.secret:
                    verify_trial(doc, cfg.secret)
                domain = self._domain_for(doc)
            except SignatureError as exc:
                hb.stop()
                job.refuse(self.worker_id, str(exc))
                log.error("%s. This worker runs nothing and exits.", exc)
                return EXIT_REFUSED
            except DomainLoadError as exc:
                outcome = Outcome(False, {"status": "fail"}, ("DomainLoadError", str(exc)))
            else:
                outcome = self._evaluate(domain, doc, job)
        except WorkerInterrupted:
            hb.stop()
            back = job.hand_back()
            log.warning("trial %s handed back to the queue%s", tid,
                        "" if back else " (lease already lost)")
            return EXIT_OK
        except LeaseLostInterrupt:
            hb.stop()
            log.warning("trial %s: lease lost, objective stopped; the re-run's result counts",
                        tid)
            return None
        finally:
            hb.stop()
        outcome = storable(outcome, store.max_document_size(),
                           {"misc": doc.get("misc"), "spec": doc.get("spec")})
        if outcome.ok:
            self.n_done += 1
            state, result = JOB_STATE_DONE, outcome.result
        else:
            self.n_error += 1
            state = JOB_STATE_ERROR
            result = {**plain(doc.get("result") or {}), **outcome.result, "status": "fail"}
            log.warning("trial %s failed: %s: %s", tid, *(outcome.error or ("?", "?")))
        if job.lost.is_set() or not job.finish(state, result, outcome.misc_updates()):
            log.warning("trial %s: lease lost, result discarded (the trial was re-queued)", tid)
        return None

    def _evaluate(self, domain: Any, doc: dict[str, Any], job: LeasedJob) -> Outcome:
        from .trials import MongoTrials

        trials = MongoTrials(self.store, exp_key=doc.get("exp_key"), refresh=False)
        ctrl = _FencedCtrl(trials, job, self.config.secret)
        config = (doc.get("misc") or {}).get("vals") or {}
        self._objective_thread = threading.get_ident()
        self._interruptible = True
        try:
            if self._stop:
                raise WorkerInterrupted("stop requested")
            if job.lost.is_set():  # never start an objective whose lease is already gone
                raise LeaseLostInterrupt("lease lost before the objective started")
            # hyperq.get_trial(): reports are writes fenced by the lease, and the pruner decides
            # here from one indexed read of the other trials' reports (issue 14)
            handle = TrialHandle(job.tid, sink=job.report, pruner=getattr(domain, "pruner", None),
                                 history=MongoHistory(self.store.jobs, doc.get("exp_key"),
                                                      self.store.retry))
            with trial_context(handle):
                return evaluate_trial(domain, config, ctrl)
        finally:
            self._interruptible = False
            self._objective_thread = None

    def _domain_for(self, doc: dict[str, Any]) -> Any:
        cmd = (doc.get("misc") or {}).get("cmd") or []
        key = str(cmd[1]) if len(cmd) == 2 and cmd[0] == "domain_attachment" else ""
        if len(key) != 64:
            if self.config.secret:
                raise SignatureError(f"refusing trial {doc.get('tid')}: with a secret, a trial "
                                     "must name its (signed) domain in misc.cmd")
            key = self.store.experiment_domain(doc.get("exp_key")) or ""
        if not key:
            raise DomainLoadError(
                f"trial {doc.get('tid')} names no stored domain (misc.cmd={cmd!r}) and none was "
                f"published for exp_key={doc.get('exp_key')!r}; queue trials with "
                "fmin(..., trials=MongoTrials(...))")
        return self.domains.get(key)


class _FencedCtrl:
    """The ``ctrl`` an objective gets on a worker: attachments and checkpoints fenced by the
    lease (a worker that lost it gets :class:`LeaseLost` and writes nothing)."""

    def __init__(self, trials: Any, job: LeasedJob, secret: bytes | None = None) -> None:
        self.trials = trials
        self.job = job
        self.current_trial = job.doc
        self._secret = secret

    @property
    def attachments(self) -> AttachmentMap:
        """The current trial's attachments (GridFS); writes need the lease."""
        store = self.trials.store
        return AttachmentMap(store.blobs, store.jobs, {"_id": self.job.id},
                             self.current_trial.get("exp_key"), self.job.tid, job=self.job,
                             secret=self._secret)

    def checkpoint(self, result: dict[str, Any] | None = None) -> None:
        """Store a partial result on the trial while it runs; :class:`LeaseLost` if lost."""
        if result is not None:
            self.current_trial["result"] = result
        if not self.job.checkpoint(plain(self.current_trial.get("result"))):
            raise LeaseLost(f"checkpoint of trial {self.job.tid} not written: this worker lost "
                            "the trial's lease")

    def inject_results(self, *args: Any, **kwargs: Any) -> list[int]:
        """Add finished trials to the experiment (hyperopt's ``Ctrl.inject_results``)."""
        from hyperq.base import Ctrl

        return Ctrl(self.trials, self.current_trial).inject_results(*args, **kwargs)
