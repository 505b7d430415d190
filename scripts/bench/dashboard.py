"""Benchmark of the dashboard with many trials: how long opening an experiment takes (API and in
headless Chromium), and how many trial documents each live tick reads.

    python scripts/bench/dashboard.py                       # 100,000 trials in a trials file
    python scripts/bench/dashboard.py --n 10000 --mongo mongodb://127.0.0.1:27017/bench_dash
    python scripts/bench/dashboard.py --no-browser
    python scripts/bench/dashboard.py --n 10000 --mongoeco ~/.cache/hyperq/mongoeco-venv/bin/python

With ``--mongo`` the trials are inserted into that database (dropped first) and read through
the MongoDB source; without it they are saved as a trials file. ``--mongoeco PYTHON`` starts a
private mongoeco server (``scripts/mongo_test_server.py`` run by PYTHON, which needs
``mongoeco[wire]``) that bulk-loads the trials before serving them over TCP: inserting them
over the wire would take hours there (see the script's docstring). Its two queue indexes the
dashboard reads on are then created without ``unique`` (mongoeco builds a unique compound index
in quadratic time); the dashboard creates its own two. Times are wall-clock on this
machine; "documents read per tick" is a count and does not depend on the machine.
"""
from __future__ import annotations

import os
import sys


import argparse
import datetime
import json
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from app_server import serve  # noqa: E402  (tests/app_server.py)


def make_docs(n: int, exp_key: str) -> list[dict]:
    rng = random.Random(0)
    start = datetime.datetime(2026, 11, 1)
    docs = []
    for tid in range(n):
        error = tid % 9 == 4
        docs.append({
            "_id": uuid.uuid4().hex, "tid": tid, "exp_key": exp_key, "state": 3 if error else 2,
            "owner": None, "version": 0, "spec": None, "worker": f"host{tid % 8}:1:w",
            "result": {"status": "new"} if error else {"status": "ok", "loss": rng.random()},
            "misc": {"tid": tid, "cmd": None, "idxs": {"x": [tid], "y": [tid]},
                     "vals": {"x": [rng.random()], "y": [rng.uniform(-3, 3)]}},
            "book_time": start + datetime.timedelta(seconds=tid),
            "refresh_time": start + datetime.timedelta(seconds=tid + 1)})
    return docs


