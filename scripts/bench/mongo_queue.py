"""Benchmark of the MongoDB queue, hyperq beside hyperopt 0.3.0, on one server in one run.

    nice python scripts/bench/queue.py                     # private mongoeco server
    nice python scripts/bench/queue.py --uri mongodb://host:27017/   # any MongoDB server
    nice python scripts/bench/queue.py --json out.json --hyperopt-python .venv-hyperopt/bin/python

Every process's MongoDB commands are counted with pymongo command monitoring
(``queue_support/counting.py``; connection handshakes and server monitoring are not commands).

- **requests**: fmin, 200 trials of a trivial objective, ``rand.suggest``, 4 workers started
  first; requests per trial in total, per side (driver, workers) and per command.
- **idle**: N idle workers for a window of seconds: requests per second of the whole fleet.
- **latency**: a trial is queued (state set to NEW with the server's ``$currentDate``) while
  N workers are idle; its claim's ``book_time`` (server time) minus that.
- **throughput**: fmin of N trials with 1, 4 and 16 workers started first; trials per second
  of wall time of the fmin call.
- **change streams**: idle load and latency again on SecantusDB (a one-member replica set,
  ``pip install secantusdb``), where workers wait on change streams instead of polling.

hyperopt runs from a separate venv (hyperopt 0.3.0 needs pymongo 3.x): its workers with
``--no-subprocesses --poll-interval=0.1`` (its fastest polling), its driver with the same
``max_queue_len`` as hyperq's default queue (2 per worker).
"""
from __future__ import annotations

import argparse
import collections
import glob
import json
import platform
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent / "queue_support"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(SUPPORT))

from counting import CommandCounter  # noqa: E402


