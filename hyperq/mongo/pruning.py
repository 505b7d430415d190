"""Intermediate reports and pruning decisions for trials evaluated by ``hyperq-worker``.

The decision is made on the worker that runs the trial. Each ``trial.report(step, value)`` is
one fenced write (``$push`` onto the trial's ``intermediate`` list, matched on the trial's
``_id``, ``state: RUNNING`` and this attempt's ``lease_token``), and each
``trial.should_prune()`` after it at most one indexed read of what the other trials reported:

- the median/percentile pruners read the value at that step of the finished trials of the
  experiment (index ``exp_key, intermediate.step, state``; the positional projection returns one
  report per trial);
- ASHA/Hyperband read the values tagged with that rung by running and finished trials (index
  ``exp_key, intermediate.rung``), and only at a rung.

Fencing makes attempts never mix: every claim starts the trial with ``intermediate: []``, and a
worker that lost the lease cannot push (its report raises :class:`LeaseLost` in the objective,
so it stops instead of training on for nothing). The trial's own reports are kept by the worker
in memory, never read back, so another worker's reports are never taken for this trial's.
"""
from __future__ import annotations

from typing import Any, Callable

from hyperq.intermediate import PruningHistory

__all__ = ["MongoHistory", "ensure_report_indexes", "REPORT_INDEXES"]

JOB_STATE_RUNNING = 1
JOB_STATE_DONE = 2

#: (name, keys) of the indexes the pruners' reads use
REPORT_INDEXES = [
    ("reports_by_step", [("exp_key", 1), ("intermediate.step", 1), ("state", 1)]),
    ("reports_by_rung", [("exp_key", 1), ("intermediate.rung", 1)]),
]


def ensure_report_indexes(jobs: Any) -> None:
    """Create the indexes behind :class:`MongoHistory`'s reads (idempotent)."""
    for name, keys in REPORT_INDEXES:
        jobs.create_index(keys, name=name)


def _retry_direct(fn: Callable[[], Any], what: str) -> Any:
    return fn()


class MongoHistory(PruningHistory):
    """What the other trials of ``exp_key`` reported, read from the ``jobs`` collection."""

    def __init__(self, jobs: Any, exp_key: Any,
                 retry: Callable[[Callable[[], Any], str], Any] | None = None) -> None:
        self.jobs = jobs
        self.exp_key = exp_key
        self.retry = retry or _retry_direct
        self.n_reads = 0  # for tests and benchmarks: reads made by this worker's pruner

    def finished_values_at_step(self, step: int, exclude_tid: int) -> list[float]:
        flt = {"exp_key": self.exp_key, "intermediate.step": step, "state": JOB_STATE_DONE,
               "tid": {"$ne": exclude_tid}}
        self.n_reads += 1
        docs = self.retry(lambda: list(self.jobs.find(flt, {"_id": 0, "intermediate.$": 1})),
                          "read other trials' reports")
        return [float(d["intermediate"][0]["value"]) for d in docs if d.get("intermediate")]

    def values_at_rung(self, rung: str, exclude_tid: int) -> list[float]:
        flt = {"exp_key": self.exp_key, "intermediate.rung": rung,
               "state": {"$in": [JOB_STATE_RUNNING, JOB_STATE_DONE]}, "tid": {"$ne": exclude_tid}}
        proj = {"_id": 0, "intermediate": {"$elemMatch": {"rung": rung}}}
        self.n_reads += 1
        docs = self.retry(lambda: list(self.jobs.find(flt, proj)), "read other trials' reports")
        return [float(d["intermediate"][0]["value"]) for d in docs if d.get("intermediate")]


def push_report(jobs: Any, doc_id: Any, token: str, item: dict[str, Any],
                retry: Callable[[Callable[[], Any], str], Any] | None = None) -> bool:
    """Append ``item`` to the trial's ``intermediate`` while ``token`` holds its lease.

    Returns False (nothing written) when the lease is lost. Safe to retry through reconnects:
    a step already stored by an earlier try is not stored twice.
    """
    fence = {"_id": doc_id, "state": JOB_STATE_RUNNING, "lease_token": token}

    def do() -> bool:
        res = jobs.update_one({**fence, "intermediate.step": {"$ne": item["step"]}},
                              {"$push": {"intermediate": item},
                               "$currentDate": {"changed": True}})  # refresh() re-reads it
        if res.matched_count:
            return True
        return jobs.find_one({**fence, "intermediate.step": item["step"]}, {"_id": 1}) is not None

    return bool((retry or _retry_direct)(do, "store an intermediate report"))


# -- ask-and-tell on MongoDB ------------------------------------------------------------------
#: ask-and-tell trials are RUNNING under a lease that does not expire: no worker or driver
#: re-queues them; they stay pending until told (from any process) or cancelled by an operator
ASK_TELL_LEASE_MS = 10 * 365 * 24 * 3600 * 1000


def prepare_asked_doc(doc: dict[str, Any]) -> None:
    """Give a trial handed out by ask-and-tell its own lease, so its writes are fenced."""
    import uuid

    doc["lease_token"] = uuid.uuid4().hex
    doc["lease_ms"] = ASK_TELL_LEASE_MS
    doc["worker"] = doc.get("owner")
    doc["attempt"] = 1


def asked_handle(store: Any, doc: dict[str, Any], pruner: Any, fresh: bool) -> Any:
    """The handle of an ask-and-tell trial stored in MongoDB: fenced reports, pruner reads."""
    from hyperq.exceptions import InvalidArgument
    from hyperq.intermediate import TrialHandle

    def sink(item: dict[str, Any]) -> None:
        if not push_report(store.jobs, doc["_id"], doc["lease_token"], item, store.retry):
            raise InvalidArgument(
                f"report of trial {doc['tid']} not stored: the trial is no longer pending "
                "(it was told, or cancelled, by another process; its lease is gone)")

    handle = TrialHandle(doc["tid"], sink=sink,
                         history=MongoHistory(store.jobs, doc.get("exp_key"), store.retry),
                         pruner=pruner)
    if not fresh:
        handle.resume(doc.get("intermediate") or [])
    return handle
