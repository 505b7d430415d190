"""hyperq.pyll: scope functions, operators and indexing on space expressions, sampling."""
from __future__ import annotations

import math
import operator

import numpy as np
import pytest

from hyperq import hp, space_eval
from hyperq.pyll import as_apply, rec_eval, scope
from hyperq.pyll.stochastic import sample


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- scope.int / scope.float ---------------------------------------------------------------

def test_scope_int_gives_python_ints():
    space = {
        "q": scope.int(hp.quniform("q", 1, 50, 1)),
        "t": scope.int(hp.uniform("t", 0, 10)),
        "l": scope.int(hp.qloguniform("l", 0, math.log(1000), 1)),
    }
    for seed in range(20):
        point = sample(space, rng(seed))
        assert all(type(v) is int for v in point.values()), point
        assert 1 <= point["q"] <= 50 and 0 <= point["t"] <= 10
    # int() truncates, as in hyperopt: uniform 3.9 -> 3.
    assert space_eval(space, {"q": 7.0, "t": 3.9, "l": 12.0}) == {"q": 7, "t": 3, "l": 12}


def test_scope_float_gives_floats():
    space = scope.float(hp.randint("r", 5))
    values = [sample(space, rng(s)) for s in range(20)]
    assert all(type(v) is float for v in values)
    assert space_eval(space, {"r": 3}) == 3.0


def test_quniform_alone_stays_float_like_hyperopt():
    point = sample({"q": hp.quniform("q", 0, 10, 1)}, rng(1))
    assert type(point["q"]) is float


# -- user functions ------------------------------------------------------------------------

@pytest.fixture
def user_fn():
    @scope.define
    def hyperq_test_affine(x, scale=1.0, shift=0.0):
        return x * scale + shift

    yield hyperq_test_affine
    scope.undefine(hyperq_test_affine)


def test_scope_define_returns_function_and_builds_nodes(user_fn):
    assert user_fn(2, scale=3) == 6  # still callable directly, as in hyperopt
    space = {"y": scope.hyperq_test_affine(hp.uniform("x", 0, 1), scale=10, shift=hp.choice(
        "s", [100, 200]))}
    for seed in range(10):
        y = sample(space, rng(seed))["y"]
        assert 100 <= y <= 110 or 200 <= y <= 210
    assert space_eval(space, {"x": 0.5, "s": 1}) == {"y": 205.0}


def test_scope_function_receives_nested_space_values():
    seen = []

    @scope.define
    def hyperq_test_build(cfg):
        seen.append(cfg)
        return ("built", cfg["n"] * 2)

    try:
        space = scope.hyperq_test_build({"n": hp.randint("n", 3, 6), "tag": "t"})
        assert space_eval(space, {"n": 4}) == ("built", 8)
        assert seen[-1] == {"n": 4, "tag": "t"}
    finally:
        scope.undefine("hyperq_test_build")


def test_unknown_scope_function_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no_such_fn.*scope.define"):
        scope.no_such_fn(1)


def test_scope_switch_evaluates_only_the_chosen_option():
    calls = []

    @scope.define
    def hyperq_test_record(tag):
        calls.append(tag)
        return tag

    try:
        space = scope.switch(hp.randint("i", 2), scope.hyperq_test_record("a"),
                             scope.hyperq_test_record("b"))
        assert space_eval(space, {"i": 1}) == "b"
        assert calls == ["b"]
    finally:
        scope.undefine("hyperq_test_record")


# -- operators -----------------------------------------------------------------------------

X = hp.uniform("x", 1, 4)

