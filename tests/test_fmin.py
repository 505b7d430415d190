"""fmin: arguments, stop rules, the result contract, resume and determinism."""
from __future__ import annotations

import logging
import math
import pickle

import numpy as np
import pytest

from hyperq import (
    STATUS_FAIL, STATUS_OK, AllTrialsFailed, InvalidLoss, InvalidResultStatus, JOB_STATE_CANCEL,
    JOB_STATE_DONE, JOB_STATE_ERROR, Trials, anneal, fmin, generate_trials_to_calculate, hp,
    rand, space_eval, tpe,
)
from hyperq.early_stop import no_progress_loss
from hyperq.exceptions import BadSearchSpace, InvalidArgument

SPACE = {"x": hp.uniform("x", -5, 5), "k": hp.choice("k", ["a", "b", "c"])}


def quad(p):
    return (p["x"] - 1.0) ** 2 + {"a": 1.0, "b": 0.0, "c": 2.0}[p["k"]]


def run(**kw):
    kw.setdefault("show_progressbar", False)
    kw.setdefault("rstate", np.random.default_rng(0))
    return fmin(**kw)


def test_minimizes_and_returns_argmin_with_choice_indices():
    trials = Trials()
    best = run(fn=quad, space=SPACE, algo=tpe.suggest, max_evals=60, trials=trials)
    assert set(best) == {"x", "k"}
    assert best["k"] == 1  # index of "b", hyperopt's argmin convention
    assert abs(best["x"] - 1.0) < 0.5
    assert space_eval(SPACE, best)["k"] == "b"
    assert len(trials) == 60
    assert all(t["state"] == JOB_STATE_DONE for t in trials.trials)


def test_return_argmin_false_returns_the_point():
    point = run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=30, return_argmin=False)
    assert point["k"] in ("a", "b", "c") and -5 <= point["x"] <= 5


@pytest.mark.parametrize("algo", [rand.suggest, tpe.suggest, anneal.suggest])
def test_same_rstate_same_trials(algo):
    def vals(seed):
        t = Trials()
        run(fn=quad, space=SPACE, algo=algo, max_evals=30, trials=t,
            rstate=np.random.default_rng(seed))
        return [(v["misc"]["vals"]["x"], v["misc"]["vals"]["k"]) for v in t.trials]

    assert vals(3) == vals(3)
    assert vals(3) != vals(4)


def test_int_seed_and_env_seed(monkeypatch):
    a = run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=5, rstate=7)
    b = run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=5, rstate=7)
    assert a == b
    monkeypatch.setenv("HYPERQ_FMIN_SEED", "11")
    c = fmin(quad, SPACE, algo=rand.suggest, max_evals=5, show_progressbar=False)
    d = fmin(quad, SPACE, algo=rand.suggest, max_evals=5, show_progressbar=False)
    assert c == d


def test_max_evals_counts_existing_trials_so_a_second_call_resumes():
    trials = Trials()
    run(fn=quad, space=SPACE, algo=tpe.suggest, max_evals=10, trials=trials)
    run(fn=quad, space=SPACE, algo=tpe.suggest, max_evals=25, trials=trials)
    assert len(trials) == 25
    assert [t["tid"] for t in trials.trials] == list(range(25))
    run(fn=quad, space=SPACE, algo=tpe.suggest, max_evals=25, trials=trials)
    assert len(trials) == 25


def test_timeout_stops_between_trials():
    import time

    def slow(p):
        time.sleep(0.05)
        return p["x"] ** 2

    trials = Trials()
    run(fn=slow, space=SPACE, algo=rand.suggest, max_evals=1000, timeout=0.3, trials=trials)
    assert 2 <= len(trials) <= 12


def test_loss_threshold_stops_when_reached():
    trials = Trials()
    run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=500, loss_threshold=0.5,
        trials=trials)
    assert min(trials.losses()) <= 0.5
    assert trials.losses()[-1] <= 0.5  # stopped right after the first good enough trial
    assert len(trials) < 500


def test_early_stop_fn_receives_trials_and_carries_state():
    calls = []

    def stop_after_five(trials, count=0):
        calls.append(len(trials))
        return count + 1 >= 5, [count + 1]

    trials = Trials()
    run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=100, trials=trials,
        early_stop_fn=stop_after_five)
    assert len(trials) == 5
    assert calls == [1, 2, 3, 4, 5]


def test_no_progress_loss_survives_failed_trials():
    def sometimes_fails(p):
        if p["x"] < 0:
            return {"status": STATUS_FAIL}
        return {"loss": 1.0, "status": STATUS_OK}

    trials = Trials()
    run(fn=sometimes_fails, space=SPACE, algo=rand.suggest, max_evals=200, trials=trials,
        early_stop_fn=no_progress_loss(10))
    assert len(trials) < 200
    assert any(r["status"] == STATUS_FAIL for r in trials.results)


