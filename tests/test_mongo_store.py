"""Lease expiry, retry budget and fencing, decided by the server's clock (real server, TCP)."""
import time

import pytest

from hyperq import JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW
from hyperq.mongo.store import connect_store
from mongo_server import mongo_base_uri, mongo_uri  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(60)]


def test_expired_lease_requeues_then_errors_when_budget_is_spent(mongo_uri):
    store = connect_store(mongo_uri)
    store.ensure_indexes()
    store.insert([{"tid": 0, "state": 0, "exp_key": "L", "misc": {}, "result": {},
                   "max_attempts": 2}])
    first = store.claim("w1", "L", lease_s=0.3)
    assert store.requeue_expired("L") == (0, 0), "a live lease is left alone"
    time.sleep(0.6)
    assert store.requeue_expired("L") == (1, 0)
    second = store.claim("w2", "L", lease_s=0.3)
    assert second["attempt"] == 2 and second["lease_token"] != first["lease_token"]
    # fencing: the first worker wakes up and cannot touch the re-run
    assert not store.heartbeat(first["_id"], first["lease_token"])
    assert not store.finish(first["_id"], first["lease_token"], JOB_STATE_DONE,
                            {"status": "ok", "loss": 9.0})
    time.sleep(0.6)
    assert store.requeue_expired("L") == (0, 1)
    doc = store.jobs.find_one({"_id": first["_id"]})
    assert doc["state"] == JOB_STATE_ERROR
    assert doc["misc"]["error"][0] == "LeaseExpired"
    assert "retry budget" in doc["misc"]["error"][1]
    assert doc["result"].get("loss") is None


def test_heartbeats_keep_the_lease(mongo_uri):
    store = connect_store(mongo_uri)
    store.insert([{"tid": 0, "state": 0, "exp_key": "H", "misc": {}, "result": {}}])
    doc = store.claim("w1", "H", lease_s=0.5)
    for _ in range(6):
        time.sleep(0.2)
        assert store.heartbeat(doc["_id"], doc["lease_token"])
        assert store.requeue_expired("H") == (0, 0)
    assert store.finish(doc["_id"], doc["lease_token"], JOB_STATE_DONE,
                        {"status": "ok", "loss": 1.0})
    assert store.jobs.find_one({"_id": doc["_id"]})["state"] == JOB_STATE_DONE


def test_experiments_do_not_interfere(mongo_uri):
    store = connect_store(mongo_uri)
    store.ensure_indexes()
    store.insert([{"tid": t, "state": 0, "exp_key": k, "misc": {}} for k in "AB" for t in range(2)])
    got = store.claim("w", "B", lease_s=5)
    assert got["exp_key"] == "B" and got["tid"] == 0
    assert store.cancel_new("A") == 2
    assert store.jobs.count_documents({"exp_key": "B", "state": JOB_STATE_NEW}) == 1


def test_mongotrials_sees_a_finished_trial_that_an_operator_requeued(mongo_uri):
    from hyperq.mongo.trials import MongoTrials

    store = connect_store(mongo_uri)
    store.ensure_indexes()
    misc = {"tid": 0, "cmd": None, "idxs": {}, "vals": {}}
    store.insert([{"tid": 0, "state": JOB_STATE_ERROR, "exp_key": "R", "misc": misc,
                   "result": {"status": "fail"}, "spec": None, "owner": None, "version": 0,
                   "book_time": None, "refresh_time": None}])
    trials = MongoTrials(mongo_uri, exp_key="R")
    assert [t["state"] for t in trials.trials] == [JOB_STATE_ERROR]
    # `hyperq requeue R` while the driver runs: the trial is queued again and re-run.
    store.jobs.update_one({"exp_key": "R", "tid": 0}, {"$set": {"state": JOB_STATE_NEW}})
    trials.refresh()
    assert [t["state"] for t in trials.trials] == [JOB_STATE_NEW]
    doc = store.claim("w", "R", lease_s=5)
    assert store.finish(doc["_id"], doc["lease_token"], JOB_STATE_DONE,
                        {"status": "ok", "loss": 0.5})
    trials.refresh()
    assert trials.losses() == [0.5] and trials.best_trial["tid"] == 0


def test_a_worker_that_lost_its_lease_cannot_overwrite_attachments(mongo_uri):
    from hyperq.mongo.trials import MongoTrials
    from hyperq.mongo.worker import LeaseLost, _FencedCtrl

    store = connect_store(mongo_uri)
    store.ensure_indexes()
    misc = {"tid": 0, "cmd": None, "idxs": {}, "vals": {}}
    store.insert([{"tid": 0, "state": JOB_STATE_NEW, "exp_key": "F", "misc": misc,
                   "result": {"status": "new"}, "spec": None, "owner": None, "version": 0,
                   "book_time": None, "refresh_time": None}])
    trials = MongoTrials(mongo_uri, exp_key="F")
    stale = store.claim("w1", "F", lease_s=0.3)
    _FencedCtrl(trials, store.job(stale)).attachments["model"] = b"first attempt"
    time.sleep(0.6)
    assert store.requeue_expired("F") == (1, 0)
    rerun = store.claim("w2", "F", lease_s=5)
    _FencedCtrl(trials, store.job(rerun)).attachments["model"] = b"re-run"
    with pytest.raises(LeaseLost, match="lost the trial's lease"):
        _FencedCtrl(trials, store.job(stale)).attachments["model"] = b"stale write"
    with pytest.raises(LeaseLost):
        del _FencedCtrl(trials, store.job(stale)).attachments["model"]
    assert trials.trial_attachments(rerun)["model"] == b"re-run"
