"""The queue: trial ids, inserts, claims, cancellation, and reading what changed.

Every write that changes a trial's state stamps ``changed`` with the server's clock, so a
driver learns everything that happened since its last look with one indexed read
(:meth:`TrialQueue.changed_since`), whoever made the change (another driver, an operator, a
worker injecting results). Wake-ups (change streams, or paced polling where the server has
none) live in :mod:`hyperq.mongo.wakeups`.
"""
from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any, Iterable

import bson
import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from .connection import Connection, is_transient
from .pruning import ensure_report_indexes

log = logging.getLogger(__name__)

JOB_STATE_NEW = 0
JOB_STATE_RUNNING = 1
JOB_STATE_DONE = 2
JOB_STATE_ERROR = 3
JOB_STATE_CANCEL = 4
FINISHED_STATES = (JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_CANCEL)
#: how far back :meth:`TrialQueue.changed_since` looks before the newest change it saw, so
#: that a write stamped earlier but committed later than another is never missed
CHANGE_SLACK = datetime.timedelta(seconds=2)

__all__ = ["TrialQueue", "ANY_EXP", "exp_filter", "trial_id", "JOB_STATE_NEW", "JOB_STATE_RUNNING",
           "JOB_STATE_DONE", "JOB_STATE_ERROR", "JOB_STATE_CANCEL", "FINISHED_STATES",
           "CHANGE_SLACK"]


class _AnyExp:
    """Sentinel: serve or scan every experiment in the collection."""

    def __repr__(self) -> str:
        return "ANY_EXP"


ANY_EXP: Any = _AnyExp()


def exp_filter(exp_key: Any, **more: Any) -> dict[str, Any]:
    """A filter on ``exp_key`` (none for :data:`ANY_EXP`) plus ``more``."""
    return dict(more) if exp_key is ANY_EXP else {"exp_key": exp_key, **more}


def trial_id(exp_key: str | None, tid: int) -> str:
    """The ``_id`` of trial ``tid`` of ``exp_key``: ``"<tid>:<exp_key>"``, or ``"<tid>"`` when
    ``exp_key`` is None. One-to-one, so the mandatory unique ``_id`` index keeps two trials of
    an experiment from sharing a tid."""
    return str(int(tid)) if exp_key is None else f"{int(tid)}:{exp_key}"


