"""Benchmark problems and library plumbing shared by the scripts in scripts/bench/.

Each problem has
  * ``hp_space(hp, scope)``: the search space written with the hyperopt API; called with
    hyperopt's ``hp``/``scope`` or with hyperq's, so both libraries get the identical space code;
  * ``optuna_params(trial)``: the define-by-run equivalent for Optuna, returning the same
    structure that ``space_eval`` returns for the hyperopt-style space;
  * ``fn(params)``: the objective (deterministic, minimised) taking that structure;
  * ``optimum``: the known minimum of ``fn`` and ``regret(best_loss)`` for reporting.

Optuna has no normal/lognormal distributions: where a space uses ``hp.normal`` the Optuna
version uses a uniform over mu +- 3 sigma (only in the loop/suggestion-cost spaces, never in
the quality problems).

The second half of the module is the plumbing that drives each library the same way:
``load_hyperopt_style`` (hyperq or hyperopt), ``run_fmin``, ``run_inflight`` (K trials always
pending, through the hyperopt trial-document API), ``run_optuna`` and ``prefill_*``.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

LN10 = math.log(10.0)


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


@dataclass
class Problem:
    name: str
    description: str
    hp_space: Callable[..., Any]
    optuna_params: Callable[[Any], Any]
    fn: Callable[[Any], float]
    optimum: float
    log_regret: bool = False  # report log(1 + f) instead of f - optimum
    n_params: int = 0
    tags: tuple = field(default_factory=tuple)

    def regret(self, best_loss: float) -> float:
        if self.log_regret:
            return math.log1p(max(best_loss - self.optimum, 0.0))
        return best_loss - self.optimum


# ---- Branin (2-D) ----------------------------------------------------------------------------

def _branin(p):
    x1, x2 = p["x1"], p["x2"]
    b = 5.1 / (4.0 * math.pi ** 2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


def _branin_space(hp, scope=None):
    return {"x1": hp.uniform("x1", -5.0, 10.0), "x2": hp.uniform("x2", 0.0, 15.0)}


def _branin_optuna(trial):
    return {"x1": trial.suggest_float("x1", -5.0, 10.0), "x2": trial.suggest_float("x2", 0.0, 15.0)}


# ---- Hartmann6 (6-D) -------------------------------------------------------------------------

_H6_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H6_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
_H6_P = tuple(
    tuple(v * 1e-4 for v in row)
    for row in (
        (1312, 1696, 5569, 124, 8283, 5886),
        (2329, 4135, 8307, 3736, 1004, 9991),
        (2348, 1451, 3522, 2883, 3047, 6650),
        (4047, 8828, 8732, 5743, 1091, 381),
    )
)


def _hartmann6(p):
    x = [p["x%d" % i] for i in range(6)]
    total = 0.0
    for alpha, arow, prow in zip(_H6_ALPHA, _H6_A, _H6_P):
        s = 0.0
        for xj, a, pj in zip(x, arow, prow):
            s += a * (xj - pj) ** 2
        total += alpha * math.exp(-s)
    return -total


def _hartmann6_space(hp, scope=None):
    return {"x%d" % i: hp.uniform("x%d" % i, 0.0, 1.0) for i in range(6)}


def _hartmann6_optuna(trial):
    return {"x%d" % i: trial.suggest_float("x%d" % i, 0.0, 1.0) for i in range(6)}


# ---- Rosenbrock (5-D, [-5, 10]^5) ------------------------------------------------------------

def _rosenbrock(p):
    x = [p["x%d" % i] for i in range(5)]
    return sum(100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2 for i in range(4))


def _rosenbrock_space(hp, scope=None):
    return {"x%d" % i: hp.uniform("x%d" % i, -5.0, 10.0) for i in range(5)}


def _rosenbrock_optuna(trial):
    return {"x%d" % i: trial.suggest_float("x%d" % i, -5.0, 10.0) for i in range(5)}


# ---- Mixed space: log-uniform lr, quantized int, uniform float, categorical of 4 -------------
# Optimum 0 at optimizer='adam', lr=10**-3.5, units=200, dropout=0.1+0.4*200/512.
# The best learning rate depends on the optimizer and the best dropout on the width, so the
# parameters interact; each other optimizer has a worse floor.

_MIXED_OPTS = ("sgd", "momentum", "adam", "rmsprop")
_MIXED_LR = {"sgd": (-1.0, 0.30), "momentum": (-2.0, 0.15), "adam": (-3.5, 0.0),
             "rmsprop": (-3.0, 0.08)}


def _mixed(p):
    lr_best, floor = _MIXED_LR[p["optimizer"]]
    units = p["units"]
    return (floor
            + 0.5 * (math.log10(p["lr"]) - lr_best) ** 2
            + ((units - 200.0) / 128.0) ** 2
            + 4.0 * (p["dropout"] - (0.1 + 0.4 * units / 512.0)) ** 2)


def _mixed_space(hp, scope):
    return {
        "lr": hp.loguniform("lr", math.log(1e-5), math.log(1.0)),
        "units": scope.int(hp.quniform("units", 8, 512, 8)),
        "dropout": hp.uniform("dropout", 0.0, 0.8),
        "optimizer": hp.choice("optimizer", list(_MIXED_OPTS)),
    }


def _mixed_optuna(trial):
    return {
        "lr": trial.suggest_float("lr", 1e-5, 1.0, log=True),
        "units": trial.suggest_int("units", 8, 512, step=8),
        "dropout": trial.suggest_float("dropout", 0.0, 0.8),
        "optimizer": trial.suggest_categorical("optimizer", list(_MIXED_OPTS)),
    }


# ---- Conditional space: hp.choice between sub-spaces with their own parameters --------------
# 'linear' is broad and easy (floor 0.35; a random draw is ~0.55), 'kernel' is mediocre
# (floor 0.6), 'tree' holds the global optimum 0 but in a basin that covers a few percent of
# its sub-space, so its random draws look much worse (~1.5) than 'linear' at first.

_KERNELS = ("rbf", "poly", "sigmoid")


def _conditional(p):
    m = p["model"]
    kind = m["type"]
    if kind == "linear":
        return 0.35 + 0.4 * ((m["a_x"] - 1.0) / 5.0) ** 2 + 0.1 * (math.log10(m["a_c"]) / 3.0) ** 2
    if kind == "tree":
        d2 = ((m["b_u"] - 0.7) / 0.15) ** 2 + ((math.log10(m["b_v"]) + 2.0) / 0.8) ** 2
        return 1.6 * (1.0 - math.exp(-0.5 * d2)) + 0.04 * abs(m["b_k"] - 7)
    # kernel
    pen = {"rbf": 0.0, "poly": 0.1, "sigmoid": 0.2}[m["c_kernel"]]
    return 0.6 + pen + 0.3 * (1.0 - math.exp(-(((m["c_g"] - 0.3) / 0.3) ** 2)))


def _conditional_space(hp, scope):
    return {
        "model": hp.choice("model", [
            {"type": "linear",
             "a_x": hp.uniform("a_x", -5.0, 5.0),
             "a_c": hp.loguniform("a_c", math.log(1e-3), math.log(1e3))},
            {"type": "tree",
             "b_u": hp.uniform("b_u", 0.0, 1.0),
             "b_v": hp.loguniform("b_v", math.log(1e-4), math.log(1.0)),
             "b_k": scope.int(hp.quniform("b_k", 1, 12, 1))},
            {"type": "kernel",
             "c_g": hp.uniform("c_g", 0.0, 1.0),
             "c_kernel": hp.choice("c_kernel", list(_KERNELS))},
        ])
    }


def _conditional_optuna(trial):
    kind = trial.suggest_categorical("model", ["linear", "tree", "kernel"])
    if kind == "linear":
        m = {"type": "linear",
             "a_x": trial.suggest_float("a_x", -5.0, 5.0),
             "a_c": trial.suggest_float("a_c", 1e-3, 1e3, log=True)}
    elif kind == "tree":
        m = {"type": "tree",
             "b_u": trial.suggest_float("b_u", 0.0, 1.0),
             "b_v": trial.suggest_float("b_v", 1e-4, 1.0, log=True),
             "b_k": trial.suggest_int("b_k", 1, 12)}
    else:
        m = {"type": "kernel",
             "c_g": trial.suggest_float("c_g", 0.0, 1.0),
             "c_kernel": trial.suggest_categorical("c_kernel", list(_KERNELS))}
    return {"model": m}


# ---- Spaces for the cost benchmarks (trivial objectives) ------------------------------------
# mixed8: uniform, loguniform, quniform (int), randint(low, high), uniformint, choice, normal,
# qloguniform.  mixed10 adds a second uniform and a second choice.

_CHOICE4 = ("sgd", "adam", "rmsprop", "adagrad")
_CHOICE3 = ("relu", "tanh", "gelu")


def _mixed8_space(hp, scope):
    return {
        "lr": hp.loguniform("lr", math.log(1e-5), math.log(1.0)),
        "units": scope.int(hp.quniform("units", 16, 512, 16)),
        "dropout": hp.uniform("dropout", 0.0, 0.7),
        "layers": hp.randint("layers", 1, 6),
        "batch": hp.uniformint("batch", 8, 256),
        "optimizer": hp.choice("optimizer", list(_CHOICE4)),
        "init": hp.normal("init", 0.0, 1.0),
        "wd": hp.qloguniform("wd", math.log(1.0), math.log(1000.0), 1),
    }


def _mixed8_optuna(trial):
    return {
        "lr": trial.suggest_float("lr", 1e-5, 1.0, log=True),
        "units": trial.suggest_int("units", 16, 512, step=16),
        "dropout": trial.suggest_float("dropout", 0.0, 0.7),
        "layers": trial.suggest_int("layers", 1, 5),
        "batch": trial.suggest_int("batch", 8, 256),
        "optimizer": trial.suggest_categorical("optimizer", list(_CHOICE4)),
        "init": trial.suggest_float("init", -3.0, 3.0),
        "wd": float(trial.suggest_int("wd", 1, 1000, log=True)),
    }


def _mixed8(p):
    return (0.5 * (math.log10(p["lr"]) + 3.0) ** 2
            + ((p["units"] - 256) / 256.0) ** 2
            + (p["dropout"] - 0.2) ** 2
            + 0.1 * abs(p["layers"] - 3)
            + abs(p["batch"] - 64) / 256.0
            + (0.0 if p["optimizer"] == "adam" else 0.2)
            + 0.1 * p["init"] ** 2
            + 0.05 * abs(math.log10(max(p["wd"], 1.0)) - 1.0))


def _mixed10_space(hp, scope):
    s = _mixed8_space(hp, scope)
    s["momentum"] = hp.uniform("momentum", 0.5, 0.99)
    s["activation"] = hp.choice("activation", list(_CHOICE3))
    return s


def _mixed10_optuna(trial):
    p = _mixed8_optuna(trial)
    p["momentum"] = trial.suggest_float("momentum", 0.5, 0.99)
    p["activation"] = trial.suggest_categorical("activation", list(_CHOICE3))
    return p


def _mixed10(p):
    return (_mixed8(p) + (p["momentum"] - 0.9) ** 2
            + (0.0 if p["activation"] == "gelu" else 0.1))


def _quadratic10_space(hp, scope=None):
    return {"x%d" % i: hp.uniform("x%d" % i, -5.0, 5.0) for i in range(10)}


def _quadratic10_optuna(trial):
    return {"x%d" % i: trial.suggest_float("x%d" % i, -5.0, 5.0) for i in range(10)}


def _quadratic10(p):
    # An ellipsoid: every fit of TPE's model steps passes its checks, the costliest case.
    return sum((i + 1) * (p["x%d" % i] - 1.0) ** 2 for i in range(10))


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", "Branin, 2-D, [-5,10]x[0,15]", _branin_space, _branin_optuna,
                      _branin, 0.397887, n_params=2, tags=("quality",)),
    "hartmann6": Problem("hartmann6", "Hartmann6, 6-D, [0,1]^6", _hartmann6_space,
                         _hartmann6_optuna, _hartmann6, -3.32237, n_params=6,
                         tags=("quality",)),
    "rosenbrock5": Problem("rosenbrock5", "Rosenbrock, 5-D, [-5,10]^5; regret = log(1+f)",
                           _rosenbrock_space, _rosenbrock_optuna, _rosenbrock, 0.0,
                           log_regret=True, n_params=5, tags=("quality",)),
    "mixed": Problem("mixed", "log-uniform lr, quantized int units, uniform dropout, "
                     "categorical optimizer (4); optimum 0", _mixed_space, _mixed_optuna,
                     _mixed, 0.0, n_params=4, tags=("quality",)),
    "conditional": Problem("conditional", "hp.choice of 3 sub-spaces (2+3+2 params); optimum 0 "
                           "in the branch that looks worst at first", _conditional_space,
                           _conditional_optuna, _conditional, 0.0, n_params=8,
                           tags=("quality",)),
    "mixed8": Problem("mixed8", "8 mixed parameters (uniform, loguniform, quniform int, randint, "
                      "uniformint, choice(4), normal, qloguniform); trivial objective",
                      _mixed8_space, _mixed8_optuna, _mixed8, 0.0, n_params=8,
                      tags=("cost",)),
    "mixed10": Problem("mixed10", "mixed8 + uniform + choice(3): 10 mixed parameters; trivial "
                       "objective", _mixed10_space, _mixed10_optuna, _mixed10, 0.0,
                       n_params=10, tags=("cost",)),
    "quadratic10": Problem("quadratic10", "10 uniform parameters, an ellipsoid: the quadratic "
                           "model steps fit and step on every try", _quadratic10_space,
                           _quadratic10_optuna, _quadratic10, 0.0, n_params=10,
                           tags=("cost",)),
}

QUALITY_PROBLEMS = [k for k, v in PROBLEMS.items() if "quality" in v.tags]


# ---- BBOB (COCO's noiseless suite, package coco-experiment, import cocoex) ------------------

BBOB_GROUPS = {  # function ids of COCO's five groups
    "separable": (1, 2, 3, 4, 5),
    "moderate": (6, 7, 8, 9),
    "ill-conditioned": (10, 11, 12, 13, 14),
    "multi-modal": (15, 16, 17, 18, 19),
    "weak-structure": (20, 21, 22, 23, 24),
}
BBOB_GROUP_OF = {f: g for g, fs in BBOB_GROUPS.items() for f in fs}
_BBOB_SUITE = None


def bbob_function(fid: int, dim: int, instance: int):
    """COCO's problem object for BBOB function ``fid`` in ``dim`` dimensions, instance index
    ``instance`` (1-based, as in COCO's ``instance_indices``)."""
    global _BBOB_SUITE
    import cocoex

    if _BBOB_SUITE is None:
        _BBOB_SUITE = cocoex.Suite("bbob", "", "")
    return _BBOB_SUITE.get_problem_by_function_dimension_instance(fid, dim, instance)


def bbob_optimum(fid: int, dim: int, instance: int) -> float:
    """f(x_opt) of a BBOB problem (COCO only writes x_opt to a file in the working directory,
    so this runs in a temporary one)."""
    import tempfile

    fun = bbob_function(fid, dim, instance)
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            fun._best_parameter("print")
            with open("._bbob_problem_best_parameter.txt") as f:
                xopt = [float(v) for v in f.read().split()]
        finally:
            os.chdir(old)
    return float(fun(xopt))


def bbob_problem(fid: int, dim: int, instance: int, fopt: float) -> Problem:
    """A BBOB function as a :class:`Problem`: ``dim`` uniform parameters on [-5, 5]."""
    fun = bbob_function(fid, dim, instance)
    names = ["x%d" % i for i in range(dim)]

    def space(hp, scope=None):
        return {n: hp.uniform(n, -5.0, 5.0) for n in names}

    def optuna_params(trial):
        return {n: trial.suggest_float(n, -5.0, 5.0) for n in names}

    def fn(p):
        return float(fun([p[n] for n in names]))

    return Problem("bbob-f%02d-d%d-i%d" % (fid, dim, instance), fun.name, space, optuna_params,
                   fn, fopt, n_params=dim, tags=("bbob",))


# --------------------------------------------------------------------------------------------
# Library plumbing
# --------------------------------------------------------------------------------------------

# Name of the module that plays "hyperq". Overridable (e.g. HYPERQ_BENCH_MODULE=hyperopt) so the
# scripts can be exercised before hyperq's core exists; results are then labelled accordingly.
HYPERQ_MODULE = os.environ.get("HYPERQ_BENCH_MODULE", "hyperq")



def apply_tpe_settings(spec: str) -> None:
    """``NAME=VALUE,...`` (values in JSON): override internal constants of hyperq.tpe, for
    ablations (``--tpe-set`` of tpe_quality.py and tpe_suite.py)."""
    if not spec:
        return
    import json

    tpe = importlib.import_module(HYPERQ_MODULE + ".tpe")
    for item in spec.split(","):
        name, value = item.split("=")
        if not hasattr(tpe, name):
            raise SystemExit("hyperq.tpe has no setting %r" % name)
        setattr(tpe, name, json.loads(value))


# Every algorithm the scripts know: label -> (library, algorithm)
ALGOS = {
    "hyperq-tpe": ("hyperq", "tpe"),
    "hyperq-rand": ("hyperq", "rand"),
    "hyperopt-tpe": ("hyperopt", "tpe"),
    "hyperopt-rand": ("hyperopt", "rand"),
    "optuna-tpe": ("optuna", "tpe"),            # Optuna's default TPESampler (multivariate in 5.x)
    "optuna-tpe-indep": ("optuna", "tpe-indep"),  # TPESampler(multivariate=False)
    "optuna-random": ("optuna", "random"),
    "optuna-gp": ("optuna", "gp"),              # GPSampler (needs torch; slow: 20-100 s per run)
}


def quiet_libraries():
    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    logging.getLogger("hyperq").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    try:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass


def select_algos(spec: str, default: list[str]) -> list[str]:
    """``spec``: comma list of labels (``hyperopt-tpe``) or libraries (``hyperopt``)."""
    if not spec:
        return list(default)
    out: list[str] = []
    for tok in [t.strip() for t in spec.split(",") if t.strip()]:
        if tok in ALGOS:
            names = [tok]
        else:
            names = [k for k, (lib, _) in ALGOS.items() if lib == tok and k in default]
            if not names:
                names = [k for k, (lib, _) in ALGOS.items() if lib == tok]
        if not names:
            raise SystemExit("unknown library/algorithm %r; known: %s"
                             % (tok, ", ".join(sorted(ALGOS))))
        out.extend(n for n in names if n not in out)
    return out


def table_header(head: list[str]) -> None:
    """Print a markdown table header: the first column left-aligned, the others right."""
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))


