"""The MongoDB job store: every database operation of the driver, the workers and the CLI.

One collection of trial documents (hyperopt's schema plus lease fields), a ``workers``
collection where workers register and heartbeat, a ``counters`` collection for trial ids, and a
GridFS bucket for domains (content-addressed) and attachments.

Fields added to hyperopt's trial document:

- ``attempt``: how many times the trial has been claimed (a hand-back does not count);
- ``max_attempts``: the retry budget after which an expired lease marks the trial ERROR;
- ``lease_token``: a random token set by each claim; heartbeats and results must carry it, so a
  worker that lost its lease can neither extend it nor overwrite the re-run's result (fencing);
- ``lease_ms``: the lease length chosen by the claiming worker; the lease has expired when
  ``refresh_time + lease_ms`` is before the database server's ``$$NOW``;
- ``worker``: the id of the worker that holds the lease.

Every timestamp that decides a lease comes from the database server (``$currentDate`` and
``$$NOW``), never from a client's clock.
"""
from __future__ import annotations

import datetime
import logging
import os
import socket
import time
import uuid
from typing import Any, Callable, Iterable, TypeVar

import gridfs
import pymongo
from pymongo import ReturnDocument
from pymongo.errors import AutoReconnect, ConnectionFailure, DuplicateKeyError, OperationFailure

from .uri import MongoTarget, parse_mongo_uri

log = logging.getLogger(__name__)

JOB_STATE_NEW = 0
JOB_STATE_RUNNING = 1
JOB_STATE_DONE = 2
JOB_STATE_ERROR = 3
JOB_STATE_CANCEL = 4
FINISHED_STATES = (JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_CANCEL)

DEFAULT_MAX_ATTEMPTS = 3
DOMAIN_PREFIX = "domain:"

T = TypeVar("T")

__all__ = [
    "JobStore",
    "StoreUnavailable",
    "AuthenticationFailed",
    "connect_store",
    "new_worker_id",
    "DEFAULT_MAX_ATTEMPTS",
]


class StoreUnavailable(ConnectionError):
    """The MongoDB server could not be reached for longer than the reconnect timeout."""


class AuthenticationFailed(PermissionError):
    """The MongoDB server refused the credentials in the URI."""


