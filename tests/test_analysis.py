"""Trials.to_dataframe, parameter importance and the per-trial log line (issue 7)."""
import logging
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from hyperq import STATUS_OK, Trials, fmin, hp, rand, trials_from_docs  # noqa: E402
from hyperq.analysis import (  # noqa: E402
    NotEnoughTrials,
    TrialLog,
    choice_options,
    format_trial,
    param_importance,
)
from hyperq.space import SearchSpace  # noqa: E402

SPACE = {
    "x": hp.uniform("x", -2, 2),
    "lr": hp.loguniform("lr", -5, 0),
    "act": hp.choice("act", ["relu", "tanh"]),
    "model": hp.choice("model", [
        {"type": "svm", "C": hp.uniform("C", 0, 1)},
        {"type": "tree", "fn": lambda z: z},  # a lambda: the space cannot be plainly pickled
    ]),
}


def objective(p):
    if p["x"] > 1.8:
        raise ValueError("x too large")
    return {"loss": p["x"] ** 2 + (0.5 if p["act"] == "tanh" else 0.0), "status": STATUS_OK,
            "accuracy": 1.0 - abs(p["x"]) / 2}


@pytest.fixture(scope="module")
def trials():
    t = Trials()
    fmin(objective, SPACE, algo=rand.suggest, max_evals=40, trials=t,
         rstate=np.random.default_rng(3), catch_eval_exceptions=True, show_progressbar=False)
    return t


def test_one_row_per_trial_with_the_documented_columns(trials):
    df = trials.to_dataframe()
    assert len(df) == len(trials) == 40
    assert list(df.columns[:4]) == ["tid", "state", "status", "loss"]
    for col in ("x", "lr", "act", "model", "C", "duration", "book_time", "refresh_time",
                "worker", "error", "result.accuracy"):
        assert col in df.columns, col
    assert df["tid"].tolist() == trials.tids
    assert set(df["state"]) <= {"done", "error"}
    done = df[df["state"] == "done"]
    assert (done["status"] == "ok").all()
    assert np.allclose(done["loss"], [trials.trials[i]["result"]["loss"] for i in done.index])
    assert (done["duration"] >= 0).all() and done["worker"].str.contains(":").all()


def test_parameters_are_shown_as_the_objective_saw_them(trials):
    df = trials.to_dataframe()
    assert set(df["act"]) == {"relu", "tanh"}  # not option indices
    assert set(df["model"]) == {"svm", "tree"}  # dict options named by their 'type'
    svm = df["model"] == "svm"
    assert df.loc[svm, "C"].notna().all() and df.loc[~svm, "C"].isna().all()
    assert df.attrs["decoded"] is True
    assert set(df.attrs["categorical"]) == {"act", "model"}
    assert df.attrs["log_scale"] == ["lr"]
    assert ((df["lr"] > np.exp(-5) - 1e-12) & (df["lr"] < 1.0)).all()


def test_errors_are_readable(trials):
    df = trials.to_dataframe()
    err = df[df["state"] == "error"]
    assert len(err) > 0, "the fixture should contain failing trials"
    assert (err["error"] == "ValueError: x too large").all()
    assert err["status"].isna().all()  # no result was ever written
    assert df.loc[df["state"] == "done", "error"].isna().all()


def test_space_survives_pickling_even_with_a_lambda(trials, tmp_path):
    back = pickle.loads(pickle.dumps(trials))
    assert set(back.to_dataframe()["act"]) == {"relu", "tanh"}
    # fmin's trials_save_file pickles trials as they finish: must keep working
    path = tmp_path / "t.pkl"
    fmin(objective, SPACE, algo=rand.suggest, max_evals=3, trials_save_file=str(path),
         rstate=np.random.default_rng(0), show_progressbar=False, catch_eval_exceptions=True)
    with open(path, "rb") as f:
        assert set(pickle.load(f).to_dataframe()["act"]) <= {"relu", "tanh"}


def test_without_a_space_choices_are_indices_and_space_can_be_given(trials):
    bare = trials_from_docs(trials.trials)
    df = bare.to_dataframe()
    assert df.attrs["decoded"] is False
    assert set(df["act"]) == {0, 1}
    assert set(bare.to_dataframe(space=SPACE)["act"]) == {"relu", "tanh"}


def test_empty_trials_give_an_empty_table():
    df = Trials().to_dataframe()
    assert len(df) == 0 and list(df.columns[:4]) == ["tid", "state", "status", "loss"]