def table_row(cells: list[str]) -> None:
    """Print one markdown table row."""
    print("| " + " | ".join(cells) + " |")


def select_available(spec: str, default: list[str]) -> tuple[list[str], dict[str, str]]:
    """The algorithms named by ``spec`` whose library imports, and ``{label: why}`` for the
    others (each reported on stderr)."""
    labels, skipped = [], {}
    for lab in select_algos(spec, default):
        why = available(lab)
        if why:
            skipped[lab] = why
            print("# skipping %s (%s)" % (lab, why), file=sys.stderr)
        else:
            labels.append(lab)
    return labels, skipped


def available(label: str) -> str | None:
    """None if the library for ``label`` imports (with what the scripts need), else why not."""
    lib = ALGOS[label][0]
    try:
        if lib == "optuna":
            importlib.import_module("optuna")
            if ALGOS[label][1] == "gp":
                importlib.import_module("torch")
        else:
            load_hyperopt_style(lib)
    except Exception as exc:  # noqa: BLE001 - report any import failure
        return "%s: %s" % (type(exc).__name__, exc)
    return None


class HyperoptStyle:
    """hyperq or hyperopt, used only through the hyperopt API."""

    def __init__(self, lib: str):
        modname = HYPERQ_MODULE if lib == "hyperq" else lib
        self.lib = lib
        self.modname = modname
        m = importlib.import_module(modname)
        self.module = m
        self.fmin = m.fmin
        self.Trials = m.Trials
        self.hp = m.hp
        self.space_eval = m.space_eval
        self.STATUS_OK = m.STATUS_OK
        self.tpe = importlib.import_module(modname + ".tpe")
        self.rand = importlib.import_module(modname + ".rand")
        self.scope = importlib.import_module(modname + ".pyll").scope
        self.base = importlib.import_module(modname + ".base")
        self.version = getattr(m, "__version__", "?")

    def algo(self, name: str):
        return {"tpe": self.tpe.suggest, "rand": self.rand.suggest}[name]

    def space(self, problem: Problem):
        return problem.hp_space(self.hp, self.scope)

    def domain(self, fn, space):
        return self.base.Domain(fn, space)

    def job_state(self, name: str) -> int:
        return getattr(self.base, "JOB_STATE_" + name)


