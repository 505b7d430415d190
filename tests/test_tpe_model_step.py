"""TPE's model steps: a quadratic fitted to the best trials, minimized where it fits well."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hyperq import JOB_STATE_RUNNING, Trials, fmin, hp, rand, tpe
from hyperq._quadratic import model_minimum
from hyperq.base import Domain, docs_from_values

BOX = np.full(3, -5.0), np.full(3, 5.0)
OPTIMUM = np.array([1.0, -2.0, 0.5])
ROTATION = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]


def ellipsoid(x):
    z = (np.atleast_2d(x) - OPTIMUM) @ ROTATION.T
    return (z ** 2 * np.array([1.0, 30.0, 900.0])).sum(axis=1)


def ranked(x, y):
    order = np.argsort(y, kind="stable")
    return x[order], y[order]


def test_minimum_of_a_rotated_ill_conditioned_quadratic_is_exact():
    x = np.random.default_rng(1).uniform(-5, 5, size=(40, 3))
    x, y = ranked(x, ellipsoid(x))
    found = model_minimum(x, y, np.full(3, 10.0), *BOX, min_q2=0.9)
    assert found is not None
    np.testing.assert_allclose(found, OPTIMUM, atol=1e-8)


def test_minimum_stays_inside_the_box_the_fitted_trials_span():
    # Trials only in [2, 5]^3: the model's minimum (1, -2, 0.5) lies outside, so the step is
    # clamped to the region the model was fitted on instead of extrapolating.
    x = np.random.default_rng(2).uniform(2, 5, size=(40, 3))
    x, y = ranked(x, ellipsoid(x))
    found = model_minimum(x, y, np.full(3, 10.0), *BOX, min_q2=0.9)
    assert found is not None
    assert np.all(found >= x.min(axis=0) - 1e-12) and np.all(found <= x.max(axis=0) + 1e-12)
    assert ellipsoid(found)[0] < y[0]


def test_no_step_where_a_quadratic_does_not_fit_or_is_not_a_bowl():
    rng = np.random.default_rng(3)
    x = rng.uniform(-5, 5, size=(40, 3))
    rastrigin = (x ** 2 - 10 * np.cos(2 * math.pi * x)).sum(axis=1) + 30
    assert model_minimum(*ranked(x, rastrigin), np.full(3, 10.0), *BOX, min_q2=0.9) is None
    assert model_minimum(*ranked(x, rng.normal(size=40)), np.full(3, 10.0), *BOX, 0.9) is None
    x, y = ranked(x, -ellipsoid(x))  # a dome: its "minimum" is no step to take
    assert model_minimum(x, y, np.full(3, 10.0), *BOX, min_q2=0.9) is None
    # Too few trials for even the diagonal quadratic (7 coefficients, 14 trials wanted).
    x, y = ranked(x[:13], ellipsoid(x[:13]))
    assert model_minimum(x, y, np.full(3, 10.0), *BOX, min_q2=0.9) is None


def test_cross_terms_are_fitted_from_one_and_a_half_trials_per_coefficient():
    # In 3 dimensions the quadratic with cross terms has 10 coefficients: 15 trials fit it,
    # so a rotated ellipsoid's minimum is found exactly (the diagonal quadratic cannot).
    x = np.random.default_rng(1).uniform(-5, 5, size=(15, 3))
    x, y = ranked(x, ellipsoid(x))
    found = model_minimum(x, y, np.full(3, 10.0), *BOX, min_q2=0.9)
    np.testing.assert_allclose(found, OPTIMUM, atol=1e-8)
    diagonal = model_minimum(x, y, np.full(3, 10.0), *BOX, min_q2=0.9, per_coef=2.0)
    assert diagonal is None or np.abs(diagonal - OPTIMUM).max() > 0.5


def test_a_far_trial_the_others_cannot_predict_does_not_veto_the_fit():
    # Trials around the optimum, and one far off where the objective levels off. Left out,
    # the far trial is an extrapolation no quadratic through the others predicts (leverage
    # ~1): counted in the check, it alone rejects the fit; left out of it, the step is made.
    near = OPTIMUM + np.random.default_rng(5).uniform(-1, 1, size=(19, 3))
    x = np.vstack([near, [[4.5, 4.5, -4.5]]])
    y = ellipsoid(x)
    y[-1] = math.sqrt(y[-1])
    x, y = ranked(x, y)
    assert model_minimum(x, y, np.full(3, 10.0), *BOX, 0.8, 1e-3, max_leverage=1.0,
                         per_coef=2.0) is None
    found = model_minimum(x, y, np.full(3, 10.0), *BOX, 0.8, 1e-3, per_coef=2.0)
    assert found is not None and ellipsoid(found)[0] < y[0]


def test_flat_and_downward_directions_are_not_stepped_along():
    # A valley along x1 (no curvature), then also a saddle along x2 (curving down): with
    # flat > 0 the step goes to the valley floor in x0 and keeps the best trial's x1 and x2;
    # with flat = 0 (every direction must curve up) the saddle gets no step.
    x = np.random.default_rng(4).uniform(-5, 5, size=(40, 3))
    for shape in (np.array([4.0, 0.0, 0.0]), np.array([4.0, 1e-6, -0.5])):
        y = ((x - OPTIMUM) ** 2 * shape).sum(axis=1) + 0.3 * x[:, 1]
        xs, ys = ranked(x, y)
        found = model_minimum(xs, ys, np.full(3, 10.0), *BOX, min_q2=0.9, flat=1e-3)
        assert found is not None
        assert found[0] == pytest.approx(OPTIMUM[0])
        np.testing.assert_allclose(found[1:], xs[0, 1:])
    assert model_minimum(xs, ys, np.full(3, 10.0), *BOX, min_q2=0.9, flat=0.0) is None


def test_flat_directions_are_stepped_along_where_the_fit_is_sure_of_their_curvature():
    # An ellipsoid with condition 10^5: its flat axis x1 curves less than flat = 1e-3 of the
    # steepest. Fitted exactly, that curvature is known beyond doubt (curved_t standard
    # errors above zero) and the step reaches the optimum; with noise in the losses it is
    # not, and the step keeps the best trial's x1.
    x = np.random.default_rng(7).uniform(-5, 5, size=(40, 2))
    box = np.full(2, -5.0), np.full(2, 5.0)
    exact = 1e2 * (x[:, 0] - 1) ** 2 + 1e-3 * (x[:, 1] - 2) ** 2
    noisy = exact + np.random.default_rng(8).normal(0, 0.05, size=40)
    xs, ys = ranked(x, exact)
    found = model_minimum(xs, ys, np.full(2, 10.0), *box, 0.4, 1e-3, curved_t=3.0)
    np.testing.assert_allclose(found, [1.0, 2.0], atol=1e-8)
    flat_only = model_minimum(xs, ys, np.full(2, 10.0), *box, 0.4, 1e-3, curved_t=0.0)
    assert flat_only[1] == pytest.approx(xs[0, 1])
    xs, ys = ranked(x, noisy)
    found = model_minimum(xs, ys, np.full(2, 10.0), *box, 0.4, 1e-3, curved_t=3.0)
    assert found[0] == pytest.approx(1.0, abs=0.01)
    assert found[1] == pytest.approx(xs[0, 1], abs=1e-3)


def test_a_fit_drawn_from_its_uncertainty_spreads_by_it():
    # Workers asking while others are pending get the minima of quadratics drawn from the
    # fit's uncertainty: the same under the same seed, different across draws, inside the
    # trials' box, and no spread at all where the fit is exact.
    x = np.random.default_rng(1).uniform(-5, 5, size=(40, 3))
    noise = np.random.default_rng(2).normal(0, 20.0, size=40)
    xs, ys = ranked(x, ellipsoid(x) + noise)
    args = (xs, ys, np.full(3, 10.0), *BOX, 0.4, 1e-3)
    mean = model_minimum(*args)

    def draw(seed, spread=0.5, data=args):
        return model_minimum(*data, rng=np.random.default_rng(seed), spread=spread)

    np.testing.assert_array_equal(draw(0), draw(0))
    draws = np.array([draw(seed) for seed in range(20)])
    assert len({tuple(d) for d in draws}) == 20
    assert np.all(draws >= xs.min(axis=0) - 1e-12) and np.all(draws <= xs.max(axis=0) + 1e-12)
    wider = np.array([draw(seed, spread=2.0) for seed in range(20)])
    assert np.abs(wider - mean).mean() > np.abs(draws - mean).mean() > 0
    exact = ranked(x, ellipsoid(x))
    np.testing.assert_allclose(draw(0, data=(*exact, np.full(3, 10.0), *BOX, 0.4, 1e-3)),
                               OPTIMUM, atol=1e-6)


def test_a_plane_is_followed_down_to_the_bounds():
    x = np.random.default_rng(5).uniform(-1, 2, size=(40, 3))
    xs, ys = ranked(x, x @ np.array([3.0, -2.0, 0.0]))
    lows, highs = np.array([-5.0, -5.0, -5.0]), np.array([5.0, 4.0, 5.0])
    found = model_minimum(xs, ys, np.full(3, 10.0), lows, highs, min_q2=0.9, flat=1e-3)
    np.testing.assert_allclose(found, [-5.0, 4.0, xs[0, 2]])  # no slope along x2: stays
    # Unbounded along x0: to the edge of the trials' span instead.
    lows[0] = -np.inf
    found = model_minimum(xs, ys, np.full(3, 10.0), lows, highs, min_q2=0.9, flat=1e-3)
    assert found[0] == pytest.approx(xs[:, 0].min())


def test_tpe_reaches_the_corner_of_a_linear_slope():
    space = {"x%d" % i: hp.uniform("x%d" % i, -5, 5) for i in range(4)}
    slope = np.array([1.0, -2.0, 0.5, 3.0])

    def fn(p):
        return float(np.dot(slope, [p["x%d" % i] for i in range(4)]))

    best = -5 * np.abs(slope).sum()
    for seed in range(3):
        assert min(run(fn, space, 60, seed).losses()) == pytest.approx(best)


SPACE = {"x": hp.uniform("x", -5, 5), "y": hp.uniform("y", -5, 5),
         "lr": hp.loguniform("lr", math.log(1e-5), math.log(1))}


def bowl(p):
    return (p["x"] - 1) ** 2 + 10 * (p["y"] + 2) ** 2 + (math.log10(p["lr"]) + 3) ** 2


def run(fn, space, n, seed, algo=tpe.suggest):
    t = Trials()
    fmin(fn, space, algo=algo, max_evals=n, trials=t, show_progressbar=False,
         rstate=np.random.default_rng(seed))
    return t


def propose(t, space, fn, k=1, seed=1, **kw):
    d = Domain(fn, space)
    return [{k: v[0] for k, v in doc["misc"]["vals"].items() if v}
            for doc in tpe.suggest(t.new_trial_ids(k), d, t, seed, **kw)]


def test_tpe_reaches_the_bottom_of_a_smooth_bowl_with_a_log_scale():
    # Without model steps TPE keeps sampling around its best trials (regret ~1e-3 here).
    for seed in range(3):
        assert min(run(bowl, SPACE, 60, seed).losses()) < 1e-10


def test_model_steps_off_leave_tpe_sampling(monkeypatch):
    monkeypatch.setattr(tpe, "MODEL_FRACTION", 0.0)
    assert min(run(bowl, SPACE, 60, 0).losses()) > 1e-8


def test_step_is_deterministic_in_bounds_and_not_repeated_for_pending_trials(monkeypatch):
    monkeypatch.setattr(tpe, "MODEL_FRACTION", 1.0)
    t = run(bowl, SPACE, 30, 0, algo=rand.suggest)
    first = propose(t, SPACE, bowl)[0]
    assert first == propose(t, SPACE, bowl)[0]
    assert first["lr"] == pytest.approx(1e-3, rel=1e-6)
    assert (first["x"], first["y"]) == (pytest.approx(1.0), pytest.approx(-2.0))
    # A batch: the minimum is proposed once, then it counts as pending and TPE samples.
    batch = propose(t, SPACE, bowl, k=4)
    assert batch[0] == first
    assert len({tuple(sorted(v.items())) for v in batch}) == 4
    for v in batch:
        assert -5 <= v["x"] <= 5 and -5 <= v["y"] <= 5 and 1e-5 <= v["lr"] <= 1
    # A worker already evaluating the minimum: no second worker gets it.
    d = Domain(bowl, SPACE)
    ids = t.new_trial_ids(1)
    docs = docs_from_values(t, d, ids, [first])
    for doc in docs:
        doc["state"] = JOB_STATE_RUNNING
    t.insert_trial_docs(docs)
    t.refresh()
    assert propose(t, SPACE, bowl)[0] != first


def test_steps_on_integers_and_categoricals_stay_valid_and_within_the_best_option(monkeypatch):
    monkeypatch.setattr(tpe, "MODEL_FRACTION", 1.0)
    space = {"n": hp.randint("n", 1, 40), "x": hp.uniform("x", -5, 5),
             "opt": hp.choice("opt", ["sgd", "adam"])}

    def fn(p):
        return (p["n"] - 17.3) ** 2 / 40 + (p["x"] - 1) ** 2 + (p["opt"] == "sgd")

    t = run(fn, space, 40, 0, algo=rand.suggest)
    v = propose(t, space, fn)[0]
    assert v == {"n": 17, "x": pytest.approx(1.0), "opt": 1}
    assert type(v["n"]) is int


def test_a_batch_gets_distinct_model_steps_spread_by_the_fits_uncertainty(monkeypatch):
    # Six workers asking at once on a slightly noisy bowl: each gets a step of its own near
    # the bottom (a quadratic drawn from the fit's uncertainty), instead of one step and
    # five TPE samples around the good trials.
    monkeypatch.setattr(tpe, "MODEL_FRACTION", 1.0)

    def noisy(p):
        return bowl(p) + 0.05 * math.sin(37 * p["x"] + 11 * p["y"])

    t = run(noisy, SPACE, 40, 0, algo=rand.suggest)

    def near_bottom(v):
        return (abs(v["x"] - 1) < 0.05 and abs(v["y"] + 2) < 0.05
                and abs(math.log10(v["lr"]) + 3) < 0.05)

    batch = propose(t, SPACE, noisy, k=6)
    assert len({tuple(sorted(v.items())) for v in batch}) == 6
    assert all(near_bottom(v) for v in batch)
    assert batch == propose(t, SPACE, noisy, k=6)  # deterministic under the seed
    monkeypatch.setattr(tpe, "MODEL_SPREAD_IN_FLIGHT", 0.0)
    assert [near_bottom(v) for v in propose(t, SPACE, noisy, k=6)].count(True) == 1