ARITH = [
    ("1 + x", lambda x: 1 + x, 1 + X),
    ("x + 1", lambda x: x + 1, X + 1),
    ("x - 2", lambda x: x - 2, X - 2),
    ("10 - x", lambda x: 10 - x, 10 - X),
    ("3 * x", lambda x: 3 * x, 3 * X),
    ("x * x", lambda x: x * x, X * X),
    ("x / 2", lambda x: x / 2, X / 2),
    ("1 / x", lambda x: 1 / x, 1 / X),
    ("x // 0.5", lambda x: x // 0.5, X // 0.5),
    ("7 // x", lambda x: 7 // x, 7 // X),
    ("x % 1", lambda x: x % 1, X % 1),
    ("10 % x", lambda x: 10 % x, 10 % X),
    ("x ** 2", lambda x: x ** 2, X ** 2),
    ("2 ** x", lambda x: 2 ** x, 2 ** X),
    ("-x", lambda x: -x, -X),
    ("+x", lambda x: +x, +X),
    ("abs(-x)", lambda x: abs(-x), abs(-X)),
    ("x < 2", lambda x: x < 2, X < 2),
    ("x <= 2", lambda x: x <= 2, X <= 2),
    ("x > 2", lambda x: x > 2, X > 2),
    ("x >= 2", lambda x: x >= 2, X >= 2),
    ("(x + 1) * (x - 1)", lambda x: (x + 1) * (x - 1), (X + 1) * (X - 1)),
]


@pytest.mark.parametrize("text, fn, expr", ARITH, ids=[a[0] for a in ARITH])
def test_operators_evaluate_like_python(text, fn, expr):
    for x in (1.0, 2.0, 2.75, 3.5):
        assert space_eval(expr, {"x": x}) == pytest.approx(fn(x)), text
    # Sampling evaluates the same expression on the sampled x.
    for seed in range(5):
        point = sample({"x": X, "y": expr}, rng(seed))
        assert point["y"] == pytest.approx(fn(point["x"])), text


def test_comparison_results_are_bools():
    assert space_eval(X < 2, {"x": 1.5}) is True
    assert space_eval(X >= 2, {"x": 1.5}) is False


def test_one_plus_lognormal_and_uniform_squared():
    space = {"a": 1 + hp.lognormal("a", 0, 1), "b": hp.uniform("b", -1, 2) ** 2}
    for seed in range(50):
        p = sample(space, rng(seed))
        assert p["a"] > 1 and 0 <= p["b"] <= 4
    assert space_eval(space, {"a": 2.0, "b": -0.5}) == {"a": 3.0, "b": 0.25}


def test_shared_parameter_has_one_value_per_sample():
    x = hp.normal("x", 0, 1)
    space = {"zero": x - x, "pair": (x, x * 1)}
    for seed in range(10):
        p = sample(space, rng(seed))
        assert p["zero"] == 0.0
        assert p["pair"][0] == p["pair"][1]


def test_expressions_have_no_truth_value_and_cannot_be_iterated():
    x = hp.uniform("x", 0, 1)
    with pytest.raises(TypeError, match="no truth value"):
        bool(x > 0.5)
    with pytest.raises(TypeError, match="cannot be iterated"):
        list(hp.choice("c", [[1, 2], [3, 4]]))


# -- indexing ------------------------------------------------------------------------------

def test_indexing_a_choice_of_lists():
    c = hp.choice("c", [[1, 2], [3, 4]])
    assert space_eval(c[0], {"c": 0}) == 1
    assert space_eval(c[0], {"c": 1}) == 3
    assert space_eval(c[1], {"c": 1}) == 4
    assert {sample(c[0], rng(s)) for s in range(30)} == {1, 3}


def test_indexing_by_key_and_by_another_parameter():
    c = hp.choice("c", [{"lr": 0.1, "layers": [8, 16]}, {"lr": 0.01, "layers": [32, 64]}])
    assert space_eval(c["lr"], {"c": 1}) == 0.01
    assert space_eval(c["layers"][hp.randint("i", 2)], {"c": 0, "i": 1}) == 16
    assert space_eval(c["layers"][-1], {"c": 1}) == 64


def test_indexing_a_sampled_sub_space():
    pair = [hp.uniform("lo", 0, 1), hp.uniform("hi", 5, 6)]
    space = {"lo": as_apply(pair)[0], "hi": as_apply(pair)[1]}
    p = sample(space, rng(2))
    assert 0 <= p["lo"] <= 1 and 5 <= p["hi"] <= 6


# -- containers and rec_eval ---------------------------------------------------------------

def test_containers_keep_their_types():
    space = {"t": (hp.uniform("a", 0, 1), "k"), "l": [hp.randint("b", 3), [1, (2,)]],
             7: {"inner": hp.choice("c", ["x", "y"])}, "none": None}
    p = sample(space, rng(3))
    assert set(p) == {"t", "l", 7, "none"}
    assert isinstance(p["t"], tuple) and p["t"][1] == "k" and 0 <= p["t"][0] <= 1
    assert isinstance(p["l"], list) and p["l"][1] == [1, (2,)]
    assert p[7]["inner"] in ("x", "y") and p["none"] is None


def test_rec_eval_with_memo_and_values():
    x = hp.uniform("x", 0, 10)
    expr = scope.int(x) + 1
    assert rec_eval(expr, memo={x: 4.5}) == 5
    assert rec_eval(expr, values={"x": 8.2}) == 9
    assert rec_eval({"k": [1, 2]}) == {"k": [1, 2]}
    with pytest.raises(KeyError, match="'x'"):
        rec_eval(expr)


def test_operator_module_functions_are_registered():
    # hyperopt spaces sometimes call scope.add / scope.mul explicitly.
    for name, fn in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul)]:
        assert rec_eval(getattr(scope, name)(6, 3)) == fn(6, 3)
    assert rec_eval(scope.exp(scope.log(5.0))) == pytest.approx(5.0)


# -- determinism ---------------------------------------------------------------------------

SPACE = {
    "model": hp.choice("model", [
        {"kind": "svm", "C": hp.loguniform("C", -3, 3)},
        {"kind": "tree", "depth": scope.int(hp.quniform("depth", 1, 10, 1)),
         "crit": hp.pchoice("crit", [(0.3, "gini"), (0.7, "entropy")])},
    ]),
    "noise": hp.normal("noise", 0, 1),
    "k": hp.randint("k", 100),
}


def test_same_seed_gives_the_same_sample():
    for seed in range(10):
        assert sample(SPACE, rng(seed)) == sample(SPACE, rng(seed))
    assert sample(SPACE, 7) == sample(SPACE, 7)


def test_different_seeds_give_different_samples():
    samples = [sample(SPACE, rng(seed)) for seed in range(10)]
    assert len({p["noise"] for p in samples}) == 10
    assert {p["model"]["kind"] for p in samples} == {"svm", "tree"}


def test_one_generator_gives_a_reproducible_stream():
    g1, g2 = rng(11), rng(11)
    first = [sample(SPACE, g1) for _ in range(5)]
    assert first == [sample(SPACE, g2) for _ in range(5)]
    assert first[0] != first[1]


def test_legacy_random_state_is_accepted_and_deterministic():
    a = sample(SPACE, np.random.RandomState(3))
    assert a == sample(SPACE, np.random.RandomState(3))


def test_sample_rejects_duplicate_labels_like_fmin():
    import pytest as _pytest

    from hyperq import hp
    from hyperq.exceptions import DuplicateLabel
    from hyperq.pyll.stochastic import sample as _sample

    with _pytest.raises(DuplicateLabel, match="'a'"):
        _sample({"x": hp.uniform("a", 0, 1), "y": hp.normal("a", 0, 1)}, 0)
