"""hyperq.hp: every distribution's sample statistics, bounds, quantization, types and validation.

Statistics are checked against the analytic distribution with scipy (KS for continuous, chi-square
for discrete and quantized) at p > 1e-6, so a correct implementation passes with overwhelming
probability while a wrong scale, shift, rounding or log convention fails by many orders of
magnitude. Draws go through ``hyperq.pyll.stochastic.sample`` with a seeded Generator, which is
what a user calls.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hyperq import hp
from hyperq.exceptions import BadSearchSpace
from hyperq.pyll.stochastic import sample

N = 8_000
P_MIN = 1e-6


class Opt:
    """An option object: ``hp.choice`` must hand back this very object, not a copy."""

    def __init__(self, name: str) -> None:
        self.name = name


OPTS = [Opt("red"), Opt("green"), Opt("blue")]

LOG = math.log
SPACE = {
    "uniform": hp.uniform("uniform", -2, 3),
    # round(u / 3) * 3 for u in [1, 10]: 0 is reachable (u < 1.5), 12 is not (u <= 10).
    "quniform": hp.quniform("quniform", 1, 10, 3),
    "uniformint": hp.uniformint("uniformint", 2, 6),
    "loguniform": hp.loguniform("loguniform", LOG(1e-3), LOG(10)),
    "qloguniform": hp.qloguniform("qloguniform", LOG(1), LOG(100), 5),
    "normal": hp.normal("normal", 3, 2),
    "qnormal": hp.qnormal("qnormal", 3, 2, 0.5),
    "lognormal": hp.lognormal("lognormal", 0.5, 0.75),
    "qlognormal": hp.qlognormal("qlognormal", 1, 0.5, 1),
    "randint_upper": hp.randint("randint_upper", 7),
    "randint_range": hp.randint("randint_range", -3, 4),
    "choice": hp.choice("choice", OPTS),
    "pchoice": hp.pchoice("pchoice", [(0.1, "a"), (0.2, "b"), (0.7, "c")]),
}


@pytest.fixture(scope="module")
def draws() -> dict[str, list]:
    rng = np.random.default_rng(20240611)
    points = [sample(SPACE, rng) for _ in range(N)]
    return {k: [p[k] for p in points] for k in SPACE}


def arr(values: list) -> np.ndarray:
    return np.asarray(values, dtype=float)


def chisquare_pmf(values: list, pmf: dict) -> float:
    """p-value of the observed values against ``pmf`` (value -> probability).

    Every observed value must be in the pmf's support; outcomes with a small expected count are
    lumped together so the chi-square approximation holds.
    """
    support = np.array(sorted(pmf))
    v = arr(values)
    idx = np.abs(v[:, None] - support[None, :]).argmin(axis=1)
    off = np.abs(v - support[idx]) > 1e-9 * np.maximum(1, np.abs(v))
    assert not off.any(), f"values outside the support: {sorted(set(v[off].tolist()))[:10]}"
    counts = np.bincount(idx, minlength=len(support)).astype(float)
    probs = np.array([pmf[s] for s in support])
    assert abs(probs.sum() - 1) < 1e-6
    big = probs * len(v) >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(probs[big], probs[~big].sum()) * len(v)
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return stats.chisquare(obs, exp).pvalue


def quantized_pmf(cdf, q: float, kmin: int, kmax: int) -> dict:
    """hyperopt's quantization: value k*q has probability F((k+.5)q) - F((k-.5)q)."""
    pmf = {k * q: cdf((k + 0.5) * q) - cdf((k - 0.5) * q) for k in range(kmin, kmax + 1)}
    pmf = {k: p for k, p in pmf.items() if p > 0}
    total = sum(pmf.values())
    assert total > 1 - 1e-9
    return {k: p / total for k, p in pmf.items()}


# -- continuous distributions --------------------------------------------------------------

@pytest.mark.parametrize("name, dist", [
    ("uniform", stats.uniform(-2, 5)),
    ("loguniform", stats.loguniform(1e-3, 10)),
    ("normal", stats.norm(3, 2)),
    ("lognormal", stats.lognorm(s=0.75, scale=math.exp(0.5))),
])
def test_continuous_distribution_matches_analytic(draws, name, dist):
    v = arr(draws[name])
    assert stats.kstest(v, dist.cdf).pvalue > P_MIN
    # Moments, 5 sigma (the standard error of the mean is std / sqrt(N)).
    assert abs(v.mean() - dist.mean()) < 5 * dist.std() / math.sqrt(N)
    assert all(type(x) is float for x in draws[name][:100])


