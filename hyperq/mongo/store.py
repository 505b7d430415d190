"""The MongoDB job store: one object bundling the protocol's parts for one collection.

The parts, each in its own module:

- :mod:`~hyperq.mongo.connection`: the client, the collections, retries of idempotent requests;
- :mod:`~hyperq.mongo.queue`: trial ids, inserts, claims, cancellation, change reads;
- :mod:`~hyperq.mongo.job`: the leased job, whose writes are fenced by its lease token;
- :mod:`~hyperq.mongo.registry`: the worker registry and lease expiry;
- :mod:`~hyperq.mongo.blobs` and :mod:`~hyperq.mongo.attachments`: GridFS domains and
  attachments;
- :mod:`~hyperq.mongo.wakeups`: change streams and paced polling.

Fields added to hyperopt's trial document: ``attempt`` (claims so far; a hand-back does not
count), ``max_attempts``, ``lease_token`` (set by each claim; fenced writes carry it),
``lease_ms``, ``worker``, ``changed`` (server time of the last state change), ``att``
(attachment name -> GridFS file id). Every timestamp that decides a lease comes from the
database server, never from a client's clock.
"""
from __future__ import annotations

import os
import socket
import uuid
from typing import Any, Iterable

import pymongo
from pymongo.errors import DuplicateKeyError

from .blobs import DOMAIN_PREFIX, Blobs
from .connection import (
    AuthenticationFailed,
    Connection,
    StoreUnavailable,
    is_transient,
)
from .job import LeasedJob
from .queue import (
    ANY_EXP,
    FINISHED_STATES,
    JOB_STATE_CANCEL,
    JOB_STATE_DONE,
    JOB_STATE_ERROR,
    JOB_STATE_NEW,
    JOB_STATE_RUNNING,
    TrialQueue,
)
from .registry import DEFAULT_MAX_ATTEMPTS, WorkerRegistry
from .uri import MongoTarget, parse_mongo_uri

__all__ = [
    "JobStore", "StoreUnavailable", "AuthenticationFailed", "connect_store", "new_worker_id",
    "DEFAULT_MAX_ATTEMPTS", "ANY_EXP", "is_connection_error", "DuplicateKeyError",
    "DOMAIN_PREFIX", "FINISHED_STATES", "JOB_STATE_NEW", "JOB_STATE_RUNNING", "JOB_STATE_DONE",
    "JOB_STATE_ERROR", "JOB_STATE_CANCEL",
]


