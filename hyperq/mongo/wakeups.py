"""Wake-ups: change streams where the server has them, paced polling where it has not.

:class:`ChangeFeed` wakes a waiter when a matching change happens (workers: a trial became
NEW; the driver: a trial finished). It resumes from its last resume token after an error, and
reports a wake-up when it had to start afresh (a change may have been missed). Servers without
change streams (a standalone ``mongod``, some emulators) get ``None`` from :func:`open_feed`,
and callers poll instead, paced by :class:`FleetPace` so that a whole fleet's idle polling
stays within a fixed budget of requests per second, whatever its size.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable

from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from .connection import is_transient
from .queue import ANY_EXP, FINISHED_STATES, JOB_STATE_NEW

log = logging.getLogger(__name__)

__all__ = ["ChangeFeed", "FleetPace", "open_feed", "new_work_pipeline", "finished_pipeline"]

#: longest a change-stream getMore waits on the server before returning empty
AWAIT_MS = 2000


def new_work_pipeline(exp_key: Any) -> list[dict[str, Any]]:
    """Changes that make a trial claimable: inserts in state NEW and updates to NEW."""
    insert: dict[str, Any] = {"operationType": "insert", "fullDocument.state": JOB_STATE_NEW}
    if exp_key is not ANY_EXP:
        insert["fullDocument.exp_key"] = exp_key
    return [{"$match": {"$or": [insert, {"operationType": "update",
                                         "updateDescription.updatedFields.state":
                                             JOB_STATE_NEW}]}}]


def finished_pipeline() -> list[dict[str, Any]]:
    """Changes a waiting driver cares about: a trial finished, or finished trials inserted."""
    return [{"$match": {"$or": [
        {"operationType": "insert"},
        {"operationType": "update",
         "updateDescription.updatedFields.state": {"$in": list(FINISHED_STATES)}},
    ]}}]


class ChangeFeed:
    """A change stream on ``collection`` filtered by ``pipeline``, resumed after errors."""

    def __init__(self, collection: Collection, pipeline: list[dict[str, Any]],
                 await_ms: int = AWAIT_MS, pace: Callable[[], float] | None = None) -> None:
        self.collection, self.pipeline, self.await_ms = collection, pipeline, await_ms
        #: seconds an empty getMore must take at least: a server that answers at once instead
        #: of waiting ``await_ms`` (some emulators) is then asked no more often than this
        self.pace = pace
        self._stream: Any = None
        self._token: Any = None
        self.reopened = 0

    def open(self) -> "ChangeFeed":
        """Start watching (from the last resume token, if any)."""
        self._stream = self.collection.watch(self.pipeline, max_await_time_ms=self.await_ms,
                                             resume_after=self._token)
        return self

    def wait(self, timeout: float) -> bool:
        """Block until a matching change (``True``) or ``timeout`` seconds pass (``False``).

        A getMore waits on the server at most ``await_ms``, so an idle waiter sends about one
        request per ``await_ms``. After an error the stream is reopened from its resume token;
        when that is impossible it starts afresh and returns ``True`` (the caller re-reads).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                if self._stream is None:
                    self.open()
                asked = time.monotonic()
                event = self._stream.try_next()
                if event is not None:
                    self._token = self._stream.resume_token
                    return True
                self._token = self._stream.resume_token or self._token
                if self.pace is not None:  # the server did not wait: do not ask it again yet
                    rest = self.pace() - (time.monotonic() - asked)
                    time.sleep(max(0.0, min(rest, deadline - time.monotonic())))
            except PyMongoError as exc:
                self._reset(exc)
                if not is_transient(exc):
                    return True  # resume impossible: the caller re-reads to miss nothing
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                return False

    def _reset(self, exc: PyMongoError) -> None:
        self.reopened += 1
        log.warning("change stream interrupted (%s); reopening", exc)
        self.close()
        if not is_transient(exc):
            self._token = None  # e.g. the resume point fell off the oplog: start afresh

    def close(self) -> None:
        """Stop watching."""
        try:
            if self._stream is not None:
                self._stream.close()
        except PyMongoError:
            pass
        self._stream = None


def open_feed(collection: Collection, pipeline: list[dict[str, Any]],
              await_ms: int = AWAIT_MS, pace: Callable[[], float] | None = None
              ) -> ChangeFeed | None:
    """A :class:`ChangeFeed`, or ``None`` when the server has no change streams."""
    feed = ChangeFeed(collection, pipeline, await_ms, pace)
    try:
        feed.open()
    except OperationFailure as exc:
        log.info("no change streams on this server (%s): polling instead", exc)
        return None
    except PyMongoError as exc:
        if is_transient(exc):
            raise
        log.info("no change streams on this server (%s): polling instead", exc)
        return None
    return feed


class FleetPace:
    """Spread a fleet-wide rate of requests (per second) over ``fleet`` workers.

    Each worker waits ``fleet / rate`` seconds (jittered by +-25 %) between its checks, so the
    fleet together makes about ``rate`` checks per second whether it has 1 or 1,000 workers.
    """

    def __init__(self, rate_per_s: float, floor_s: float = 0.0) -> None:
        self.rate = float(rate_per_s)
        self.floor = float(floor_s)

    def interval(self, fleet: int) -> float:
        """Seconds until this worker's next check."""
        base = max(self.floor, max(1, fleet) / self.rate)
        return base * random.uniform(0.75, 1.25)
