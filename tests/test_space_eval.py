"""Nested and conditional spaces: space_eval, SearchSpace (params, conditions, active), grid."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hyperq import Trials, fmin, grid, hp, rand, space_eval
from hyperq.exceptions import BadSearchSpace, DuplicateLabel
from hyperq.pyll import scope
from hyperq.pyll.stochastic import sample
from hyperq.space import SearchSpace


def make_space():
    """A classifier space: a choice of sub-spaces, a choice inside a choice, shared params."""
    return {
        "clf": hp.choice("clf", [
            {"type": "svm",
             "C": hp.loguniform("svm_C", math.log(1e-2), math.log(1e2)),
             "kernel": hp.choice("kernel", [
                 ("linear",),
                 ("rbf", hp.loguniform("gamma", -5, 0)),
                 ("poly", scope.int(hp.quniform("degree", 2, 5, 1))),
             ])},
            {"type": "forest",
             "n_estimators": hp.randint("n_estimators", 10, 200),
             "max_depth": hp.choice("max_depth", [None, hp.uniformint("depth", 2, 12)])},
            {"type": "dummy"},
        ]),
        "preprocess": [hp.choice("scale", [False, True]), hp.pchoice("pca", [(0.5, 0), (0.5, 5)])],
        "seed": 0,
    }


# -- sampling nested spaces ----------------------------------------------------------------

def test_sampled_points_have_the_shape_of_the_space():
    space = make_space()
    kinds = set()
    for seed in range(60):
        p = sample(space, np.random.default_rng(seed))
        assert set(p) == {"clf", "preprocess", "seed"} and p["seed"] == 0
        assert isinstance(p["preprocess"], list) and p["preprocess"][0] in (False, True)
        clf = p["clf"]
        kinds.add(clf["type"])
        if clf["type"] == "svm":
            assert set(clf) == {"type", "C", "kernel"} and 1e-2 <= clf["C"] <= 1e2
            assert isinstance(clf["kernel"], tuple) and clf["kernel"][0] in ("linear", "rbf", "poly")
            if clf["kernel"][0] == "poly":
                assert type(clf["kernel"][1]) is int and 2 <= clf["kernel"][1] <= 5
        elif clf["type"] == "forest":
            assert 10 <= clf["n_estimators"] < 200
            assert clf["max_depth"] is None or 2 <= clf["max_depth"] <= 12
        else:
            assert clf == {"type": "dummy"}
    assert kinds == {"svm", "forest", "dummy"}


# -- space_eval ----------------------------------------------------------------------------

def test_space_eval_maps_choice_indices_to_options():
    space = make_space()
    point = space_eval(space, {"clf": 0, "svm_C": 1.5, "kernel": 1, "gamma": 0.25,
                               "scale": 1, "pca": 1})
    assert point == {"clf": {"type": "svm", "C": 1.5, "kernel": ("rbf", 0.25)},
                     "preprocess": [True, 5], "seed": 0}


def test_space_eval_allows_missing_inactive_labels():
    space = make_space()
    point = space_eval(space, {"clf": 2, "scale": 0, "pca": 0})
    assert point == {"clf": {"type": "dummy"}, "preprocess": [False, 0], "seed": 0}
    point = space_eval(space, {"clf": 1, "n_estimators": 50, "max_depth": 0, "scale": 0, "pca": 0})
    assert point["clf"] == {"type": "forest", "n_estimators": 50, "max_depth": None}


def test_space_eval_ignores_values_of_inactive_and_unknown_labels():
    space = make_space()
    point = space_eval(space, {"clf": 2, "scale": 0, "pca": 0, "gamma": 0.1, "kernel": 99,
                               "not_a_label": 3})
    assert point["clf"] == {"type": "dummy"}


def test_space_eval_missing_active_label_names_it():
    space = make_space()
    with pytest.raises(KeyError, match="'degree'"):
        space_eval(space, {"clf": 0, "svm_C": 1.0, "kernel": 2, "scale": 0, "pca": 0})
    with pytest.raises(KeyError, match="'scale'"):
        space_eval(space, {"clf": 2, "pca": 0})


def test_space_eval_choice_index_out_of_range():
    with pytest.raises(BadSearchSpace, match="out of range for 2 options"):
        space_eval(hp.choice("c", ["a", "b"]), {"c": 2})
    with pytest.raises(BadSearchSpace, match="out of range"):
        space_eval(hp.choice("c", ["a", "b"]), {"c": -1})


def test_space_eval_coerces_stored_value_types():
    # Trials may hold numpy scalars or floats for indices and ints.
    space = {"c": hp.choice("c", ["a", "b"]), "n": hp.randint("n", 5),
             "d": hp.uniformint("d", 1, 9)}
    point = space_eval(space, {"c": np.int64(1), "n": 3.0, "d": np.float64(4.0)})
    assert point == {"c": "b", "n": 3, "d": 4}
    assert type(point["n"]) is int and type(point["d"]) is int


def test_space_eval_of_fmin_result_reproduces_the_best_point():
    space = make_space()
    seen = []

    def objective(p):
        seen.append(p)
        clf = p["clf"]
        return {"svm": clf.get("C", 0), "forest": clf.get("n_estimators", 0) / 10,
                "dummy": 50.0}[clf["type"]] + p["preprocess"][1]

    trials = Trials()
    best = fmin(objective, space, algo=rand.suggest, max_evals=25, trials=trials,
                rstate=np.random.default_rng(1), show_progressbar=False)
    assert isinstance(best["clf"], int)  # choice -> index, as hyperopt returns it
    best_point = seen[int(np.argmin(trials.losses()))]
    assert space_eval(space, best) == best_point


# -- duplicate labels ----------------------------------------------------------------------

DUPLICATES = [
    {"a": hp.uniform("x", 0, 1), "b": hp.uniform("x", 0, 1)},
    {"a": hp.uniform("x", 0, 1), "b": hp.normal("x", 0, 1)},
    hp.choice("c", [hp.uniform("x", 0, 1), hp.uniform("x", 0, 2)]),
    hp.choice("x", [1, hp.uniform("x", 0, 1)]),
    [hp.choice("m", [1, 2]), {"inner": hp.choice("m", [1, 2])}],
]


@pytest.mark.parametrize("space", DUPLICATES)
def test_duplicate_labels_are_rejected_when_compiled(space):
    label = "m" if isinstance(space, list) else "x"
    with pytest.raises(DuplicateLabel, match=f"'{label}'.*two different hyperparameters"):
        SearchSpace(space)
    with pytest.raises(DuplicateLabel, match=f"'{label}'"):
        space_eval(space, {"x": 0, "c": 0, "m": 0})


def test_fmin_rejects_duplicate_labels_before_evaluating():
    calls = []
    with pytest.raises(DuplicateLabel, match="'x'"):
        fmin(lambda p: calls.append(p) or 0.0, DUPLICATES[0], algo=rand.suggest, max_evals=3,
             rstate=np.random.default_rng(0), show_progressbar=False)
    assert calls == []


def test_reusing_one_hp_object_is_allowed_and_shares_the_value():
    x = hp.uniform("x", 0, 1)
    space = {"a": x, "b": [x, 2 * x], "c": hp.choice("c", [x, -x])}
    assert set(SearchSpace(space).labels) == {"x", "c"}
    assert space_eval(space, {"x": 0.25, "c": 1}) == {"a": 0.25, "b": [0.25, 0.5], "c": -0.25}
    p = sample(space, np.random.default_rng(0))
    assert p["b"] == [p["a"], 2 * p["a"]] and abs(p["c"]) == p["a"]


# -- SearchSpace ---------------------------------------------------------------------------

def test_search_space_params_and_conditions():
    ss = SearchSpace(make_space())
    assert set(ss.labels) == {"clf", "svm_C", "kernel", "gamma", "degree", "n_estimators",
                              "max_depth", "depth", "scale", "pca"}
    assert set(ss.params) == set(ss.labels)
    assert ss.conditions["clf"] == [()]
    assert ss.conditions["scale"] == [()]
    assert ss.conditions["svm_C"] == [(("clf", 0),)]
    assert ss.conditions["kernel"] == [(("clf", 0),)]
    assert ss.conditions["gamma"] == [(("clf", 0), ("kernel", 1))]
    assert ss.conditions["degree"] == [(("clf", 0), ("kernel", 2))]
    assert ss.conditions["n_estimators"] == [(("clf", 1),)]
    assert ss.conditions["depth"] == [(("clf", 1), ("max_depth", 1))]


def test_conditions_of_a_parameter_reachable_by_several_paths():
    x = hp.uniform("x", 0, 1)
    ss = SearchSpace({"c": hp.choice("c", [x, 1, {"again": x}])})
    assert sorted(ss.conditions["x"]) == [(("c", 0),), (("c", 2),)]
    ss = SearchSpace({"top": x, "c": hp.choice("c", [x, 1])})
    assert () in ss.conditions["x"]


def test_active_keeps_only_the_values_the_choices_reach():
    ss = SearchSpace(make_space())
    full = {"clf": 0, "svm_C": 1.0, "kernel": 2, "gamma": 0.3, "degree": 3.0,
            "n_estimators": 20, "max_depth": 1, "depth": 5, "scale": 1, "pca": 0}
    assert ss.active(full) == {"clf": 0, "svm_C": 1.0, "kernel": 2, "degree": 3,
                               "scale": 1, "pca": 0}
    assert ss.active({**full, "clf": 1}) == {"clf": 1, "n_estimators": 20, "max_depth": 1,
                                             "depth": 5, "scale": 1, "pca": 0}
    assert ss.active({**full, "clf": 2}) == {"clf": 2, "scale": 1, "pca": 0}
    with pytest.raises(BadSearchSpace, match="'gamma'.*active"):
        ss.active({"clf": 0, "svm_C": 1.0, "kernel": 1, "scale": 1, "pca": 0})


def test_sample_and_evaluate_agree_with_stochastic_sample():
    ss = SearchSpace(make_space())
    for seed in range(30):
        values = ss.sample(np.random.default_rng(seed))
        assert ss.active(values) == values  # only active labels are drawn
        # A label is drawn exactly when one of its condition paths holds.
        for label in ss.labels:
            holds = any(all(values.get(k) == i for k, i in path)
                        for path in ss.conditions[label])
            assert holds == (label in values), (label, values)
        assert ss.evaluate(values) == space_eval(make_space(), values)


# -- grid ----------------------------------------------------------------------------------

def grid_space():
    return hp.choice("opt", [
        {"name": "sgd", "lr": hp.quniform("lr", 0.1, 0.3, 0.1),
         "momentum": hp.choice("momentum", [0.0, 0.9])},
        {"name": "adam", "beta": hp.choice("beta", [
            "default", {"b1": hp.randint("b1", 2), "b2": hp.randint("b2", 3)}])},
        {"name": "fixed"},
    ])


def brute_force_grid(space) -> set:
    """Every distinct active assignment, from the full product of every parameter's values."""
    ss = SearchSpace(space)
    labels = ss.labels
    per_label = [grid.param_values(ss.params[k], 5) for k in labels]
    return {tuple(sorted(ss.active(dict(zip(labels, combo))).items()))
            for combo in itertools.product(*per_label)}


