"""TPE behaviour: determinism, bounds, batches and pending trials, conditional spaces, failures."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from hyperq import JOB_STATE_NEW, JOB_STATE_RUNNING, STATUS_FAIL, Trials, fmin, hp, rand, tpe
from hyperq.base import Domain, docs_from_values
from hyperq.exceptions import AllTrialsFailed
from hyperq.pyll import scope

SPACE = {
    "x": hp.uniform("x", -5, 5),
    "y": hp.uniform("y", -5, 5),
    "lr": hp.loguniform("lr", math.log(1e-5), math.log(1)),
    "n": scope.int(hp.quniform("n", 8, 128, 8)),
    "k": hp.randint("k", 1, 4),
    "act": hp.choice("act", ["a", "b", "c"]),
    "m": hp.qlognormal("m", 2, 0.5, 1),
    "z": hp.normal("z", 0, 2),
}


def loss(p):
    return (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2 + (math.log10(p["lr"]) + 3) ** 2 \
        + abs(p["n"] - 64) / 64 + (p["k"] != 2) + (p["act"] != "b") + p["z"] ** 2 / 10


def history(n=40, seed=0, fn=loss, space=SPACE):
    t = Trials()
    fmin(fn, space, algo=rand.suggest, max_evals=n, trials=t, show_progressbar=False,
         rstate=np.random.default_rng(seed))
    return t


def suggest(t, k=1, seed=1, space=SPACE, **kw):
    d = Domain(loss, space)
    return [doc["misc"]["vals"] for doc in tpe.suggest(t.new_trial_ids(k), d, t, seed, **kw)]


def flat(vals):
    return {k: v[0] for k, v in vals.items() if v}


def test_same_seed_same_suggestion_and_seed_matters():
    t = history()
    assert suggest(t, seed=5) == suggest(t, seed=5)
    assert suggest(t, seed=5) != suggest(t, seed=6)


def test_values_respect_bounds_quantization_and_types():
    t = history(60)
    for v in map(flat, suggest(t, k=30)):
        assert -5 <= v["x"] <= 5 and -5 <= v["y"] <= 5
        assert 1e-5 * (1 - 1e-9) <= v["lr"] <= 1 + 1e-9
        assert v["n"] % 8 == 0 and 8 <= v["n"] <= 128 and type(v["n"]) is int
        assert v["k"] in (1, 2, 3) and type(v["k"]) is int
        assert v["act"] in (0, 1, 2)
        assert v["m"] == round(v["m"]) and v["m"] >= 0
        assert isinstance(v["z"], float)


def test_batch_is_distinct_and_spread_by_constant_liar():
    t = history(40)

    def spread(**kw):
        pts = np.array([[flat(v)["x"], flat(v)["y"]] for v in suggest(t, k=16, **kw)])
        d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
        return pts, d[np.triu_indices(16, 1)]

    pts, dist = spread()
    assert len({tuple(p) for p in pts}) == 16
    _, dist_no_liar = spread(constant_liar=False)
    assert np.median(dist) > np.median(dist_no_liar)


def test_running_trials_count_as_pending():
    t = history(40)
    best = flat(suggest(t, seed=3, constant_liar=False)[0])
    # Eight workers are busy on exactly that point.
    d = Domain(loss, SPACE)
    tids = t.new_trial_ids(8)
    docs = docs_from_values(t, d, tids, [best] * 8)
    for doc in docs:
        doc["state"] = JOB_STATE_RUNNING
    t.insert_trial_docs(docs)
    t.refresh()
    after = flat(suggest(t, seed=3)[0])
    ignoring = flat(suggest(t, seed=3, constant_liar=False)[0])
    assert ignoring == best  # without the liar the busy point would be proposed again
    assert after != best


def test_failed_and_nan_trials_steer_the_search_away():
    def fn(p):
        if p["x"] < -2:
            return {"status": STATUS_FAIL}
        if p["y"] > 1:
            return float("nan")
        return loss(p)

    def late_ok_share(algo):
        shares = []
        for seed in range(3):
            t = Trials()
            fmin(fn, SPACE, algo=algo, max_evals=60, trials=t, show_progressbar=False,
                 rstate=np.random.default_rng(seed))
            assert len(t) == 60
            shares.append(np.mean([r["status"] == "ok" for r in t.results[30:]]))
        return np.mean(shares)

    # Random search succeeds ~42% of the time here; TPE learns where the objective fails.
    assert late_ok_share(tpe.suggest) > late_ok_share(rand.suggest) + 0.2


def test_all_failures_fall_back_to_random_search():
    t = Trials()
    with pytest.raises(AllTrialsFailed):  # return_argmin=False raises, as in hyperopt (issue 12)
        fmin(lambda p: {"status": STATUS_FAIL}, SPACE, algo=tpe.suggest, max_evals=30,
             trials=t, show_progressbar=False, return_argmin=False,
             rstate=np.random.default_rng(0))
    assert len(t) == 30


def test_conditional_branches_each_get_explored_and_modeled():
    space = hp.choice("model", [
        {"t": "easy", "a": hp.uniform("a", -1, 1)},
        {"t": "hard", "b": hp.uniform("b", 0, 1), "c": hp.loguniform("c", -9, 0)},
    ])

    def fn(p):
        if p["t"] == "easy":
            return 0.3 + 0.1 * p["a"] ** 2
        return 2 * (1 - math.exp(-((p["b"] - 0.7) / 0.05) ** 2 - ((p["c"] - 0.01) / 0.01) ** 2))

    t = Trials()
    fmin(fn, space, algo=tpe.suggest, max_evals=80, trials=t, show_progressbar=False,
         rstate=np.random.default_rng(1))
    branches = [d["misc"]["vals"]["model"][0] for d in t.trials]
    assert branches.count(1) >= 20  # the branch that looks worse is not abandoned
    hard = [d["misc"]["vals"]["b"][0] for d in t.trials if d["misc"]["vals"]["b"]]
    assert np.median(np.abs(np.array(hard[-10:]) - 0.7)) < np.median(np.abs(np.array(hard[:10]) - 0.7))


def test_hyperopt_tunables_still_work():
    t = history(30)
    algo = functools.partial(tpe.suggest, n_startup_jobs=50)
    d = Domain(loss, SPACE)
    ids = t.new_trial_ids(1)
    # Below n_startup_jobs the suggestion is the prior's.
    assert algo(ids, d, t, 4)[0]["misc"]["vals"] == rand.suggest(ids, d, t, 4)[0]["misc"]["vals"]
    for kw in ({"gamma": 0.25}, {"prior_weight": 0.1}, {"n_EI_candidates": 2},
               {"linear_forgetting": 5, "gamma": 0.5}, {"multivariate": False}):
        assert len(suggest(t, k=2, **kw)) == 2


def test_n_below_schedule():
    assert tpe.n_below_for(10, None, 25) == 1
    assert tpe.n_below_for(100, None, 25) == 10
    assert tpe.n_below_for(1000, None, 25) == 25
    assert tpe.n_below_for(100, 0.25, 25) == 3  # hyperopt's ceil(gamma * sqrt(n))


# ---- many trials in flight (issue 13) -------------------------------------------------------

def add_pending(t, vals_list, state=JOB_STATE_RUNNING, space=SPACE):
    """Insert trials that are queued or running (no result) with the given values."""
    d = Domain(loss, space)
    docs = docs_from_values(t, d, t.new_trial_ids(len(vals_list)), vals_list)
    for doc in docs:
        doc["state"] = state
    t.insert_trial_docs(docs)
    t.refresh()
    return docs


def prior(t, seed, space=SPACE):
    """What random search would propose next: the startup's suggestion."""
    d = Domain(loss, space)
    return flat(rand.suggest(t.new_trial_ids(1), d, t, seed)[0]["misc"]["vals"])


