"""The worker registry (who is alive, how many serve an experiment) and lease expiry.

Workers upsert an entry in ``<collection>.workers`` and refresh ``last_heartbeat`` (server
time) a few times per registry period; an entry is live while ``last_heartbeat + lease_ms`` is
not past. Entries not refreshed for :data:`WORKER_TTL_S` are removed (a TTL index, and a sweep
at registration for servers without TTL indexes).

Lease expiry measures the worker, not the server: every scan first stamps a clock document in
``<collection>.counters``. When no scan happened for :data:`OUTAGE_GAP_S` (the server was down
or unreachable for everyone, or nobody was watching), the clock records that gap as an outage,
and every lease is extended by the part of each recent outage that fell within it: time the
store was away is not held against any worker. Workers and the driver scan on a timer, so
gaps that long are rare while anyone is connected, and a rare one only delays an expiry by
its own length.
"""
from __future__ import annotations

import datetime
import logging
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import OperationFailure

from .connection import Connection
from .queue import JOB_STATE_ERROR, JOB_STATE_NEW, JOB_STATE_RUNNING, exp_filter

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3
#: no lease scan for this long means the store was away: leases resume from the next scan
OUTAGE_GAP_S = 3.0
#: registry entries not refreshed for this long are deleted
WORKER_TTL_S = 7 * 86400
CLOCK_ID = "lease_clock"
#: outages remembered by the clock (older ones no longer overlap any live lease)
MAX_OUTAGES = 20

__all__ = ["WorkerRegistry", "DEFAULT_MAX_ATTEMPTS", "OUTAGE_GAP_S", "WORKER_TTL_S"]


