"""Read-only questions operators ask about a job store: experiments, trials, workers.

Every age and rate is measured against the database server's clock (as leases are), so a
machine with a wrong clock still gets right answers.
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hyperq.mongo.store import (
    ANY_EXP,
    JOB_STATE_CANCEL,
    JOB_STATE_DONE,
    JOB_STATE_ERROR,
    JOB_STATE_NEW,
    JOB_STATE_RUNNING,
    JobStore,
)

from .errors import NotFound

log = logging.getLogger(__name__)

STATE_NAMES: dict[int, str] = {
    JOB_STATE_NEW: "new",
    JOB_STATE_RUNNING: "running",
    JOB_STATE_DONE: "done",
    JOB_STATE_ERROR: "error",
    JOB_STATE_CANCEL: "cancel",
}
STATE_CODES: dict[str, int] = {name: code for code, name in STATE_NAMES.items()}
NONE_KEY = "(none)"
"""How an experiment queued with ``exp_key=None`` is shown and named on the command line."""

__all__ = [
    "NONE_KEY",
    "STATE_CODES",
    "STATE_NAMES",
    "ExperimentSummary",
    "WorkerInfo",
    "best_trial",
    "exp_label",
    "experiment_keys",
    "find_trials",
    "get_trial",
    "list_workers",
    "resolve_exp_key",
    "summarize",
]


def exp_label(exp_key: Any) -> str:
    """The text that shows ``exp_key`` (``(none)`` for ``None``)."""
    return NONE_KEY if exp_key is None else str(exp_key)


def state_name(state: Any) -> str:
    """``'done'`` for 2, etc.; unknown values are shown as they are."""
    return STATE_NAMES.get(state, str(state))


def experiment_keys(store: JobStore) -> list[Any]:
    """Every exp_key with at least one trial, sorted (``None`` first)."""
    keys = store.retry(lambda: store.jobs.distinct("exp_key"), "list experiments")
    return sorted(keys, key=lambda k: (k is not None, str(k)))


def resolve_exp_key(store: JobStore, name: str) -> Any:
    """The exp_key an operator means by ``name``; :class:`NotFound` names the known ones."""
    keys = experiment_keys(store)
    if name in keys:
        return name
    if name == NONE_KEY and None in keys:
        return None
    for key in keys:  # exp_keys need not be strings
        if key is not None and str(key) == name:
            return key
    known = ", ".join(exp_label(k) for k in keys[:20]) or "none"
    more = f" (and {len(keys) - 20} more)" if len(keys) > 20 else ""
    raise NotFound(
        f"no experiment with exp_key {name!r} in {store.target.display}. Known experiments: "
        f"{known}{more}. Run `hyperq status` to list them."
    )


@dataclass
class ExperimentSummary:
    """One experiment at a glance (one row of ``hyperq status``)."""

    exp_key: Any
    counts: dict[str, int] = field(default_factory=dict)
    best_loss: float | None = None
    best_tid: int | None = None
    trials_per_minute: float = 0.0
    live_workers: int = 0
    stale: int = 0
    last_activity: datetime.datetime | None = None

    @property
    def total(self) -> int:
        """All trials of the experiment, whatever their state."""
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` form of a status row)."""
        return {
            "exp_key": self.exp_key,
            "total": self.total,
            "counts": dict(self.counts),
            "stale": self.stale,
            "best_loss": self.best_loss,
            "best_tid": self.best_tid,
            "trials_per_minute": round(self.trials_per_minute, 3),
            "live_workers": self.live_workers,
            "last_activity": self.last_activity,
        }


def _counts_by_experiment(store: JobStore, exp_key: Any) -> dict[Any, dict[str, int]]:
    pipeline: list[dict[str, Any]] = []
    if exp_key is not ANY_EXP:
        pipeline.append({"$match": {"exp_key": exp_key}})
    pipeline.append({"$group": {"_id": {"exp_key": "$exp_key", "state": "$state"},
                                "n": {"$sum": 1}}})
    rows = store.retry(lambda: list(store.jobs.aggregate(pipeline)), "count trials")
    out: dict[Any, dict[str, int]] = {}
    for row in rows:
        counts = out.setdefault(row["_id"].get("exp_key"), {n: 0 for n in STATE_CODES})
        name = state_name(row["_id"].get("state"))
        counts[name] = counts.get(name, 0) + int(row["n"])
    return out


_LEASE_EXPIRED = {"$lt": [{"$add": ["$refresh_time", {"$ifNull": ["$lease_ms", 0]}]}, "$$NOW"]}


