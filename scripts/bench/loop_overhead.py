#!/usr/bin/env python
"""Optimizer loop overhead: per-trial cost of fmin / study.optimize with a trivial objective.

Times the whole optimizer loop as a user runs it (hyperq/hyperopt: ``fmin(..., trials=Trials())``;
Optuna: ``study.optimize``) over a space of ~8 mixed parameters (problems.py ``mixed8``: uniform,
loguniform, quniform int, randint, uniformint, choice, normal, qloguniform) with an objective that
costs microseconds, so the time is the library's. hyperq and hyperopt run the identical space code
(each with its own ``hp``); Optuna the define-by-run equivalent.

Reports, for each size N:
  * ms/trial  = wall time of the whole run / N (median over --repeats, seeds 0..repeats-1);
  * marginal  = ms per trial over the last min(100, N/2) trials (time between the objective
                calls), i.e. the cost per trial once the history has N trials;
and the ratios of each library to hyperq's (``--baseline``).

Example:
    nice python scripts/bench/loop_overhead.py --trials 100,1000 --repeats 3 --json /tmp/loop.json
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import problems as P  # scripts/bench/problems.py

DEFAULT_ALGOS = ["hyperq-tpe", "hyperopt-tpe", "optuna-tpe", "optuna-tpe-indep",
                 "hyperq-rand", "hyperopt-rand", "optuna-random"]

PAIRS = [  # (numerator, denominator) ratios printed when both ran
    ("hyperopt-tpe", "hyperq-tpe"),
    ("optuna-tpe", "hyperq-tpe"),
    ("optuna-tpe-indep", "hyperq-tpe"),
    ("hyperopt-rand", "hyperq-rand"),
    ("optuna-random", "hyperq-rand"),
]


def time_run(label, problem, n, seed):
    lib, algo = P.ALGOS[label]
    stamps = []

    def on_eval():
        stamps.append(time.perf_counter())

    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    if lib == "optuna":
        losses = P.run_optuna(algo, problem, n, seed, on_eval=on_eval)
    else:
        losses = P.run_fmin(P.load_hyperopt_style(lib), algo, problem, n, seed, on_eval=on_eval)
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if len(losses) != n:
        raise RuntimeError("%s ran %d trials, expected %d" % (label, len(losses), n))
    tail = max(1, min(100, n // 2))
    marginal = (stamps[-1] - stamps[-1 - tail]) / tail
    return {"algo": label, "trials": n, "seed": seed, "seconds": total,
            "ms_per_trial": 1e3 * total / n, "cpu_ms_per_trial": 1e3 * cpu / n,
            "marginal_ms": 1e3 * marginal, "tail": tail,
            "best": min(losses)}


def fmt_ratio(r):
    return "%.1fx" % r if r < 10 else "%.0fx" % r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", default="100,1000", help="comma list of sizes, default %(default)s")
    ap.add_argument("--repeats", type=int, default=3, help="runs per size (seeds 0..R-1)")
    ap.add_argument("--libs", default="",
                    help="comma list of libraries (hyperq,hyperopt,optuna) or algorithms (%s); "
                         "default all" % ",".join(P.ALGOS))
    ap.add_argument("--space", default="mixed8", help="problem from problems.py (default mixed8)")
    ap.add_argument("--baseline-lib", default="hyperq",
                    help="ratios are other/this library (default hyperq)")
    ap.add_argument("--skip", default="",
                    help="label:N pairs to skip, e.g. hyperopt-tpe:10000,optuna-tpe-indep:10000")
    ap.add_argument("--json", help="write raw results here")
    args = ap.parse_args(argv)

    P.quiet_libraries()
    labels, skipped = P.select_available(args.libs, DEFAULT_ALGOS)
    sizes = [int(x) for x in args.trials.split(",") if x.strip()]
    skip = {tuple(s.split(":")) for s in args.skip.split(",") if s.strip()}
    problem = P.PROBLEMS[args.space]
    env = P.environment()
    print("# %s" % P.fmt_env(env))
    print("# space %s: %s" % (problem.name, problem.description))
    print("# sizes %s, %d repeat(s), algos %s" % (sizes, args.repeats, ",".join(labels)))

    results = []
    t_start = time.perf_counter()
    # interleave libraries inside each repeat so that load changes hit all of them alike
    for n in sizes:
        for rep in range(args.repeats):
            for lab in labels:
                if (lab, str(n)) in skip:
                    continue
                r = time_run(lab, problem, n, seed=rep)
                results.append(r)
                print("#   N=%d rep %d %-17s %8.2f ms/trial (cpu %8.2f)  marginal %8.2f ms"
                      % (n, rep, lab, r["ms_per_trial"], r["cpu_ms_per_trial"],
                         r["marginal_ms"]),
                      file=sys.stderr, flush=True)

    med = {}
    for lab in labels:
        for n in sizes:
            rs = [r for r in results if r["algo"] == lab and r["trials"] == n]
            if rs:
                med[(lab, n)] = (statistics.median(r["ms_per_trial"] for r in rs),
                                 statistics.median(r["marginal_ms"] for r in rs), len(rs),
                                 statistics.median(r["cpu_ms_per_trial"] for r in rs))

    print()
    print("Per-trial cost of the optimizer loop, ms (median of %d run(s); trivial objective, "
          "%d parameters)" % (args.repeats, problem.n_params))
    print()
    print("(ms/trial = wall time / N; cpu = process CPU time / N, less sensitive to other load; "
          "marginal = wall ms per trial over the last %s trials)"
          % "/".join(str(max(1, min(100, n // 2))) for n in sizes))
    print()
    head = ["algorithm"]
    for n in sizes:
        head += ["ms/trial @%d" % n, "cpu @%d" % n, "marginal @%d" % n]
    P.table_header(head)
    for lab in labels:
        cells = [lab]
        for n in sizes:
            m = med.get((lab, n))
            cells += ["-"] * 3 if m is None else ["%.2f" % m[0], "%.2f" % m[3], "%.2f" % m[1]]
        P.table_row(cells)

    base = args.baseline_lib
    pairs = [(a.replace("hyperq", base) if a.startswith("hyperq") else a,
              b.replace("hyperq", base)) for a, b in PAIRS]
    pairs = [(a, b) for a, b in pairs if a != b and a in labels and b in labels]
    if pairs:
        print()
        print("Ratios (> 1: the denominator is cheaper)")
        print()
        head = ["ratio"]
        for n in sizes:
            head += ["per trial @%d" % n, "cpu @%d" % n, "marginal @%d" % n]
        P.table_header(head)
        for a, b in pairs:
            cells = ["%s / %s" % (a, b)]
            for n in sizes:
                ma, mb = med.get((a, n)), med.get((b, n))
                if ma is None or mb is None:
                    cells += ["-"] * 3
                else:
                    cells += [fmt_ratio(ma[0] / mb[0]), fmt_ratio(ma[3] / max(mb[3], 1e-6)),
                              fmt_ratio(ma[1] / mb[1])]
            P.table_row(cells)
    print()
    print("# wall time %.0f s" % (time.perf_counter() - t_start))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "args": vars(args), "skipped": skipped,
                       "results": results,
                       "median": [{"algo": a, "trials": n, "ms_per_trial": v[0],
                                   "marginal_ms": v[1], "runs": v[2], "cpu_ms_per_trial": v[3]}
                                  for (a, n), v in sorted(med.items())]}, f, indent=1)
        print("# wrote %s" % args.json)


if __name__ == "__main__":
    main()