class WorkerRegistry:
    """Registry and lease-expiry operations of one :class:`Connection`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.workers = conn.workers
        self._indexes_done = False

    def ensure_indexes(self) -> None:
        """The heartbeat index, with a TTL so that dead workers' entries go away."""
        if self._indexes_done:
            return
        try:
            self.conn.retry(lambda: self.workers.create_index(
                [("last_heartbeat", 1)], name="worker_ttl", expireAfterSeconds=WORKER_TTL_S),
                "create the registry index")
        except OperationFailure as exc:  # an older index on the same key: keep it
            log.debug("registry TTL index not created: %s", exc)
        self._indexes_done = True

    # -- entries -----------------------------------------------------------------------------
    def register(self, worker_id: str, info: dict[str, Any]) -> None:
        """Create or refresh this worker's entry; sweep entries past the TTL."""
        self.ensure_indexes()
        stale = {"$expr": {"$lt": [{"$add": ["$last_heartbeat", WORKER_TTL_S * 1000]},
                                   "$$NOW"]}}
        self.conn.retry(lambda: self.workers.delete_many(stale), "sweep the registry")
        self.conn.retry(lambda: self.workers.update_one(
            {"_id": worker_id},
            {"$set": info, "$currentDate": {"last_heartbeat": True, "started": True}},
            upsert=True), "register the worker")

    def beat(self, worker_id: str, fields: dict[str, Any] | None = None) -> None:
        """Refresh the worker's ``last_heartbeat`` (server time) and optional fields."""
        update: dict[str, Any] = {"$currentDate": {"last_heartbeat": True}}
        if fields:
            update["$set"] = fields
        self.workers.update_one({"_id": worker_id}, update)

    def stopped(self, worker_id: str) -> None:
        """Mark the worker stopped (best effort: the worker is exiting)."""
        self.workers.update_one({"_id": worker_id}, {"$set": {"state": "stopped",
                                                               "current": None}})

    def _live_filter(self, exp_key: Any) -> dict[str, Any]:
        alive = {"$gte": [{"$add": ["$last_heartbeat", {"$ifNull": ["$lease_ms", 0]}]}, "$$NOW"]}
        flt: dict[str, Any] = {"state": {"$in": ["idle", "running"]}, "$expr": alive}
        if exp_key is not None and not _is_any(exp_key):
            flt["serves"] = {"$in": [exp_key, "*"]}
        return flt

    def live_workers(self, exp_key: Any) -> list[dict[str, Any]]:
        """Live workers that serve ``exp_key``."""
        return list(self.workers.find(self._live_filter(exp_key)))

    def count_live(self, exp_key: Any) -> int:
        """How many live workers serve ``exp_key`` (one count request)."""
        return self.workers.count_documents(self._live_filter(exp_key))

    # -- lease expiry ------------------------------------------------------------------------
    def _tick_clock(self) -> list[dict[str, Any]]:
        """Stamp the scan clock; returns the recent outages ``[{start, end}]`` (server time)."""
        gap_ms = int(OUTAGE_GAP_S * 1000)
        outage = {"$lt": [{"$add": [{"$ifNull": ["$seen", "$$NOW"]}, gap_ms]}, "$$NOW"]}
        known = {"$ifNull": ["$outages", []]}
        doc = self.conn.counters.find_one_and_update(
            {"_id": CLOCK_ID},
            [{"$set": {"outages": {"$cond": [outage, {"$slice": [{"$concatArrays": [
                known, [{"start": "$seen", "end": "$$NOW"}]]}, -MAX_OUTAGES]}, known]},
                "seen": "$$NOW"}}],
            upsert=True, return_document=ReturnDocument.AFTER)
        return list((doc or {}).get("outages") or [])

    def expire_leases(self, exp_key: Any) -> tuple[int, int]:
        """Re-queue RUNNING trials whose lease expired by the server's clock.

        Trials that used their retry budget become ERROR with the reason. Returns ``(requeued,
        failed)``. The whole scan is retried as one unit through reconnects, so an outage
        between its steps is always seen by the clock.
        """
        return self.conn.retry(lambda: self._expire(exp_key), "re-queue expired trials")

    def _expire(self, exp_key: Any) -> tuple[int, int]:
        # a lease is extended by the part of each outage that fell within it
        extension: list[Any] = [
            {"$max": [0, {"$subtract": [o["end"], {"$max": [o["start"], "$refresh_time"]}]}]}
            for o in self._tick_clock() if o.get("start") is not None and o.get("end")]
        deadline = {"$add": ["$refresh_time", {"$ifNull": ["$lease_ms", 0]}, *extension]}
        expired = {"$lt": [deadline, "$$NOW"]}
        budget = {"$ifNull": ["$max_attempts", DEFAULT_MAX_ATTEMPTS]}
        base = exp_filter(exp_key, state=JOB_STATE_RUNNING)
        jobs = self.conn.jobs
        if jobs.find_one({**base, "$expr": expired}, {"_id": 1}) is None:
            return 0, 0  # the common case: one cheap read
        failed = jobs.update_many(
            {**base, "$expr": {"$and": [expired, {"$gte": ["$attempt", budget]}]}},
            {"$set": {"state": JOB_STATE_ERROR, "result.status": "fail",
                      "misc.error": ["LeaseExpired",
                                     "the worker running this trial stopped sending heartbeats "
                                     "(killed, crashed or disconnected) on every attempt; the "
                                     "retry budget (max_attempts) is used up"]},
             "$unset": {"lease_token": ""},
             "$currentDate": {"refresh_time": True, "changed": True}},
        ).modified_count
        requeued = jobs.update_many(
            {**base, "$expr": {"$and": [expired, {"$lt": ["$attempt", budget]}]}},
            {"$set": {"state": JOB_STATE_NEW, "worker": None}, "$unset": {"lease_token": ""},
             "$inc": {"requeues": 1}, "$currentDate": {"changed": True}},
        ).modified_count
        if requeued or failed:
            log.warning("lease expired: %d trial(s) re-queued, %d marked ERROR (retry budget "
                        "used up)", requeued, failed)
        return requeued, failed


def _is_any(exp_key: Any) -> bool:
    from .queue import ANY_EXP

    return exp_key is ANY_EXP
