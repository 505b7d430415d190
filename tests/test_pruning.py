"""Intermediate reports, pruners and fmin(..., pruner=...) with the in-memory Trials."""
from __future__ import annotations

import logging
import math
import pickle

import numpy as np
import pytest

import hyperq
from hyperq import (
    JOB_STATE_DONE, STATUS_OK, STATUS_PRUNED, Trials, TrialPruned, fmin, get_trial, hp, rand,
    tpe,
)
from hyperq._history import history_for
from hyperq.exceptions import InvalidArgument
from hyperq.intermediate import SnapshotHistory, TrialHandle
from hyperq.pruners import ASHAPruner, HyperbandPruner, MedianPruner, PercentilePruner

SPACE = {"x": hp.uniform("x", -3, 3)}
N_STEPS = 27


def curve_value(x: float, step: int) -> float:
    """A learning curve that ends at x**2 and starts 1.0 higher."""
    return x * x + 1.0 / step


def curve_objective(params, trial):
    value = math.inf
    for step in range(1, N_STEPS + 1):
        value = curve_value(params["x"], step)
        trial.report(step, value)
        if trial.should_prune():
            raise TrialPruned()
    return value


def run(pruner, n=40, fn=curve_objective, algo=tpe.suggest, seed=0, **kw):
    trials = kw.pop("trials", None) or Trials()
    fmin(fn, SPACE, algo=algo, max_evals=n, trials=trials, pruner=pruner,
         show_progressbar=False, rstate=np.random.default_rng(seed), **kw)
    return trials


# -- reports ------------------------------------------------------------------------------
def test_reports_are_stored_with_the_trial_in_report_order():
    def objective(params):  # plain hyperopt-style objective
        trial = get_trial()
        for step in (0, 2, 5):
            trial.report(step, params["x"] + step)
        return params["x"]

    trials = run(None, n=3, fn=objective, algo=rand.suggest)
    for t in trials.trials:
        items = t["intermediate"]
        assert [i["step"] for i in items] == [0, 2, 5]
        x = t["misc"]["vals"]["x"][0]
        assert [i["value"] for i in items] == pytest.approx([x, x + 2, x + 5])
        assert all(isinstance(i["value"], float) and isinstance(i["step"], int) for i in items)
        assert t["result"]["status"] == STATUS_OK


def test_objective_declaring_trial_gets_the_same_handle():
    seen = []

    def objective(params, trial):
        seen.append((trial is get_trial(), trial.tid))
        trial.report(1, 0.5)
        return 1.0

    trials = run(None, n=2, fn=objective, algo=rand.suggest)
    assert seen == [(True, 0), (True, 1)]
    assert [t["intermediate"][0]["value"] for t in trials.trials] == [0.5, 0.5]


def test_without_a_pruner_nothing_is_pruned():
    trials = run(None, n=10)
    assert all(t["result"]["status"] == STATUS_OK for t in trials.trials)
    assert all(len(t["intermediate"]) == N_STEPS for t in trials.trials)


@pytest.mark.parametrize("step, value, needle", [
    (-1, 0.1, "non-negative int"), (1.5, 0.1, "non-negative int"), (True, 0.1, "non-negative"),
    (1, "0.3", "must be a number"), (1, None, "must be a number"),
])
def test_bad_reports_get_a_clear_error(step, value, needle):
    handle = TrialHandle(tid=0)
    with pytest.raises(InvalidArgument, match=needle):
        handle.report(step, value)
    assert handle.intermediate == []


def test_a_step_reported_twice_is_ignored_with_a_warning(caplog):
    handle = TrialHandle(tid=3)
    handle.report(1, 0.5)
    with caplog.at_level(logging.WARNING, logger="hyperq.intermediate"):
        handle.report(1, 0.1)
    assert [i["value"] for i in handle.intermediate] == [0.5]
    assert "step 1 was reported already" in caplog.text


def test_get_trial_outside_an_evaluation_is_a_detached_handle():
    handle = get_trial()
    handle.report(1, 2.0)
    assert handle.should_prune() is False and handle.last_value == 2.0


