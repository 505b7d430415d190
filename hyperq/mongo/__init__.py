"""The MongoDB job queue: :class:`MongoTrials` for the driver, :class:`Worker` for workers.

Modules: ``uri`` (address parsing), ``store`` (every database operation), ``domain``
(publishing and loading the objective), ``signing`` (HMAC), ``attachments`` (GridFS),
``trials`` (``MongoTrials``), ``worker`` (the worker loop), ``cli`` (``hyperq-worker``).
"""
from __future__ import annotations

from .signing import SignatureError
from .store import AuthenticationFailed, JobStore, StoreUnavailable, connect_store
from .uri import InvalidMongoURI, MongoTarget, parse_mongo_uri

__all__ = [
    "MongoTrials",
    "Worker",
    "WorkerConfig",
    "JobStore",
    "connect_store",
    "parse_mongo_uri",
    "MongoTarget",
    "InvalidMongoURI",
    "AuthenticationFailed",
    "StoreUnavailable",
    "SignatureError",
]


def __getattr__(name: str):  # lazy: MongoTrials needs hyperq.base
    if name == "MongoTrials":
        from .trials import MongoTrials

        return MongoTrials
    if name in ("Worker", "WorkerConfig"):
        from . import worker

        return getattr(worker, name)
    raise AttributeError(name)
