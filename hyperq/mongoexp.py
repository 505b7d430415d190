"""hyperopt-compatible names for the MongoDB backend (``from hyperopt.mongoexp import ...``).

``MongoTrials`` and ``main_worker`` (the ``hyperopt-mongo-worker`` entry point, here
``hyperq-worker``) work as in hyperopt, with pymongo 4, ``mongodb://``/``mongodb+srv://`` URIs,
leases and fault tolerance.
"""
from __future__ import annotations

from hyperq.mongo.store import JobStore, connect_store
from hyperq.mongo.trials import MongoTrials
from hyperq.mongo.uri import parse_mongo_uri
from hyperq.mongo.worker import Worker, WorkerConfig

__all__ = ["MongoTrials", "main_worker", "main", "Worker", "WorkerConfig", "JobStore",
           "connect_store", "parse_mongo_url", "parse_mongo_uri"]


def parse_mongo_url(url: str):
    """hyperopt's name for :func:`hyperq.mongo.uri.parse_mongo_uri`."""
    return parse_mongo_uri(url)


def main_worker(argv: list[str] | None = None) -> None:
    """Run a worker from command-line arguments (``hyperq-worker --mongo URI ...``)."""
    from hyperq.mongo.cli import main as _main

    _main(argv)


main = main_worker