def new_worker_id() -> str:
    """A unique id for this worker process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def connect_store(
    address: str | MongoTarget,
    *,
    reconnect_timeout: float = 300.0,
    server_selection_timeout_ms: int = 10_000,
    check: bool = True,
) -> "JobStore":
    """Open a :class:`JobStore` on ``address`` (any form :func:`parse_mongo_uri` accepts).

    With ``check`` the server is pinged at once, so that bad credentials or an unreachable host
    raise :class:`AuthenticationFailed` or :class:`StoreUnavailable` here with a clear message.
    """
    target = address if isinstance(address, MongoTarget) else parse_mongo_uri(address)
    client: pymongo.MongoClient = pymongo.MongoClient(
        target.uri,
        serverSelectionTimeoutMS=server_selection_timeout_ms,
        connect=False,
        appname="hyperq",
    )
    store = JobStore(client, target, reconnect_timeout=reconnect_timeout)
    if check:
        store.check_connection()
    return store


class JobStore:
    """Job-queue operations on one MongoDB collection. Thread-safe (pymongo clients are)."""

    def __init__(
        self,
        client: pymongo.MongoClient,
        target: MongoTarget,
        *,
        reconnect_timeout: float = 300.0,
    ) -> None:
        self.client = client
        self.target = target
        self.db = client[target.database]
        self.jobs = self.db[target.collection]
        self.workers = self.db[f"{target.collection}.workers"]
        self.counters = self.db[f"{target.collection}.counters"]
        self.experiments = self.db[f"{target.collection}.experiments"]
        self.fs = gridfs.GridFS(self.db, collection=f"{target.collection}.fs")
        self.reconnect_timeout = reconnect_timeout
        self._indexes_done = False
        self._tid_checked: set[Any] = set()

    # -- connection ---------------------------------------------------------------------------
    def check_connection(self) -> None:
        """Ping the server (and authenticate); raise a clear error if that fails."""
        try:
            self.db.command("ping")
        except OperationFailure as exc:
            if exc.code in (18, 13) or "auth" in str(exc).lower():
                raise AuthenticationFailed(
                    f"MongoDB at {self.target.display} refused the credentials: {exc}. Check the "
                    "user, password and authSource in the URI "
                    "(mongodb://USER:PASSWORD@host:port/db?authSource=admin)."
                ) from None
            raise
        except ConnectionFailure as exc:
            raise StoreUnavailable(
                f"cannot reach MongoDB at {self.target.display}: {exc}. Is the server running "
                "and the address right?"
            ) from None

    def retry(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn``, retrying through connection failures for up to ``reconnect_timeout``.

        Only for operations that are safe to repeat. Raises :class:`StoreUnavailable` after the
        timeout.
        """
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.05
        warned = False
        while True:
            try:
                result = fn()
                if warned:
                    log.warning("reconnected to MongoDB at %s", self.target.display)
                return result
            except AutoReconnect as exc:
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"lost MongoDB at {self.target.display} for more than "
                        f"{self.reconnect_timeout:.0f} s while trying to {what}: {exc}"
                    ) from None
                if not warned:
                    log.warning("MongoDB unreachable while trying to %s (%s); retrying", what, exc)
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def ensure_indexes(self) -> None:
        """Create the indexes that serve claims, lookups and lease scans (idempotent)."""
        if self._indexes_done:
            return

        def make() -> None:
            self.jobs.create_index(
                [("exp_key", 1), ("state", 1), ("tid", 1)], name="claim_by_exp"
            )
            self.jobs.create_index([("state", 1), ("tid", 1)], name="claim_any")
            self.jobs.create_index([("exp_key", 1), ("tid", 1)], name="exp_tid", unique=True)
            self.workers.create_index([("last_heartbeat", 1)], name="worker_heartbeat")

        self.retry(make, "create indexes")
        self._indexes_done = True

    def server_time(self) -> datetime.datetime:
        """The database server's current time (naive UTC), from ``hello``'s ``localTime``."""
        reply = self.retry(lambda: self.client.admin.command("hello"), "read the server time")
        now = reply.get("localTime")
        if now is None:  # very old servers: fall back to the local clock
            return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        return now.replace(tzinfo=None)

    def max_document_size(self) -> int:
        """The server's maximum BSON document size in bytes."""
        reply = self.retry(lambda: self.client.admin.command("hello"), "read the server limits")
        return int(reply.get("maxBsonObjectSize", 16 * 1024 * 1024))

    # -- trial ids and inserts --------------------------------------------------------------
    def new_tids(self, exp_key: str | None, n: int) -> list[int]:
        """Reserve ``n`` consecutive trial ids for ``exp_key`` (atomic, survives restarts)."""
        if n <= 0:
            return []
        key = f"tid:{exp_key}"
        doc = self.counters.find_one_and_update(
            {"_id": key},
            {"$inc": {"n": n}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        end = int(doc["n"])
        if exp_key not in self._tid_checked:  # once per process: a lost counter restarts at 0
            self._tid_checked.add(exp_key)
            floor = self._max_tid(exp_key) + 1
            if end - n < floor:  # counter behind existing trials: jump past them
                self.counters.update_one({"_id": key}, {"$max": {"n": floor}})
                doc = self.counters.find_one_and_update(
                    {"_id": key}, {"$inc": {"n": n}}, return_document=ReturnDocument.AFTER
                )
                end = int(doc["n"])
        return list(range(end - n, end))

    def _max_tid(self, exp_key: str | None) -> int:
        doc = self.jobs.find_one({"exp_key": exp_key}, {"tid": 1}, sort=[("tid", -1)])
        return int(doc["tid"]) if doc else -1

    def insert(self, docs: Iterable[dict[str, Any]]) -> list[Any]:
        """Insert trial documents; retried through reconnects without duplicating any."""
        docs = list(docs)
        if not docs:
            return []
        for doc in docs:
            doc.setdefault("_id", uuid.uuid4().hex)

        def do() -> None:
            try:
                self.jobs.insert_many(docs, ordered=False)
            except pymongo.errors.BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                # duplicates: a previous attempt already inserted them
                dup_ids = {d["_id"] for d in docs}
                present = {d["_id"] for d in self.jobs.find({"_id": {"$in": list(dup_ids)}}, {"_id": 1})}
                if present != dup_ids:
                    raise

        self.retry(do, "insert trials")
        return [d["_id"] for d in docs]

    # -- claim, heartbeat, finish ------------------------------------------------------------
    def _exp_filter(self, exp_key: str | None | Any, state: int) -> dict[str, Any]:
        flt: dict[str, Any] = {"state": state}
        if exp_key is not ANY_EXP:
            flt = {"exp_key": exp_key, "state": state}
        return flt

    def has_new(self, exp_key: Any) -> bool:
        """Is there a NEW trial to claim? A cheap indexed read used by idle workers."""
        return self.jobs.find_one(self._exp_filter(exp_key, JOB_STATE_NEW), {"_id": 1}) is not None

    def claim(
        self, worker_id: str, exp_key: Any, lease_s: float, owner: Any = None
    ) -> dict[str, Any] | None:
        """Atomically move the lowest-tid NEW trial to RUNNING under a fresh lease.

        Returns the claimed document (with its ``lease_token``) or ``None``. ``exp_key`` may be
        :data:`ANY_EXP` to serve every experiment in the collection.
        """
        token = uuid.uuid4().hex
        return self.jobs.find_one_and_update(
            self._exp_filter(exp_key, JOB_STATE_NEW),
            {
                "$set": {
                    "state": JOB_STATE_RUNNING,
                    "owner": owner if owner is not None else worker_id,
                    "worker": worker_id,
                    "lease_token": token,
                    "lease_ms": int(lease_s * 1000),
                },
                "$inc": {"attempt": 1},
                "$currentDate": {"book_time": True, "refresh_time": True},
            },
            sort=[("tid", 1)],
            return_document=ReturnDocument.AFTER,
        )

    def heartbeat(self, doc_id: Any, token: str) -> bool:
        """Extend the lease; ``False`` means the lease was lost (the trial was re-queued)."""
        res = self.jobs.update_one(
            {"_id": doc_id, "state": JOB_STATE_RUNNING, "lease_token": token},
            {"$currentDate": {"refresh_time": True}},
        )
        return res.matched_count == 1

    def finish(
        self,
        doc_id: Any,
        token: str,
        state: int,
        result: dict[str, Any],
        misc_updates: dict[str, Any] | None = None,
    ) -> bool:
        """Write the trial's outcome if this worker still holds the lease (fencing).

        Retried through reconnects (the filter makes it idempotent). Returns ``False`` when the
        lease was lost, in which case nothing is written.
        """
        update: dict[str, Any] = {"state": state, "result": result}
        for key, value in (misc_updates or {}).items():
            update[f"misc.{key}"] = value

        def do() -> bool:
            res = self.jobs.update_one(
                {"_id": doc_id, "state": JOB_STATE_RUNNING, "lease_token": token},
                {"$set": update, "$currentDate": {"refresh_time": True}},
            )
            if res.matched_count == 1:
                return True
            # a retried write may already have been applied: check
            doc = self.jobs.find_one({"_id": doc_id}, {"state": 1, "lease_token": 1})
            return bool(doc and doc.get("lease_token") == token and doc.get("state") == state)

        return self.retry(do, "write a trial result")

    def hand_back(self, doc_id: Any, token: str) -> bool:
        """Return a RUNNING trial to NEW without using up its retry budget."""

        def do() -> bool:
            res = self.jobs.update_one(
                {"_id": doc_id, "state": JOB_STATE_RUNNING, "lease_token": token},
                {
                    "$set": {"state": JOB_STATE_NEW, "worker": None},
                    "$unset": {"lease_token": ""},
                    "$inc": {"attempt": -1},
                },
            )
            return res.matched_count == 1

        return self.retry(do, "hand a trial back")

    def requeue_expired(self, exp_key: Any = None) -> tuple[int, int]:
        """Re-queue RUNNING trials whose lease expired by the server's clock.

        Trials that already used their retry budget become ERROR with the reason. Returns
        ``(requeued, failed)``. Anyone may call this: driver, workers, operators.
        """
        expired = {"$lt": [{"$add": ["$refresh_time", {"$ifNull": ["$lease_ms", 0]}]}, "$$NOW"]}
        budget = {"$ifNull": ["$max_attempts", DEFAULT_MAX_ATTEMPTS]}
        base = self._exp_filter(exp_key, JOB_STATE_RUNNING)
        if self.jobs.find_one({**base, "$expr": expired}, {"_id": 1}) is None:
            return 0, 0  # the common case: one cheap read
        failed = self.jobs.update_many(
            {**base, "$expr": {"$and": [expired, {"$gte": ["$attempt", budget]}]}},
            {
                "$set": {
                    "state": JOB_STATE_ERROR,
                    "result.status": "fail",
                    "misc.error": [
                        "LeaseExpired",
                        "the worker running this trial stopped sending heartbeats (killed, "
                        "crashed or disconnected) on every attempt; the retry budget "
                        "(max_attempts) is used up",
                    ],
                },
                "$unset": {"lease_token": ""},
                "$currentDate": {"refresh_time": True},
            },
        ).modified_count
        requeued = self.jobs.update_many(
            {**base, "$expr": {"$and": [expired, {"$lt": ["$attempt", budget]}]}},
            {
                "$set": {"state": JOB_STATE_NEW, "worker": None},
                "$unset": {"lease_token": ""},
                "$inc": {"requeues": 1},
            },
        ).modified_count
        if requeued or failed:
            log.warning(
                "lease expired: %d trial(s) re-queued, %d marked ERROR (retry budget used up)",
                requeued,
                failed,
            )
        return requeued, failed

    def cancel_new(self, exp_key: Any) -> int:
        """Mark every NEW trial of ``exp_key`` CANCEL; returns how many."""
        return self.retry(
            lambda: self.jobs.update_many(
                self._exp_filter(exp_key, JOB_STATE_NEW),
                {"$set": {"state": JOB_STATE_CANCEL}, "$currentDate": {"refresh_time": True}},
            ).modified_count,
            "cancel queued trials",
        )

    def any_finished(self, ids: list[Any]) -> bool:
        """Has any of the trials ``ids`` reached DONE, ERROR or CANCEL? (reads by ``_id``)"""
        if not ids:
            return False
        flt = {"_id": {"$in": ids}, "state": {"$in": list(FINISHED_STATES)}}
        return self.jobs.find_one(flt, {"_id": 1}) is not None

    def count_finished(self, exp_key: Any) -> int:
        """How many trials of ``exp_key`` are DONE, ERROR or CANCEL."""
        flt: dict[str, Any] = {"state": {"$in": list(FINISHED_STATES)}}
        if exp_key is not ANY_EXP:
            flt["exp_key"] = exp_key
        return self.jobs.count_documents(flt)

    # -- worker registry ---------------------------------------------------------------------
    def register_worker(self, worker_id: str, info: dict[str, Any]) -> None:
        """Create or refresh this worker's entry in the ``workers`` collection."""
        self.retry(
            lambda: self.workers.update_one(
                {"_id": worker_id},
                {
                    "$set": info,
                    "$currentDate": {"last_heartbeat": True},
                    "$setOnInsert": {"started": datetime.datetime.now(datetime.timezone.utc)},
                },
                upsert=True,
            ),
            "register the worker",
        )

    def worker_heartbeat(self, worker_id: str, fields: dict[str, Any] | None = None) -> None:
        """Refresh the worker's ``last_heartbeat`` (server time) and optional fields."""
        update: dict[str, Any] = {"$currentDate": {"last_heartbeat": True}}
        if fields:
            update["$set"] = fields
        self.workers.update_one({"_id": worker_id}, update)

    def live_workers(self, exp_key: Any) -> list[dict[str, Any]]:
        """Workers whose heartbeat is within their lease and that serve ``exp_key``."""
        alive = {"$gte": [{"$add": ["$last_heartbeat", {"$ifNull": ["$lease_ms", 0]}]}, "$$NOW"]}
        flt: dict[str, Any] = {"state": {"$in": ["idle", "running"]}, "$expr": alive}
        if exp_key is not ANY_EXP:
            flt["serves"] = {"$in": [exp_key, "*"]}
        return list(self.workers.find(flt))

    # -- GridFS: domains and attachments -------------------------------------------------
    def put_domain(self, key: str, payload: bytes, metadata: dict[str, Any]) -> None:
        """Store a domain blob under its content hash ``key`` (no-op if already stored)."""
        file_id = DOMAIN_PREFIX + key

        def do() -> None:
            if self.fs.exists(file_id):
                return
            try:
                self.fs.put(payload, _id=file_id, filename=file_id, metadata=metadata)
            except gridfs.errors.FileExists:
                pass

        self.retry(do, "store the domain")

    def set_experiment_domain(self, exp_key: Any, key: str, metadata: dict[str, Any]) -> None:
        """Record ``key`` as the current domain of ``exp_key`` (for trials queued without one)."""
        self.retry(
            lambda: self.experiments.update_one(
                {"_id": f"exp:{exp_key}"},
                {"$set": {"exp_key": exp_key, "domain": key, **metadata},
                 "$currentDate": {"updated": True}},
                upsert=True,
            ),
            "record the experiment's domain",
        )

    def experiment_domain(self, exp_key: Any) -> str | None:
        """The domain key last published for ``exp_key``, or ``None``."""
        doc = self.retry(
            lambda: self.experiments.find_one({"_id": f"exp:{exp_key}"}), "read the experiment"
        )
        return doc.get("domain") if doc else None

    def get_domain(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """Read a domain blob and its metadata; ``KeyError`` if absent."""

        def do() -> tuple[bytes, dict[str, Any]]:
            try:
                grid_out = self.fs.get(DOMAIN_PREFIX + key)
            except gridfs.errors.NoFile:
                raise KeyError(key) from None
            return grid_out.read(), dict(grid_out.metadata or {})

        return self.retry(do, "read the domain")

    @staticmethod
    def attachment_name(exp_key: Any, tid: Any, name: str) -> str:
        """The GridFS filename of attachment ``name`` of trial ``tid``."""
        return f"att/{exp_key}/{tid}/{name}"

    def put_attachment(self, filename: str, data: bytes) -> None:
        """Store (or replace) an attachment under ``filename``."""
        old = [f._id for f in self.fs.find({"filename": filename})]
        self.fs.put(data, filename=filename)
        for file_id in old:
            self.fs.delete(file_id)

    def get_attachment(self, filename: str) -> bytes:
        """Read the newest version of attachment ``filename``; ``KeyError`` if absent."""
        try:
            return self.fs.get_last_version(filename).read()
        except gridfs.errors.NoFile:
            raise KeyError(filename) from None

    def delete_attachment(self, filename: str) -> None:
        """Delete every version of attachment ``filename``; ``KeyError`` if absent."""
        ids = [f._id for f in self.fs.find({"filename": filename})]
        if not ids:
            raise KeyError(filename)
        for file_id in ids:
            self.fs.delete(file_id)

    def attachment_names(self, prefix: str) -> list[str]:
        """Filenames of the attachments whose name starts with ``prefix``."""
        names = {f.filename for f in self.fs.find({"filename": {"$regex": "^" + _re_escape(prefix)}})}
        return sorted(names)

    def delete_experiment(self, exp_key: Any) -> None:
        """Delete every trial, attachment and tid counter of ``exp_key``."""
        flt = {} if exp_key is ANY_EXP else {"exp_key": exp_key}
        self.retry(lambda: self.jobs.delete_many(flt), "delete trials")
        prefix = "att/" if exp_key is ANY_EXP else f"att/{exp_key}/"
        for name in self.attachment_names(prefix):
            try:
                self.delete_attachment(name)
            except KeyError:
                pass
        if exp_key is ANY_EXP:
            self.counters.delete_many({})
        else:
            self.counters.delete_one({"_id": f"tid:{exp_key}"})


class _AnyExp:
    """Sentinel: serve or scan every experiment in the collection."""

    def __repr__(self) -> str:
        return "ANY_EXP"


ANY_EXP: Any = _AnyExp()


def _re_escape(text: str) -> str:
    import re

    return re.escape(text)


def is_connection_error(exc: BaseException) -> bool:
    """Is ``exc`` a (retryable) loss of connection to the server?"""
    return isinstance(exc, (AutoReconnect, ConnectionFailure, StoreUnavailable))


__all__ += ["ANY_EXP", "is_connection_error", "DuplicateKeyError"]
