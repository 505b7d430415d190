"""A leased job: the one trial a worker holds, and every write it makes while holding it.

Each write here carries the trial's ``lease_token`` and ``state: RUNNING`` in its filter
(fencing): once the lease is lost (the trial re-queued and claimed again) or the trial finished,
none of them changes anything. This module is the only place where fenced writes happen.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from .connection import Connection
from .pruning import push_report
from .queue import JOB_STATE_NEW, JOB_STATE_RUNNING

log = logging.getLogger(__name__)

__all__ = ["LeasedJob", "LeaseLost", "escape_key"]

MAX_REFUSALS = 10


class LeaseLost(RuntimeError):
    """This worker no longer holds the trial's lease: it was re-queued to another worker."""


def escape_key(name: str) -> str:
    """``name`` usable as a MongoDB field name (no ``.``, no leading ``$``), reversibly."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def unescape_key(key: str) -> str:
    """Inverse of :func:`escape_key`."""
    return key.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


class LeasedJob:
    """The trial ``doc`` claimed with ``doc['lease_token']``; all writes are fenced by it."""

    def __init__(self, conn: Connection, doc: dict[str, Any]) -> None:
        self.conn = conn
        self.doc = doc
        self.id = doc["_id"]
        self.tid = doc.get("tid")
        self.token = doc["lease_token"]
        #: set when a heartbeat or a fenced write found the lease gone
        self.lost = threading.Event()
        self._on_lost: list[Callable[[], None]] = []

    @property
    def fence(self) -> dict[str, Any]:
        """The filter that matches the trial only while this lease holds."""
        return {"_id": self.id, "state": JOB_STATE_RUNNING, "lease_token": self.token}

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when the lease is found lost."""
        self._on_lost.append(callback)

    def _mark_lost(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            for callback in self._on_lost:
                try:
                    callback()
                except Exception:  # pragma: no cover - a callback must not kill the caller
                    log.exception("lease-lost callback failed")

    def _fenced_update(self, update: dict[str, Any], what: str) -> bool:
        """Apply ``update`` if the lease holds; retried (the fence makes it idempotent)."""
        matched = self.conn.retry(lambda: self.conn.jobs.update_one(self.fence, update)
                                  .matched_count, what)
        if not matched:
            self._mark_lost()
        return bool(matched)

    def heartbeat(self) -> bool:
        """Extend the lease (server time); ``False`` once the lease is lost."""
        matched = self.conn.jobs.update_one(
            self.fence, {"$currentDate": {"refresh_time": True}}).matched_count
        if not matched:
            self._mark_lost()
        return bool(matched)

    def checkpoint(self, result: dict[str, Any]) -> bool:
        """Store a partial result while the trial runs; ``False`` (nothing written) if lost."""
        return self._fenced_update({"$set": {"result": result},
                                    "$currentDate": {"refresh_time": True, "changed": True}},
                                   "store a checkpoint")

    def report(self, item: dict[str, Any]) -> None:
        """Append one intermediate report to ``intermediate`` (issue 14).

        Raises :class:`LeaseLost` (and writes nothing) when the lease is gone, so a stale
        attempt stops instead of mixing its reports with the re-run's.
        """
        if not push_report(self.conn.jobs, self.id, self.token, item, self.conn.retry):
            self._mark_lost()
            raise LeaseLost(self._lost_message(f"report of step {item.get('step')}"))

    def finish(self, state: int, result: dict[str, Any],
               misc_updates: dict[str, Any] | None = None) -> bool:
        """Write the outcome if the lease still holds; ``False`` means it was discarded.

        Retried through reconnects: if an earlier attempt was applied, the trial is found in
        ``state`` with this token and that counts as success.
        """
        update: dict[str, Any] = {"state": state, "result": result}
        for key, value in (misc_updates or {}).items():
            update[f"misc.{key}"] = value

        def do() -> bool:
            res = self.conn.jobs.update_one(
                self.fence, {"$set": update,
                             "$currentDate": {"refresh_time": True, "changed": True}})
            if res.matched_count == 1:
                return True
            doc = self.conn.jobs.find_one({"_id": self.id}, {"state": 1, "lease_token": 1})
            return bool(doc and doc.get("lease_token") == self.token and doc.get("state") == state)

        done = self.conn.retry(do, "write a trial result")
        if not done:
            self._mark_lost()
        return done

    def hand_back(self) -> bool:
        """Return the trial to NEW without using up its retry budget."""
        return self._fenced_update({
            "$set": {"state": JOB_STATE_NEW, "worker": None},
            "$unset": {"lease_token": ""},
            "$inc": {"attempt": -1},
            "$currentDate": {"changed": True},
        }, "hand a trial back")

    def refuse(self, worker_id: str, reason: str) -> bool:
        """Hand the trial back and record why this worker refused it (last few kept)."""
        return self._fenced_update({
            "$set": {"state": JOB_STATE_NEW, "worker": None},
            "$unset": {"lease_token": ""},
            "$inc": {"attempt": -1},
            "$push": {"refusals": {"$each": [{"worker": worker_id, "reason": reason}],
                                   "$slice": -MAX_REFUSALS}},
            "$currentDate": {"changed": True},
        }, "record a refusal")

    def link_attachment(self, name: str, file_id: Any) -> Any:
        """Point attachment ``name`` at GridFS file ``file_id``; returns the old file id.

        Raises :class:`LeaseLost` (and links nothing) when the lease is gone.
        """
        field = f"att.{escape_key(name)}"
        old = self.conn.retry(lambda: self.conn.jobs.find_one_and_update(
            self.fence, {"$set": {field: file_id}}, projection={"att": 1}), "link an attachment")
        if old is None:
            self._mark_lost()
            raise LeaseLost(self._lost_message(f"attachment {name!r}"))
        return (old.get("att") or {}).get(escape_key(name))

    def unlink_attachment(self, name: str) -> Any:
        """Remove attachment ``name`` from the trial; returns its file id (``None`` if absent)."""
        field = f"att.{escape_key(name)}"
        old = self.conn.retry(lambda: self.conn.jobs.find_one_and_update(
            self.fence, {"$unset": {field: ""}}, projection={"att": 1}), "unlink an attachment")
        if old is None:
            self._mark_lost()
            raise LeaseLost(self._lost_message(f"attachment {name!r}"))
        return (old.get("att") or {}).get(escape_key(name))

    def _lost_message(self, what: str) -> str:
        return (f"{what} of trial {self.tid} not written: this worker lost the trial's lease "
                "(it was re-queued after missed heartbeats)")