def test_uniform_stays_in_bounds_and_reaches_both_ends(draws):
    v = arr(draws["uniform"])
    assert v.min() >= -2 and v.max() <= 3
    assert v.min() < -1.99 and v.max() > 2.99


def test_loguniform_bounds_are_logs_as_in_hyperopt(draws):
    v = arr(draws["loguniform"])
    assert v.min() >= 1e-3 and v.max() <= 10
    # Uniform in log space: a quarter of the draws in each quarter of [log 1e-3, log 10].
    edges = np.exp(np.linspace(LOG(1e-3), LOG(10), 5))
    counts = np.histogram(v, edges)[0]
    assert stats.chisquare(counts).pvalue > P_MIN
    # A plain uniform(-6.9, 2.3) would give negatives; exp(uniform) never does.
    assert (v > 0).all()


def test_loguniform_small_example():
    rng = np.random.default_rng(0)
    space = hp.loguniform("lr", LOG(1e-5), LOG(1e-1))
    v = arr([sample(space, rng) for _ in range(300)])
    assert v.min() >= 1e-5 and v.max() <= 1e-1
    assert (v < 1e-3).mean() > 0.3  # half the mass is below the geometric middle 1e-3


def test_normal_std_and_lognormal_positive(draws):
    v = arr(draws["normal"])
    # Standard error of the sample std of a normal is about sigma / sqrt(2N).
    assert abs(v.std() - 2) < 5 * 2 / math.sqrt(2 * N)
    assert (arr(draws["lognormal"]) > 0).all()
    logs = np.log(arr(draws["lognormal"]))
    assert abs(logs.mean() - 0.5) < 5 * 0.75 / math.sqrt(N)
    assert abs(logs.std() - 0.75) < 5 * 0.75 / math.sqrt(2 * N)


# -- quantized distributions ---------------------------------------------------------------

def test_quniform_values_are_multiples_of_q_with_hyperopt_rounding(draws):
    values = draws["quniform"]
    assert set(values) == {0.0, 3.0, 6.0, 9.0}
    assert all(type(x) is float for x in values)
    pmf = quantized_pmf(stats.uniform(1, 9).cdf, 3, -1, 4)
    assert pmf == pytest.approx({0.0: 0.5 / 9, 3.0: 3 / 9, 6.0: 3 / 9, 9.0: 2.5 / 9})
    assert chisquare_pmf(values, pmf) > P_MIN


def test_quniform_fractional_q():
    rng = np.random.default_rng(1)
    space = hp.quniform("x", 0, 1, 0.25)
    v = arr([sample(space, rng) for _ in range(400)])
    np.testing.assert_allclose(v / 0.25, np.round(v / 0.25), atol=1e-9)
    assert set(np.round(v, 9)) == {0.0, 0.25, 0.5, 0.75, 1.0}


def test_uniformint_gives_python_ints_in_bounds(draws):
    values = draws["uniformint"]
    assert all(type(x) is int for x in values)
    assert set(values) == {2, 3, 4, 5, 6}
    # hyperopt's uniformint is int(quniform(low, high, 1)): the two ends get half weight.
    pmf = quantized_pmf(stats.uniform(2, 4).cdf, 1, 1, 7)
    assert chisquare_pmf(values, pmf) > P_MIN
    assert abs(np.mean(values) - 4) < 5 * np.std(values) / math.sqrt(N)


def test_qloguniform_rounds_exp_of_uniform(draws):
    values = draws["qloguniform"]
    v = arr(values)
    np.testing.assert_allclose(v / 5, np.round(v / 5), atol=1e-9)
    assert v.min() >= 0 and v.max() <= 100
    pmf = quantized_pmf(stats.loguniform(1, 100).cdf, 5, 0, 20)
    assert 0.0 in pmf  # exp(u) < 2.5 rounds to 0, as in hyperopt
    assert chisquare_pmf(values, pmf) > P_MIN


def test_qnormal_and_qlognormal_match_rounded_analytic(draws):
    pmf = quantized_pmf(stats.norm(3, 2).cdf, 0.5, -40, 52)
    assert chisquare_pmf(draws["qnormal"], pmf) > P_MIN
    v = arr(draws["qlognormal"])
    assert (v >= 0).all() and np.all(v == np.round(v))
    pmf = quantized_pmf(stats.lognorm(s=0.5, scale=math.e).cdf, 1, 0, 200)
    assert chisquare_pmf(draws["qlognormal"], pmf) > P_MIN