def random_vals(n, seed, space=SPACE):
    d = Domain(loss, space)
    t = Trials()
    return [flat(doc["misc"]["vals"]) for doc in rand.suggest(t.new_trial_ids(n), d, t, seed)]


def test_batch_with_31_pending_is_deterministic_distinct_and_in_bounds():
    t = history(40)
    busy = [flat(v) for v in suggest(t, k=31, seed=7)]
    add_pending(t, busy[:16])
    add_pending(t, busy[16:], state=JOB_STATE_NEW)
    first = [flat(v) for v in suggest(t, k=32, seed=11)]
    assert first == [flat(v) for v in suggest(t, k=32, seed=11)]
    keys = {tuple(sorted(v.items())) for v in first}
    assert len(keys) == 32  # distinct among themselves ...
    assert not keys & {tuple(sorted(v.items())) for v in busy}  # ... and from the busy ones
    for v in first:
        assert -5 <= v["x"] <= 5 and -5 <= v["y"] <= 5
        assert v["n"] % 8 == 0 and 8 <= v["n"] <= 128
        assert v["k"] in (1, 2, 3) and v["act"] in (0, 1, 2)


def test_starved_categorical_option_is_proposed_until_it_has_its_trials():
    space = {"opt": hp.choice("opt", ["a", "b", "c"]), "x": hp.uniform("x", 0, 1)}

    def fn(p):
        return (p["x"] - 0.8) ** 2 + (0.0 if p["opt"] == "a" else 1.0)

    t = Trials()
    # 30 finished trials, all with option 'a': 'b' and 'c' are starved.
    d = Domain(fn, space)
    vals = [{"opt": 0, "x": float(x)} for x in np.linspace(0, 1, 30)]
    docs = docs_from_values(t, d, t.new_trial_ids(30), vals)
    for doc, v in zip(docs, vals):
        doc["state"] = 2
        doc["result"] = {"loss": fn({"opt": "a", "x": v["x"]}), "status": "ok"}
    t.insert_trial_docs(docs)
    t.refresh()
    out = [doc["misc"]["vals"] for doc in tpe.suggest(t.new_trial_ids(12), d, t, 3)]
    opts = [v["opt"][0] for v in out]
    # Each batch member counts as pending for the next, so both starved options get trials
    # (up to 10 each) before the model's favourite comes back.
    assert set(opts) == {1, 2}
    assert abs(opts.count(1) - opts.count(2)) <= 1