def test_an_objective_may_return_status_pruned_itself():
    trials = Trials()
    # every trial pruned, none 'ok': AllTrialsFailed, as hyperopt raises for return_argmin=False
    with pytest.raises(hyperq.AllTrialsFailed):
        fmin(lambda p: {"status": "pruned", "loss": 3.0}, SPACE, algo=rand.suggest,
             max_evals=2, trials=trials, show_progressbar=False, return_argmin=False,
             rstate=np.random.default_rng(0))
    assert [t["result"]["status"] for t in trials.trials] == [STATUS_PRUNED] * 2


def test_fmin_rejects_something_that_is_not_a_pruner():
    with pytest.raises(InvalidArgument, match="pruner must be a hyperq pruner"):
        run("median", n=2)


# -- pruning in fmin ----------------------------------------------------------------------
@pytest.mark.parametrize("pruner", [MedianPruner(), ASHAPruner(max_resource=N_STEPS),
                                    HyperbandPruner(max_resource=N_STEPS)],
                         ids=["median", "asha", "hyperband"])
def test_pruners_stop_bad_trials_and_keep_their_last_value(pruner):
    base = run(None)
    trials = run(pruner)
    pruned = [t for t in trials.trials if t["result"]["status"] == STATUS_PRUNED]
    assert pruned, "some trials must be pruned"
    for t in pruned:
        assert t["state"] == JOB_STATE_DONE
        last = t["intermediate"][-1]
        assert t["result"]["loss"] == last["value"]
        assert t["result"]["pruned_at_step"] == last["step"] < N_STEPS
    steps = sum(len(t["intermediate"]) for t in trials.trials)
    base_steps = sum(len(t["intermediate"]) for t in base.trials)
    assert steps < 0.7 * base_steps
    # what survived is as good: the best loss is close to the run without pruning
    assert trials.best_trial["result"]["loss"] <= base.best_trial["result"]["loss"] + 0.05


def test_a_pruned_trial_is_never_the_best_even_with_a_lower_loss():
    def rising(params, trial):  # values rise with steps: early values look better
        for step in range(1, 10):
            trial.report(step, params["x"] ** 2 + step)
            if trial.should_prune():
                raise TrialPruned()
        return params["x"] ** 2 + 9

    trials = run(MedianPruner(n_startup_trials=1), n=20, fn=rising, algo=rand.suggest)
    pruned = [t for t in trials.trials if t["result"]["status"] == STATUS_PRUNED]
    assert pruned and min(t["result"]["loss"] for t in pruned) < trials.best_trial["result"]["loss"]
    assert trials.best_trial["result"]["status"] == STATUS_OK


def test_tpe_counts_pruned_trials_as_observations_at_their_last_value():
    trials = run(MedianPruner(), n=30)
    hist, _ = history_for(trials)
    done = [t for t in trials.trials if t["result"]["status"] in (STATUS_OK, STATUS_PRUNED)]
    assert any(t["result"]["status"] == STATUS_PRUNED for t in done)
    assert sorted(hist.losses) == sorted(t["result"]["loss"] for t in done)
    assert hist.n_failed == 0


def test_median_pruner_waits_for_startup_trials_and_warmup():
    trials = run(MedianPruner(n_startup_trials=5, n_warmup_steps=4), n=25, algo=rand.suggest)
    first = trials.trials[:5]
    assert all(t["result"]["status"] == STATUS_OK for t in first)
    for t in trials.trials:
        if t["result"]["status"] == STATUS_PRUNED:
            assert t["result"]["pruned_at_step"] >= 4


def test_reports_survive_trials_save_file_and_resume(tmp_path):
    path = str(tmp_path / "trials.pkl")
    fmin(curve_objective, SPACE, algo=tpe.suggest, max_evals=15, trials_save_file=path,
         pruner=MedianPruner(), show_progressbar=False, rstate=np.random.default_rng(1))
    fmin(curve_objective, SPACE, algo=tpe.suggest, max_evals=30, trials_save_file=path,
         pruner=MedianPruner(), show_progressbar=False, rstate=np.random.default_rng(2))
    with open(path, "rb") as f:
        trials = pickle.load(f)
    assert len(trials) == 30
    assert all(t["intermediate"] for t in trials.trials)
    assert any(t["result"]["status"] == STATUS_PRUNED for t in trials.trials[15:])