def count_stale(store: JobStore, exp_key: Any) -> int:
    """RUNNING trials whose lease expired (their worker died); the next requeue frees them."""
    return store.retry(
        lambda: store.jobs.count_documents(
            {"exp_key": exp_key, "state": JOB_STATE_RUNNING, "$expr": _LEASE_EXPIRED}
        ),
        "count stale trials",
    )


def best_trial(store: JobStore, exp_key: Any) -> dict[str, Any] | None:
    """The DONE trial with status ok and the lowest numeric loss, or ``None``."""
    return store.retry(
        lambda: store.jobs.find_one(
            {"exp_key": exp_key, "state": JOB_STATE_DONE, "result.status": "ok",
             "result.loss": {"$type": "number"}},
            sort=[("result.loss", 1), ("tid", 1)],
        ),
        "find the best trial",
    )


def _rate(store: JobStore, exp_key: Any, now: datetime.datetime, window_s: float) -> float:
    """Trials finished (DONE or ERROR) per minute over the last ``window_s`` seconds.

    The window is cut to the experiment's age so that a young experiment is not under-reported.
    """
    since = now - datetime.timedelta(seconds=window_s)
    finished = store.retry(
        lambda: store.jobs.count_documents(
            {"exp_key": exp_key, "state": {"$in": [JOB_STATE_DONE, JOB_STATE_ERROR]},
             "refresh_time": {"$gte": since}}
        ),
        "count recent trials",
    )
    if not finished:
        return 0.0
    first = store.retry(
        lambda: store.jobs.find_one(
            {"exp_key": exp_key, "book_time": {"$type": "date"}}, {"book_time": 1},
            sort=[("book_time", 1)],
        ),
        "find the first trial",
    )
    span = window_s
    if first and first.get("book_time"):
        span = min(window_s, (now - first["book_time"].replace(tzinfo=None)).total_seconds())
    return finished * 60.0 / max(span, 1.0)


def _last_activity(store: JobStore, exp_key: Any) -> datetime.datetime | None:
    doc = store.retry(
        lambda: store.jobs.find_one(
            {"exp_key": exp_key, "refresh_time": {"$type": "date"}}, {"refresh_time": 1},
            sort=[("refresh_time", -1)],
        ),
        "find the last activity",
    )
    return doc["refresh_time"] if doc else None


def summarize(store: JobStore, exp_key: Any = ANY_EXP, rate_window_s: float = 300.0
              ) -> list[ExperimentSummary]:
    """One :class:`ExperimentSummary` per experiment (or just ``exp_key``)."""
    now = store.server_time()
    counts = _counts_by_experiment(store, exp_key)
    live = store.retry(lambda: store.live_workers(ANY_EXP), "list live workers")
    out = []
    for key in sorted(counts, key=lambda k: (k is not None, str(k))):
        best = best_trial(store, key)
        summary = ExperimentSummary(
            exp_key=key,
            counts=counts[key],
            best_loss=(best or {}).get("result", {}).get("loss") if best else None,
            best_tid=best.get("tid") if best else None,
            trials_per_minute=_rate(store, key, now, rate_window_s),
            live_workers=sum(1 for w in live if w.get("serves") in ("*", key)),
            stale=count_stale(store, key) if counts[key].get("running") else 0,
            last_activity=_last_activity(store, key),
        )
        out.append(summary)
    return out


def find_trials(store: JobStore, exp_key: Any, states: Iterable[int] | None = None,
                limit: int | None = None, newest: bool = True) -> list[dict[str, Any]]:
    """Trials of ``exp_key`` (optionally only in ``states``), ordered by tid.

    With ``limit``, the ``limit`` newest (or oldest) trials, still returned in tid order.
    """
    flt: dict[str, Any] = {"exp_key": exp_key}
    states = list(states or [])
    if states:
        flt["state"] = {"$in": states}

    def read() -> list[dict[str, Any]]:
        cursor = store.jobs.find(flt).sort("tid", -1 if (newest and limit) else 1)
        if limit:
            cursor = cursor.limit(int(limit))
        return list(cursor)

    docs = store.retry(read, "read trials")
    return sorted(docs, key=lambda d: d.get("tid", -1))


def get_trial(store: JobStore, exp_key: Any, tid: int) -> dict[str, Any]:
    """Trial ``tid`` of ``exp_key``; :class:`NotFound` if there is none."""
    doc = store.retry(lambda: store.jobs.find_one({"exp_key": exp_key, "tid": tid}),
                      "read a trial")
    if doc is None:
        raise NotFound(f"experiment {exp_label(exp_key)!r} has no trial with tid {tid}")
    return doc