class TrialQueue:
    """Queue operations on the jobs collection of one :class:`Connection`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.jobs = conn.jobs
        self._indexes_done = False
        self._tid_floor_checked: set[Any] = set()

    def ensure_indexes(self) -> None:
        """Create the indexes behind claims, lookups, change reads and lease scans."""
        if self._indexes_done:
            return

        def make() -> None:
            self.jobs.create_index([("exp_key", 1), ("state", 1), ("tid", 1)],
                                   name="claim_by_exp")
            self.jobs.create_index([("state", 1), ("tid", 1)], name="claim_any")
            self._create_lookup_index()
            self.jobs.create_index([("exp_key", 1), ("changed", 1)], name="exp_changed")
            ensure_report_indexes(self.jobs)  # the pruners' reads (issue 14)

        self.conn.retry(make, "create indexes")
        self._indexes_done = True

    def _create_lookup_index(self) -> None:
        """The (exp_key, tid) lookup index. Not unique: :func:`trial_id` makes ``_id`` carry
        that uniqueness, so no second unique index is checked on every write. A store made by an
        older hyperq keeps its unique ``exp_tid`` (equivalent, only costlier on test servers)."""
        try:
            self.jobs.create_index([("exp_key", 1), ("tid", 1)], name="exp_tid")
        except OperationFailure as exc:
            if exc.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict
                raise
            log.info("keeping the existing index exp_tid (%s)", exc)

    # -- trial ids ---------------------------------------------------------------------------
    def reserve_tids(self, exp_key: Any, n: int) -> list[int]:
        """Reserve ``n`` consecutive trial ids for ``exp_key`` (atomic, survives restarts).

        Retried through reconnects without reserving twice: each reservation carries a request
        id, and a retry that finds its own request applied reads the result instead.
        """
        if n <= 0:
            return []
        counters, key = self.conn.counters, f"tid:{exp_key}"
        if exp_key not in self._tid_floor_checked:  # a lost counter must not reuse tids
            floor = self._max_tid(exp_key) + 1
            if floor > 0:
                self.conn.retry(lambda: counters.update_one(
                    {"_id": key}, {"$max": {"n": floor}}, upsert=True), "check the tid counter")
            self._tid_floor_checked.add(exp_key)
        req = uuid.uuid4().hex

        def do() -> int:
            try:
                doc = counters.find_one_and_update(
                    {"_id": key, "req": {"$ne": req}}, {"$inc": {"n": n}, "$set": {"req": req}},
                    upsert=True, return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:  # our request was applied before a reconnect
                doc = counters.find_one({"_id": key})
                if not doc or doc.get("req") != req:
                    raise
            return int(doc["n"])

        end = self.conn.retry(do, "reserve trial ids")
        return list(range(end - n, end))

    def _max_tid(self, exp_key: Any) -> int:
        doc = self.conn.retry(lambda: self.jobs.find_one(
            {"exp_key": exp_key}, {"tid": 1}, sort=[("tid", -1)]), "read the highest tid")
        return int(doc["tid"]) if doc else -1

    # -- inserting ---------------------------------------------------------------------------
    def insert(self, docs: Iterable[dict[str, Any]]) -> list[Any]:
        """Insert trial documents in one request; retried without duplicating any.

        A document without ``_id`` gets :func:`trial_id`. A tid that another trial of the
        experiment already has is refused with :class:`DuplicateKeyError`; a retry after a
        reconnect accepts the documents its earlier attempt inserted. Documents inserted in a
        finished state (injected results) are stamped ``changed`` so that every driver's next
        read sees them.
        """
        docs = list(docs)
        if not docs:
            return []
        for doc in docs:
            if "_id" not in doc:
                doc["_id"] = trial_id(doc.get("exp_key"), doc["tid"])
        attempts = 0

        def do() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self.jobs.insert_many(docs, ordered=False)
            except pymongo.errors.BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                taken = [docs[e["index"]] for e in errors]
                if attempts == 1 or not self._inserted_before(taken):
                    raise DuplicateKeyError(
                        f"trial ids already taken in {self.jobs.full_name}: "
                        f"{sorted(str(d['_id']) for d in taken)[:5]} (tids come from "
                        "new_trial_ids(); do not reuse them)", 11000) from exc

        self.conn.retry(do, "insert trials")
        finished = [d["_id"] for d in docs if d.get("state") != JOB_STATE_NEW]
        if finished:
            self.conn.retry(lambda: self.jobs.update_many(
                {"_id": {"$in": finished}}, {"$currentDate": {"changed": True}}),
                "stamp injected trials")
        return [d["_id"] for d in docs]

    def _inserted_before(self, docs: list[dict[str, Any]]) -> bool:
        """Are the stored trials with these ``_id`` the ones in ``docs`` (same tid and values)?"""
        def key(doc: dict[str, Any]) -> bytes:  # as stored: tuples become lists, and so on
            return bson.encode({"tid": doc.get("tid"), "vals": (doc.get("misc") or {}).get("vals")})

        mine = {d["_id"]: key(d) for d in docs}
        stored = {d["_id"]: key(d) for d in
                  self.jobs.find({"_id": {"$in": list(mine)}}, {"tid": 1, "misc.vals": 1})}
        return stored == mine

    # -- claiming ----------------------------------------------------------------------------
    def claim(self, worker_id: str, exp_key: Any, lease_s: float,
              owner: Any = None) -> dict[str, Any] | None:
        """Atomically move a NEW trial to RUNNING under a fresh lease token.

        Returns the claimed document or ``None``. If the connection drops after the server
        applied the claim, the retry finds the trial by its token instead of orphaning it.
        The claim asks for no order: MongoDB answers it from the ``claim_by_exp`` index, whose
        first entry is the lowest queued tid, and a sort would only make test servers (which
        sort in Python) pay for every document of the experiment. Nothing depends on order.
        """
        token = uuid.uuid4().hex
        update = {
            "$set": {"state": JOB_STATE_RUNNING, "worker": worker_id,
                     "owner": owner if owner is not None else worker_id,
                     "lease_token": token, "lease_ms": int(lease_s * 1000),
                     "intermediate": []},  # each attempt reports from scratch (issue 14)
            "$inc": {"attempt": 1},
            "$currentDate": {"book_time": True, "refresh_time": True, "changed": True},
        }
        flt = exp_filter(exp_key, state=JOB_STATE_NEW)
        tries = 0
        while True:
            try:
                return self.jobs.find_one_and_update(flt, update,
                                                     return_document=ReturnDocument.AFTER)
            except PyMongoError as exc:
                if not is_transient(exc):
                    raise
                tries += 1
                held = self.conn.retry(lambda: self.jobs.find_one({"lease_token": token}),
                                       "recover a claim")
                if held is not None:
                    return held
                if tries >= 3:
                    raise

    def has_new(self, exp_key: Any) -> bool:
        """Is a NEW trial waiting? (one indexed read)"""
        return self.jobs.find_one(exp_filter(exp_key, state=JOB_STATE_NEW), {"_id": 1}) is not None

    def cancel_new(self, exp_key: Any, ids: list[Any] | None = None) -> int:
        """Mark NEW trials CANCEL: those in ``ids`` if given, else every one of ``exp_key``."""
        flt = exp_filter(exp_key, state=JOB_STATE_NEW)
        if ids is not None:
            if not ids:
                return 0
            flt["_id"] = {"$in": list(ids)}
        return self.conn.retry(lambda: self.jobs.update_many(
            flt, {"$set": {"state": JOB_STATE_CANCEL},
                  "$currentDate": {"refresh_time": True, "changed": True}}).modified_count,
            "cancel queued trials")

    # -- reading -----------------------------------------------------------------------------
    def changed_since(self, exp_key: Any, since: datetime.datetime | None
                      ) -> list[dict[str, Any]]:
        """Every trial of ``exp_key`` changed at or after ``since - CHANGE_SLACK`` (all if None)."""
        flt = exp_filter(exp_key)
        if since is not None:
            flt["changed"] = {"$gte": since - CHANGE_SLACK}
        return self.conn.retry(lambda: list(self.jobs.find(flt)), "read trials")

    def count_finished(self, exp_key: Any) -> int:
        """How many trials of ``exp_key`` are DONE, ERROR or CANCEL."""
        return self.conn.retry(lambda: self.jobs.count_documents(
            exp_filter(exp_key, state={"$in": list(FINISHED_STATES)})), "count trials")