_LOADED: dict[str, HyperoptStyle] = {}


def load_hyperopt_style(lib: str) -> HyperoptStyle:
    if lib not in _LOADED:
        _LOADED[lib] = HyperoptStyle(lib)
    return _LOADED[lib]


def doc_vals(doc) -> dict:
    """The assignment {label: value} of a trial document (active labels only)."""
    return {k: v[0] for k, v in doc["misc"]["vals"].items() if len(v)}


def run_fmin(lib: HyperoptStyle, algo: str, problem: Problem, n: int, seed: int,
             on_eval: Callable[[], None] | None = None):
    """Plain sequential ``fmin`` as a user writes it. Returns the list of losses in order."""
    import numpy as np

    space = lib.space(problem)
    losses: list[float] = []

    def objective(params):
        if on_eval is not None:
            on_eval()
        loss = problem.fn(params)
        losses.append(loss)
        return loss

    trials = lib.Trials()
    lib.fmin(objective, space, algo=lib.algo(algo), max_evals=n, trials=trials,
             rstate=np.random.default_rng(seed), show_progressbar=False)
    return losses


def run_inflight(lib: HyperoptStyle, algo: str, problem: Problem, n: int, seed: int, k: int,
                 check: dict | None = None):
    """K trials always in flight, through the hyperopt trial-document API.

    The first K suggestions are asked for in one call (k ids); after that, each time K trials are
    pending the oldest is evaluated (NEW -> RUNNING -> DONE) and one new suggestion is asked for
    while the other K-1 are still pending (the oldest of those is marked RUNNING, the rest NEW).
    Returns the losses in completion order. ``check`` (a dict) receives counts of exact duplicate
    suggestions among concurrently pending trials.
    """
    import numpy as np

    space = lib.space(problem)
    domain = lib.domain(lambda p: problem.fn(p), space)
    trials = lib.Trials()
    rng = np.random.default_rng(seed)
    algo_fn = lib.algo(algo)
    NEW, RUNNING, DONE = lib.job_state("NEW"), lib.job_state("RUNNING"), lib.job_state("DONE")
    pending: list[int] = []  # tids in suggestion order
    losses: list[float] = []
    asked = 0
    dup = 0
    by_tid: dict[int, dict] = {}

    def ask(count):
        nonlocal asked
        ids = trials.new_trial_ids(count)
        docs = algo_fn(ids, domain, trials, int(rng.integers(2 ** 31 - 1)))
        docs = list(docs)[:count]
        trials.insert_trial_docs(docs)
        trials.refresh()
        for d in trials.trials:  # the stored copies (insert may copy the docs)
            by_tid.setdefault(d["tid"], d)
        for d in docs:
            pending.append(d["tid"])
        asked += len(docs)
        return len(docs)

    while len(losses) < n:
        want = min(k - len(pending), n - asked)
        while want > 0:
            got = ask(want)
            if got == 0:
                raise RuntimeError("%s returned no trial docs" % lib.modname)
            want -= got
        if check is not None and len(pending) > 1:
            seen = set()
            for tid in pending:
                key = tuple(sorted((kk, round(float(v), 12))
                                   for kk, v in doc_vals(by_tid[tid]).items()))
                dup += key in seen
                seen.add(key)
        tid = pending.pop(0)
        doc = by_tid[tid]
        doc["state"] = RUNNING
        if pending:
            by_tid[pending[0]]["state"] = RUNNING  # next in line is "being evaluated"
        loss = problem.fn(lib.space_eval(space, doc_vals(doc)))
        doc["result"] = {"loss": loss, "status": lib.STATUS_OK}
        doc["state"] = DONE
        trials.refresh()
        losses.append(loss)
    if check is not None:
        check["duplicates"] = dup
    return losses