def test_label_clashing_with_a_fixed_column_is_prefixed():
    t = Trials()
    fmin(lambda p: p["loss"], {"loss": hp.uniform("loss", 0, 1)}, algo=rand.suggest,
         max_evals=3, trials=t, show_progressbar=False, rstate=np.random.default_rng(0))
    df = t.to_dataframe()
    assert "param:loss" in df.columns and df.attrs["params"] == ["param:loss"]
    assert np.allclose(df["param:loss"], df["loss"])


def test_choice_options_describe_structures():
    opts = choice_options(SearchSpace({"c": hp.choice("c", [
        {"kernel": "rbf", "C": hp.uniform("C", 0, 1)}, {"kernel": "rbf", "d": [1, 2]}, None, 3,
    ])}))
    assert opts == {"c": ["{'kernel': 'rbf', 'C': <C>}", "{'kernel': 'rbf', 'd': [1, 2]}",
                          "None", 3]}


def _importance_trials(n=80):
    t = Trials()
    rng = np.random.default_rng(0)
    space = {"x": hp.uniform("x", -1, 1), "noise": hp.uniform("noise", -1, 1),
             "c": hp.choice("c", ["a", "b", "c"])}
    fmin(lambda p: 4 * p["x"] ** 2 + 0.01 * rng.normal(), space, algo=rand.suggest,
         max_evals=n, trials=t, rstate=np.random.default_rng(1), show_progressbar=False)
    return t


@pytest.mark.parametrize("method", ["forest", "anova"])
def test_importance_finds_the_parameter_that_matters(method):
    if method == "forest":
        pytest.importorskip("sklearn")
    imp = param_importance(_importance_trials(), method=method)
    assert imp.index[0] == "x"
    assert imp["x"] > 0.5
    assert imp["noise"] < 0.1 and imp["c"] < 0.1
    assert imp.attrs["method"] == method and imp.attrs["n_trials"] == 80


def test_importance_needs_enough_trials():
    with pytest.raises(NotEnoughTrials, match="at least 5 successful trials, there are 3"):
        param_importance(_importance_trials(3))
    with pytest.raises(ValueError, match="method must be"):
        param_importance(_importance_trials(6), method="magic")


# -- the driver's log line -----------------------------------------------------------------
def test_format_trial_says_what_happened(trials):
    ok = next(t for t in trials.trials if t["state"] == 2)
    line = format_trial(ok, best_loss=0.25, best_tid=99, space=SearchSpace(SPACE))
    assert line.startswith(f"trial {ok['tid']} done in ")
    assert f"loss {ok['result']['loss']:.6g} (best 0.25 at trial 99)" in line
    assert "act='relu'" in line or "act='tanh'" in line
    err = next(t for t in trials.trials if t["state"] == 3)
    assert f"trial {err['tid']} error" in format_trial(err)
    assert "ValueError: x too large" in format_trial(err)


def test_trial_log_logs_each_finished_trial_once(trials, caplog):
    log = TrialLog(logging.getLogger("hyperq.fmin"), space=SPACE)
    log.prime(trials.trials[:10])
    with caplog.at_level(logging.INFO, logger="hyperq.fmin"):
        log.scan(trials)
        log.scan(trials)
        log.finished(trials.trials[0])
    lines = [r.getMessage() for r in caplog.records if r.name == "hyperq.fmin"]
    assert len(lines) == 30
    assert lines[0].startswith("trial 10 ")
    assert sum("(new best)" in line for line in lines) >= 1


def test_trial_log_can_be_disabled(trials, caplog):
    log = TrialLog(enabled=False)
    with caplog.at_level(logging.INFO, logger="hyperq.fmin"):
        log.scan(trials)
    assert not [r for r in caplog.records if r.name == "hyperq.fmin"]


@pytest.mark.parametrize("configure,expect", [("", False), (
    "logging.basicConfig(level=logging.INFO)", True)])
def test_log_lines_are_quiet_unless_logging_is_configured(configure, expect):
    code = textwrap.dedent(f"""
        import logging
        {configure}
        from hyperq.analysis import TrialLog
        TrialLog().finished({{"tid": 0, "state": 2, "result": {{"status": "ok", "loss": 1.5}},
                              "misc": {{"vals": {{"x": [0.5]}}}}}})
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert ("trial 0 done: loss 1.5 (new best) | x=0.5" in out.stderr) is expect