# -- integer and categorical distributions -------------------------------------------------

def test_randint_upper_form(draws):
    values = draws["randint_upper"]
    assert all(type(x) is int for x in values)
    assert set(values) == set(range(7))
    assert chisquare_pmf(values, {k: 1 / 7 for k in range(7)}) > P_MIN


def test_randint_low_high_form_excludes_high(draws):
    values = draws["randint_range"]
    assert all(type(x) is int for x in values)
    assert set(values) == set(range(-3, 4))
    assert chisquare_pmf(values, {k: 1 / 7 for k in range(-3, 4)}) > P_MIN


def test_randint_keyword_forms():
    rng = np.random.default_rng(3)
    assert {sample(hp.randint("a", low=5, high=8), rng) for _ in range(200)} == {5, 6, 7}
    assert {sample(hp.randint("b", upper=3), rng) for _ in range(200)} == {0, 1, 2}
    assert {sample(hp.randint("c", 3, high=6), rng) for _ in range(200)} == {3, 4, 5}
    assert {sample(hp.randint("d", high=2), rng) for _ in range(200)} == {0, 1}


def test_choice_returns_the_option_objects_uniformly(draws):
    values = draws["choice"]
    assert all(any(v is o for o in OPTS) for v in values)
    counts = [sum(v is o for v in values) for o in OPTS]
    assert stats.chisquare(counts).pvalue > P_MIN


def test_choice_accepts_tuples_ranges_and_numpy_arrays():
    rng = np.random.default_rng(4)
    assert {sample(hp.choice("t", ("a", "b")), rng) for _ in range(100)} == {"a", "b"}
    assert {sample(hp.choice("r", range(3)), rng) for _ in range(100)} == {0, 1, 2}
    # Common in hyperopt scripts: hp.choice('depth', np.arange(1, 4)).
    got = {int(sample(hp.choice("a", np.arange(1, 4)), rng)) for _ in range(100)}
    assert got == {1, 2, 3}


def test_pchoice_frequencies(draws):
    values = draws["pchoice"]
    assert set(values) == {"a", "b", "c"}
    assert chisquare_pmf([" abc".index(v) for v in values], {1: 0.1, 2: 0.2, 3: 0.7}) > P_MIN


def test_pchoice_zero_probability_option_never_drawn():
    rng = np.random.default_rng(5)
    space = hp.pchoice("p", [(0.0, "never"), (0.25, "x"), (0.75, "y")])
    got = [sample(space, rng) for _ in range(500)]
    assert "never" not in got and set(got) == {"x", "y"}


def test_single_option_choice():
    assert sample(hp.choice("only", ["just this"]), np.random.default_rng(0)) == "just this"


# -- validation at definition time ---------------------------------------------------------