def make_optuna_study(variant: str, seed: int):
    import optuna

    if variant == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif variant == "tpe-indep":
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=False)
    elif variant == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    elif variant == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    else:
        raise ValueError(variant)
    return optuna.create_study(sampler=sampler, direction="minimize")


def run_optuna(variant: str, problem: Problem, n: int, seed: int, k: int = 1,
               on_eval: Callable[[], None] | None = None):
    """``study.optimize`` (k == 1) or ask/tell with k trials always running. Returns losses."""
    study = make_optuna_study(variant, seed)
    losses: list[float] = []
    if k <= 1:
        def objective(trial):
            if on_eval is not None:
                on_eval()
            loss = problem.fn(problem.optuna_params(trial))
            losses.append(loss)
            return loss

        study.optimize(objective, n_trials=n)
        return losses
    pending = []
    asked = 0
    while len(losses) < n:
        while len(pending) < k and asked < n:
            t = study.ask()
            pending.append((t, problem.optuna_params(t)))
            asked += 1
        t, params = pending.pop(0)
        loss = problem.fn(params)
        study.tell(t, loss)
        losses.append(loss)
    return losses


def prefill_hyperopt_style(lib: HyperoptStyle, problem: Problem, n: int, seed: int):
    """Trials holding ``n`` completed random trials (``rand.suggest`` docs, evaluated, DONE).

    Returns (trials, domain, space)."""
    space = lib.space(problem)
    domain = lib.domain(lambda p: problem.fn(p), space)
    trials = lib.Trials()
    done = lib.job_state("DONE")
    chunk = 2000
    made = 0
    while made < n:
        m = min(chunk, n - made)
        ids = trials.new_trial_ids(m)
        docs = list(lib.rand.suggest(ids, domain, trials, seed + made))
        for d in docs:
            d["result"] = {"loss": problem.fn(lib.space_eval(space, doc_vals(d))),
                           "status": lib.STATUS_OK}
            d["state"] = done
        trials.insert_trial_docs(docs)
        trials.refresh()
        made += m
    return trials, domain, space


