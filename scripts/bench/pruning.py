#!/usr/bin/env python
"""Pruning: best loss per unit of total compute, with and without each pruner (issue 14).

Every method gets the same total compute budget, counted in training steps (epochs), a
machine-independent unit: trials are asked one after the other, trained step by step with a
report after each step, and stopped when the pruner says so or at ``max_steps``; the run ends
when the budget is spent. The best loss of a run is the best *final* value of a trial that ran
to ``max_steps`` (a pruned trial's partial value does not count).

Methods: hyperq TPE (ask-and-tell, ``hyperq.AskTell``) without pruner, with MedianPruner,
ASHAPruner and HyperbandPruner; Optuna TPE (default sampler) without pruner, with its
MedianPruner and HyperbandPruner. Library defaults everywhere, except ``max_resource`` (Optuna's
Hyperband and hyperq's ASHA/Hyperband are told ``max_steps``).

Problems:
- ``curves``: a synthetic learning-curve family on 4 parameters in [0, 1]: the final loss is a
  weighted quadratic (optimum 0), the curve decays to it as ``A(x) * step**-r(x)`` with a
  parameter-dependent height and rate (curves cross: some configurations start badly and end
  well) plus N(0, 0.01) noise per step; 81 steps.
- ``sgd-digits``: scikit-learn ``SGDClassifier.partial_fit`` on the digits data set that ships
  with scikit-learn (1,437 training / 360 validation images), one epoch per step, validation
  error reported; alpha, eta0, learning rate schedule, loss, penalty; 27 epochs.

For each seed the *target* is the best loss hyperq reaches without pruning on the whole budget;
the table gives, per method, the median [IQR over seeds] best loss at 1/3, 1/2 and all of the
budget, and the median fraction of the budget used to reach the target (``-`` when the median
seed did not reach it; ``reached`` counts the seeds that did).

Example:
    nice python scripts/bench/pruning.py --problem curves --seeds 10 --budget 40
    nice python scripts/bench/pruning.py --problem sgd-digits --seeds 5 --budget 30
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings

import numpy as np

import problems as P  # scripts/bench/problems.py

METHODS = ["hyperq-none", "hyperq-median", "hyperq-asha", "hyperq-hyperband",
           "optuna-none", "optuna-median", "optuna-hyperband"]


# -- problems ---------------------------------------------------------------------------------
class Curves:
    """Synthetic learning curves; see the module docstring."""

    name = "curves"
    max_steps = 81
    weights = np.array([4.0, 2.0, 1.0, 0.5])
    center = np.array([0.3, 0.7, 0.5, 0.2])

    def hyperq_space(self, hp):
        return {f"x{i}": hp.uniform(f"x{i}", 0.0, 1.0) for i in range(4)}

    def optuna_params(self, trial):
        return {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(4)}

    def curve(self, params, seed):
        x = np.array([params[f"x{i}"] for i in range(4)])
        final = float(np.dot(self.weights, (x - self.center) ** 2))
        height = 0.5 + 2.0 * x[2]            # x2 makes a curve start high ...
        rate = 0.3 + 1.2 * x[3]              # ... x3 makes it fall fast
        rng = np.random.default_rng([seed, int(x[0] * 1e9), int(x[1] * 1e9)])
        for step in range(1, self.max_steps + 1):
            yield final + height * step ** -rate + float(rng.normal(0.0, 0.01))


class SGDDigits:
    """``SGDClassifier.partial_fit`` on sklearn's digits, one epoch per step."""

    name = "sgd-digits"
    max_steps = 27

    def __init__(self):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        X, y = load_digits(return_X_y=True)
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=0,
                                                  stratify=y)
        scaler = StandardScaler().fit(X_tr)
        self.X_tr, self.X_va = scaler.transform(X_tr), scaler.transform(X_va)
        self.y_tr, self.y_va = y_tr, y_va
        self.classes = np.unique(y)

    def hyperq_space(self, hp):
        return {
            "alpha": hp.loguniform("alpha", math.log(1e-7), math.log(1e-1)),
            "eta0": hp.loguniform("eta0", math.log(1e-5), math.log(1.0)),
            "learning_rate": hp.choice("learning_rate", ["constant", "invscaling", "adaptive"]),
            "loss": hp.choice("loss", ["hinge", "log_loss", "modified_huber"]),
            "penalty": hp.choice("penalty", ["l2", "l1"]),
        }

    def optuna_params(self, trial):
        return {
            "alpha": trial.suggest_float("alpha", 1e-7, 1e-1, log=True),
            "eta0": trial.suggest_float("eta0", 1e-5, 1.0, log=True),
            "learning_rate": trial.suggest_categorical("learning_rate",
                                                       ["constant", "invscaling", "adaptive"]),
            "loss": trial.suggest_categorical("loss", ["hinge", "log_loss", "modified_huber"]),
            "penalty": trial.suggest_categorical("penalty", ["l2", "l1"]),
        }

    def curve(self, params, seed):
        from sklearn.linear_model import SGDClassifier

        model = SGDClassifier(random_state=seed, **params)
        rng = np.random.default_rng(seed)
        n = len(self.y_tr)
        for _ in range(self.max_steps):
            order = rng.permutation(n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.partial_fit(self.X_tr[order], self.y_tr[order], classes=self.classes)
            yield 1.0 - float(model.score(self.X_va, self.y_va))


PROBLEMS = {"curves": Curves, "sgd-digits": SGDDigits}


# -- one run ----------------------------------------------------------------------------------
class Budget:
    """Counts steps; records (steps so far, best final loss so far) after each full trial."""

    def __init__(self, total):
        self.total, self.used, self.best = total, 0, math.inf
        self.trace = []  # (steps used, best final loss)
        self.n_trials = self.n_pruned = 0

    def left(self):
        return self.used < self.total

    def step(self):
        self.used += 1

    def finished(self, loss):
        self.n_trials += 1
        if loss < self.best:
            self.best = loss
        self.trace.append((self.used, self.best))

    def pruned(self):
        self.n_trials += 1
        self.n_pruned += 1


def run_hyperq(method, problem, budget, seed):
    import hyperq
    from hyperq import pruners

    make = {"none": lambda: None, "median": pruners.MedianPruner,
            "asha": lambda: pruners.ASHAPruner(max_resource=problem.max_steps),
            "hyperband": lambda: pruners.HyperbandPruner(max_resource=problem.max_steps)}
    opt = hyperq.AskTell(problem.hyperq_space(hyperq.hp), algo=hyperq.tpe.suggest,
                         pruner=make[method.split("-", 1)[1]](), rstate=seed)
    while budget.left():
        trial = opt.ask()
        value, stopped = math.inf, False
        for step, value in enumerate(problem.curve(trial.params, seed * 100003 + trial.tid), 1):
            budget.step()
            if opt.report(trial, step, value):
                opt.tell(trial, pruned=True)
                budget.pruned()
                stopped = True
                break
            if not budget.left():
                stopped = True
                break
        if not stopped:
            opt.tell(trial, value)
            budget.finished(value)


def run_optuna(method, problem, budget, seed):
    import optuna

    make = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
            "hyperband": lambda: optuna.pruners.HyperbandPruner(max_resource=problem.max_steps)}
    # a fixed study name: Optuna's Hyperband puts a trial in a bracket by a hash of the study
    # name and trial number, so a random name would make its runs irreproducible
    study = optuna.create_study(study_name=f"pruning-{problem.name}-{seed}",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=make[method.split("-", 1)[1]]())
    while budget.left():
        trial = study.ask()
        params = problem.optuna_params(trial)
        value, stopped = math.inf, False
        for step, value in enumerate(problem.curve(params, seed * 100003 + trial.number), 1):
            budget.step()
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                budget.pruned()
                stopped = True
                break
            if not budget.left():
                stopped = True
                break
        if not stopped:
            study.tell(trial, value)
            budget.finished(value)
        elif trial.number not in {t.number for t in study.trials if t.state.is_finished()}:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def run_one(task):
    method, problem_name, total, seed = task
    P.quiet_libraries()
    problem = PROBLEMS[problem_name]()
    budget = Budget(total)
    t0 = time.perf_counter()
    (run_hyperq if method.startswith("hyperq") else run_optuna)(method, problem, budget, seed)
    return {"method": method, "seed": seed, "trace": budget.trace, "n_trials": budget.n_trials,
            "n_pruned": budget.n_pruned, "seconds": time.perf_counter() - t0}