BAD = [
    # low >= high, including bounds at 0 (hyperopt skips the check then).
    (lambda: hp.uniform("lr", 1, 0), r"'lr'.*low \(1\) must be less than high \(0\)"),
    (lambda: hp.uniform("lr", 0, -1), r"'lr'.*low \(0\) must be less than high \(-1\)"),
    (lambda: hp.uniform("lr", 0, 0), r"'lr'.*low \(0\) must be less than high \(0\)"),
    (lambda: hp.uniform("lr", 2, 2), r"'lr'.*low.*less than high"),
    (lambda: hp.quniform("n", 10, 0, 1), r"'n'.*low.*less than high"),
    (lambda: hp.uniformint("n", 5, 0), r"'n'.*low.*less than high"),
    (lambda: hp.loguniform("lr", 0, -3), r"'lr'.*low.*less than high.*logarithm"),
    (lambda: hp.qloguniform("lr", 0, 0, 1), r"'lr'.*low.*less than high"),
    # q <= 0
    (lambda: hp.quniform("n", 0, 10, 0), r"'n'.*q must be positive"),
    (lambda: hp.quniform("n", 0, 10, -1), r"'n'.*q must be positive"),
    (lambda: hp.qloguniform("n", 0, 3, 0), r"'n'.*q must be positive"),
    (lambda: hp.qnormal("n", 0, 1, -0.5), r"'n'.*q must be positive"),
    (lambda: hp.qlognormal("n", 0, 1, 0), r"'n'.*q must be positive"),
    (lambda: hp.uniformint("n", 0, 10, q=0), r"'n'.*q must be positive"),
    # sigma <= 0
    (lambda: hp.normal("w", 0, 0), r"'w'.*sigma must be positive"),
    (lambda: hp.normal("w", 0, -1), r"'w'.*sigma must be positive"),
    (lambda: hp.qnormal("w", 0, 0, 1), r"'w'.*sigma must be positive"),
    (lambda: hp.lognormal("w", 0, -2), r"'w'.*sigma must be positive"),
    (lambda: hp.qlognormal("w", 0, 0, 1), r"'w'.*sigma must be positive"),
    # empty choice / pchoice
    (lambda: hp.choice("model", []), r"'model'.*at least one option"),
    (lambda: hp.choice("model", ()), r"'model'.*at least one option"),
    (lambda: hp.pchoice("model", []), r"'model'.*at least one"),
    (lambda: hp.choice("model", "abc"), r"'model'.*list or tuple"),
    # pchoice probabilities
    (lambda: hp.pchoice("p", [(0.5, "a"), (0.4, "b")]), r"'p'.*sum to 1.*0\.9"),
    (lambda: hp.pchoice("p", [(0.5, "a"), (0.6, "b")]), r"'p'.*sum to 1.*1\.1"),
    (lambda: hp.pchoice("p", [(1.5, "a"), (-0.5, "b")]), r"'p'.*negative"),
    (lambda: hp.pchoice("p", ["a", "b"]), r"'p'.*\(probability, option\) pairs"),
    # labels must be strings
    (lambda: hp.uniform(3, 0, 1), r"labels must be strings.*3"),
    (lambda: hp.choice(None, [1, 2]), r"labels must be strings.*None"),
    (lambda: hp.randint(("a",), 3), r"labels must be strings"),
    (lambda: hp.normal(b"x", 0, 1), r"labels must be strings"),
    # bounds must be real numbers
    (lambda: hp.uniform("x", "0", 1), r"'x'.*low must be a real number"),
    (lambda: hp.uniform("x", 0, None), r"'x'.*high must be a real number"),
    (lambda: hp.uniform("x", 0, math.inf), r"'x'.*high must be finite"),
    (lambda: hp.uniform("x", math.nan, 1), r"'x'.*low must be finite"),
    (lambda: hp.normal("x", "0", 1), r"'x'.*mu must be a real number"),
    (lambda: hp.quniform("x", 0, 1, "0.1"), r"'x'.*q must be a real number"),
    (lambda: hp.uniform("x", False, True), r"'x'.*must be a real number"),
    # randint
    (lambda: hp.randint("k", 5, 5), r"'k'.*randint needs low < high"),
    (lambda: hp.randint("k", 6, 2), r"'k'.*randint needs low < high"),
    (lambda: hp.randint("k", 0), r"'k'.*randint needs low < high"),
    (lambda: hp.randint("k", -3), r"'k'.*randint needs low < high"),
    (lambda: hp.randint("k", 2.5), r"'k'.*must be an integer"),
    (lambda: hp.randint("k", "3"), r"'k'.*must be an integer"),
    (lambda: hp.randint("k"), r"'k'.*randint\(label, upper\)"),
    (lambda: hp.randint("k", 1, 2, 3), r"'k'.*randint\(label, upper\)"),
    (lambda: hp.randint("k", 1, low=2), r"'k'.*randint\(label, upper\)"),
    (lambda: hp.randint("k", 1, upper=2), r"'k'.*randint\(label, upper\)"),
    (lambda: hp.randint("k", size=2), r"'k'.*randint\(label, upper\)"),
]


@pytest.mark.parametrize("make, message", BAD)
def test_bad_arguments_are_rejected_at_definition_with_a_clear_message(make, message):
    with pytest.raises(BadSearchSpace, match=message):
        make()


def test_bad_search_space_is_a_value_error():
    # Existing `except ValueError` clauses keep catching hyperq's validation errors.
    with pytest.raises(ValueError):
        hp.uniform("x", 1, 0)


@pytest.mark.parametrize("make", [
    lambda: hp.uniform("x", -1, 0),
    lambda: hp.uniform("x", 0, 1e-12),
    lambda: hp.loguniform("x", -5, 0),
    lambda: hp.randint("x", 1),
    lambda: hp.randint("x", -5, -4),
    lambda: hp.randint("x", np.int64(2), np.int64(9)),
    lambda: hp.uniform("x", np.float32(0), np.float64(1)),
    lambda: hp.pchoice("x", [(1 / 3, "a"), (1 / 3, "b"), (1 / 3, "c")]),
    lambda: hp.choice("", [1]),
])
def test_valid_edge_cases_are_accepted(make):
    sample(make(), np.random.default_rng(0))
