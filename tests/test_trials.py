"""The Trials API that hyperopt users rely on."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from hyperq import (
    JOB_STATE_DONE, JOB_STATE_NEW, STATUS_FAIL, STATUS_OK, AllTrialsFailed, InvalidTrial, Trials,
    fmin, hp, rand, trials_from_docs,
)
from hyperq.pyll import scope

SPACE = hp.choice("model", [
    {"kind": "svm", "C": hp.loguniform("C", -3, 3)},
    {"kind": "tree", "depth": scope.int(hp.quniform("depth", 1, 10, 1))},
])


def fn(p):
    return p["C"] if p["kind"] == "svm" else p["depth"] / 10


@pytest.fixture()
def trials():
    t = Trials()
    fmin(fn, SPACE, algo=rand.suggest, max_evals=20, trials=t, show_progressbar=False,
         rstate=np.random.default_rng(5))
    return t


def test_columns(trials):
    assert trials.tids == list(range(20))
    assert len(trials.results) == len(trials.miscs) == len(trials.specs) == 20
    assert trials.statuses() == [STATUS_OK] * 20
    assert trials.losses() == [r["loss"] for r in trials.results]
    idxs, vals = trials.idxs_vals
    assert idxs["model"] == list(range(20))
    n_svm = vals["model"].count(0)
    assert len(vals["C"]) == len(idxs["C"]) == n_svm
    assert len(vals["depth"]) == 20 - n_svm
    assert trials.vals == vals and trials.idxs == idxs


def test_best_trial_and_argmin_types(trials):
    best = trials.best_trial
    assert best["result"]["loss"] == min(trials.losses())
    argmin = trials.argmin
    assert argmin["model"] in (0, 1) and type(argmin["model"]) is int
    if argmin["model"] == 1:
        assert type(argmin["depth"]) is int and "C" not in argmin  # scope.int -> int, not float
    else:
        assert "depth" not in argmin
    assert trials.average_best_error() == pytest.approx(best["result"]["loss"])


def test_depth_values_are_ints_in_trial_docs(trials):
    assert all(type(v) is int for v in trials.vals["depth"])


def test_count_by_state_and_len(trials):
    assert trials.count_by_state_synced(JOB_STATE_DONE) == 20
    assert trials.count_by_state_unsynced([JOB_STATE_DONE, JOB_STATE_NEW]) == 20
    assert len(trials) == 20 and trials[0]["tid"] == 0
    assert [t["tid"] for t in trials] == list(range(20))


def test_insert_new_trial_docs_and_validation():
    t = Trials()
    tids = t.new_trial_ids(2)
    assert tids == [0, 1]
    miscs = [{"tid": i, "cmd": None, "idxs": {"x": [i]}, "vals": {"x": [0.5]}} for i in tids]
    docs = t.new_trial_docs(tids, [None, None], [{"status": "new"}] * 2, miscs)
    t.insert_trial_docs(docs)
    assert len(t) == 0
    t.refresh()
    assert len(t) == 2
    bad = dict(docs[0], tid=5)
    with pytest.raises(InvalidTrial, match="differs from misc tid"):
        t.insert_trial_doc(bad)
    with pytest.raises(InvalidTrial, match="missing keys"):
        t.insert_trial_doc({"tid": 1})
    assert t.new_trial_ids(1) == [2]


def test_exp_key_views_do_not_mix():
    t = Trials(exp_key="a")
    tid = t.new_trial_ids(1)[0]
    misc = {"tid": tid, "cmd": None, "idxs": {}, "vals": {}}
    t.insert_trial_docs(t.new_trial_docs([tid], [None], [{"status": "new"}], [misc]))
    t.refresh()
    assert len(t) == 1
    other = t.view(exp_key="b")
    assert len(other) == 0
    with pytest.raises(InvalidTrial, match="exp_key"):
        other.insert_trial_doc(t.trials[0])


def test_delete_all(trials):
    trials.delete_all()
    assert len(trials) == 0 and trials.attachments == {} and trials.new_trial_ids(1) == [0]


def test_trials_from_docs_round_trip(trials):
    copy = trials_from_docs(trials.trials)
    assert copy.losses() == trials.losses()


def test_pickle_round_trip(trials):
    back = pickle.loads(pickle.dumps(trials))
    assert back.losses() == trials.losses()
    assert back.argmin == trials.argmin


def test_best_trial_without_success_raises():
    t = Trials()
    # return_argmin=False raises too, as in hyperopt (issue 12), so callers can catch it.
    with pytest.raises(AllTrialsFailed):
        fmin(lambda p: {"status": STATUS_FAIL}, SPACE, algo=rand.suggest, max_evals=2,
             trials=t, show_progressbar=False, return_argmin=False)
    assert len(t) == 2
    with pytest.raises(AllTrialsFailed):
        t.best_trial


def test_attachments_mapping(trials):
    att = trials.trial_attachments(trials.trials[3])
    att["a"] = 1
    att["b"] = 2
    assert sorted(att) == ["a", "b"] and len(att) == 2
    del att["a"]
    assert dict(att) == {"b": 2}
    assert trials.attachments == {"ATTACH::3::b": 2}