def test_iter_grid_visits_each_active_combination_once():
    ss = SearchSpace(grid_space())
    points = list(grid.iter_grid(ss))
    keys = [tuple(sorted(p.items())) for p in points]
    assert len(keys) == len(set(keys))
    # sgd: 3 lr x 2 momentum; adam: default + 2 x 3; fixed: 1
    assert len(points) == 6 + 7 + 1
    assert set(keys) == brute_force_grid(grid_space())
    assert grid.grid_size(grid_space()) == 14
    assert {"opt": 2} in points and {"opt": 1, "beta": 0} in points
    assert all(ss.active(p) == p for p in points)
    assert sorted(round(p["lr"], 9) for p in points if "lr" in p) == [0.1] * 2 + [0.2] * 2 + [0.3] * 2


def test_grid_resolution_for_continuous_parameters():
    space = {"c": hp.choice("c", [hp.uniform("u", 0, 1), hp.loguniform("l", 0, math.log(100))])}
    points = list(grid.iter_grid(SearchSpace(space), resolution=3))
    assert points == [{"c": 0, "u": 0.0}, {"c": 0, "u": 0.5}, {"c": 0, "u": 1.0},
                      {"c": 1, "l": pytest.approx(1.0)}, {"c": 1, "l": pytest.approx(10.0)},
                      {"c": 1, "l": pytest.approx(100.0)}]
    assert grid.grid_size(space, resolution={"u": 4, "l": 2}) == 6


def test_grid_rejects_unbounded_parameters():
    with pytest.raises(BadSearchSpace, match="unbounded parameter 'w'"):
        grid.grid_size({"w": hp.normal("w", 0, 1)})


@pytest.mark.parametrize("make", [
    lambda: hp.quniform("q", 1, 10, 3),  # round(u / 3) * 3 reaches 0 when u < 1.5
    lambda: hp.quniform("q", -5, 5, 2),
    lambda: hp.qloguniform("q", 0, math.log(10), 5),  # exp(u) < 2.5 rounds to 0
    lambda: hp.uniformint("q", 1, 4),
    lambda: hp.quniform("q", 0.15, 0.55, 0.1),
    lambda: scope.int(hp.quniform("q", 0, 6, 2)),
])
def test_grid_of_a_quantized_parameter_is_exactly_the_values_it_can_take(make):
    rng = np.random.default_rng(0)
    space = {"q": make()}
    sampled = {round(float(sample(space, rng)["q"]), 9) for _ in range(1000)}
    gridded = [round(float(p["q"]), 9) for p in grid.iter_grid(SearchSpace(space))]
    assert len(gridded) == len(set(gridded))
    assert set(gridded) == sampled