def test_wide_spaces_are_modeled_from_the_first_result():
    # SPACE has 8 parameters, so its scheduled startup is 16 trials: longer than 10, so it is
    # warmed up (modeled from the first result). An explicit n_startup_jobs keeps hyperopt's
    # meaning (random until then), and a 2-parameter space keeps its 10 random trials.

    def one(t, seed, space=SPACE, **kw):
        return flat(suggest(t, seed=seed, space=space, **kw)[0])

    assert one(Trials(), 9) == prior(Trials(), 9)
    for n_finished, n_pending in [(1, 0), (5, 0), (5, 31)]:
        t = history(n_finished)
        if n_pending:
            add_pending(t, random_vals(n_pending, seed=4))
        modeled = one(t, 9)
        assert modeled != prior(t, 9), (n_finished, n_pending)
        assert modeled == one(t, 9)
        assert -5 <= modeled["x"] <= 5 and -5 <= modeled["y"] <= 5
        assert modeled["n"] % 8 == 0 and modeled["act"] in (0, 1, 2)
    t = history(5)
    assert one(t, 9, n_startup_jobs=16) == prior(t, 9)
    narrow = history(5, fn=bowl, space=BOWL)
    add_pending(narrow, random_vals(31, seed=4, space=BOWL), space=BOWL)
    assert one(narrow, 9, space=BOWL) == prior(narrow, 9, space=BOWL)


BOWL = {"x": hp.uniform("x", -5, 5), "y": hp.uniform("y", -5, 5)}
BOWL6 = {f"x{i}": hp.uniform(f"x{i}", -5, 5) for i in range(6)}


def bowl(p):
    return sum(v ** 2 for v in p.values())


def test_warm_up_batches_are_distinct_and_account_for_pending_trials():
    # 4 results and 20 trials in flight on a 6-parameter space (a 12-trial startup, warmed up).
    t = history(4, fn=bowl, space=BOWL6)
    busy = random_vals(20, seed=8, space=BOWL6)
    add_pending(t, busy, space=BOWL6)
    names = sorted(BOWL6)

    def key(v):
        return tuple(v[k] for k in names)

    batch = [flat(v) for v in suggest(t, k=8, seed=2, space=BOWL6)]
    assert batch == [flat(v) for v in suggest(t, k=8, seed=2, space=BOWL6)]
    assert len({key(v) for v in batch}) == 8
    assert not {key(v) for v in batch} & {key(v) for v in busy}
    for v in batch:
        assert all(-5 <= v[k] <= 5 for k in names)
    # The pending trials are in the model: without them (no constant liar) it proposes
    # something else.
    alone = [flat(v) for v in suggest(t, k=1, seed=2, space=BOWL6, constant_liar=False)]
    assert alone[0] != batch[0]
    assert alone[0] != prior(t, 2, space=BOWL6)


def test_local_candidates_spread_further_with_trials_in_flight(monkeypatch):
    # In a wide space, the candidates near the best trial are drawn twice as wide once 7 or
    # more trials are pending: with only local candidates, the proposals land further from
    # the best trial than sequentially (pending trials far away, in a corner).
    monkeypatch.setattr(tpe, "LOCAL_FRACTION", 1.0)
    monkeypatch.setattr(tpe, "MODEL_FRACTION", 0.0)  # a model step would land on the bottom
    t = history(40, fn=bowl, space=BOWL6)
    names = sorted(BOWL6)
    best = min(t.trials, key=lambda tr: tr["result"]["loss"])["misc"]["vals"]
    best_x = np.array([best[k][0] for k in names])
    d = Domain(bowl, BOWL6)

    def mean_step(trials):
        steps = []
        for seed in range(30):
            v = flat(tpe.suggest(trials.new_trial_ids(1), d, trials, seed)[0]["misc"]["vals"])
            steps.append(np.linalg.norm(np.array([v[k] for k in names]) - best_x))
        return float(np.mean(steps))

    sequential = mean_step(t)
    add_pending(t, [{k: 4.9 for k in names}] * 7, space=BOWL6)
    in_flight = mean_step(t)
    assert in_flight > 1.4 * sequential, (in_flight, sequential)
