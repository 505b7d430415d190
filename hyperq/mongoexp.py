"""hyperopt-compatible names for the MongoDB backend (``from hyperopt.mongoexp import ...``).

``MongoTrials`` works as in hyperopt, with pymongo 4, ``mongodb://``/``mongodb+srv://`` URIs,
leases and fault tolerance. ``MongoJobs`` and ``MongoWorker`` are thin wrappers over
:class:`hyperq.mongo.store.JobStore` and :class:`hyperq.mongo.worker.Worker` with hyperopt's
constructor names; :func:`main_worker` (the ``hyperq-mongo-worker`` command) takes the options
of hyperopt's ``hyperopt-mongo-worker``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from hyperq.mongo.store import JobStore, connect_store
from hyperq.mongo.trials import MongoTrials
from hyperq.mongo.uri import parse_mongo_uri
from hyperq.mongo.worker import Worker, WorkerConfig

__all__ = ["MongoTrials", "MongoJobs", "MongoWorker", "main_worker", "main",
           "main_worker_helper", "Worker", "WorkerConfig", "JobStore", "connect_store",
           "parse_mongo_url", "parse_mongo_uri"]

logger = logging.getLogger(__name__)


def parse_mongo_url(url: str) -> Any:
    """hyperopt's name for :func:`hyperq.mongo.uri.parse_mongo_uri`."""
    return parse_mongo_uri(url)


class MongoJobs:
    """The job collection of an experiment store (hyperopt's ``MongoJobs``).

    ``store`` is the :class:`~hyperq.mongo.store.JobStore` doing the work; ``db``, ``jobs``
    (also ``coll``) and ``gfs`` are the pymongo database, job collection and GridFS.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.db = store.db
        self.jobs = self.coll = store.jobs
        self.gfs = store.fs
        self.conn = store.client

    @classmethod
    def new_from_connection_str(cls, conn_str: str, **_hyperopt_options: Any) -> "MongoJobs":
        """Connect to ``mongo://host:port/db/jobs``, ``mongodb://...`` or ``host:port/db``."""
        return cls(connect_store(conn_str))

    def count(self, query: dict[str, Any] | None = None) -> int:
        """The number of job documents matching ``query``."""
        return self.jobs.count_documents(query or {})

    def __len__(self) -> int:
        return self.count()

    def delete_all(self, cond: dict[str, Any] | None = None) -> None:
        """Delete the job documents matching ``cond`` (all by default)."""
        self.jobs.delete_many(cond or {})


class MongoWorker:
    """Evaluates queued trials (hyperopt's ``MongoWorker``), on :class:`hyperq.mongo.worker.Worker`."""

    def __init__(self, mj: MongoJobs | JobStore, poll_interval: float = 1.0,
                 workdir: str | None = None, exp_key: str | None = None,
                 logfilename: str | None = None) -> None:
        self.store = mj.store if isinstance(mj, MongoJobs) else mj
        self.poll_interval = poll_interval
        self.workdir = workdir
        self.exp_key = exp_key

    def _config(self, max_jobs: int | None, idle_timeout: float | None) -> WorkerConfig:
        from hyperq.mongo.store import ANY_EXP

        return WorkerConfig(exp_key=ANY_EXP if self.exp_key is None else self.exp_key,
                            max_jobs=max_jobs, idle_timeout=idle_timeout, workdir=self.workdir,
                            poll_interval=self.poll_interval)

    def run_one(self, host_id: str | None = None, reserve_timeout: float | None = None,
                erase_created_workdir: bool = False) -> int:
        """Evaluate one trial (waiting up to ``reserve_timeout`` seconds for one)."""
        return Worker(self.store, self._config(1, reserve_timeout)).run()

    def run(self, max_jobs: int | None = None, reserve_timeout: float | None = None) -> int:
        """Evaluate trials until ``max_jobs`` are done or none came for ``reserve_timeout`` s."""
        return Worker(self.store, self._config(max_jobs, reserve_timeout)).run()


def _hyperopt_worker_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hyperq-mongo-worker",
        description="Evaluate trials of MongoTrials experiments; takes hyperopt-mongo-worker's "
                    "options (hyperq-worker --help lists hyperq's own).")
    p.add_argument("--mongo", default="localhost/hyperopt",
                   help="host[:port]/db, mongo://host:port/db/jobs or mongodb://... "
                        "(default: localhost/hyperopt)")
    p.add_argument("--exp-key", default=None, help="serve only this experiment")
    p.add_argument("--max-jobs", type=int, default=None, help="exit after this many trials")
    p.add_argument("--workdir", default=None, help="directory to run objectives in")
    p.add_argument("--poll-interval", type=float, default=None,
                   help="longest sleep between checks for work (seconds)")
    p.add_argument("--reserve-timeout", type=float, default=120.0,
                   help="exit after this many seconds without work (default 120)")
    p.add_argument("--last-job-timeout", type=float, default=None,
                   help="accepted for compatibility; not supported (ignored with a warning)")
    p.add_argument("--max-consecutive-failures", type=int, default=None,
                   help="accepted for compatibility; hyperq records failing trials as errors "
                        "and keeps serving (ignored with a warning)")
    p.add_argument("--no-subprocesses", action="store_true",
                   help="accepted for compatibility; hyperq evaluates in the worker process")
    return p


def hyperopt_worker_argv(argv: list[str] | None) -> list[str]:
    """hyperopt-mongo-worker arguments -> the equivalent ``hyperq-worker`` arguments."""
    opts = _hyperopt_worker_parser().parse_args(argv)
    for name in ("last_job_timeout", "max_consecutive_failures"):
        if getattr(opts, name) is not None:
            logger.warning("--%s is not supported by hyperq's worker and is ignored",
                           name.replace("_", "-"))
    out = ["--mongo", opts.mongo]
    if opts.exp_key is not None:
        out += ["--exp-key", opts.exp_key]
    if opts.max_jobs is not None:
        out += ["--max-jobs", str(opts.max_jobs)]
    if opts.workdir is not None:
        out += ["--workdir", opts.workdir]
    if opts.poll_interval is not None:
        out += ["--poll-interval", str(opts.poll_interval)]
    if opts.reserve_timeout is not None:
        out += ["--idle-timeout", str(opts.reserve_timeout)]
    return out


def main_worker(argv: list[str] | None = None) -> None:
    """``hyperopt-mongo-worker`` with its options, run by hyperq's worker.

    Objectives written for hyperopt import it: the command serves them with
    :func:`hyperq.install_as_hyperopt` installed.
    """
    from hyperq import install_as_hyperopt
    from hyperq.mongo.cli import main as _main

    install_as_hyperopt()

    _main(hyperopt_worker_argv(sys.argv[1:] if argv is None else argv))


def main_worker_helper(options: Any, args: Any = None) -> None:
    """hyperopt's helper taking parsed options (attributes named like the command options)."""
    argv = ["--mongo", getattr(options, "mongo", "localhost/hyperopt")]
    for name in ("exp_key", "max_jobs", "workdir", "poll_interval", "reserve_timeout"):
        value = getattr(options, name, None)
        if value is not None:
            argv += ["--" + name.replace("_", "-"), str(value)]
    main_worker(argv)


main = main_worker

if __name__ == "__main__":
    main_worker()
