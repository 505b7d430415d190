#!/usr/bin/env python
"""TPE quality: median simple regret after N evaluations over many seeds (issue 3).

Runs hyperq's tpe.suggest, hyperopt's tpe.suggest and rand.suggest, and Optuna's TPESampler
(default = multivariate in Optuna 5, and the independent one) on the problems of problems.py,
every run with the same seeds, and prints median regret [IQR] per problem plus ratios to the
baseline (hyperq-tpe by default).

Simple regret = best loss found - known optimum (Rosenbrock: log(1 + best f)).

--in-flight K (comma list, e.g. 1,8) simulates K trials always in flight: for hyperopt-style
libraries through the trial-document API (suggested docs stay NEW/RUNNING in Trials while the
next suggestion is asked for; the oldest is evaluated when K are pending), for Optuna with
ask/tell. K=1 is the plain sequential fmin / study.optimize.

Example:
    nice python scripts/bench/tpe_quality.py --seeds 15 --evals 100 --processes 2 \
        --json /tmp/quality.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import problems as P  # scripts/bench/problems.py

DEFAULT_ALGOS = ["hyperq-tpe", "hyperopt-tpe", "hyperopt-rand", "optuna-tpe", "optuna-tpe-indep"]


def run_one(task):
    label, problem_name, seed, evals, k = task[:5]
    P.quiet_libraries()
    P.apply_tpe_settings(task[5] if len(task) > 5 else "")
    problem = P.PROBLEMS[problem_name]
    lib, algo = P.ALGOS[label]
    t0 = time.perf_counter()
    info = {}
    if lib == "optuna":
        losses = P.run_optuna(algo, problem, evals, seed, k=k)
    else:
        hl = P.load_hyperopt_style(lib)
        if k <= 1:
            losses = P.run_fmin(hl, algo, problem, evals, seed)
        else:
            losses = P.run_inflight(hl, algo, problem, evals, seed, k, check=info)
    elapsed = time.perf_counter() - t0
    best = min(losses)
    return {
        "algo": label, "problem": problem_name, "seed": seed, "evals": len(losses),
        "in_flight": k, "best": best, "regret": problem.regret(best), "seconds": elapsed,
        "duplicates": info.get("duplicates"),
    }


def quantiles(xs):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def fmt_num(x):
    if x is None:
        return "-"
    ax = abs(x)
    if ax != 0 and (ax < 1e-3 or ax >= 1e4):
        return "%.2e" % x
    if ax < 0.1:
        return "%.4f" % x
    return "%.3f" % x


def fmt_ratio(num, den):
    if num is None or den is None:
        return "-"
    if den <= 0:
        return "inf" if num > 0 else "1.0"
    return "%.2f" % (num / den)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=15, help="number of seeds (0..N-1), default 15")
    ap.add_argument("--seed-offset", type=int, default=0)
    ap.add_argument("--evals", type=int, default=100, help="evaluations per run, default 100")
    ap.add_argument("--problems", default=",".join(P.QUALITY_PROBLEMS),
                    help="comma list, default %(default)s")
    ap.add_argument("--libs", default="",
                    help="comma list of libraries (hyperq,hyperopt,optuna) or algorithms (%s); "
                         "default %s" % (",".join(P.ALGOS), ",".join(DEFAULT_ALGOS)))
    ap.add_argument("--in-flight", default="1",
                    help="comma list of K: trials kept in flight (1 = sequential), e.g. 1,8")
    ap.add_argument("--in-flight-libs", default="",
                    help="algorithms run with K>1 (default: all selected)")
    ap.add_argument("--baseline", default="hyperq-tpe", help="ratios are algo/baseline")
    ap.add_argument("--processes", type=int, default=1, help="worker processes (seeds in a pool)")
    ap.add_argument("--json", help="write raw per-run results and summary here")
    ap.add_argument("--tpe-set", default="",
                    help="override hyperq.tpe constants, e.g. PENDING_WEIGHT=1.0,LOCAL_FRACTION=0 "
                         "(ablations; the header line records it)")
    args = ap.parse_args(argv)

    P.quiet_libraries()
    labels, skipped = P.select_available(args.libs, DEFAULT_ALGOS)
    if not labels:
        raise SystemExit("nothing to run")
    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    for p in problems:
        if p not in P.PROBLEMS:
            raise SystemExit("unknown problem %r; known: %s" % (p, ", ".join(P.PROBLEMS)))
    ks = [int(x) for x in args.in_flight.split(",") if x.strip()]
    inflight_labels = (P.select_algos(args.in_flight_libs, labels) if args.in_flight_libs
                       else labels)
    seeds = list(range(args.seed_offset, args.seed_offset + args.seeds))

    tasks = []
    for k in ks:
        for lab in labels:
            if k > 1 and lab not in inflight_labels:
                continue
            for prob in problems:
                for s in seeds:
                    tasks.append((lab, prob, s, args.evals, k, args.tpe_set))

    env = P.environment()
    print("# %s" % P.fmt_env(env))
    if args.tpe_set:
        print("# hyperq.tpe settings overridden: %s" % args.tpe_set)
    print("# %d runs: %d seeds x %d evals, problems %s, algos %s, in-flight %s, %d process(es)"
          % (len(tasks), len(seeds), args.evals, ",".join(problems), ",".join(labels),
             ",".join(map(str, ks)), args.processes))
    t0 = time.perf_counter()
    results = []
    if args.processes > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.processes, maxtasksperchild=50) as pool:
            for i, r in enumerate(pool.imap_unordered(run_one, tasks, chunksize=1)):
                results.append(r)
                if (i + 1) % 25 == 0:
                    print("#   %d/%d runs, %.0f s" % (i + 1, len(tasks), time.perf_counter() - t0),
                          file=sys.stderr, flush=True)
    else:
        for i, t in enumerate(tasks):
            results.append(run_one(t))
            if (i + 1) % 25 == 0:
                print("#   %d/%d runs, %.0f s" % (i + 1, len(tasks), time.perf_counter() - t0),
                      file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0

    # ---- summary ----
    summary = {}
    for r in results:
        key = (r["algo"], r["in_flight"], r["problem"])
        summary.setdefault(key, []).append(r)
    stats = {}
    for key, rs in summary.items():
        q1, med, q3 = quantiles([r["regret"] for r in rs])
        stats[key] = {"median": med, "q1": q1, "q3": q3, "n": len(rs),
                      "seconds_per_run": statistics.median(r["seconds"] for r in rs),
                      "duplicates": sum((r["duplicates"] or 0) for r in rs)
                      if key[1] > 1 and P.ALGOS[key[0]][0] != "optuna" else None}

    rows = [(lab, k) for k in ks for lab in labels if (k == 1 or lab in inflight_labels)]
    base_key = (args.baseline, 1)

    def row_name(lab, k):
        return lab if k == 1 else "%s K=%d" % (lab, k)

    print()
    print("Median simple regret after %d evaluations [IQR], %d seeds "
          "(Rosenbrock: log(1+f)); lower is better" % (args.evals, len(seeds)))
    print()
    print("| algorithm | " + " | ".join(problems) + " |")
    print("|---|" + "---|" * len(problems))
    for lab, k in rows:
        cells = []
        for prob in problems:
            st = stats.get((lab, k, prob))
            cells.append("-" if st is None else "%s [%s–%s]" % (
                fmt_num(st["median"]), fmt_num(st["q1"]), fmt_num(st["q3"])))
        print("| %s | %s |" % (row_name(lab, k), " | ".join(cells)))

    if base_key[0] in labels:
        print()
        print("Ratio of median regret to %s (> 1: %s is better)" % (args.baseline, args.baseline))
        print()
        print("| algorithm | " + " | ".join(problems) + " |")
        print("|---|" + "---|" * len(problems))
        for lab, k in rows:
            if (lab, k) == base_key:
                continue
            cells = []
            for prob in problems:
                st = stats.get((lab, k, prob))
                bs = stats.get((args.baseline, 1, prob))
                cells.append(fmt_ratio(st and st["median"], bs and bs["median"]))
            print("| %s | %s |" % (row_name(lab, k), " | ".join(cells)))
        # per-seed head-to-head wins (same seed, same problem)
        print()
        print("Seeds where %s is better / worse than each algorithm (ties not counted)"
              % args.baseline)
        print()
        print("| algorithm | " + " | ".join(problems) + " |")
        print("|---|" + "---|" * len(problems))
        by = {(r["algo"], r["in_flight"], r["problem"], r["seed"]): r["regret"] for r in results}
        for lab, k in rows:
            if (lab, k) == base_key:
                continue
            cells = []
            for prob in problems:
                w = l_ = 0
                for s in seeds:
                    a = by.get((args.baseline, 1, prob, s))
                    b = by.get((lab, k, prob, s))
                    if a is None or b is None:
                        continue
                    w += a < b - 1e-12
                    l_ += b < a - 1e-12
                cells.append("%d / %d" % (w, l_))
            print("| %s | %s |" % (row_name(lab, k), " | ".join(cells)))

    if any(st["duplicates"] for st in stats.values() if st["duplicates"] is not None):
        print()
        print("Exact duplicate suggestions among pending trials (K>1, summed over seeds):")
        for (lab, k, prob), st in sorted(stats.items()):
            if st["duplicates"]:
                print("  %s K=%d %s: %d" % (lab, k, prob, st["duplicates"]))

    print()
    print("Median seconds per run (%d evals):" % args.evals)
    print()
    print("| algorithm | " + " | ".join(problems) + " |")
    print("|---|" + "---|" * len(problems))
    for lab, k in rows:
        cells = []
        for prob in problems:
            st = stats.get((lab, k, prob))
            cells.append("-" if st is None else "%.2f" % st["seconds_per_run"])
        print("| %s | %s |" % (row_name(lab, k), " | ".join(cells)))
    print()
    print("# wall time %.0f s" % wall)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "args": vars(args), "skipped": skipped,
                       "results": sorted(results, key=lambda r: (r["algo"], r["in_flight"],
                                                                 r["problem"], r["seed"])),
                       "summary": [dict(algo=a, in_flight=k, problem=p, **v)
                                   for (a, k, p), v in sorted(stats.items())],
                       "wall_seconds": wall}, f, indent=1)
        print("# wrote %s" % args.json)


if __name__ == "__main__":
    main()
