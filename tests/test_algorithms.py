"""Search algorithms: the suggest contract, TPE options and behaviour, anneal, grid."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from hyperq import Trials, anneal, fmin, grid, hp, rand, tpe
from hyperq.base import Domain
from hyperq.exceptions import BadSearchSpace
from hyperq.pyll import scope

MIXED = {
    "lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
    "units": scope.int(hp.quniform("units", 16, 256, 16)),
    "drop": hp.uniform("drop", 0.0, 0.5),
    "act": hp.choice("act", ["relu", "tanh", "gelu"]),
    "seed": hp.randint("seed", 5),
    "reg": hp.lognormal("reg", 0, 1),
    "mom": hp.qnormal("mom", 0.9, 0.05, 0.01),
}


def mixed_loss(p):
    return ((math.log10(p["lr"]) + 2.5) ** 2 + ((p["units"] - 128) / 128) ** 2
            + (p["drop"] - 0.2) ** 2 + {"relu": 0, "tanh": 0.5, "gelu": 0.2}[p["act"]])


def run(algo, space=MIXED, fn=mixed_loss, n=60, seed=0, **kw):
    t = Trials()
    fmin(fn, space, algo=algo, max_evals=n, trials=t, show_progressbar=False,
         rstate=np.random.default_rng(seed), **kw)
    return t


@pytest.mark.parametrize("algo", [rand.suggest, tpe.suggest, anneal.suggest])
def test_suggest_returns_one_valid_doc_per_id(algo):
    t = run(rand.suggest, n=25)
    domain = Domain(mixed_loss, MIXED)
    ids = t.new_trial_ids(3)
    docs = algo(ids, domain, t, 123)
    assert [d["tid"] for d in docs] == ids
    for d in docs:
        t.assert_valid_trial(d)
        v = d["misc"]["vals"]
        assert math.log(1e-4) - 1e-9 <= math.log(v["lr"][0]) <= math.log(1e-1) + 1e-9
        assert v["units"][0] % 16 == 0 and type(v["units"][0]) is int
        assert v["act"][0] in (0, 1, 2) and 0 <= v["seed"][0] < 5
        assert v["reg"][0] > 0
        assert round(v["mom"][0] / 0.01, 6) == round(v["mom"][0] / 0.01)


def test_tpe_respects_bounds_and_quantization_over_a_run():
    t = run(tpe.suggest, n=80)
    vals = t.vals
    assert all(1e-4 * (1 - 1e-9) <= x <= 1e-1 * (1 + 1e-9) for x in vals["lr"])
    assert all(16 <= u <= 256 and u % 16 == 0 for u in vals["units"])
    assert all(0.0 <= d <= 0.5 for d in vals["drop"])


def test_tpe_beats_random_on_average():
    def best(algo, seed):
        return min(run(algo, n=60, seed=seed).losses())

    tpe_scores = [best(tpe.suggest, s) for s in range(5)]
    rand_scores = [best(rand.suggest, s) for s in range(5)]
    assert np.median(tpe_scores) < np.median(rand_scores)


def test_tpe_options_are_honoured():
    orig = rand.suggest

    t = run(functools.partial(tpe.suggest, n_startup_jobs=5, n_EI_candidates=4, gamma=0.5,
                              prior_weight=0.5, linear_forgetting=10), n=20)
    assert len(t) == 20
    # Before n_startup_jobs, TPE is random search with the same seed.
    d = Domain(mixed_loss, MIXED)
    empty = Trials()
    ids = empty.new_trial_ids(2)
    a = tpe.suggest(ids, d, empty, 9, n_startup_jobs=5)
    b = orig(ids, d, empty, 9)
    assert [x["misc"]["vals"] for x in a] == [x["misc"]["vals"] for x in b]


def test_tpe_models_conditional_branches_and_ignores_failures():
    space = hp.choice("branch", [
        {"which": "a", "x": hp.uniform("xa", -1, 1)},
        {"which": "b", "y": hp.uniform("yb", -1, 1)},
    ])

    def fn(p):
        if p["which"] == "a":
            return {"loss": float("nan"), "status": "ok"} if p["x"] > 0.9 else 1 + p["x"] ** 2
        return p["y"] ** 2

    t = run(tpe.suggest, space=space, fn=fn, n=80)
    late = t.trials[40:]
    share_b = np.mean([d["misc"]["vals"]["branch"][0] == 1 for d in late])
    assert share_b > 0.6  # TPE learned the better branch
    for d in t.trials:
        v = d["misc"]["vals"]
        assert (len(v["xa"]), len(v["yb"])) == ((1, 0) if v["branch"][0] == 0 else (0, 1))


def test_anneal_concentrates_near_the_best():
    t = run(anneal.suggest, space={"x": hp.uniform("x", -10, 10)}, fn=lambda p: p["x"] ** 2,
            n=80)
    late = [abs(v) for v in t.vals["x"][-20:]]
    assert np.median(late) < 2.0


def test_grid_enumerates_each_point_once_then_stops():
    space = {"a": hp.choice("a", [1, 2, 3]), "b": hp.quniform("b", 0, 1, 0.5),
             "c": hp.randint("c", 2)}
    t = run(grid.suggest, space=space, fn=lambda p: p["a"] + p["b"], n=1000)
    assert len(t) == 3 * 3 * 2 == grid.grid_size(space)
    keys = {tuple(sorted((k, v[0]) for k, v in d["misc"]["vals"].items())) for d in t.trials}
    assert len(keys) == 18


def test_grid_conditional_and_continuous_resolution():
    space = hp.choice("m", [{"lr": hp.loguniform("lr", math.log(1e-3), math.log(1))},
                            {"k": hp.choice("k", ["x", "y"])}])
    assert grid.grid_size(space, resolution=4) == 4 + 2
    t = run(functools.partial(grid.suggest, resolution=4), space=space,
            fn=lambda p: p.get("lr", 1), n=100)
    assert sorted(round(v, 6) for v in t.vals["lr"]) == [0.001, 0.01, 0.1, 1.0]
    t2 = run(functools.partial(grid.suggest, resolution={"lr": 2}, shuffle=True), space=space,
             fn=lambda p: p.get("lr", 1), n=100)
    assert len(t2) == 4


def test_grid_refuses_unbounded_parameters():
    with pytest.raises(BadSearchSpace, match="unbounded parameter 'n'"):
        run(grid.suggest, space={"n": hp.normal("n", 0, 1)}, fn=lambda p: 0, n=3)
