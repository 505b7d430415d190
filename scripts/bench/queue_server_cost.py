"""Server CPU per queue request on the test server (mongoeco), measured from the server process.

    python scripts/bench/queue_server_cost.py [--n 300]

Starts a private mongoeco server, creates the indexes hyperq creates, and sends each kind of
request a trial costs (the same filters and updates as ``hyperq/mongo/queue.py`` and ``job.py``)
``--n`` times, reading the server process's CPU time (``/proc/PID/stat``) before and after.
Then it times one claim, sorted by tid and not, against collections of growing size. This
explains where the throughput of ``mongo_queue.py`` goes on this server; a real ``mongod`` answers
each of these in well under a millisecond, so only the request counts carry over to
production.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))


def server_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trial_doc(tid: int, state: int = 0) -> dict:
    return {"_id": f"{tid}:e", "tid": tid, "exp_key": "e", "state": state, "spec": None,
            "result": {"status": "new"}, "owner": None, "version": 0, "attempt": 0,
            "misc": {"tid": tid, "cmd": ["domain_attachment", "d"], "idxs": {"x": [tid]},
                     "vals": {"x": [0.5]}}, "book_time": None, "refresh_time": None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="requests of each kind")
    parser.add_argument("--unique", action="store_true",
                        help="make the (exp_key, tid) index unique, as hyperq's was before trial "
                             "ids carried the uniqueness, to see what it costs")
    args = parser.parse_args(argv)
    import pymongo
    from pymongo import ReturnDocument

    from hyperq.mongo.connection import Connection  # noqa: F401 - the package must import
    from hyperq.mongo.store import connect_store
    from mongo_server import MongoServer, mongoeco_python

    python = mongoeco_python()
    if python is None:
        sys.exit("no mongoeco server available")
    server = MongoServer(python, tempfile.mkdtemp(prefix="hyperq-cost-")).start()
    pid, n = server.proc.pid, args.n
    try:
        uri = server.uri.rstrip("/") + "/cost"
        store = connect_store(uri)
        store.ensure_indexes()  # exactly hyperq's indexes
        jobs = pymongo.MongoClient(server.uri)["cost"]["jobs"]
        if args.unique:
            jobs.drop_index("exp_tid")
            jobs.create_index([("exp_key", 1), ("tid", 1)], name="exp_tid", unique=True)
        tokens: list[tuple[str, str]] = []

        def measure(name: str, per: int, fn: Callable[[], None]) -> None:
            before = server_cpu_s(pid)
            fn()
            ms = 1000 * (server_cpu_s(pid) - before) / per
            print(f"| {name} | {ms:.1f} |", flush=True)

        def insert() -> None:
            for start in range(0, n, 6):  # the driver inserts ~6 suggestions per request
                jobs.insert_many([trial_doc(t) for t in range(start, min(start + 6, n))])

        def claims() -> None:
            for _ in range(n):
                token = uuid.uuid4().hex
                doc = jobs.find_one_and_update(
                    {"exp_key": "e", "state": 0},
                    {"$set": {"state": 1, "worker": "w", "owner": "w", "lease_token": token,
                              "lease_ms": 6000, "intermediate": []}, "$inc": {"attempt": 1},
                     "$currentDate": {"book_time": True, "refresh_time": True,
                                      "changed": True}},
                    return_document=ReturnDocument.AFTER)
                tokens.append((doc["_id"], token))

        def failed_claims() -> None:
            for _ in range(n):
                jobs.find_one_and_update({"exp_key": "e", "state": 0}, {"$set": {"state": 1}})

        def finishes() -> None:
            for doc_id, token in tokens:
                jobs.update_one({"_id": doc_id, "state": 1, "lease_token": token},
                                {"$set": {"state": 2, "result": {"status": "ok", "loss": 0.1}},
                                 "$currentDate": {"refresh_time": True, "changed": True}})

        print("| request (hyperq's filters, indexes and updates) | server CPU, ms |")
        print("|---|---:|")
        measure("insert, per trial (6 per request)", n, insert)
        measure("idle check (`find_one` NEW)", n, lambda: [
            jobs.find_one({"exp_key": "e", "state": 0}, {"_id": 1}) for _ in range(n)])
        measure("claim (`findAndModify`)", n, claims)
        measure("claim that finds nothing", n, failed_claims)
        measure("finish (fenced `update`)", n, finishes)
        since = datetime.datetime.now(datetime.timezone.utc)  # a wake-up reads what just changed
        jobs.update_many({"tid": {"$lt": 6}}, {"$currentDate": {"changed": True}})
        measure("change read (`find`, 6 trials changed)", n, lambda: [
            list(jobs.find({"exp_key": "e", "changed": {"$gte": since}})) for _ in range(n)])
        print()
        print("| trials in the collection (100 NEW) | sorted claim, ms | unsorted claim, ms |")
        print("|---:|---:|---:|")
        size = n
        for target in (500, 1000, 2000):
            jobs.update_many({"state": {"$ne": 2}}, {"$set": {"state": 2}})
            while size < target:
                jobs.insert_many([trial_doc(t, 2) for t in range(size, size + 100)])
                size += 100
            jobs.insert_many([trial_doc(t) for t in range(size, size + 100)])
            size += 100
            row = []
            for sort in ([("tid", 1)], None):
                before = server_cpu_s(pid)
                for _ in range(20):
                    jobs.find_one_and_update({"exp_key": "e", "state": 0},
                                             {"$set": {"w": 1}}, sort=sort)
                row.append(1000 * (server_cpu_s(pid) - before) / 20)
            print(f"| {size} | {row[0]:.1f} | {row[1]:.1f} |", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
