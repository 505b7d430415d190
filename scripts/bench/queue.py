"""Benchmark of the MongoDB queue: insert-to-claim latency with idle workers, and throughput of
trivial trials with 1, 2, 4 and 8 workers (real worker processes, server over TCP).

    python scripts/bench/queue.py                      # starts a private mongoeco server
    python scripts/bench/queue.py --uri mongodb://host:27017/   # any MongoDB server
    python scripts/bench/queue.py --json out.json

Latency: a trial is queued (state set to NEW with the server's ``$currentDate``) while workers
are idle, and the claim's ``book_time`` (also server time) is compared with it. Throughput:
N trials are queued at once and the span from the first claim to the last result is timed with
server timestamps, so worker start-up is excluded.
"""
from __future__ import annotations

import os
import sys

# this file is named queue.py: keep its directory from shadowing the stdlib's queue module
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(_here).parents[1]
sys.path.insert(0, str(REPO / "tests"))


def trivial(params):
    return params["x"] ** 2


def queue_trials(trials, domain, n, state=0):
    """Queue ``n`` trials built by rand.suggest; with state 99 they are invisible to workers."""
    from hyperq import rand

    docs = rand.suggest(trials.new_trial_ids(n), domain, trials, random.randrange(2**31))
    for d in docs:
        d["state"] = state
    trials._insert_trial_docs(docs)
    return docs


def start_workers(uri, exp_key, n, poll_interval):
    from mongo_server import worker_cmd, worker_env

    cmd = worker_cmd() + ["--mongo", uri, "--exp-key", exp_key, "--log-level", "WARNING"]
    if poll_interval is not None:
        cmd += ["--poll-interval", str(poll_interval)]
    return [subprocess.Popen(cmd, env=worker_env()) for _ in range(n)]


def stop_workers(procs):
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)


def wait_live(trials, n, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(trials.store.live_workers(trials._exp_key)) >= n:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{n} workers did not register within {timeout} s")


def bench_latency(uri, n_workers, samples, poll_interval):
    from hyperq.base import Domain
    from hyperq.mongo.trials import MongoTrials

    from hyperq import hp

    exp = f"lat-{uuid.uuid4().hex[:6]}"
    trials = MongoTrials(uri, exp_key=exp)
    domain = Domain(trivial, {"x": hp.uniform("x", -1, 1)})
    trials.prepare_fmin(domain)
    procs = start_workers(uri, exp, n_workers, poll_interval)
    lat = []
    try:
        wait_live(trials, n_workers)
        time.sleep(1.0)
        for _ in range(samples):
            (doc,) = queue_trials(trials, domain, 1, state=99)
            key = {"exp_key": exp, "tid": doc["tid"]}
            trials.store.jobs.update_one(key, {"$set": {"state": 0},
                                                               "$currentDate": {"queued_at": True}})
            while True:
                got = trials.store.jobs.find_one(key,
                                                 {"state": 1, "queued_at": 1, "book_time": 1})
                if got["state"] >= 2:
                    break
                time.sleep(0.005)
            lat.append((got["book_time"] - got["queued_at"]).total_seconds() * 1000)
            time.sleep(random.uniform(0.3, 0.6))  # let the workers go idle again
    finally:
        stop_workers(procs)
    lat.sort()
    return {"workers": n_workers, "samples": len(lat), "median_ms": statistics.median(lat),
            "p99_ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "max_ms": lat[-1]}


def bench_throughput(uri, n_workers, n_trials, poll_interval):
    from hyperq import hp
    from hyperq.base import Domain
    from hyperq.mongo.trials import MongoTrials

    exp = f"tp-{uuid.uuid4().hex[:6]}"
    trials = MongoTrials(uri, exp_key=exp)
    domain = Domain(trivial, {"x": hp.uniform("x", -1, 1)})
    trials.prepare_fmin(domain)
    procs = start_workers(uri, exp, n_workers, poll_interval)
    try:
        wait_live(trials, n_workers)
        queue_trials(trials, domain, n_trials)
        jobs = trials.store.jobs
        deadline = time.monotonic() + 600
        while jobs.count_documents({"exp_key": exp, "state": {"$in": [0, 1]}}) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        docs = list(jobs.find({"exp_key": exp}, {"book_time": 1, "refresh_time": 1, "state": 1}))
    finally:
        stop_workers(procs)
    first = min(d["book_time"] for d in docs)
    last = max(d["refresh_time"] for d in docs)
    span = (last - first).total_seconds()
    done = sum(d["state"] == 2 for d in docs)
    return {"workers": n_workers, "trials": done, "seconds": span,
            "trials_per_s": done / span if span else float("inf")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=None, help="server base URI (default: private mongoeco)")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--trials", type=int, default=150, help="trials per throughput run")
    parser.add_argument("--samples", type=int, default=60, help="latency samples")
    parser.add_argument("--latency-workers", default="1,4")
    parser.add_argument("--poll-interval", type=float, default=None,
                        help="passed to the workers (default: the worker's own default)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from mongo_server import MongoServer, mongoeco_python, with_database

    server = None
    base = args.uri
    if base is None:
        python = mongoeco_python()
        if python is None:
            sys.exit("no mongoeco server available; pass --uri")
        server = MongoServer(python, tempfile.mkdtemp(prefix="hyperq-bench-")).start()
        base = server.uri
    uri = with_database(base, f"bench_{uuid.uuid4().hex[:6]}")
    out = {"server": "mongoeco (SQLite engine)" if server else args.uri,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                      f"load {os.getloadavg()[0]:.1f} at start",
           "poll_interval": args.poll_interval, "latency": [], "throughput": []}
    try:
        for n in [int(x) for x in args.latency_workers.split(",")]:
            r = bench_latency(uri, n, args.samples, args.poll_interval)
            out["latency"].append(r)
            print(f"latency  {n} idle worker(s): median {r['median_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms", flush=True)
        for n in [int(x) for x in args.workers.split(",")]:
            r = bench_throughput(uri, n, args.trials, args.poll_interval)
            out["throughput"].append(r)
            print(f"throughput {n} worker(s): {r['trials_per_s']:.1f} trials/s "
                  f"({r['trials']} trials in {r['seconds']:.1f} s)", flush=True)
    finally:
        if server:
            server.stop()
    out["load_at_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