# -- processes ----------------------------------------------------------------------------------
class Fleet:
    """Worker processes run under the command counter; stopped by PID."""

    def __init__(self, counts_dir: str) -> None:
        self.counts_dir = counts_dir
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SUPPORT), str(REPO),
                                                          env.get("PYTHONPATH")]))
        env["HYPERQ_BENCH_COUNTS"] = self.counts_dir
        env.pop("HYPERQ_SECRET", None)
        return env

    def start_hyperq(self, uri: str, exp_key: str, n: int, *extra: str) -> None:
        for _ in range(n):
            cmd = [sys.executable, str(SUPPORT / "counting.py"), "hyperq-worker", "--mongo", uri,
                   "--exp-key", exp_key, "--log-level", "WARNING", *extra]
            self.procs.append(subprocess.Popen(cmd, env=self.env()))

    def start_hyperopt(self, python: str, mongo: str, exp_key: str, n: int) -> None:
        for _ in range(n):
            cmd = [python, str(SUPPORT / "counting.py"), "hyperopt-worker", f"--mongo={mongo}",
                   f"--exp-key={exp_key}", "--no-subprocesses", "--poll-interval=0.1",
                   "--reserve-timeout=3600"]
            # hyperopt's worker writes logfile.txt into its working directory: keep it out of ours
            self.procs.append(subprocess.Popen(cmd, env=self.env(), cwd=self.counts_dir,
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []


def read_counts(counts_dir: str, role: str) -> dict[int, list[tuple[float, dict[str, int]]]]:
    """``{pid: [(time, cumulative counts)]}`` of every process of ``role``."""
    out = {}
    for path in glob.glob(os.path.join(counts_dir, f"{role}-*.jsonl")):
        pid = int(path.rsplit("-", 1)[1].split(".")[0])
        rows = []
        for line in Path(path).read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                rows.append((rec["t"], rec["counts"]))
        out[pid] = rows
    return out


def counts_at(rows: list[tuple[float, dict[str, int]]], t: float) -> dict[str, int]:
    """The last cumulative counts recorded at or before ``t``."""
    best: dict[str, int] = {}
    for stamp, counts in rows:
        if stamp <= t:
            best = counts
    return best


def diff(a: dict[str, int], b: dict[str, int]) -> collections.Counter:
    out = collections.Counter(b)
    out.subtract(a)
    return out


def wait_registered(store, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.registry.count_live(_any()) >= n:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{n} workers did not register within {timeout} s")


def _any():
    from hyperq.mongo.queue import ANY_EXP

    return ANY_EXP


def counting_store(uri: str, counter: CommandCounter):
    import pymongo

    from hyperq.mongo.store import JobStore
    from hyperq.mongo.uri import parse_mongo_uri

    target = parse_mongo_uri(uri)
    client = pymongo.MongoClient(target.uri, event_listeners=[counter], appname="hyperq")
    return JobStore(client, target)


def fresh_db(base: str) -> str:
    from mongo_server import with_database

    return with_database(base, f"bench_{uuid.uuid4().hex[:6]}")


def hyperopt_url(uri: str) -> str:
    """hyperopt's ``mongo://host:port/db/jobs`` for a ``mongodb://host:port/db`` URI."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return f"mongo://{parts.hostname}:{parts.port}{parts.path}/jobs"


# -- phases -------------------------------------------------------------------------------------
def bench_requests_hyperq(base: str, counts_dir: str, n_trials: int, n_workers: int) -> dict:
    from bench_objective import trivial

    from hyperq import fmin, hp, rand
    from hyperq.mongo.trials import MongoTrials

    uri = fresh_db(base)
    fleet = Fleet(counts_dir)
    driver = CommandCounter()
    store = counting_store(uri, driver)
    store.ensure_indexes()
    try:
        fleet.start_hyperq(uri, "req", n_workers)
        wait_registered(store, n_workers)
        time.sleep(1.5)
        before = driver.snapshot()
        t0 = time.time()
        trials = MongoTrials(store, exp_key="req")
        fmin(trivial, {"x": hp.uniform("x", -1, 1)}, algo=rand.suggest, max_evals=n_trials,
             trials=trials, show_progressbar=False)
        t1 = time.time()
        drv = diff(before, driver.snapshot())
        time.sleep(1.2)  # let the workers' counters record t1
    finally:
        fleet.stop()
    workers = collections.Counter()
    for rows in read_counts(counts_dir, "hyperq-worker").values():
        workers.update(diff(counts_at(rows, t0), counts_at(rows, t1)))
    done = sum(t["state"] == 2 for t in trials.trials)
    return summarize_requests("hyperq", drv, workers, done, t1 - t0)


def run_hyperopt_driver(python: str, url: str, exp_key: str, n_trials: int, queue_len: int,
                        fleet: Fleet, timeout: float) -> str:
    """Run hyperopt 0.3.0's fmin under the command counter; its stdout, or an error."""
    out = subprocess.run([python, str(SUPPORT / "counting.py"), "hyperopt-driver", url, exp_key,
                          str(n_trials), str(queue_len)], env=fleet.env(),
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"hyperopt driver failed: {out.stderr[-2000:]}")
    return out.stdout


def bench_requests_hyperopt(base: str, counts_dir: str, python: str, n_trials: int,
                            n_workers: int) -> dict:
    uri = fresh_db(base)
    url = hyperopt_url(uri)
    fleet = Fleet(counts_dir)
    try:
        fleet.start_hyperopt(python, url[len("mongo://"):], "req", n_workers)
        time.sleep(4.0)
        t0 = time.time()
        run_hyperopt_driver(python, url, "req", n_trials, 2 * n_workers, fleet, timeout=1800)
        t1 = time.time()
        time.sleep(1.2)
    finally:
        fleet.stop()
    drv = collections.Counter()
    for rows in read_counts(counts_dir, "hyperopt-driver").values():
        drv.update(rows[-1][1] if rows else {})
    workers = collections.Counter()
    for rows in read_counts(counts_dir, "hyperopt-worker").values():
        workers.update(diff(counts_at(rows, t0), counts_at(rows, t1)))
    return summarize_requests("hyperopt", drv, workers, n_trials, t1 - t0)


def summarize_requests(name: str, driver: collections.Counter, workers: collections.Counter,
                       n: int, seconds: float) -> dict:
    d, w = sum(driver.values()), sum(workers.values())
    return {"library": name, "trials": n, "seconds": seconds,
            "per_trial": (d + w) / n, "driver_per_trial": d / n, "workers_per_trial": w / n,
            "driver_by_command": {k: v / n for k, v in sorted(driver.items()) if v},
            "workers_by_command": {k: v / n for k, v in sorted(workers.items()) if v}}


def bench_idle(base: str, counts_dir: str, n_workers: int, window: float,
               hyperopt_python: str | None = None) -> dict:
    import pymongo

    uri = fresh_db(base)
    fleet = Fleet(counts_dir)
    role = "hyperopt-worker" if hyperopt_python else "hyperq-worker"
    try:
        if hyperopt_python:
            fleet.start_hyperopt(hyperopt_python, hyperopt_url(uri)[len("mongo://"):], "idle",
                                 n_workers)
            time.sleep(6.0)
        else:
            from hyperq.mongo.store import connect_store

            fleet.start_hyperq(uri, "idle", n_workers)
            wait_registered(connect_store(uri), n_workers)
            time.sleep(5.0)
        t0 = time.time()
        time.sleep(window)
        t1 = time.time()
        time.sleep(1.2)
    finally:
        fleet.stop()
    del pymongo
    total = collections.Counter()
    for rows in read_counts(counts_dir, role).values():
        total.update(diff(counts_at(rows, t0), counts_at(rows, t1)))
    span = window
    return {"library": "hyperopt" if hyperopt_python else "hyperq", "workers": n_workers,
            "fleet_requests_per_s": sum(total.values()) / span,
            "by_command_per_s": {k: v / span for k, v in sorted(total.items()) if v}}


def bench_latency(base: str, counts_dir: str, n_workers: int, samples: int) -> dict:
    from bench_objective import trivial

    from hyperq import hp, rand
    from hyperq.base import Domain
    from hyperq.mongo.trials import MongoTrials

    uri = fresh_db(base)
    fleet = Fleet(counts_dir)
    trials = MongoTrials(uri, exp_key="lat")
    domain = Domain(trivial, {"x": hp.uniform("x", -1, 1)})
    trials.prepare_fmin(domain)
    lat = []
    try:
        fleet.start_hyperq(uri, "lat", n_workers)
        wait_registered(trials.store, n_workers)
        time.sleep(3.0)
        jobs = trials.store.jobs
        for _ in range(samples):
            docs = rand.suggest(trials.new_trial_ids(1), domain, trials, random.randrange(2**31))
            docs[0]["state"] = 99  # invisible to workers until queued below
            trials._insert_trial_docs(docs)
            key = {"exp_key": "lat", "tid": docs[0]["tid"]}
            jobs.update_one(key, {"$set": {"state": 0}, "$currentDate": {"queued_at": True}})
            while True:
                got = jobs.find_one(key, {"state": 1, "queued_at": 1, "book_time": 1})
                if got["state"] >= 2:
                    break
                time.sleep(0.01)
            lat.append((got["book_time"] - got["queued_at"]).total_seconds() * 1000)
            time.sleep(random.uniform(0.3, 0.6))  # let the workers go idle again
    finally:
        fleet.stop()
    lat.sort()
    return {"workers": n_workers, "samples": len(lat), "median_ms": statistics.median(lat),
            "p90_ms": lat[int(0.9 * (len(lat) - 1))], "max_ms": lat[-1]}


def bench_throughput_hyperq(base: str, counts_dir: str, n_workers: int, n_trials: int) -> dict:
    from bench_objective import trivial

    from hyperq import fmin, hp, rand
    from hyperq.mongo.trials import MongoTrials

    uri = fresh_db(base)
    fleet = Fleet(counts_dir)
    trials = MongoTrials(uri, exp_key="tp")
    try:
        fleet.start_hyperq(uri, "tp", n_workers)
        wait_registered(trials.store, n_workers)
        time.sleep(1.0)
        t0, start = time.time(), time.perf_counter()
        fmin(trivial, {"x": hp.uniform("x", -1, 1)}, algo=rand.suggest, max_evals=n_trials,
             trials=trials, show_progressbar=False)
        seconds = time.perf_counter() - start
        t1 = time.time()
        time.sleep(1.2)  # let the workers' counters record t1
    finally:
        fleet.stop()
    workers = collections.Counter()
    for rows in read_counts(counts_dir, "hyperq-worker").values():
        workers.update(diff(counts_at(rows, t0), counts_at(rows, t1)))
    return {"library": "hyperq", "workers": n_workers, "trials": n_trials, "seconds": seconds,
            "trials_per_s": n_trials / seconds,
            "worker_requests_per_trial": sum(workers.values()) / n_trials,
            "workers_by_command": {k: v / n_trials for k, v in sorted(workers.items()) if v}}


def bench_throughput_hyperopt(base: str, counts_dir: str, python: str, n_workers: int,
                              n_trials: int) -> dict:
    uri = fresh_db(base)
    url = hyperopt_url(uri)
    fleet = Fleet(counts_dir)
    try:
        fleet.start_hyperopt(python, url[len("mongo://"):], "tp", n_workers)
        time.sleep(4.0)
        out = run_hyperopt_driver(python, url, "tp", n_trials, 2 * n_workers, fleet, timeout=3600)
        seconds = json.loads(out.strip().splitlines()[-1])["seconds"]
    finally:
        fleet.stop()
    return {"library": "hyperopt", "workers": n_workers, "trials": n_trials,
            "seconds": seconds, "trials_per_s": n_trials / seconds}


def bench_change_streams(counts_dir, args) -> dict:
    """Idle load and insert-to-claim latency on SecantusDB (a one-member replica set)."""
    from mongo_server import free_port, secantus_command

    import pymongo

    cmd = secantus_command()
    if cmd is None:
        if args.change_streams == "yes":
            sys.exit("secantusd-py not installed (pip install secantusdb)")
        return {}
    port = free_port()
    data = tempfile.mkdtemp(prefix="hyperq-bench-secantus-")
    proc = subprocess.Popen([cmd, "--host", "127.0.0.1", "--port", str(port), "--storage-path",
                             data, "--log-level", "WARNING"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    out: dict = {"server": "SecantusDB (change streams)", "idle": [], "latency": []}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                pymongo.MongoClient(base, serverSelectionTimeoutMS=1000).admin.command("ping")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        for n in [int(x) for x in args.latency_workers.split(",")]:
            r = bench_latency(base, counts_dir(), n, max(10, args.samples // 2))
            out["latency"].append(r)
            print(f"change streams: latency {n} idle workers: median {r['median_ms']:.1f} ms, "
                  f"p90 {r['p90_ms']:.1f} ms", flush=True)
        n = max(int(x) for x in args.idle_workers.split(","))
        n = min(n, 16)
        r = bench_idle(base, counts_dir(), n, args.idle_window)
        out["idle"].append(r)
        print(f"change streams: idle {n} workers: {r['fleet_requests_per_s']:.1f} requests/s "
              f"{json.dumps(r['by_command_per_s'])}", flush=True)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=None, help="server base URI (default: private mongoeco)")
    parser.add_argument("--phases", default="requests,idle,latency,throughput")
    parser.add_argument("--request-trials", type=int, default=200)
    parser.add_argument("--idle-workers", default="1,4,16,64")
    parser.add_argument("--idle-window", type=float, default=10.0)
    parser.add_argument("--latency-workers", default="1,16")
    parser.add_argument("--samples", type=int, default=40, help="latency samples")
    parser.add_argument("--workers", default="1,4,16", help="throughput worker counts")
    parser.add_argument("--trials", type=int, default=200, help="trials per throughput run")
    parser.add_argument("--hyperopt-python", default=None,
                        help="Python with hyperopt 0.3.0 and pymongo 3.x (default: "
                             ".venv-hyperopt/bin/python if it exists; 'none' to skip)")
    parser.add_argument("--change-streams", default="auto",
                        help="also measure idle load and latency on a SecantusDB server (change "
                             "streams): auto (if secantusd-py is installed), yes, no")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    phases = set(args.phases.split(","))
    hpy = args.hyperopt_python
    if hpy is None and (REPO / ".venv-hyperopt" / "bin" / "python").exists():
        hpy = str(REPO / ".venv-hyperopt" / "bin" / "python")
    if hpy == "none":
        hpy = None

    from mongo_server import MongoServer, mongoeco_python

    server = None
    base = args.uri
    if base is None:
        python = mongoeco_python()
        if python is None:
            sys.exit("no mongoeco server available; pass --uri")
        server = MongoServer(python, tempfile.mkdtemp(prefix="hyperq-bench-")).start()
        base = server.uri
    counts_root = tempfile.mkdtemp(prefix="hyperq-bench-counts-")
    out: dict = {"server": "mongoeco (SQLite engine)" if server else args.uri,
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                            f"load {os.getloadavg()[0]:.1f} at start",
                 "hyperopt": bool(hpy), "requests": [], "idle": [], "latency": [],
                 "throughput": []}

    def counts_dir() -> str:
        return tempfile.mkdtemp(dir=counts_root)

    try:
        if "requests" in phases:
            r = bench_requests_hyperq(base, counts_dir(), args.request_trials, 4)
            out["requests"].append(r)
            print(f"requests hyperq: {r['per_trial']:.2f}/trial (driver "
                  f"{r['driver_per_trial']:.2f}, workers {r['workers_per_trial']:.2f}) "
                  f"{json.dumps(r['driver_by_command'])} {json.dumps(r['workers_by_command'])}",
                  flush=True)
            if hpy:
                r = bench_requests_hyperopt(base, counts_dir(), hpy, args.request_trials, 4)
                out["requests"].append(r)
                print(f"requests hyperopt: {r['per_trial']:.2f}/trial (driver "
                      f"{r['driver_per_trial']:.2f}, workers {r['workers_per_trial']:.2f})",
                      flush=True)
        if "idle" in phases:
            for n in [int(x) for x in args.idle_workers.split(",")]:
                r = bench_idle(base, counts_dir(), n, args.idle_window)
                out["idle"].append(r)
                print(f"idle hyperq {n} workers: {r['fleet_requests_per_s']:.1f} requests/s "
                      f"{json.dumps(r['by_command_per_s'])}", flush=True)
            if hpy:
                r = bench_idle(base, counts_dir(), 4, args.idle_window, hpy)
                out["idle"].append(r)
                print(f"idle hyperopt 4 workers: {r['fleet_requests_per_s']:.1f} requests/s",
                      flush=True)
        if "latency" in phases:
            for n in [int(x) for x in args.latency_workers.split(",")]:
                r = bench_latency(base, counts_dir(), n, args.samples)
                out["latency"].append(r)
                print(f"latency {n} idle workers: median {r['median_ms']:.1f} ms, "
                      f"p90 {r['p90_ms']:.1f} ms", flush=True)
        if "throughput" in phases:
            for n in [int(x) for x in args.workers.split(",")]:
                r = bench_throughput_hyperq(base, counts_dir(), n, args.trials)
                out["throughput"].append(r)
                print(f"throughput hyperq {n} workers: {r['trials_per_s']:.1f} trials/s, worker "
                      f"requests/trial {r['worker_requests_per_trial']:.2f} "
                      f"{json.dumps(r['workers_by_command'])}", flush=True)
                if hpy:
                    r = bench_throughput_hyperopt(base, counts_dir(), hpy, n, args.trials)
                    out["throughput"].append(r)
                    print(f"throughput hyperopt {n} workers: {r['trials_per_s']:.1f} trials/s",
                          flush=True)
        if args.change_streams != "no":
            out["change_streams"] = bench_change_streams(counts_dir, args)
    finally:
        if server:
            server.stop()
        shutil.rmtree(counts_root, ignore_errors=True)
    out["load_at_end"] = os.getloadavg()[0]
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