@dataclass
class WorkerInfo:
    """One worker process from the ``workers`` registry, classified by the server's clock."""

    worker_id: str
    host: str
    pid: int | None
    status: str  # "alive", "lost" (heartbeats stopped without a clean exit) or "stopped"
    state: str  # what the worker last said: idle, running, stopped
    serves: str
    current: dict[str, Any] | None
    last_heartbeat: datetime.datetime | None
    heartbeat_age_s: float | None
    n_done: int
    n_error: int
    started: datetime.datetime | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` form of a worker row)."""
        return {
            "id": self.worker_id,
            "host": self.host,
            "pid": self.pid,
            "status": self.status,
            "state": self.state,
            "serves": self.serves,
            "current": self.current,
            "last_heartbeat": self.last_heartbeat,
            "heartbeat_age_s": None if self.heartbeat_age_s is None
            else round(self.heartbeat_age_s, 3),
            "n_done": self.n_done,
            "n_error": self.n_error,
            "started": self.started,
        }


def _finished_by_worker(store: JobStore, worker_ids: list[Any]) -> dict[tuple[Any, int], int]:
    """``{(worker id, state): n}`` for DONE and ERROR trials, counted in the trials themselves
    (the registry's own counters are only written when a worker registers)."""
    if not worker_ids:
        return {}
    pipeline = [
        {"$match": {"worker": {"$in": worker_ids},
                    "state": {"$in": [JOB_STATE_DONE, JOB_STATE_ERROR]}}},
        {"$group": {"_id": {"worker": "$worker", "state": "$state"}, "n": {"$sum": 1}}},
    ]
    rows = store.retry(lambda: list(store.jobs.aggregate(pipeline)), "count trials per worker")
    return {(r["_id"]["worker"], r["_id"]["state"]): int(r["n"]) for r in rows}


def list_workers(store: JobStore, recent_s: float = 3600.0, host: str | None = None,
                 count_trials: bool = True) -> list[WorkerInfo]:
    """Live workers, plus those lost or stopped within the last ``recent_s`` seconds.

    A worker is *alive* when its last heartbeat is within its lease (as
    :meth:`JobStore.live_workers` decides), *stopped* when it exited cleanly, and *lost* when
    its heartbeats stopped without a clean exit (killed, crashed, machine gone).
    ``count_trials`` counts each worker's DONE and ERROR trials in the trials themselves (one
    aggregation over the jobs collection); without it, the counters the workers keep in their
    registry entries are shown (what a liveness probe should read: the registry only).
    """
    now = store.server_time()
    live_ids = {w["_id"] for w in store.retry(lambda: store.live_workers(ANY_EXP),
                                                "list live workers")}
    since = now - datetime.timedelta(seconds=recent_s)
    flt: dict[str, Any] = {"$or": [{"_id": {"$in": list(live_ids)}},
                                   {"last_heartbeat": {"$gte": since}}]}
    if host is not None:
        flt = {"$and": [flt, {"host": host}]}
    docs = store.retry(lambda: list(store.workers.find(flt)), "list workers")
    if count_trials:
        done = _finished_by_worker(store, [d["_id"] for d in docs])
    else:
        done = {}
        for d in docs:
            done[(d["_id"], JOB_STATE_DONE)] = int(d.get("n_done") or 0)
            done[(d["_id"], JOB_STATE_ERROR)] = int(d.get("n_error") or 0)
    out = []
    for doc in docs:
        last = doc.get("last_heartbeat")
        age = (now - last.replace(tzinfo=None)).total_seconds() if last else None
        if doc["_id"] in live_ids:
            status = "alive"
        elif doc.get("state") == "stopped":
            status = "stopped"
        else:
            status = "lost"
        out.append(WorkerInfo(
            worker_id=str(doc["_id"]),
            host=str(doc.get("host", "?")),
            pid=doc.get("pid"),
            status=status,
            state=str(doc.get("state", "?")),
            serves=str(doc.get("serves", "*")),
            current=doc.get("current") if status == "alive" else None,
            last_heartbeat=last,
            heartbeat_age_s=age,
            n_done=done.get((doc["_id"], JOB_STATE_DONE), 0),
            n_error=done.get((doc["_id"], JOB_STATE_ERROR), 0),
            started=doc.get("started"),
        ))
    order = {"alive": 0, "lost": 1, "stopped": 2}
    out.sort(key=lambda w: (order[w.status], w.host, w.pid or 0))
    return out