def test_dict_results_keep_extra_keys_and_attachments():
    def fn(p):
        return {"loss": p["x"] ** 2, "status": STATUS_OK, "accuracy": 0.9,
                "attachments": {"model": b"weights"}}

    trials = Trials()
    run(fn=fn, space=SPACE, algo=rand.suggest, max_evals=3, trials=trials)
    assert trials.results[0]["accuracy"] == 0.9
    assert "attachments" not in trials.results[0]
    assert trials.trial_attachments(trials.trials[2])["model"] == b"weights"
    assert trials.best_trial["result"]["loss"] == min(trials.losses())


def test_objective_exception_propagates_and_is_recorded():
    def boom(p):
        raise ValueError("bad x")

    trials = Trials()
    with pytest.raises(ValueError, match="bad x"):
        run(fn=boom, space=SPACE, algo=rand.suggest, max_evals=3, trials=trials)
    assert trials.trials[0]["state"] == JOB_STATE_ERROR
    assert "bad x" in trials.trials[0]["misc"]["error"][1]
    assert "Traceback" in trials.trials[0]["misc"]["traceback"]


def test_catch_eval_exceptions_keeps_going():
    def flaky(p):
        if p["x"] < 0:
            raise RuntimeError("negative")
        return p["x"]

    trials = Trials()
    best = run(fn=flaky, space=SPACE, algo=rand.suggest, max_evals=30, trials=trials,
               catch_eval_exceptions=True)
    states = [t["state"] for t in trials.trials]
    assert len(trials) == 30 and JOB_STATE_ERROR in states and JOB_STATE_DONE in states
    assert best["x"] >= 0


def test_all_failed_raises_all_trials_failed():
    with pytest.raises(AllTrialsFailed, match="no trial finished"):
        run(fn=lambda p: {"status": STATUS_FAIL}, space=SPACE, algo=rand.suggest, max_evals=3)


def test_nan_loss_becomes_failed_trial_with_reason_and_run_continues(caplog):
    def fn(p):
        return float("nan") if p["x"] < 0 else p["x"]

    trials = Trials()
    with caplog.at_level(logging.WARNING, logger="hyperq.fmin"):
        best = run(fn=fn, space=SPACE, algo=tpe.suggest, max_evals=40, trials=trials)
    failed = [r for r in trials.results if r["status"] == STATUS_FAIL]
    assert failed and all("not a finite number" in r["failure"] for r in failed)
    assert all(math.isnan(r["loss"]) for r in failed)
    assert best["x"] >= 0
    assert "not a finite number" in caplog.text


@pytest.mark.parametrize("bad, exc, msg", [
    ("1.0", InvalidLoss, "got a str"),
    ({"loss": 1.0}, InvalidResultStatus, "without a 'status' key"),
    ({"loss": 1.0, "status": "great"}, InvalidResultStatus, "invalid status"),
    ({"status": STATUS_OK}, InvalidLoss, "no 'loss' key"),
    ({"loss": "low", "status": STATUS_OK}, InvalidLoss, "loss is a str"),
    (None, InvalidLoss, "NoneType"),
])
def test_bad_results_raise_clear_errors(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        run(fn=lambda p: bad, space=SPACE, algo=rand.suggest, max_evals=2)


@pytest.mark.parametrize("kw, msg", [
    ({"max_evals": -1}, "max_evals"),
    ({"max_evals": 2.5}, "max_evals"),
    ({"max_evals": None}, "needs a stop rule"),
    ({"max_evals": 5, "timeout": 0}, "timeout"),
    ({"max_evals": 5, "max_queue_len": 0}, "max_queue_len"),
    ({"max_evals": 5, "early_stop_fn": 3}, "early_stop_fn"),
    ({"max_evals": 5, "rstate": "seed"}, "rstate"),
    ({"max_evals": 5, "algo": "tpe"}, "algo"),
    ({"max_evals": 5, "loss_threshold": float("nan")}, "loss_threshold"),
])
def test_bad_arguments_are_named(kw, msg):
    kw.setdefault("algo", rand.suggest)
    with pytest.raises(InvalidArgument, match=msg):
        fmin(quad, SPACE, show_progressbar=False, **kw)


def test_fn_must_be_callable():
    with pytest.raises(InvalidArgument, match="callable"):
        fmin("quad", SPACE, algo=rand.suggest, max_evals=1)


def test_points_to_evaluate_go_first():
    trials = Trials()
    pts = [{"x": 1.0, "k": 1}, {"x": -2.0, "k": 0}]
    run(fn=quad, space=SPACE, algo=tpe.suggest, max_evals=5, trials=trials,
        points_to_evaluate=pts)
    assert trials.trials[0]["misc"]["vals"] == {"x": [1.0], "k": [1]}
    assert trials.losses()[0] == 0.0
    assert trials.trials[1]["misc"]["vals"]["x"] == [-2.0]
    assert len(trials) == 5


def test_points_to_evaluate_validated_against_space():
    with pytest.raises(BadSearchSpace, match="not in the space"):
        run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=2,
            points_to_evaluate=[{"x": 1.0, "k": 0, "z": 3}])
    with pytest.raises(BadSearchSpace, match="option indices"):
        run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=2,
            points_to_evaluate=[{"x": 1.0, "k": "b"}])
    with pytest.raises(BadSearchSpace, match="no value for hyperparameter 'x'"):
        run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=2,
            points_to_evaluate=[{"k": 1}])


