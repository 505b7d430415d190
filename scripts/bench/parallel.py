#!/usr/bin/env python
"""Parallel backends: per-trial overhead and parallel efficiency.

Runs, in one process and on one local Spark context (``local[P]``):
  * hyperq ``SparkTrials`` and hyperopt's ``SparkTrials`` (same SparkContext, same run),
  * hyperq ``ProcessTrials`` (local worker processes),
  * hyperq ``Trials`` (serial, in-process) as the reference,
and reports for each
  * overhead: a trivial objective (microseconds) at parallelism 1; ``ms/trial`` is the wall
    time of the whole fmin call / N, ``steady`` the time between the first and the last
    trial's completion / (N - 1), i.e. the per-trial cost once workers are up;
  * efficiency: N objectives that sleep ``--sleep`` s at parallelism P;
    efficiency = (N * sleep / P) / wall time (1.0 = perfect).
hyperopt's fmin gets ``max_queue_len=P`` (without it, its trials run one at a time).
Every backend runs one untimed warm-up fmin first (JVM JIT, Python workers). Search algorithm:
random search (``rand.suggest``), so the numbers are the backends', not TPE's.

Example:
    nice python scripts/bench/parallel.py --json /tmp/parallel.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time


BACKENDS = ["serial", "process", "spark-hyperq", "spark-hyperopt"]


def make_spark(parallelism: int):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark import SparkConf, SparkContext

    conf = (SparkConf().setMaster(f"local[{parallelism}]").setAppName("hyperq-bench-parallel")
            .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
            .set("spark.driver.memory", "512m")
            .set("spark.default.parallelism", str(parallelism))
            .set("spark.pyspark.python", sys.executable)
            .set("spark.driver.extraJavaOptions",
                 "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData"))
    sc = SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    from pyspark.sql import SparkSession

    return SparkSession(sc)


def _times(docs) -> list[float]:
    out = []
    for t in docs:
        rt = t.get("refresh_time")
        if t["state"] == 2 and isinstance(rt, datetime.datetime):
            out.append(rt.timestamp())
    return sorted(out)


def run_one(backend: str, n: int, parallelism: int, sleep: float, seed: int, spark) -> dict:
    """One fmin call; returns wall time and steady per-trial time."""
    if backend == "spark-hyperopt":
        import hyperopt as lib
        from hyperopt import SparkTrials as HoSpark
    else:
        import hyperq as lib

    def objective(p):
        if sleep:
            time.sleep(sleep)
        return (p["x"] - 1.0) ** 2

    space = {"x": lib.hp.uniform("x", -5, 5)}
    if backend == "serial":
        trials = lib.Trials()
    elif backend == "process":
        trials = lib.ProcessTrials(n_jobs=parallelism)
    elif backend == "spark-hyperq":
        trials = lib.SparkTrials(parallelism=parallelism, spark_session=spark)
    else:
        trials = HoSpark(parallelism=parallelism, spark_session=spark)
    rstate = __import__("numpy").random.default_rng(seed)
    # hyperopt suggests max_queue_len trials ahead and needs it = parallelism to run them in
    # parallel (its default, 1, serializes the trials); hyperq fills idle slots by itself
    extra = {"max_queue_len": parallelism} if backend == "spark-hyperopt" else {}
    t0 = time.perf_counter()
    lib.fmin(objective, space, algo=lib.rand.suggest, max_evals=n, trials=trials,
             rstate=rstate, show_progressbar=False, **extra)
    wall = time.perf_counter() - t0
    done = _times(trials.trials)
    if len(done) != n:
        raise RuntimeError(f"{backend}: {len(done)} of {n} trials finished")
    span = done[-1] - done[0]
    steady = span / (n - 1) if n > 1 else float("nan")
    row = {"backend": backend, "trials": n, "parallelism": parallelism, "sleep": sleep,
           "seconds": wall, "ms_per_trial": 1e3 * wall / n, "steady_ms": 1e3 * steady}
    if sleep and n > parallelism and span > 0:
        # from the first completion to the last: n - P more trials, ideally in (n-P)*sleep/P
        row["steady_efficiency"] = ((n - parallelism) * sleep / parallelism) / span
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default=",".join(BACKENDS), help="default %(default)s")
    ap.add_argument("--overhead-trials", type=int, default=30)
    ap.add_argument("--efficiency-trials", type=int, default=20)
    ap.add_argument("--hyperopt-trials", type=int, default=20,
                    help="trials for hyperopt's SparkTrials (it is slow), default %(default)s")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--sleep", type=float, default=0.5)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in ("hyperopt", "hyperopt-spark", "py4j", "hyperq"):
        logging.getLogger(name).setLevel(logging.ERROR)
    backends = [b for b in args.backends.split(",") if b]
    spark = make_spark(args.parallelism) if any(b.startswith("spark") for b in backends) \
        else None
    rows = []
    for backend in backends:
        n_over = args.hyperopt_trials if backend == "spark-hyperopt" else args.overhead_trials
        n_eff = min(args.efficiency_trials, args.hyperopt_trials) \
            if backend == "spark-hyperopt" else args.efficiency_trials
        run_one(backend, 2 * args.parallelism, args.parallelism, 0.0, 99, spark)  # warm-up
        over = run_one(backend, n_over, 1, 0.0, 0, spark)
        print(f"{backend:15s} overhead   p=1 {n_over:3d} trials: {over['ms_per_trial']:8.1f} "
              f"ms/trial  steady {over['steady_ms']:8.1f} ms/trial", flush=True)
        par = 1 if backend == "serial" else args.parallelism
        eff = run_one(backend, n_eff, par, args.sleep, 1, spark)
        eff["efficiency"] = (n_eff * args.sleep / par) / eff["seconds"]
        print(f"{backend:15s} efficiency p={par} {n_eff:3d} x {args.sleep}s: "
              f"{eff['seconds']:6.2f} s  efficiency {eff['efficiency']:.2f}  steady "
              f"{eff.get('steady_efficiency', float('nan')):.2f}", flush=True)
        rows += [dict(over, kind="overhead"), dict(eff, kind="efficiency")]
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(),
            "load": os.getloadavg()}
    try:
        import pyspark

        meta["pyspark"] = pyspark.__version__
    except ImportError:
        pass
    print(json.dumps(meta))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    if spark is not None:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