# -- summary ----------------------------------------------------------------------------------
def best_at(trace, steps):
    best = math.inf
    for used, b in trace:
        if used > steps:
            break
        best = b
    return best


def steps_to(trace, target):
    for used, b in trace:
        if b <= target:
            return used
    return None


def fmt_q(xs):
    xs = sorted(x for x in xs)
    if not xs or all(math.isinf(x) for x in xs):
        return "-"
    q = np.percentile(xs, [25, 50, 75])
    return f"{q[1]:.4g} [{q[0]:.3g}, {q[2]:.3g}]"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="curves")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=40,
                    help="total compute, in full-length trials (budget = this * max_steps)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    total = args.budget * PROBLEMS[args.problem].max_steps
    tasks = [(m, args.problem, total, s) for s in range(args.seeds) for m in methods]
    env = P.environment()
    t0 = time.perf_counter()
    if args.processes > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            results = pool.map(run_one, tasks)
    else:
        results = [run_one(t) for t in tasks]
    by = {}
    for r in results:
        by.setdefault(r["method"], {})[r["seed"]] = r
    targets = {s: by["hyperq-none"][s]["trace"][-1][1] if by.get("hyperq-none", {}).get(s)
               and by["hyperq-none"][s]["trace"] else None for s in range(args.seeds)}
    print(f"Problem {args.problem}: budget {total} steps ({args.budget} full-length trials of "
          f"{PROBLEMS[args.problem].max_steps} steps), {args.seeds} seeds; {P.fmt_env(env)}; "
          f"{time.perf_counter() - t0:.0f} s\n")
    P.table_header(["method", "best at 1/3 budget", "best at 1/2 budget", "best at full budget",
                    "budget to reach target", "reached", "trials (pruned)"])
    for m in methods:
        runs = [by[m][s] for s in range(args.seeds)]
        cells = [m]
        for frac in (1 / 3, 1 / 2, 1.0):
            cells.append(fmt_q([best_at(r["trace"], frac * total) for r in runs]))
        fracs = []
        for r in runs:
            tgt = targets.get(r["seed"])
            used = steps_to(r["trace"], tgt) if tgt is not None else None
            fracs.append(math.inf if used is None else used / total)
        reached = sum(1 for f in fracs if math.isfinite(f))
        med = statistics.median(fracs)
        cells.append("-" if math.isinf(med) else f"{med:.2f}")
        cells.append(f"{reached}/{len(runs)}")
        cells.append(f"{statistics.median(r['n_trials'] for r in runs):.0f} "
                     f"({statistics.median(r['n_pruned'] for r in runs):.0f})")
        P.table_row(cells)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "args": vars(args), "results": results}, f)


if __name__ == "__main__":
    main()