def test_generate_trials_to_calculate():
    trials = generate_trials_to_calculate([{"x": 0.5, "k": 2}])
    run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=3, trials=trials)
    assert trials.losses()[0] == pytest.approx(2.25)
    assert len(trials) == 3


def test_trials_save_file_resumes(tmp_path):
    path = str(tmp_path / "trials.pkl")
    run(fn=quad, space=SPACE, algo=tpe.suggest, max_evals=8, trials_save_file=path)
    saved = pickle.load(open(path, "rb"))
    assert len(saved) == 8
    run(fn=quad, space=SPACE, algo=tpe.suggest, max_evals=20, trials_save_file=path)
    saved = pickle.load(open(path, "rb"))
    assert len(saved) == 20
    assert [t["tid"] for t in saved.trials] == list(range(20))


def test_trials_save_file_keeps_work_when_objective_raises(tmp_path):
    path = str(tmp_path / "trials.pkl")
    calls = []

    def fn(p):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("crash on the fourth trial")
        return p["x"] ** 2

    with pytest.raises(RuntimeError):
        run(fn=fn, space=SPACE, algo=rand.suggest, max_evals=10, trials_save_file=path)
    saved = pickle.load(open(path, "rb"))
    assert [t["state"] for t in saved.trials] == [JOB_STATE_DONE] * 3 + [JOB_STATE_ERROR]


def test_keyboard_interrupt_hands_the_trial_back(tmp_path):
    path = str(tmp_path / "t.pkl")
    n = []

    def fn(p):
        n.append(1)
        if len(n) == 3:
            raise KeyboardInterrupt
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        run(fn=fn, space=SPACE, algo=rand.suggest, max_evals=5, trials_save_file=path)
    saved = pickle.load(open(path, "rb"))
    assert [t["state"] for t in saved.trials] == [JOB_STATE_DONE, JOB_STATE_DONE, 0]
    run(fn=lambda p: 1.0, space=SPACE, algo=rand.suggest, max_evals=5, trials_save_file=path)
    saved = pickle.load(open(path, "rb"))
    assert [t["state"] for t in saved.trials] == [JOB_STATE_DONE] * 5


def test_max_queue_len_batches_suggestions_and_cancels_leftovers_on_early_stop():
    sizes = []

    def spy(new_ids, domain, trials, seed):
        sizes.append(len(new_ids))
        return rand.suggest(new_ids, domain, trials, seed)

    trials = Trials()
    run(fn=quad, space=SPACE, algo=spy, max_evals=12, trials=trials, max_queue_len=4)
    assert sizes[0] == 4 and sum(sizes) == 12 and len(trials) == 12
    trials = Trials()
    run(fn=lambda p: 0.0, space=SPACE, algo=rand.suggest, max_evals=12, trials=trials,
        max_queue_len=4, loss_threshold=0.1)
    states = [t["state"] for t in trials.trials]
    assert states[0] == JOB_STATE_DONE and states.count(JOB_STATE_CANCEL) == 3


def test_pass_expr_memo_ctrl():
    from hyperq.pyll import rec_eval

    def fn(expr, memo, ctrl):
        point = rec_eval(expr, memo=memo)
        ctrl.attachments["seen"] = repr(point)
        return quad(point)

    trials = Trials()
    run(fn=fn, space=SPACE, algo=rand.suggest, max_evals=3, trials=trials,
        pass_expr_memo_ctrl=True)
    assert "'k'" in trials.trial_attachments(trials.trials[0])["seen"]
    assert trials.best_trial["result"]["status"] == STATUS_OK


def test_progress_bar_survives_nan_and_verbose_false_keeps_it(capsys):
    run(fn=lambda p: float("nan") if p["x"] < 0 else p["x"], space=SPACE,
        algo=rand.suggest, max_evals=10, show_progressbar=True, verbose=False)
    err = capsys.readouterr().err
    assert "10/10" in err and "best loss" in err


def test_show_progressbar_callable():
    seen = []
    run(fn=quad, space=SPACE, algo=rand.suggest, max_evals=4,
        show_progressbar=lambda n, best: seen.append((n, best)))
    assert [n for n, _ in seen] == [1, 1, 1, 1]
    assert seen[-1][1] == min(b for _, b in seen)


def test_trials_fmin_method_and_allow_trials_fmin():
    trials = Trials()
    best = trials.fmin(quad, SPACE, algo=rand.suggest, max_evals=5, show_progressbar=False,
                       rstate=np.random.default_rng(1))
    assert len(trials) == 5 and "x" in best


def test_default_algo_is_tpe():
    best = run(fn=quad, space=SPACE, max_evals=25)
    assert "x" in best
