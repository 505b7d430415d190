"""The worker health check used by the Docker image and Kubernetes probes.

A worker is healthy when the ``workers`` registry holds a live entry (heartbeat within its
lease, by the server's clock) for this host, and for ``pid`` if given. The worker refreshes
that entry from a separate thread on a timer, also while a trial runs, so a long trial stays
healthy. The check reads the registry only: a probe every few seconds per pod costs the jobs
collection nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from hyperq.mongo.store import JobStore

from .output import fmt_age
from .queries import WorkerInfo, list_workers

__all__ = ["HealthReport", "check_worker_health"]


@dataclass
class HealthReport:
    """The verdict and the evidence behind it."""

    healthy: bool
    message: str
    workers: list[WorkerInfo]


def check_worker_health(store: JobStore, host: str, pid: int | None = None,
                        recent_s: float = 86400.0) -> HealthReport:
    """Is a worker on ``host`` (with ``pid``) alive in the registry?"""
    found = [w for w in list_workers(store, recent_s=recent_s, host=host, count_trials=False)
             if pid is None or w.pid == pid]
    who = f"host {host!r}" + (f" pid {pid}" if pid is not None else "")
    alive = [w for w in found if w.status == "alive"]
    if alive:
        w = min(alive, key=lambda w: w.heartbeat_age_s or 0.0)
        doing = (f"running trial {w.current.get('tid')} of {w.current.get('exp_key')!r}"
                 if w.current else w.state)
        return HealthReport(True, f"healthy: worker {w.worker_id} ({doing}), last heartbeat "
                                  f"{fmt_age(w.heartbeat_age_s)} ago", found)
    if not found:
        return HealthReport(False, f"unhealthy: no worker from {who} has registered in "
                                   f"{store.target.display} (still starting, or it cannot reach "
                                   "the database?)", found)
    last = min(found, key=lambda w: w.heartbeat_age_s if w.heartbeat_age_s is not None
               else float("inf"))
    return HealthReport(False, f"unhealthy: no live worker from {who}; the latest, "
                               f"{last.worker_id}, is {last.status} (last heartbeat "
                               f"{fmt_age(last.heartbeat_age_s)} ago)", found)
