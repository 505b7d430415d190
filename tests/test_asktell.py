"""Ask-and-tell: suggestions on demand, results told back, pruning, resume from a file."""
from __future__ import annotations

import functools
import math

import pytest

from hyperq import (
    JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_RUNNING, STATUS_PRUNED, AskTell, Trials, grid, hp,
    rand, tpe,
)
from hyperq._history import history_for
from hyperq.exceptions import InvalidArgument
from hyperq.pruners import MedianPruner

SPACE = {"x": hp.uniform("x", -5, 5), "kind": hp.choice("kind", ["a", "b"])}


def loss_of(params):
    return (params["x"] - 1.0) ** 2 + (0.0 if params["kind"] == "b" else 1.0)


def test_ask_evaluate_tell_finds_the_minimum():
    opt = AskTell(SPACE, algo=tpe.suggest, rstate=0)
    for _ in range(60):
        trial = opt.ask()
        assert trial.params["kind"] in ("a", "b") and -5 <= trial.params["x"] <= 5
        opt.tell(trial, loss_of(trial.params))
    assert len(opt.trials) == 60
    assert all(t["state"] == JOB_STATE_DONE for t in opt.trials.trials)
    assert opt.best_params["kind"] == "b" and abs(opt.best_params["x"] - 1.0) < 0.5
    assert opt.best_trial["result"]["loss"] < 0.25


def test_a_batch_is_pending_until_told_in_any_order():
    opt = AskTell(SPACE, algo=tpe.suggest, rstate=1)
    batch = opt.ask(4)
    assert len({t.tid for t in batch}) == 4
    assert {p.tid for p in opt.pending()} == {t.tid for t in batch}
    assert all(t["state"] == JOB_STATE_RUNNING for t in opt.trials.trials)
    for trial in reversed(batch):
        stored = opt.tell(trial.tid, {"loss": loss_of(trial.params), "status": "ok",
                                      "note": "told"})
        assert stored["note"] == "told"
    assert opt.pending() == []


def test_reports_prune_and_tpe_learns_from_pruned_trials():
    opt = AskTell({"x": hp.uniform("x", -3, 3)}, algo=tpe.suggest, pruner=MedianPruner(),
                  rstate=0)
    n_pruned = 0
    for _ in range(30):
        trial = opt.ask()
        for step in range(1, 11):
            value = trial.params["x"] ** 2 + 1.0 / step
            if opt.report(trial, step, value):
                opt.tell(trial, pruned=True)
                n_pruned += 1
                break
        else:
            opt.tell(trial, value)
    assert n_pruned > 0
    pruned = [t for t in opt.trials.trials if t["result"]["status"] == STATUS_PRUNED]
    assert len(pruned) == n_pruned
    for t in pruned:
        assert t["result"]["loss"] == t["intermediate"][-1]["value"]
    hist, _ = history_for(opt.trials)
    assert len(hist.losses) == 30


def test_resume_from_a_trials_file_with_pending_trials_and_their_reports(tmp_path):
    path = str(tmp_path / "study.pkl")
    opt = AskTell(SPACE, algo=rand.suggest, trials_file=path, rstate=2)
    first, second = opt.ask(2)
    opt.report(first, 1, 5.0)
    opt.report(first, 2, 4.0)
    opt.tell(opt.ask(), 3.0)
    del opt  # the process "crashes": only the file is left

    again = AskTell(SPACE, algo=rand.suggest, trials_file=path, rstate=3)
    pending = {p.tid: p for p in again.pending()}
    assert set(pending) == {first.tid, second.tid}
    assert pending[first.tid].params == first.params
    assert [i["value"] for i in pending[first.tid].intermediate] == [5.0, 4.0]
    again.report(first.tid, 3, 3.5)
    again.tell(first.tid, 3.5)
    again.tell(second.tid, 2.0)
    doc = next(t for t in again.trials.trials if t["tid"] == first.tid)
    assert [i["step"] for i in doc["intermediate"]] == [1, 2, 3]
    reloaded = AskTell(SPACE, algo=rand.suggest, trials_file=path)
    assert reloaded.pending() == [] and len(reloaded.trials) == 3


def test_an_exception_told_makes_an_error_trial():
    opt = AskTell(SPACE, algo=rand.suggest, rstate=0)
    trial = opt.ask()
    try:
        raise RuntimeError("out of memory")
    except RuntimeError as exc:
        opt.tell(trial, exc)
    doc = opt.trials.trials[0]
    assert doc["state"] == JOB_STATE_ERROR
    assert doc["misc"]["error"][1] == "out of memory" and "RuntimeError" in doc["misc"]["traceback"]


def test_mistakes_get_clear_errors():
    opt = AskTell(SPACE, algo=rand.suggest, rstate=0)
    trial = opt.ask()
    with pytest.raises(InvalidArgument, match="give the loss"):
        opt.tell(trial)
    with pytest.raises(InvalidArgument, match="takes no result"):
        opt.tell(trial, 1.0, pruned=True)
    opt.tell(trial, 1.0)
    with pytest.raises(InvalidArgument, match="not pending"):
        opt.tell(trial, 2.0)
    with pytest.raises(InvalidArgument, match="not pending"):
        opt.report(99, 1, 0.5)
    with pytest.raises(InvalidArgument, match="positive int"):
        opt.ask(0)
    with pytest.raises(InvalidArgument, match="either trials or trials_file"):
        AskTell(SPACE, trials=Trials(), trials_file="x.pkl")
    with pytest.raises(InvalidArgument, match="pruner must be"):
        AskTell(SPACE, pruner="median")


def test_ask_returns_none_when_the_grid_is_done():
    opt = AskTell({"k": hp.choice("k", [1, 2, 3])}, algo=functools.partial(grid.suggest))
    got = [opt.ask() for _ in range(3)]
    for t in got:
        opt.tell(t, float(t.params["k"]))
    assert sorted(t.params["k"] for t in got) == [1, 2, 3]
    assert opt.ask() is None and opt.ask(2) == []
    assert math.isclose(opt.best_trial["result"]["loss"], 1.0)