def timed_get(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = json.loads(r.read())
    return time.perf_counter() - start, body


def median_get(url: str, repeat: int = 5, spacing: float = 0.0) -> float:
    """Median seconds of ``repeat`` requests, ``spacing`` seconds apart (to miss caches)."""
    times = []
    for i in range(repeat):
        if i and spacing:
            time.sleep(spacing)
        times.append(timed_get(url)[0])
    return statistics.median(times)


def browser_open(url: str, n: int) -> list[float]:
    """Seconds from navigation to the table's first page and the counts shown, three times
    (the first one against a server that has not read the experiment yet)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            times = []
            for _ in range(3):
                page = b.new_page(bypass_csp=True)  # for the probe below
                start = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("#trials-body tr[data-tid]", timeout=120_000)
                page.wait_for_function(
                    f"document.getElementById('count-total').innerText === '{n}'",
                    timeout=120_000)
                times.append(time.perf_counter() - start)
                page.close()
            return times
        finally:
            b.close()


def start_mongoeco(python: str, docs: list[dict], tmp: str) -> tuple[subprocess.Popen, str]:
    """A private mongoeco server on a free port holding ``docs`` in ``bench_dash.jobs``."""
    import bson

    path = os.path.join(tmp, "jobs.bson")
    with open(path, "wb") as fh:
        fh.writelines(bson.encode(doc) for doc in docs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = os.path.join(tmp, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([python, str(REPO / "scripts" / "mongo_test_server.py"),
                                 "--port", str(port), "--dbpath", os.path.join(tmp, "db"),
                                 "--load", f"bench_dash.jobs={path}"],
                                stdout=log, stderr=subprocess.STDOUT)
    while "READY" not in Path(log_path).read_text():
        if proc.poll() is not None:
            raise SystemExit(f"mongoeco did not start: {Path(log_path).read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, f"mongodb://127.0.0.1:{port}/bench_dash"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--mongo", default=None, help="MongoDB URI with a database to use")
    parser.add_argument("--mongoeco", default=None, metavar="PYTHON",
                        help="start a private mongoeco server with this Python and load the "
                             "trials into it")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    from hyperq.dashboard.app import create_app
    from hyperq.dashboard.live import LiveExperiment
    from hyperq.dashboard.sources import FileSource, MongoSource

    exp_key = "bench"
    docs = make_docs(args.n, exp_key)
    tmp = tempfile.mkdtemp(prefix="hyperq-dash-bench-")
    server: subprocess.Popen | None = None
    try:
        if args.mongoeco:
            from hyperq.ops.connection import open_store

            start = time.perf_counter()
            server, uri = start_mongoeco(args.mongoeco, docs, tmp)
            print(f"mongoeco loaded {args.n} trials and started in "
                  f"{time.perf_counter() - start:.1f} s")
            store = open_store(uri, timeout=10)
            start = time.perf_counter()
            store.jobs.create_index([("exp_key", 1), ("tid", 1)], name="exp_tid")
            store.jobs.create_index([("exp_key", 1), ("state", 1), ("tid", 1)],
                                    name="claim_by_exp")
            print(f"queue's read indexes (not unique): {time.perf_counter() - start:.1f} s")
        elif args.mongo:
            from hyperq.ops.connection import open_store

            store = open_store(args.mongo, timeout=10)
            store.jobs.drop()
            start = time.perf_counter()
            for i in range(0, len(docs), 2000):
                store.jobs.insert_many(docs[i:i + 2000])
            print(f"inserted {args.n} trials in {time.perf_counter() - start:.1f} s")
        if args.mongo or args.mongoeco:
            start = time.perf_counter()
            source = MongoSource(store)
            print(f"dashboard's indexes {source.created_indexes or '(none missing)'}: "
                  f"{time.perf_counter() - start:.1f} s")
            where = f"MongoDB {store.target.display}" + (" (mongoeco)" if args.mongoeco else "")
        else:
            from hyperq import trials_from_docs
            from hyperq.fmin import save_trials

            path = os.path.join(tmp, "bench.pkl")
            save_trials(trials_from_docs(docs, exp_key=exp_key), path)
            start = time.perf_counter()
            source = FileSource(path)
            print(f"read the trials file ({os.path.getsize(path) / 1e6:.1f} MB) in "
                  f"{time.perf_counter() - start:.2f} s")
            where = "trials file"

        rows = [("source", where), ("trials", f"{args.n:,}")]
        with serve(create_app(source)) as url:
            api = f"{url}/api"
            key = f"key={exp_key}"
            if not args.no_browser:
                opens = browser_open(f"{url}/experiment?{key}", args.n)
                rows.append(("open the experiment page in Chromium, first time (table + counts "
                             "shown)", f"{opens[0]:.2f} s"))
                rows.append(("open it again (median of 2)",
                             f"{statistics.median(opens[1:]):.2f} s"))
            rows.append(("first page, newest first (API)",
                         f"{median_get(f'{api}/trials?{key}') * 1000:.0f} ms"))
            rows.append(("first page sorted by loss (API)",
                         f"{median_get(f'{api}/trials?{key}&sort=loss&order=asc') * 1000:.0f} ms"))
            deep = args.n // 50 // 2
            rows.append((f"page {deep} (API)",
                         f"{median_get(f'{api}/trials?{key}&page={deep}') * 1000:.0f} ms"))
            rows.append(("errors only, page 2 (API)",
                         f"{median_get(f'{api}/trials?{key}&state=error&page=2') * 1000:.0f} ms"))
            cold, _ = timed_get(f"{api}/live?{key}")
            rows.append(("live view, first load (API)", f"{cold * 1000:.0f} ms"))
            rows.append(("live view, next ticks (API)",
                         f"{median_get(f'{api}/live?{key}', 10) * 1000:.0f} ms"))
            rows.append(("live view, a tick that reads the source (API, 0.5 s apart)",
                         f"{median_get(f'{api}/live?{key}', 5, 0.5) * 1000:.0f} ms"))
            rows.append(("experiments page (API, 1.1 s apart: not cached)",
                         f"{median_get(f'{api}/experiments', 3, 1.1) * 1000:.0f} ms"))
        live = LiveExperiment(source, exp_key, min_interval=0)
        live.refresh()
        first = live.reads
        for _ in range(10):
            live.refresh()
        rows.append(("documents read by the first refresh", f"{first:,}"))
        rows.append(("documents read per tick afterwards (nothing changed)",
                     f"{(live.reads - first) / 10:g}"))
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| measure | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