# -- the pruners' rules -------------------------------------------------------------------
def _reports(*pairs, rung=None):
    items = [{"step": s, "value": v} for s, v in pairs]
    if rung:
        items[-1]["rung"] = rung
    return items


def test_median_pruner_compares_best_so_far_with_the_median_at_the_step():
    hist = SnapshotHistory({3: {1: 1.0, 2: 2.0, 3: 3.0}}, {})
    p = MedianPruner(n_startup_trials=3)
    assert p.should_prune(9, _reports((1, 5.0), (2, 4.0), (3, 2.5)), hist)
    assert not p.should_prune(9, _reports((1, 5.0), (2, 1.5), (3, 2.5)), hist)  # best 1.5
    assert not p.should_prune(9, _reports((1, 5.0), (4, 9.0)), hist)  # nobody at step 4
    assert not MedianPruner(n_startup_trials=4).should_prune(9, _reports((3, 9.0)), hist)
    assert not p.should_prune(2, _reports((3, 2.5)), SnapshotHistory({3: {1: 1.0, 2: 2.0,
                                                                           3: 3.0}}, {}))
    assert p.should_prune(9, _reports((3, math.nan)), hist)  # diverged
    assert PercentilePruner(25, n_startup_trials=3).should_prune(9, _reports((3, 1.9)), hist)


def test_asha_keeps_the_best_third_at_each_rung():
    asha = ASHAPruner(min_resource=1, reduction_factor=3)
    tagged: set[str] = set()
    assert [asha.rung_for(0, s, tagged) for s in (0, 1)] == [None, "r0"]
    assert asha.rung_for(0, 2, {"r0"}) is None
    assert asha.rung_for(0, 3, {"r0"}) == "r1"
    assert asha.rung_for(0, 30, {"r0"}) == "r3"  # jumped: tagged at the highest rung passed
    capped = ASHAPruner(max_resource=27)
    assert asha.rung_for(0, 27, {"r0", "r1", "r2"}) == "r3"
    assert capped.rung_for(0, 27, {"r0", "r1", "r2"}) is None  # never at the last step
    peers = SnapshotHistory({}, {"r1": {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 5.0}})
    # 6 trials at r1 -> the best 2 go on
    assert not asha.should_prune(9, _reports((3, 1.5), rung="r1"), peers)
    assert asha.should_prune(9, _reports((3, 2.5), rung="r1"), peers)
    assert not asha.should_prune(9, _reports((4, 9.0)), peers)  # not at a rung
    lonely = SnapshotHistory({}, {"r0": {1: 1.0}})
    assert asha.should_prune(9, _reports((1, 2.0), rung="r0"), lonely)
    assert not ASHAPruner(n_startup_trials=2).should_prune(9, _reports((1, 2.0), rung="r0"),
                                                           lonely)


def test_asha_first_rung_defaults_to_a_ninth_of_max_resource():
    assert ASHAPruner(max_resource=27).min_resource == 3
    assert ASHAPruner(max_resource=81).min_resource == 9
    assert ASHAPruner(max_resource=20, reduction_factor=2).min_resource == 5
    assert ASHAPruner(max_resource=5).min_resource == 1  # short trials: from the first step
    assert ASHAPruner().min_resource == 1  # max_resource unknown
    assert ASHAPruner(min_resource=1, max_resource=27).min_resource == 1  # explicit wins
    asha = ASHAPruner(max_resource=27)
    assert [asha.rung_for(0, s, set()) for s in (1, 2, 3)] == [None, None, "r0"]
    assert asha.rung_for(0, 9, {"r0"}) == "r1"
    assert asha.rung_for(0, 27, {"r0", "r1"}) is None  # no rung at the last step


def test_hyperband_most_aggressive_bracket_defaults_to_max_resource_over_eta_cubed():
    hb = HyperbandPruner(max_resource=81)
    assert hb.min_resource == 3 and hb.n_brackets == 4  # brackets start at 3, 9, 27, 81
    tid = next(t for t in range(100) if hb.bracket_of(t) == 0)
    assert hb.rung_for(tid, 1, set()) is None
    assert hb.rung_for(tid, 3, set()) == "b0r0"
    assert HyperbandPruner(max_resource=27).min_resource == 1
    assert HyperbandPruner(max_resource=81, min_resource=1).n_brackets == 5


