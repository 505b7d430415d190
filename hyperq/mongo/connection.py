"""The connection to the MongoDB server: collections, server limits, and retries.

:meth:`Connection.retry` repeats an operation through transient failures (lost connection,
primary step-down, a busy server) with exponential backoff and a log line, and gives up with
:class:`StoreUnavailable` after ``reconnect_timeout``. Only operations that are safe to repeat
go through it: reads, and writes whose filter or ``_id`` makes a second application a no-op.
Errors that retrying cannot fix (credentials, configuration) are raised at once.
"""
from __future__ import annotations

import datetime
import logging
import random
import time
from typing import Callable, TypeVar

import gridfs
import pymongo
from pymongo.errors import AutoReconnect, ConnectionFailure, OperationFailure, PyMongoError

from .uri import MongoTarget, parse_mongo_uri

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["Connection", "StoreUnavailable", "AuthenticationFailed", "connect", "is_transient"]

#: server error codes that mean "try again later" (network, failover, shutdown, lock timeouts)
TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
                             112, 117, 24, 46, 50})
AUTH_CODES = frozenset({13, 18})
DEFAULT_DOC_LIMIT = 16 * 1024 * 1024


class StoreUnavailable(ConnectionError):
    """The MongoDB server could not be reached for longer than the reconnect timeout."""


class AuthenticationFailed(PermissionError):
    """The MongoDB server refused the credentials in the URI."""


def is_transient(exc: BaseException) -> bool:
    """Would the same request probably succeed if sent again a little later?"""
    if isinstance(exc, (AutoReconnect, ConnectionFailure)):
        return True
    if isinstance(exc, OperationFailure):
        if exc.code in AUTH_CODES:
            return False
        labels = ("RetryableWriteError", "TransientTransactionError")
        if any(exc.has_error_label(label) for label in labels):
            return True
        if exc.code in TRANSIENT_CODES:
            return True
        text = str(exc).lower()
        return "database is locked" in text or "interrupted" in text or "timed out" in text
    return False


def connect(
    address: str | MongoTarget,
    *,
    reconnect_timeout: float = 300.0,
    server_selection_timeout_ms: int = 10_000,
) -> "Connection":
    """A :class:`Connection` to ``address`` (any form :func:`parse_mongo_uri` accepts)."""
    target = address if isinstance(address, MongoTarget) else parse_mongo_uri(address)
    client: pymongo.MongoClient = pymongo.MongoClient(
        target.uri, serverSelectionTimeoutMS=server_selection_timeout_ms, connect=False,
        appname="hyperq",
    )
    return Connection(client, target, reconnect_timeout=reconnect_timeout)


class Connection:
    """One client and the collections of one job store (``<collection>`` and its siblings)."""

    def __init__(self, client: pymongo.MongoClient, target: MongoTarget, *,
                 reconnect_timeout: float = 300.0) -> None:
        self.client = client
        self.target = target
        self.reconnect_timeout = reconnect_timeout
        self.db = client[target.database]
        name = target.collection
        self.jobs = self.db[name]
        self.workers = self.db[f"{name}.workers"]
        self.counters = self.db[f"{name}.counters"]
        self.experiments = self.db[f"{name}.experiments"]
        self.fs = gridfs.GridFS(self.db, collection=f"{name}.fs")
        self.fs_files = self.db[f"{name}.fs.files"]
        self.fs_chunks = self.db[f"{name}.fs.chunks"]
        self._doc_limit: int | None = None

    def check(self) -> None:
        """Ping the server (and authenticate); raise a clear error if that fails."""
        try:
            self.db.command("ping")
        except OperationFailure as exc:
            if exc.code in AUTH_CODES or "auth" in str(exc).lower():
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
        """Run ``fn`` (safe to repeat), retrying transient failures with backoff.

        Logs a warning when the first retry starts and when the server answers again; raises
        :class:`StoreUnavailable` after ``reconnect_timeout`` seconds of failures.
        """
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.05
        failures = 0
        while True:
            try:
                result = fn()
            except PyMongoError as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"lost MongoDB at {self.target.display} for more than "
                        f"{self.reconnect_timeout:.0f} s while trying to {what}: {exc}"
                    ) from None
                if failures == 1:
                    log.warning("MongoDB unreachable or busy while trying to %s (%s); retrying "
                                "with backoff", what, exc)
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)
                continue
            if failures:
                log.warning("reconnected to MongoDB at %s (%s after %d retries)",
                            self.target.display, what, failures)
            return result

    def max_document_size(self) -> int:
        """The server's largest BSON document, read once per connection (from the handshake)."""
        if self._doc_limit is None:
            limit = 0
            try:
                for server in self.client.topology_description.server_descriptions().values():
                    limit = max(limit, int(server.max_bson_size or 0))
            except Exception:  # pragma: no cover - driver internals changed
                limit = 0
            if limit <= 0:
                reply = self.retry(lambda: self.client.admin.command("hello"), "read limits")
                limit = int(reply.get("maxBsonObjectSize", DEFAULT_DOC_LIMIT))
            self._doc_limit = limit
        return self._doc_limit

    def server_time(self) -> "datetime.datetime":
        """The database server's current time (naive UTC), from ``hello``'s ``localTime``."""
        reply = self.retry(lambda: self.client.admin.command("hello"), "read the server time")
        now = reply.get("localTime")
        if now is None:  # very old servers: fall back to the local clock
            return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        return now.replace(tzinfo=None)

    def supports_change_streams(self) -> bool:
        """Does the server offer change streams (a replica set or sharded cluster)?"""
        try:
            reply = self.retry(lambda: self.client.admin.command("hello"), "ask the topology")
        except PyMongoError:
            return False
        return bool(reply.get("setName") or reply.get("msg") == "isdbgrid")
