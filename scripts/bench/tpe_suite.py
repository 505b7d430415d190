#!/usr/bin/env python
"""TPE on a standard suite: COCO's noiseless BBOB functions, side by side (issue 13).

Every selected algorithm runs on the 24 BBOB functions (``--functions``) in the selected
dimensions and instances, with a budget of max(100, 20 x dimension) evaluations (``--evals``
overrides), one seed per (instance, ``--seeds``); the mixed and conditional problems of
problems.py (``--extra``, ``--extra-seeds`` seeds each) are run and reported separately,
because a suite of continuous functions says nothing about categorical and conditional spaces.

Reports
  * the mean rank of each algorithm (1 = best; ties share the average rank) over all
    (function, dimension, instance, seed) cases that every compared algorithm ran, overall and
    per COCO function group;
  * the median normalized regret per group: (best f - f_opt) / (f_ref - f_opt), where f_ref is
    the median f of 1,000 uniform random points of that problem instance (fixed seed), so 1 is
    "as good as a typical random point" and 0 is the optimum;
  * with ``--in-flight 1,8,32``: the same with K trials in flight (suggestions asked for while
    K-1 others are pending, as in tpe_quality.py) for ``--in-flight-libs``, and the ratio of
    each group's median normalized regret at K to the same algorithm's sequential one;
  * the median normalized best-so-far after every 10 evaluations per algorithm and K (runs
    record it as ``curve``), e.g. where a K = 32 run stands against a sequential one.

Optuna's GP sampler costs 20-100 s per run on a shared 2-core machine: ``--gp-dims`` and
``--gp-instances`` restrict it to a subset, and the ranks that include it are computed on that
subset only. Finished runs are appended to ``--results`` (JSON lines) and skipped when the
command is run again, so an interrupted run resumes where it stopped.

Example:
    nice python scripts/bench/tpe_suite.py --processes 2 --results /tmp/suite.jsonl \\
        --in-flight 1,8,32 --in-flight-libs hyperq-tpe,optuna-tpe --gp-dims 2,5 --gp-instances 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import problems as P  # scripts/bench/problems.py

DEFAULT_ALGOS = ["hyperq-tpe", "hyperopt-tpe", "optuna-tpe", "optuna-tpe-indep", "optuna-gp",
                 "optuna-random"]
N_REF = 1000  # random points per problem instance for f_ref


def parse_ints(spec: str) -> list[int]:
    """'1-3,5' -> [1, 2, 3, 5]"""
    out: list[int] = []
    for tok in spec.split(","):
        tok = tok.strip()
        if not tok:
            continue
        if "-" in tok:
            a, b = tok.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(tok))
    return out


def task_key(t: dict) -> str:
    return "%s|%d|%s|%d|%d" % (t["algo"], t["in_flight"], t["problem"], t["seed"], t["evals"])


def make_problem(t: dict):
    if t["problem"].startswith("bbob-"):
        return P.bbob_problem(t["fid"], t["dim"], t["instance"], t["fopt"])
    return P.PROBLEMS[t["problem"]]


def run_one(t: dict) -> dict:
    P.quiet_libraries()
    P.apply_tpe_settings(t.get("tpe_set", ""))
    problem = make_problem(t)
    lib, algo = P.ALGOS[t["algo"]]
    k, n, seed = t["in_flight"], t["evals"], t["seed"]
    t0 = time.perf_counter()
    if lib == "optuna":
        losses = P.run_optuna(algo, problem, n, seed, k=k)
    else:
        hl = P.load_hyperopt_style(lib)
        losses = (P.run_fmin(hl, algo, problem, n, seed) if k <= 1
                  else P.run_inflight(hl, algo, problem, n, seed, k))
    best = min(losses)
    out = dict(t)
    out.update(best=best, regret=max(problem.regret(best), 0.0),
               seconds=time.perf_counter() - t0, key=task_key(t))
    # best-so-far after every 10 evaluations (in completion order), for regret-vs-budget curves
    out["curve"] = [max(problem.regret(min(losses[:i])), 0.0)
                    for i in range(10, len(losses) + 1, 10)]
    if "fref" in t:
        scale = max(t["fref"] - t["fopt"], 1e-300)
        out["nregret"] = out["regret"] / scale
        out["curve"] = [c / scale for c in out["curve"]]
    return out


def bbob_reference(fid: int, dim: int, inst: int) -> tuple[float, float]:
    """(f_opt, f_ref) of a BBOB problem instance."""
    import numpy as np

    fopt = P.bbob_optimum(fid, dim, inst)
    fun = P.bbob_function(fid, dim, inst)
    xs = np.random.default_rng(12345).uniform(-5.0, 5.0, size=(N_REF, dim))
    return fopt, float(np.median([fun(x) for x in xs]))


def mean_ranks(cases: dict, algos: list[str]) -> tuple[dict, int]:
    """cases: {case: {algo: value}}; ranks among ``algos`` on the cases that all of them ran."""
    sums = {a: 0.0 for a in algos}
    n = 0
    for vals in cases.values():
        if not all(a in vals for a in algos):
            continue
        n += 1
        xs = sorted(algos, key=lambda a: vals[a])
        i = 0
        while i < len(xs):
            j = i
            while j + 1 < len(xs) and vals[xs[j + 1]] <= vals[xs[i]] + 1e-12 * abs(vals[xs[i]]):
                j += 1
            for a in xs[i:j + 1]:
                sums[a] += (i + j) / 2.0 + 1.0
            i = j + 1
    return {a: (sums[a] / n if n else float("nan")) for a in algos}, n


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    ax = abs(x)
    if ax != 0 and (ax < 1e-3 or ax >= 1e4):
        return "%.2e" % x
    return "%.4f" % x if ax < 0.1 else "%.3f" % x


def row_name(algo: str, k: int) -> str:
    return algo if k == 1 else "%s K=%d" % (algo, k)


def report_bbob(results: list[dict], seq_algos: list[str], ks: list[int],
                inflight: list[str]) -> None:
    bb = [r for r in results if r["problem"].startswith("bbob-")]
    if not bb:
        return
    groups = list(P.BBOB_GROUPS)
    cases: dict = {}  # (k, group or None) -> {case: {algo: nregret}}
    for r in bb:
        case = (r["problem"], r["seed"])
        g = P.BBOB_GROUP_OF[r["fid"]]
        for key in ((r["in_flight"], None), (r["in_flight"], g)):
            cases.setdefault(key, {}).setdefault(case, {})[r["algo"]] = r["nregret"]
    seq = cases.get((1, None), {})
    dims = sorted({r["dim"] for r in bb})
    print()
    print("## BBOB, sequential: mean rank (1 = best) over function x dimension x instance x seed,"
          " overall and per group")
    without_gp = [a for a in seq_algos if a != "optuna-gp"]
    sets = [("all but optuna-gp", without_gp)]
    has_gp = any("optuna-gp" in v for v in seq.values())
    if has_gp:
        sets.append(("all, on the optuna-gp subset", seq_algos))
    for title, algos in sets:
        overall, n = mean_ranks(seq, algos)
        per = {g: mean_ranks(cases.get((1, g), {}), algos) for g in groups}
        print()
        print("%s (%d cases; dimensions %s)" % (title, n, ",".join(map(str, dims))))
        print()
        P.table_header(["algorithm", "mean rank"] + ["%s (%d)" % (g, per[g][1]) for g in groups])
        for a in sorted(algos, key=lambda a: overall[a]):
            P.table_row([a, "%.2f" % overall[a]] + ["%.2f" % per[g][0][a] for g in groups])

    def med_table(algos_k: list[tuple[str, int]], restrict: set | None = None) -> dict:
        out = {}
        for a, k in algos_k:
            row = {}
            for g in groups + [None]:
                xs = [v[a] for c, v in cases.get((k, g), {}).items()
                      if a in v and (restrict is None or c in restrict)]
                row[g] = statistics.median(xs) if xs else float("nan")
            out[(a, k)] = row
        return out

    print()
    print("## BBOB: median normalized regret per group ((best - f_opt) / (f_ref - f_opt); "
          "f_ref = median of 1,000 random points; lower is better)")
    print()
    rows = [(a, 1) for a in without_gp] + [(a, k) for k in ks if k > 1 for a in inflight]
    meds = med_table(rows)
    P.table_header(["algorithm", "all"] + groups)
    for a, k in rows:
        P.table_row([row_name(a, k), fmt(meds[(a, k)][None])]
                    + [fmt(meds[(a, k)][g]) for g in groups])
    if has_gp:
        gp_cases = {c for c, v in seq.items() if "optuna-gp" in v}
        print()
        print("On the optuna-gp subset (%d cases):" % len(gp_cases))
        print()
        meds_gp = med_table([(a, 1) for a in seq_algos], gp_cases)
        P.table_header(["algorithm", "all"] + groups)
        for a in seq_algos:
            P.table_row([a, fmt(meds_gp[(a, 1)][None])] + [fmt(meds_gp[(a, 1)][g]) for g in groups])
    if len(ks) > 1:
        print()
        print("## BBOB, trials in flight: median normalized regret at K / the same algorithm's "
              "sequential one (<= 1.3 is the issue-13 target)")
        print()
        P.table_header(["algorithm", "all"] + groups)
        for k in ks:
            if k == 1:
                continue
            for a in inflight:
                base = meds.get((a, 1))
                cur = meds.get((a, k))
                if base is None or cur is None:
                    continue
                P.table_row([row_name(a, k)] + ["%.2f" % (cur[g] / base[g]) if base[g] > 0
                                                else "-" for g in [None] + groups])
        print()
        print("Mean rank among the algorithms run with K in flight, at each K:")
        print()
        P.table_header(["K", "cases"] + inflight)
        for k in ks:
            if k == 1:
                continue
            ranks, n = mean_ranks(cases.get((k, None), {}), inflight)
            P.table_row([str(k), str(n)] + ["%.2f" % ranks[a] for a in inflight])


def report_curves(results: list[dict], seq_algos: list[str], ks: list[int],
                  inflight: list[str]) -> None:
    """Median normalized best-so-far after every 10 evaluations (BBOB runs that recorded a
    curve), per algorithm and K: how many evaluations K trials in flight need to reach what
    the sequential run has after n."""
    bb = [r for r in results if r["problem"].startswith("bbob-") and r.get("curve")]
    if not bb:
        return
    by: dict = {}
    for r in bb:
        by.setdefault((r["algo"], r["in_flight"], r["evals"]), []).append(r["curve"])
    rows = [(a, 1) for a in seq_algos] + [(a, k) for k in ks if k > 1 for a in inflight]
    for evals in sorted({r["evals"] for r in bb}):
        present = [(a, k) for a, k in rows if (a, k, evals) in by]
        if not present:
            continue
        steps = list(range(10, evals + 1, 10))
        if len(steps) > 10:
            steps = [n for n in steps if n % (evals // 10) == 0]
        print()
        print("## BBOB: median normalized best-so-far after n of %d evaluations (runs with a "
              "recorded curve)" % evals)
        print()
        P.table_header(["algorithm", "runs"] + ["n=%d" % n for n in steps])
        for a, k in present:
            curves = by[(a, k, evals)]
            P.table_row([row_name(a, k), str(len(curves))]
                        + [fmt(statistics.median(c[n // 10 - 1] for c in curves)) for n in steps])


def report_extra(results: list[dict], algos: list[str], ks: list[int],
                 inflight: list[str]) -> None:
    ex = [r for r in results if not r["problem"].startswith("bbob-")]
    if not ex:
        return
    probs = sorted({r["problem"] for r in ex})
    print()
    print("## Mixed and conditional spaces (reported separately): median regret [IQR]")
    print()
    rows = [(a, 1) for a in algos] + [(a, k) for k in ks if k > 1 for a in inflight]
    by = {}
    for r in ex:
        by.setdefault((r["algo"], r["in_flight"], r["problem"]), []).append(r["regret"])
    P.table_header(["algorithm"] + probs)
    for a, k in rows:
        cells = []
        for p in probs:
            xs = sorted(by.get((a, k, p), []))
            if not xs:
                cells.append("-")
                continue
            q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
            cells.append("%s [%s–%s] (%d)" % (fmt(statistics.median(xs)), fmt(q[0]), fmt(q[2]),
                                              len(xs)))
        P.table_row([row_name(a, k)] + cells)
    print()
    print("Mean rank per problem (sequential algorithms; seeds all of them ran):")
    print()
    P.table_header(["algorithm"] + probs)
    ranks = {}
    for p in probs:
        cases = {}
        for r in ex:
            if r["problem"] == p and r["in_flight"] == 1:
                cases.setdefault(r["seed"], {})[r["algo"]] = r["regret"]
        ranks[p] = mean_ranks(cases, [a for a in algos if any(a in v for v in cases.values())])[0]
    for a in algos:
        P.table_row([a] + ["%.2f" % ranks[p][a] if a in ranks[p] else "-" for p in probs])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", default="1-24", help="BBOB function ids, e.g. 1-24 or 1,8,15")
    ap.add_argument("--dims", default="2,5,10")
    ap.add_argument("--instances", default="1-3", help="COCO instance indices (default 1-3)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per instance (default 1)")
    ap.add_argument("--evals", type=int, default=0,
                    help="evaluations per run (default: max(100, 20 x dimension))")
    ap.add_argument("--libs", default="", help="algorithms (default %s)" % ",".join(DEFAULT_ALGOS))
    ap.add_argument("--gp-dims", default="", help="dimensions optuna-gp runs (default: all)")
    ap.add_argument("--gp-instances", default="", help="instances optuna-gp runs (default: all)")
    ap.add_argument("--in-flight", default="1", help="comma list of K, e.g. 1,8,32")
    ap.add_argument("--in-flight-libs", default="hyperq-tpe,optuna-tpe",
                    help="algorithms run with K > 1 (default %(default)s)")
    ap.add_argument("--extra", default="mixed,conditional",
                    help="problems.py problems run and reported separately ('' for none)")
    ap.add_argument("--extra-seeds", type=int, default=20)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--results", default="",
                    help="JSON-lines cache of finished runs (resume); a comma list reads all "
                         "and appends to the first (e.g. baselines kept apart from hyperq runs "
                         "of several revisions)")
    ap.add_argument("--report-only", action="store_true", help="only report --results")
    ap.add_argument("--tpe-set", default="",
                    help="override hyperq.tpe constants, e.g. LOCAL_SCALE=0.1 (ablations: use a "
                         "--results file of its own for the hyperq rows)")
    args = ap.parse_args(argv)

    P.quiet_libraries()
    algos, _skipped = P.select_available(args.libs, DEFAULT_ALGOS)
    ks = parse_ints(args.in_flight)
    inflight = [a for a in P.select_algos(args.in_flight_libs, algos) if a in algos]
    fids, dims, insts = parse_ints(args.functions), parse_ints(args.dims), parse_ints(args.instances)
    gp_dims = set(parse_ints(args.gp_dims)) if args.gp_dims else set(dims)
    gp_insts = set(parse_ints(args.gp_instances)) if args.gp_instances else set(insts)

    tasks = []
    refs: dict = {}
    for fid in fids:
        for dim in dims:
            for inst in insts:
                for j in range(args.seeds):
                    for k in ks:
                        for a in (algos if k == 1 else inflight):
                            if a == "optuna-gp" and (k > 1 or dim not in gp_dims
                                                     or inst not in gp_insts):
                                continue
                            tasks.append(dict(algo=a, in_flight=k,
                                              problem="bbob-f%02d-d%d-i%d" % (fid, dim, inst),
                                              fid=fid, dim=dim, instance=inst,
                                              seed=100 * inst + j,
                                              evals=args.evals or max(100, 20 * dim)))
    extra = [p.strip() for p in args.extra.split(",") if p.strip()]
    for p in extra:
        for s in range(args.extra_seeds):
            for k in ks:
                for a in (algos if k == 1 else inflight):
                    if a == "optuna-gp" and k > 1:
                        continue
                    tasks.append(dict(algo=a, in_flight=k, problem=p, seed=s,
                                      evals=args.evals or 100))

    done: dict[str, dict] = {}
    files = [f for f in args.results.split(",") if f]
    for path in files:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    done.setdefault(r["key"], r)
    todo = [t for t in tasks if task_key(t) not in done]
    for t in todo:
        if args.tpe_set and t["algo"].startswith("hyperq"):
            t["tpe_set"] = args.tpe_set
    env = P.environment()
    print("# %s" % P.fmt_env(env))
    print("# BBOB functions %s, dims %s, instances %s, %d seed(s) each; optuna-gp on dims %s, "
          "instances %s; extra %s x %d seeds; algos %s; K %s (%s)"
          % (args.functions, args.dims, args.instances, args.seeds, sorted(gp_dims),
             sorted(gp_insts), ",".join(extra) or "-", args.extra_seeds, ",".join(algos),
             args.in_flight, ",".join(inflight)))
    if args.tpe_set:
        print("# hyperq.tpe settings overridden: %s" % args.tpe_set)
    print("# %d runs, %d already in %s, %d to do" % (len(tasks), len(tasks) - len(todo),
                                                     args.results or "-", len(todo)))
    if args.report_only:
        todo = []
    if todo and not args.report_only:
        for t in todo:
            if t["problem"].startswith("bbob-"):
                ref = (t["fid"], t["dim"], t["instance"])
                if ref not in refs:
                    refs[ref] = bbob_reference(*ref)
                t["fopt"], t["fref"] = refs[ref]
        # optuna-gp last (if it is interrupted, the rest is complete), long runs first
        todo.sort(key=lambda t: (t["algo"] == "optuna-gp", -t["evals"]))
        out = open(files[0], "a") if files else None
        t0 = time.perf_counter()

        def record(i, r):
            done[r["key"]] = r
            if out:
                out.write(json.dumps(r) + "\n")
                out.flush()
            if (i + 1) % 25 == 0 or r["algo"] == "optuna-gp":
                print("#   %d/%d runs, %.0f s (last: %s %s %.1f s)"
                      % (i + 1, len(todo), time.perf_counter() - t0, r["algo"], r["problem"],
                         r["seconds"]), file=sys.stderr, flush=True)

        if args.processes > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(args.processes, maxtasksperchild=200) as pool:
                for i, r in enumerate(pool.imap_unordered(run_one, todo, chunksize=1)):
                    record(i, r)
        else:
            for i, t in enumerate(todo):
                record(i, run_one(t))
        if out:
            out.close()
    keys = {task_key(t) for t in tasks}
    results = [r for k, r in done.items() if k in keys]
    report_bbob(results, algos, ks, inflight)
    report_curves(results, algos, ks, inflight)
    report_extra(results, algos, ks, inflight)


if __name__ == "__main__":
    main()
