"""The worker loop behind ``hyperq-worker``: claim a trial, evaluate it, write the result.

- The objective runs in the main thread, so SIGTERM/SIGINT interrupt it: the trial is handed
  back to the queue (its retry budget untouched) and the worker exits with status 0.
- A heartbeat thread extends the trial's lease and the worker's entry in ``workers``. If the
  lease is lost (the worker was partitioned for too long and the trial re-queued), the result is
  discarded by the store's fencing instead of overwriting the re-run's.
- Idle workers poll adaptively: a millisecond after finishing a trial, doubling up to
  ``poll_interval`` (5 ms) while nothing is queued, and up to 0.25 s once they have had no work
  for 30 s. They also re-queue trials of dead workers.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import bson
import numpy as np

from .domain import DomainCache, DomainLoadError, runtime_versions
from .signing import SignatureError
from .store import (
    ANY_EXP,
    JOB_STATE_DONE,
    JOB_STATE_ERROR,
    JOB_STATE_RUNNING,
    JobStore,
    StoreUnavailable,
    is_connection_error,
    new_worker_id,
)

log = logging.getLogger(__name__)

__all__ = ["Worker", "WorkerConfig", "WorkerInterrupted", "EXIT_OK", "EXIT_REFUSED"]

EXIT_OK = 0
EXIT_UNAVAILABLE = 2
EXIT_REFUSED = 3

_MIN_POLL = 0.001
FAST_POLL_WINDOW_S = 30.0  # after this long without work, idle workers poll ...
SLOW_POLL_S = 0.25         # ... at most this often


class WorkerInterrupted(BaseException):
    """Raised inside the objective when the worker receives SIGTERM or SIGINT."""


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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lease_s(self) -> float:
        """Lease length: ``lease`` if given, else 10 heartbeats (at least heartbeat + 1 s)."""
        if self.lease is not None:
            return float(self.lease)
        return max(10 * self.heartbeat, self.heartbeat + 1.0)


def _plain(value: Any) -> Any:
    """numpy values -> Python values, recursively, so that BSON can store a result."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _error_info(exc: BaseException) -> dict[str, Any]:
    return {
        "error": [str(type(exc)), str(exc)],
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


class _Heartbeat(threading.Thread):
    """Extends one trial's lease (and the worker's registry entry) every ``interval`` s."""

    def __init__(self, store: JobStore, worker_id: str, doc: dict[str, Any], interval: float):
        super().__init__(name=f"hyperq-heartbeat-{doc['tid']}", daemon=True)
        self.store, self.worker_id, self.doc, self.interval = store, worker_id, doc, interval
        self.stop_event = threading.Event()
        self.lost = False

    def run(self) -> None:
        current = {"exp_key": self.doc.get("exp_key"), "tid": self.doc["tid"]}
        first = True
        while not self.stop_event.wait(self.interval):
            try:
                if not self.store.heartbeat(self.doc["_id"], self.doc["lease_token"]):
                    self.lost = True
                    log.warning(
                        "lost the lease of trial %s (it was re-queued after missed heartbeats); "
                        "its result will be discarded",
                        self.doc["tid"],
                    )
                    return
                # the first tick records the current trial: short trials never pay for it
                fields = {"state": "running", "current": current} if first else None
                self.store.worker_heartbeat(self.worker_id, fields)
                first = False
            except Exception as exc:  # server away: keep trying, the lease decides
                log.debug("heartbeat failed: %s", exc)

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
        self._stop = False
        self._interruptible = False
        self._last_registry = 0.0
        self._last_requeue = 0.0

    # -- signals --------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stop:
            log.warning("%s again: still stopping", name)
        else:
            log.warning("%s received: stopping", name)
        self._stop = True
        if self._interruptible:
            self._interruptible = False
            raise WorkerInterrupted(name)

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT hand the running trial back and stop the worker."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def stop(self) -> None:
        """Ask the loop to stop after the current trial (thread-safe)."""
        self._stop = True

    # -- the loop -------------------------------------------------------------------------
    def _registry_info(self, state: str, current: Any = None) -> dict[str, Any]:
        import socket

        exp = self.config.exp_key
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "serves": "*" if exp is ANY_EXP else exp,
            "state": state,
            "current": current,
            "lease_ms": int(self.config.lease_s * 1000),
            "heartbeat_s": self.config.heartbeat,
            "n_done": self.n_done,
            "n_error": self.n_error,
            "versions": runtime_versions(),
        }

    def run(self) -> int:
        """Serve trials until stopped, ``max_jobs`` done, or idle for ``idle_timeout``.

        Returns the process exit status: 0 on a normal stop, 3 when a payload was refused
        (signature), 2 when the server stayed unreachable longer than its reconnect timeout.
        """
        cfg = self.config
        if cfg.workdir:
            os.makedirs(cfg.workdir, exist_ok=True)
            os.chdir(cfg.workdir)
        self.store.ensure_indexes()
        self.store.register_worker(self.worker_id, self._registry_info("idle"))
        log.info(
            "worker %s serving %s on %s",
            self.worker_id,
            "every experiment" if cfg.exp_key is ANY_EXP else f"exp_key={cfg.exp_key!r}",
            self.store.target.display,
        )
        try:
            return self._loop()
        except StoreUnavailable as exc:
            log.error("%s", exc)
            return EXIT_UNAVAILABLE
        finally:
            try:
                self.store.workers.update_one(
                    {"_id": self.worker_id}, {"$set": {"state": "stopped", "current": None}}
                )
            except Exception:
                pass
            log.info("worker %s stopped: %d done, %d error", self.worker_id, self.n_done, self.n_error)

    def _loop(self) -> int:
        cfg = self.config
        interval = _MIN_POLL
        idle_since = time.monotonic()
        unreachable_since: float | None = None
        while not self._stop:
            if cfg.max_jobs is not None and self.n_done + self.n_error >= cfg.max_jobs:
                log.info("max_jobs=%d reached", cfg.max_jobs)
                break
            try:
                self._housekeeping()
                doc = None
                if interval <= 2 * _MIN_POLL or self.store.has_new(cfg.exp_key):
                    doc = self.store.claim(self.worker_id, cfg.exp_key, cfg.lease_s)
                if unreachable_since is not None:
                    log.warning("reconnected to MongoDB")
                    unreachable_since = None
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                now = time.monotonic()
                if unreachable_since is None:
                    unreachable_since = now
                    log.warning("MongoDB unreachable (%s); retrying", exc)
                elif now - unreachable_since > self.store.reconnect_timeout:
                    raise StoreUnavailable(
                        f"MongoDB at {self.store.target.display} unreachable for more than "
                        f"{self.store.reconnect_timeout:.0f} s"
                    ) from None
                time.sleep(0.2)
                continue
            if doc is None:
                if cfg.idle_timeout is not None and time.monotonic() - idle_since > cfg.idle_timeout:
                    log.info("idle for %.1f s: exiting (--idle-timeout)", cfg.idle_timeout)
                    break
                time.sleep(interval)
                cap = cfg.poll_interval
                if time.monotonic() - idle_since > FAST_POLL_WINDOW_S:
                    cap = max(cap, SLOW_POLL_S)  # long idle: spare the server
                interval = min(interval * 2, cap)
                continue
            status = self._run_trial(doc)
            if status is not None:
                return status
            interval = _MIN_POLL
            idle_since = time.monotonic()
        return EXIT_OK

    def _housekeeping(self) -> None:
        """Refresh the registry entry every heartbeat; re-queue dead workers' trials every lease."""
        now = time.monotonic()
        if now - self._last_registry >= self.config.lease_s / 3:
            self._last_registry = now
            self.store.worker_heartbeat(self.worker_id, {"state": "idle", "current": None,
                                                         "n_done": self.n_done,
                                                         "n_error": self.n_error})
        if now - self._last_requeue >= max(self.config.lease_s, 1.0):
            self._last_requeue = now
            self.store.requeue_expired(self.config.exp_key)

    # -- one trial ----------------------------------------------------------------------------
    def _run_trial(self, doc: dict[str, Any]) -> int | None:
        """Evaluate one claimed trial; returns an exit status if the worker must stop."""
        store, cfg = self.store, self.config
        tid, token = doc["tid"], doc["lease_token"]
        log.debug("claimed trial %s (exp_key=%r, attempt %s)", tid, doc.get("exp_key"), doc.get("attempt"))
        hb = _Heartbeat(store, self.worker_id, doc, cfg.heartbeat)
        hb.start()
        state, result, misc = JOB_STATE_ERROR, dict(doc.get("result") or {}), {}
        try:
            try:
                domain = self._domain_for(doc)
                result = self._evaluate(domain, doc)
                state = JOB_STATE_DONE
            except WorkerInterrupted:
                hb.stop()
                back = store.hand_back(doc["_id"], token)
                log.warning("trial %s handed back to the queue%s", tid, "" if back else " (lease already lost)")
                return EXIT_OK
            except SignatureError as exc:
                hb.stop()
                store.hand_back(doc["_id"], token)
                store.jobs.update_one({"_id": doc["_id"]}, {"$push": {"refusals": {"worker": self.worker_id, "reason": str(exc)}}})
                log.error("%s. This worker runs nothing and exits.", exc)
                return EXIT_REFUSED
            except Exception as exc:
                misc = _error_info(exc)
                result["status"] = "fail"
                log.warning("trial %s failed: %s: %s", tid, type(exc).__name__, exc)
            state, result, misc = self._storable(doc, state, result, misc)
        finally:
            hb.stop()
        if state == JOB_STATE_DONE:
            self.n_done += 1
        else:
            self.n_error += 1
        if not store.finish(doc["_id"], token, state, result, misc):
            log.warning("trial %s: lease lost, result discarded (the trial was re-queued)", tid)
        return None

    def _domain_for(self, doc: dict[str, Any]) -> Any:
        cmd = (doc.get("misc") or {}).get("cmd") or []
        key = str(cmd[1]) if len(cmd) == 2 and cmd[0] == "domain_attachment" else ""
        if len(key) != 64:  # queued before the domain was published (e.g. points_to_evaluate)
            key = self.store.experiment_domain(doc.get("exp_key")) or ""
        if not key:
            raise DomainLoadError(
                f"trial {doc.get('tid')} names no stored domain (misc.cmd={cmd!r}) and none was "
                f"published for exp_key={doc.get('exp_key')!r}; queue trials with "
                "fmin(..., trials=MongoTrials(...))"
            )
        return self.domains.get(key)

    def _evaluate(self, domain: Any, doc: dict[str, Any]) -> dict[str, Any]:
        from .trials import MongoTrials

        trials = MongoTrials(self.store, exp_key=doc.get("exp_key"), refresh=False)
        ctrl = _FencedCtrl(trials, doc, self.store)
        config = (doc.get("misc") or {}).get("vals") or {}
        self._interruptible = True
        try:
            if self._stop:
                raise WorkerInterrupted("stop requested")
            return domain.evaluate(config, ctrl, attach_attachments=True)
        finally:
            self._interruptible = False

    def _storable(
        self, doc: dict[str, Any], state: int, result: dict[str, Any], misc: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """Make the result storable, or turn it into an ERROR that says why it is not."""
        result = _plain(result)
        loss = result.get("loss")
        if isinstance(loss, float) and not math.isfinite(loss):
            result["loss"] = None  # not storable on every server; the failure says what it was
            result.setdefault("failure", f"loss is {loss}, not a finite number")
            result["status"] = "fail"
        try:
            size = len(bson.encode({"result": result, "misc": doc.get("misc"), "spec": doc.get("spec")}))
        except Exception as exc:
            return JOB_STATE_ERROR, {"status": "fail"}, {
                "error": [
                    "InvalidResult",
                    f"the result holds a value MongoDB cannot store ({exc}); return plain "
                    "numbers, strings, lists and dicts, and put other objects in "
                    "'attachments'",
                ]
            }
        limit = self.store.max_document_size() - 64 * 1024
        if size > limit:
            return JOB_STATE_ERROR, {"status": "fail"}, {
                "error": [
                    "ResultTooLarge",
                    f"the result is {size} bytes, over the {limit} bytes a MongoDB document can "
                    "hold here; return large objects as 'attachments' (stored in GridFS)",
                ]
            }
        return state, result, misc


class LeaseLost(RuntimeError):
    """This worker no longer holds the trial's lease: the trial was re-queued to another."""


class _FencedAttachments(MutableMapping):
    """Attachments of the running trial that are written only while this worker holds its
    lease, so a worker that lost it cannot overwrite what the re-run writes."""

    def __init__(self, inner: MutableMapping, store: JobStore, doc: dict[str, Any]) -> None:
        self._inner, self._store, self._doc = inner, store, doc

    def _check_lease(self, name: str) -> None:
        held = self._store.jobs.find_one(
            {"_id": self._doc["_id"], "state": JOB_STATE_RUNNING,
             "lease_token": self._doc["lease_token"]}, {"_id": 1})
        if held is None:
            raise LeaseLost(
                f"attachment {name!r} of trial {self._doc['tid']} not written: this worker lost "
                "the trial's lease (it was re-queued after missed heartbeats)"
            )

    def __getitem__(self, name: str) -> Any:
        return self._inner[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._check_lease(name)
        self._inner[name] = value

    def __delitem__(self, name: str) -> None:
        self._check_lease(name)
        del self._inner[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


class _FencedCtrl:
    """The ``ctrl`` an objective gets on a worker: attachments in GridFS, fenced checkpoints."""

    def __init__(self, trials: Any, doc: dict[str, Any], store: JobStore) -> None:
        self.trials = trials
        self.current_trial = doc
        self._store = store

    @property
    def attachments(self) -> Any:
        """The current trial's attachments (GridFS); writes need the lease (fencing)."""
        return _FencedAttachments(self.trials.trial_attachments(self.current_trial),
                                  self._store, self.current_trial)

    def checkpoint(self, result: dict[str, Any] | None = None) -> None:
        """Store a partial result on the trial while it runs (only while holding the lease)."""
        if result is not None:
            self.current_trial["result"] = result
        self._store.jobs.update_one(
            {"_id": self.current_trial["_id"], "lease_token": self.current_trial["lease_token"]},
            {"$set": {"result": _plain(self.current_trial.get("result"))},
             "$currentDate": {"refresh_time": True}},
        )

    def inject_results(self, *args: Any, **kwargs: Any) -> list[int]:
        """Add finished trials to the experiment (hyperopt's ``Ctrl.inject_results``)."""
        from hyperq.base import Ctrl

        return Ctrl(self.trials, self.current_trial).inject_results(*args, **kwargs)
