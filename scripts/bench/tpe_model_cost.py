#!/usr/bin/env python
"""What a TPE setting costs per suggestion: hyperq's TPE with its defaults and with --tpe-set,
timed interleaved (one suggestion each, in turn) on the same pre-filled history, so that a
machine whose speed drifts during the run slows both alike.

The history is N completed random trials of a problems.py space (default mixed10, as in
tpe_overhead.py); the suggestions are not added to it. Reports the median CPU time per
suggestion of each and their ratio.

Example (what model steps cost):
    nice python scripts/bench/tpe_model_cost.py --tpe-set MODEL_FRACTION=0 --suggestions 300
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import problems as P  # scripts/bench/problems.py


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tpe-set", required=True, help="the alternative, e.g. MODEL_FRACTION=0")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--suggestions", type=int, default=300, help="timed suggestions of each")
    ap.add_argument("--space", default="mixed10")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import numpy as np

    P.quiet_libraries()
    lib = P.load_hyperopt_style("hyperq")
    tpe = importlib.import_module(P.HYPERQ_MODULE + ".tpe")
    names = [item.split("=")[0] for item in args.tpe_set.split(",")]
    defaults = ",".join("%s=%s" % (n, getattr(tpe, n)) for n in names)
    problem = P.PROBLEMS[args.space]
    print("# %s" % P.fmt_env(P.environment()))
    print("# space %s; defaults %s against %s; %d suggestions each, interleaved"
          % (problem.name, defaults, args.tpe_set, args.suggestions))
    print("| history | defaults, ms | %s, ms | ratio |" % args.tpe_set)
    print("|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        trials, domain, _space = P.prefill_hyperopt_style(lib, problem, n, args.seed)
        algo = lib.algo("tpe")
        rng = np.random.default_rng(args.seed)
        times: dict[str, list[float]] = {defaults: [], args.tpe_set: []}
        for _ in range(args.suggestions):
            for setting in times:
                P.apply_tpe_settings(setting)
                t0 = time.process_time()
                algo(trials.new_trial_ids(1), domain, trials, int(rng.integers(2 ** 31 - 1)))
                times[setting].append(time.process_time() - t0)
        P.apply_tpe_settings(defaults)
        a, b = (statistics.median(times[s]) * 1e3 for s in (defaults, args.tpe_set))
        print("| %d | %.2f | %.2f | %.2f |" % (n, a, b, b / a))


if __name__ == "__main__":
    main()