def _fast_starter(step: int) -> float:
    return 0.5 + 0.5 / step          # 1.0 at step 1, 0.67 at 3, ends at 0.52


def _slow_starter(step: int) -> float:
    return 0.1 + 2.0 * step ** -1.5  # 2.1 at step 1, 0.49 at 3, ends at 0.11: the best


@pytest.mark.parametrize("pruner, slow_survives", [
    (ASHAPruner(max_resource=N_STEPS), True),
    (ASHAPruner(min_resource=1, max_resource=N_STEPS), False),
], ids=["default-first-rung", "first-rung-at-step-1"])
def test_asha_default_keeps_a_curve_that_starts_high_and_ends_best(pruner, slow_survives):
    opt = hyperq.AskTell(SPACE, algo=rand.suggest, pruner=pruner, rstate=0)
    curves = [_fast_starter] * 6 + [_slow_starter]
    outcome = []
    for curve in curves:
        trial = opt.ask()
        for step in range(1, N_STEPS + 1):
            if opt.report(trial, step, curve(step)):
                opt.tell(trial, pruned=True)
                outcome.append("pruned")
                break
        else:
            opt.tell(trial, curve(N_STEPS))
            outcome.append("ok")
    assert (outcome[-1] == "ok") is slow_survives
    if slow_survives:
        assert opt.best_trial["result"]["loss"] == pytest.approx(_slow_starter(N_STEPS))


def test_hyperband_spreads_trials_over_brackets_with_their_own_rungs():
    hb = HyperbandPruner(max_resource=27, min_resource=1, reduction_factor=3)
    assert hb.n_brackets == 4
    counts = np.bincount([hb.bracket_of(tid) for tid in range(1000)], minlength=4)
    assert counts[0] > counts[1] > counts[2] > 0 and counts[3] > 0
    tid = next(t for t in range(100) if hb.bracket_of(t) == 2)
    assert hb.rung_for(tid, 3, set()) is None  # bracket 2 starts at step 9
    assert hb.rung_for(tid, 9, set()) == "b2r0"


@pytest.mark.parametrize("make, needle", [
    (lambda: MedianPruner(n_startup_trials=0), "n_startup_trials"),
    (lambda: PercentilePruner(0), "percentile"),
    (lambda: ASHAPruner(reduction_factor=1), "reduction_factor"),
    (lambda: ASHAPruner(min_resource=0), "min_resource"),
    (lambda: HyperbandPruner(max_resource=2, min_resource=5), "must not exceed"),
])
def test_bad_pruner_arguments_get_a_clear_error(make, needle):
    with pytest.raises(InvalidArgument, match=needle):
        make()


# -- what users read ----------------------------------------------------------------------
def test_dataframe_report_and_log_show_reports_and_pruned_trials(tmp_path, caplog):
    pytest.importorskip("pandas")
    with caplog.at_level(logging.INFO, logger="hyperq.fmin"):
        trials = run(MedianPruner(), n=20)
    assert "pruned" in caplog.text and "at step" in caplog.text
    df = trials.to_dataframe()
    assert {"n_reports", "last_step", "intermediate"} <= set(df.columns)
    row = df[df["status"] == "pruned"].iloc[0]
    assert row["loss"] == row["intermediate"][-1][1] and row["last_step"] == row["n_reports"]
    long = hyperq.analysis.intermediate_to_dataframe(trials)
    assert len(long) == sum(len(t["intermediate"]) for t in trials.trials)
    assert set(long["status"]) == {"ok", "pruned"}
    pytest.importorskip("matplotlib")
    html = (tmp_path / "r.html")
    hyperq.report(trials, str(html))
    text = html.read_text()
    assert "Learning curves" in text and "Pruned" in text


def test_dataframe_without_reports_has_no_report_columns():
    pytest.importorskip("pandas")
    trials = run(None, n=3, fn=lambda p: p["x"] ** 2, algo=rand.suggest)
    assert "intermediate" not in trials.to_dataframe().columns