def prefill_optuna(variant: str, problem: Problem, n: int, seed: int):
    """A study with ``n`` completed random trials added through ``create_trial``/``add_trials``."""
    import optuna

    rnd = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rnd.optimize(lambda t: problem.fn(problem.optuna_params(t)), n_trials=n)
    frozen = [optuna.trial.create_trial(params=t.params, distributions=t.distributions,
                                        value=t.value)
              for t in rnd.trials]
    study = make_optuna_study(variant, seed)
    study.add_trials(frozen)
    return study


def environment() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "hyperq_module": HYPERQ_MODULE,
    }
    from importlib import metadata

    for name in ("numpy", "scipy", "hyperopt", "optuna", HYPERQ_MODULE):
        try:
            m = importlib.import_module(name)
            info[name] = getattr(m, "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            try:
                info[name] = metadata.version(name) + " (import failed: %s)" % exc
            except Exception:  # noqa: BLE001
                info[name] = None
    # The hyperq revision measured: $HYPERQ_BENCH_REV (when running a snapshot of hyperq put on
    # PYTHONPATH), else the git HEAD of the checkout the imported hyperq comes from.
    try:
        hq = importlib.import_module(HYPERQ_MODULE)
        info["hyperq_path"] = os.path.dirname(os.path.abspath(hq.__file__))
    except Exception:  # noqa: BLE001
        info["hyperq_path"] = None
    info["git"] = os.environ.get("HYPERQ_BENCH_REV")
    if not info["git"] and info["hyperq_path"]:
        try:
            import subprocess
            info["git"] = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=info["hyperq_path"],
                capture_output=True, text=True).stdout.strip() or None
        except Exception:  # noqa: BLE001
            pass
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    info["argv"] = " ".join(sys.argv)
    return info


def fmt_env(info: dict) -> str:
    libs = ", ".join("%s %s" % (k, info.get(k)) for k in ("numpy", "scipy", "hyperopt", "optuna")
                     if info.get(k))
    hq = info.get(info.get("hyperq_module", "hyperq"))
    s = "Python %s, %s cores, %s" % (info["python"], info["cpus"], libs)
    if info.get("hyperq_module") != "hyperq":
        s += "; NOTE 'hyperq' rows are run with module %r" % info.get("hyperq_module")
    elif hq:
        s += ", hyperq %s (git %s)" % (hq, info.get("git", "?"))
    if "loadavg" in info:
        s += "; load avg at start %.1f" % info["loadavg"][0]
    return s


def now() -> float:
    return time.perf_counter()