def new_worker_id() -> str:
    """A unique id for this worker process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def connect_store(address: str | MongoTarget, *, reconnect_timeout: float = 300.0,
                  server_selection_timeout_ms: int = 10_000, check: bool = True) -> "JobStore":
    """Open a :class:`JobStore` on ``address`` (any form :func:`parse_mongo_uri` accepts).

    With ``check`` the server is pinged at once, so that bad credentials or an unreachable host
    raise :class:`AuthenticationFailed` or :class:`StoreUnavailable` here with a clear message.
    """
    target = address if isinstance(address, MongoTarget) else parse_mongo_uri(address)
    client: pymongo.MongoClient = pymongo.MongoClient(
        target.uri, serverSelectionTimeoutMS=server_selection_timeout_ms, connect=False,
        appname="hyperq")
    store = JobStore(client, target, reconnect_timeout=reconnect_timeout)
    if check:
        store.check_connection()
    return store


def is_connection_error(exc: BaseException) -> bool:
    """Is ``exc`` a transient loss of the server (worth retrying)?"""
    return isinstance(exc, StoreUnavailable) or is_transient(exc)


class JobStore:
    """The queue, the registry and the blobs of one collection. Thread-safe."""

    def __init__(self, client: pymongo.MongoClient, target: MongoTarget, *,
                 reconnect_timeout: float = 300.0) -> None:
        self.conn = Connection(client, target, reconnect_timeout=reconnect_timeout)
        self.queue = TrialQueue(self.conn)
        self.registry = WorkerRegistry(self.conn)
        self.blobs = Blobs(self.conn)
        c = self.conn
        self.client, self.target, self.db = c.client, c.target, c.db
        self.jobs, self.workers, self.counters = c.jobs, c.workers, c.counters
        self.experiments, self.fs = c.experiments, c.fs

    @property
    def reconnect_timeout(self) -> float:
        """Seconds of failed retries after which :class:`StoreUnavailable` is raised."""
        return self.conn.reconnect_timeout

    # -- connection --------------------------------------------------------------------------
    def check_connection(self) -> None:
        """Ping the server; raise :class:`AuthenticationFailed` / :class:`StoreUnavailable`."""
        self.conn.check()

    def retry(self, fn: Any, what: str) -> Any:
        """Run ``fn`` (safe to repeat) through transient failures; see :meth:`Connection.retry`."""
        return self.conn.retry(fn, what)

    def ensure_indexes(self) -> None:
        """Create the queue's and the registry's indexes (idempotent)."""
        self.queue.ensure_indexes()
        self.registry.ensure_indexes()

    def server_time(self) -> Any:
        """The database server's current time (naive UTC)."""
        return self.conn.server_time()

    def max_document_size(self) -> int:
        """The server's maximum BSON document size (read once per connection)."""
        return self.conn.max_document_size()

    # -- queue -------------------------------------------------------------------------------
    def new_tids(self, exp_key: Any, n: int) -> list[int]:
        """Reserve ``n`` consecutive trial ids for ``exp_key``."""
        return self.queue.reserve_tids(exp_key, n)

    def insert(self, docs: Iterable[dict[str, Any]]) -> list[Any]:
        """Insert trial documents (one request, retried without duplicates)."""
        return self.queue.insert(docs)

    def has_new(self, exp_key: Any) -> bool:
        """Is a NEW trial waiting?"""
        return self.queue.has_new(exp_key)

    def claim(self, worker_id: str, exp_key: Any, lease_s: float,
              owner: Any = None) -> dict[str, Any] | None:
        """Claim the lowest-tid NEW trial under a fresh lease (see :meth:`TrialQueue.claim`)."""
        return self.queue.claim(worker_id, exp_key, lease_s, owner)

    def cancel_new(self, exp_key: Any, ids: list[Any] | None = None) -> int:
        """Mark NEW trials CANCEL (only ``ids`` if given)."""
        return self.queue.cancel_new(exp_key, ids)

    def count_finished(self, exp_key: Any) -> int:
        """How many trials of ``exp_key`` are DONE, ERROR or CANCEL."""
        return self.queue.count_finished(exp_key)

    # -- the leased job (fenced writes) ------------------------------------------------------
    def job(self, doc: dict[str, Any]) -> LeasedJob:
        """The :class:`LeasedJob` for a claimed trial document."""
        return LeasedJob(self.conn, doc)

    def heartbeat(self, doc_id: Any, token: str) -> bool:
        """Extend a lease; ``False`` means it was lost."""
        return LeasedJob(self.conn, {"_id": doc_id, "lease_token": token}).heartbeat()

    def finish(self, doc_id: Any, token: str, state: int, result: dict[str, Any],
               misc_updates: dict[str, Any] | None = None) -> bool:
        """Write a trial's outcome if ``token`` still holds its lease."""
        return LeasedJob(self.conn, {"_id": doc_id, "lease_token": token}).finish(
            state, result, misc_updates)

    def hand_back(self, doc_id: Any, token: str) -> bool:
        """Return a RUNNING trial to NEW without using up its retry budget."""
        return LeasedJob(self.conn, {"_id": doc_id, "lease_token": token}).hand_back()

    # -- registry and leases -----------------------------------------------------------------
    def requeue_expired(self, exp_key: Any = None) -> tuple[int, int]:
        """Re-queue (or fail) RUNNING trials whose lease expired; ``(requeued, failed)``."""
        return self.registry.expire_leases(exp_key)

    def register_worker(self, worker_id: str, info: dict[str, Any]) -> None:
        """Create or refresh a worker's registry entry."""
        self.registry.register(worker_id, info)

    def worker_heartbeat(self, worker_id: str, fields: dict[str, Any] | None = None) -> None:
        """Refresh a worker's ``last_heartbeat``."""
        self.registry.beat(worker_id, fields)

    def live_workers(self, exp_key: Any) -> list[dict[str, Any]]:
        """Live workers serving ``exp_key``."""
        return self.registry.live_workers(exp_key)

    # -- blobs -------------------------------------------------------------------------------
    def put_domain(self, key: str, payload: bytes, metadata: dict[str, Any]) -> None:
        """Store a domain blob under its content hash."""
        self.blobs.put_domain(key, payload, metadata)

    def get_domain(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """A domain blob and its metadata; ``KeyError`` if absent."""
        return self.blobs.get_domain(key)

    def set_experiment_domain(self, exp_key: Any, key: str, metadata: dict[str, Any]) -> None:
        """Record ``key`` as the current domain of ``exp_key``."""
        self.blobs.set_experiment_domain(exp_key, key, metadata)

    def experiment_domain(self, exp_key: Any) -> str | None:
        """The domain last published for ``exp_key``."""
        return self.blobs.experiment_domain(exp_key)

    def delete_experiment(self, exp_key: Any) -> dict[str, int]:
        """Delete ``exp_key`` entirely: trials, attachments, tid counter, experiment record,
        and the stored domains no other experiment uses. Returns counts of what went."""
        c = self.conn
        flt = {} if exp_key is ANY_EXP else {"exp_key": exp_key}
        domains: set[str] = set()
        for value in c.retry(lambda: c.jobs.distinct("misc.cmd", flt), "find domains"):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and len(item) == 64:
                    domains.add(item)
        exp_flt = {} if exp_key is ANY_EXP else {"_id": f"exp:{exp_key}"}
        for doc in c.retry(lambda: list(c.experiments.find(exp_flt, {"domain": 1})), "read"):
            if doc.get("domain"):
                domains.add(doc["domain"])
        n_trials = c.retry(lambda: c.jobs.delete_many(flt).deleted_count, "delete trials")
        if exp_key is ANY_EXP:
            n_files = sum(self.blobs.delete_experiment_files(k) for k in
                          c.retry(lambda: c.fs_files.distinct("metadata.exp_key"), "list"))
            c.retry(lambda: c.counters.delete_many({"_id": {"$regex": "^tid:"}}), "delete ids")
        else:
            n_files = self.blobs.delete_experiment_files(exp_key)
            c.retry(lambda: c.counters.delete_one({"_id": f"tid:{exp_key}"}), "delete ids")
        c.retry(lambda: c.experiments.delete_many(exp_flt), "delete the experiment record")
        removed = sum(1 for key in domains
                      if not self.blobs.domain_in_use(key) and self.blobs.delete_domain(key))
        return {"trials": n_trials, "attachments": n_files, "domains": removed}
