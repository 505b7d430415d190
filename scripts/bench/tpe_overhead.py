#!/usr/bin/env python
"""TPE suggestion cost at a given history size (issue 3).

For each size N (default 1,000 and 10,000) the history is pre-filled with N completed random
trials of a trivial objective over 10 mixed parameters (problems.py ``mixed10``; ``--space
mixed8`` for 8), then --suggestions further trials are run one at a time and timed:

  * hyperq / hyperopt: ``rand.suggest`` docs for the history, evaluated and inserted as DONE via
    ``Trials.insert_trial_docs``; then per trial ``tpe.suggest([new_id], domain, trials, seed)``
    (timed as "suggest"), evaluation, ``insert_trial_docs`` + ``refresh`` (all of it: "step");
  * Optuna: the history is a RandomSampler study's trials re-created with ``create_trial`` and
    added with ``study.add_trials``; per trial ``study.ask()`` + the define-by-run
    ``suggest_*`` calls ("suggest"), evaluation and ``study.tell`` ("step").

Reports median ms per suggestion and per step and the ratios to hyperq. Slow library/size
combinations can be skipped with --skip label:N (e.g. hyperopt-tpe:10000).

Example:
    nice python scripts/bench/tpe_overhead.py --sizes 1000,10000 --suggestions 20 \
        --json /tmp/tpe_overhead.json
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import problems as P  # scripts/bench/problems.py

DEFAULT_ALGOS = ["hyperq-tpe", "hyperopt-tpe", "optuna-tpe", "optuna-tpe-indep"]


def bench_hyperopt_style(label, problem, n_hist, n_sugg, seed):
    lib_name, algo = P.ALGOS[label]
    lib = P.load_hyperopt_style(lib_name)
    t0 = time.perf_counter()
    trials, domain, space = P.prefill_hyperopt_style(lib, problem, n_hist, seed)
    fill = time.perf_counter() - t0
    if len(trials.trials) != n_hist:
        raise RuntimeError("%s: prefill gave %d trials" % (label, len(trials.trials)))
    algo_fn = lib.algo(algo)
    done = lib.job_state("DONE")
    import numpy as np

    rng = np.random.default_rng(seed)
    sugg, steps, cpu = [], [], []
    gc.collect()
    for _ in range(n_sugg):
        s0 = time.perf_counter()
        ids = trials.new_trial_ids(1)
        c0 = time.process_time()
        a0 = time.perf_counter()
        docs = list(algo_fn(ids, domain, trials, int(rng.integers(2 ** 31 - 1))))
        a1 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        d = docs[0]
        d["result"] = {"loss": problem.fn(lib.space_eval(space, P.doc_vals(d))),
                       "status": lib.STATUS_OK}
        d["state"] = done
        trials.insert_trial_docs([d])
        trials.refresh()
        s1 = time.perf_counter()
        sugg.append(a1 - a0)
        steps.append(s1 - s0)
    return sugg, steps, cpu, fill


def bench_optuna(label, problem, n_hist, n_sugg, seed):
    variant = P.ALGOS[label][1]
    t0 = time.perf_counter()
    study = P.prefill_optuna(variant, problem, n_hist, seed)
    fill = time.perf_counter() - t0
    if len(study.trials) != n_hist:
        raise RuntimeError("%s: prefill gave %d trials" % (label, len(study.trials)))
    sugg, steps, cpu = [], [], []
    gc.collect()
    for _ in range(n_sugg):
        c0 = time.process_time()
        s0 = time.perf_counter()
        trial = study.ask()
        params = problem.optuna_params(trial)
        a1 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        study.tell(trial, problem.fn(params))
        s1 = time.perf_counter()
        sugg.append(a1 - s0)
        steps.append(s1 - s0)
    return sugg, steps, cpu, fill


def fmt_ratio(r):
    return "%.1fx" % r if r < 10 else "%.0fx" % r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000",
                    help="completed trials in the history, comma list (default %(default)s)")
    ap.add_argument("--suggestions", type=int, default=20,
                    help="timed suggestions per size (default %(default)s)")
    ap.add_argument("--libs", default="",
                    help="comma list of libraries or algorithms (%s); default %s"
                         % (",".join(P.ALGOS), ",".join(DEFAULT_ALGOS)))
    ap.add_argument("--space", default="mixed10", help="problem from problems.py (default mixed10)")
    ap.add_argument("--skip", default="",
                    help="label:N pairs to skip, e.g. hyperopt-tpe:10000,optuna-tpe-indep:10000")
    ap.add_argument("--suggestions-at", default="",
                    help="override --suggestions per label:N, e.g. hyperopt-tpe:10000:5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", default="hyperq-tpe")
    ap.add_argument("--json", help="write raw timings here")
    args = ap.parse_args(argv)

    P.quiet_libraries()
    labels, skipped = P.select_available(args.libs, DEFAULT_ALGOS)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    skip = {tuple(s.strip().split(":")) for s in args.skip.split(",") if s.strip()}
    n_at = {}
    for s in args.suggestions_at.split(","):
        if s.strip():
            lab, n, k = s.strip().split(":")
            n_at[(lab, int(n))] = int(k)
    problem = P.PROBLEMS[args.space]
    env = P.environment()
    print("# %s" % P.fmt_env(env))
    print("# space %s: %s" % (problem.name, problem.description))
    print("# history sizes %s, %d timed suggestions each, algos %s%s"
          % (sizes, args.suggestions, ",".join(labels),
             ("; skipped " + ",".join(":".join(s) for s in sorted(skip))) if skip else ""))

    results = []
    t_start = time.perf_counter()
    for n in sizes:
        for lab in labels:
            if (lab, str(n)) in skip:
                continue
            k = n_at.get((lab, n), args.suggestions)
            fn = bench_optuna if P.ALGOS[lab][0] == "optuna" else bench_hyperopt_style
            sugg, steps, cpu, fill = fn(lab, problem, n, k, args.seed)
            r = {"algo": lab, "history": n, "suggestions": k,
                 "suggest_ms_median": 1e3 * statistics.median(sugg),
                 "suggest_ms_mean": 1e3 * statistics.fmean(sugg),
                 "step_ms_median": 1e3 * statistics.median(steps),
                 "suggest_cpu_ms_median": 1e3 * statistics.median(cpu),
                 "prefill_s": fill, "suggest_ms": [1e3 * x for x in sugg],
                 "step_ms": [1e3 * x for x in steps]}
            results.append(r)
            print("#   N=%d %-17s suggest %8.2f ms (cpu %8.2f)  step %8.2f ms  (prefill %.1f s)"
                  % (n, lab, r["suggest_ms_median"], r["suggest_cpu_ms_median"],
                     r["step_ms_median"], fill),
                  file=sys.stderr, flush=True)

    res = {(r["algo"], r["history"]): r for r in results}
    print()
    print("Cost per suggestion with N completed trials in the history, ms (median of the timed "
          "suggestions; %d parameters). suggest = wall time of the suggestion, cpu = its process "
          "CPU time (less sensitive to other load), step = suggestion + evaluation + "
          "recording the result" % problem.n_params)
    print()
    head = ["algorithm"]
    for n in sizes:
        head += ["suggest @%d" % n, "cpu @%d" % n, "step @%d" % n]
    P.table_header(head)
    for lab in labels:
        cells = [lab]
        for n in sizes:
            r = res.get((lab, n))
            cells += (["skipped"] * 3 if r is None else
                      ["%.2f" % r["suggest_ms_median"], "%.2f" % r["suggest_cpu_ms_median"],
                       "%.2f" % r["step_ms_median"]])
        P.table_row(cells)
    if args.baseline in labels:
        print()
        print("Ratios to %s (> 1: %s is cheaper)" % (args.baseline, args.baseline))
        print()
        head = ["algorithm"]
        for n in sizes:
            head += ["suggest @%d" % n, "cpu @%d" % n, "step @%d" % n]
        P.table_header(head)
        for lab in labels:
            if lab == args.baseline:
                continue
            cells = [lab]
            for n in sizes:
                r, b = res.get((lab, n)), res.get((args.baseline, n))
                if r is None or b is None:
                    cells += ["-"] * 3
                else:
                    cells += [fmt_ratio(r["suggest_ms_median"] / b["suggest_ms_median"]),
                              fmt_ratio(r["suggest_cpu_ms_median"]
                                        / max(b["suggest_cpu_ms_median"], 1e-6)),
                              fmt_ratio(r["step_ms_median"] / b["step_ms_median"])]
            P.table_row(cells)
    print()
    print("# wall time %.0f s" % (time.perf_counter() - t_start))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "args": vars(args), "skipped": skipped,
                       "results": results}, f, indent=1)
        print("# wrote %s" % args.json)


if __name__ == "__main__":
    main()
