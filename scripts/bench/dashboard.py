"""Benchmark of the dashboard with many trials: how long opening an experiment takes (API and in
headless Chromium), and how many trial documents each live tick reads.

    python scripts/bench/dashboard.py                       # 100,000 trials in a trials file
    python scripts/bench/dashboard.py --n 10000 --mongo mongodb://127.0.0.1:27017/bench_dash
    python scripts/bench/dashboard.py --no-browser

With ``--mongo`` the trials are inserted into that database (dropped first) and read through
the MongoDB source; without it they are saved as a trials file. Times are wall-clock on this
machine; "documents read per tick" is a count and does not depend on the machine.
"""
from __future__ import annotations

import os
import sys

# scripts/bench holds queue.py: keep this directory from shadowing the stdlib's queue module
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse
import contextlib
import datetime
import json
import random
import shutil
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


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


@contextlib.contextmanager
def serve(app):
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def timed_get(url: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = json.loads(r.read())
    return time.perf_counter() - start, body


def median_get(url: str, repeat: int = 5) -> float:
    return statistics.median(timed_get(url)[0] for _ in range(repeat))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--mongo", default=None, help="MongoDB URI with a database to use")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    from hyperq.dashboard.app import create_app
    from hyperq.dashboard.live import LiveExperiment
    from hyperq.dashboard.sources import FileSource, MongoSource

    exp_key = "bench"
    docs = make_docs(args.n, exp_key)
    tmp = tempfile.mkdtemp(prefix="hyperq-dash-bench-")
    try:
        if args.mongo:
            from hyperq.ops.connection import open_store

            store = open_store(args.mongo, timeout=10)
            store.jobs.drop()
            start = time.perf_counter()
            for i in range(0, len(docs), 2000):
                store.jobs.insert_many(docs[i:i + 2000])
            print(f"inserted {args.n} trials in {time.perf_counter() - start:.1f} s")
            start = time.perf_counter()
            source = MongoSource(store)
            print(f"indexes: {time.perf_counter() - start:.1f} s")
            where = f"MongoDB {store.target.display}"
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
        live = LiveExperiment(source, exp_key, min_interval=0)
        live.refresh()
        first = live.reads
        for _ in range(10):
            live.refresh()
        rows.append(("documents read by the first refresh", f"{first:,}"))
        rows.append(("documents read per tick afterwards (nothing changed)",
                     f"{(live.reads - first) / 10:g}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| measure | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
