"""Operator actions that change the job store: requeue, cancel, delete.

Requeueing expired leases and cancelling queued trials reuse the store's own operations
(:meth:`JobStore.requeue_expired`, :meth:`JobStore.cancel_new`), so the CLI follows exactly the
rules that drivers and workers follow.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hyperq.mongo.store import JOB_STATE_ERROR, JOB_STATE_NEW, JobStore

log = logging.getLogger(__name__)

__all__ = ["RequeueResult", "cancel_queued", "delete_experiment", "requeue", "requeue_errors"]


@dataclass
class RequeueResult:
    """What ``hyperq requeue`` did."""

    stale_requeued: int = 0
    stale_failed: int = 0
    errors_requeued: int = 0

    def as_dict(self) -> dict[str, int]:
        """JSON form."""
        return {"stale_requeued": self.stale_requeued, "stale_failed": self.stale_failed,
                "errors_requeued": self.errors_requeued}


def requeue_errors(store: JobStore, exp_key: Any, tids: Iterable[int] | None = None) -> int:
    """Return ERROR trials of ``exp_key`` (all, or only ``tids``) to NEW with a fresh budget.

    The previous error and traceback are kept in ``misc.previous_errors``. Each trial is moved
    with one conditional update, so a trial that changed meanwhile is left alone.
    """
    flt: dict[str, Any] = {"exp_key": exp_key, "state": JOB_STATE_ERROR}
    tids = list(tids or [])
    if tids:
        flt["tid"] = {"$in": tids}
    docs = store.retry(lambda: list(store.jobs.find(flt, {"_id": 1, "misc": 1})),
                       "find errored trials")
    moved = 0
    for doc in docs:
        misc = doc.get("misc") or {}
        previous = {"error": misc.get("error"), "traceback": misc.get("traceback")}
        res = store.retry(
            lambda doc=doc, previous=previous: store.jobs.update_one(
                {"_id": doc["_id"], "state": JOB_STATE_ERROR},
                {
                    "$set": {"state": JOB_STATE_NEW, "attempt": 0, "worker": None,
                             "result": {"status": "new"}},
                    "$unset": {"lease_token": "", "misc.error": "", "misc.traceback": ""},
                    "$push": {"misc.previous_errors": previous},
                    "$inc": {"requeues": 1},
                    "$currentDate": {"refresh_time": True, "changed": True},
                },
            ),
            "requeue an errored trial",
        )
        moved += res.modified_count
    if moved:
        log.info("requeued %d errored trial(s) of exp_key=%r", moved, exp_key)
    return moved


def requeue(store: JobStore, exp_key: Any, stale: bool = True, errors: bool = True,
            tids: Iterable[int] | None = None) -> RequeueResult:
    """Requeue trials whose worker died (expired lease) and/or trials that ended in ERROR."""
    result = RequeueResult()
    if errors:  # first, so that a stale trial out of retries is reported, not silently rerun
        result.errors_requeued = requeue_errors(store, exp_key, tids)
    if stale:
        result.stale_requeued, result.stale_failed = store.retry(
            lambda: store.requeue_expired(exp_key), "requeue expired trials")
    return result


def cancel_queued(store: JobStore, exp_key: Any) -> int:
    """Mark every NEW trial of ``exp_key`` CANCEL (running trials finish); returns how many."""
    return store.cancel_new(exp_key)


def delete_experiment(store: JobStore, exp_key: Any) -> dict[str, int]:
    """Delete ``exp_key`` entirely: trials, attachments, tid counter, its experiment record,
    its experiment-level attachments and the stored domains no other experiment uses.

    Returns counts of what was deleted.
    """
    counts = store.delete_experiment(exp_key)
    log.info("deleted exp_key=%r: %d trials, %d domains", exp_key, counts["trials"],
             counts["domains"])
    return {"trials": counts["trials"], "experiment_attachments": counts["attachments"],
            "domains": counts["domains"]}
