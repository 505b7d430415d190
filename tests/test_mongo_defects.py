"""The queue defects found by code review (issue 11), each pinned by a test against a real
MongoDB-protocol server over TCP (real worker processes where the defect needs them)."""
from __future__ import annotations

import datetime
import os
import signal
import threading
import time

import pytest
from pymongo import monitoring
from pymongo.errors import AutoReconnect

from hyperq import JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_NEW, JOB_STATE_RUNNING, fmin, hp, rand
from hyperq.base import Domain
from hyperq.exceptions import InvalidArgument
from hyperq.mongo.store import connect_store
from hyperq.mongo.trials import MongoTrials
from mongo_server import (  # noqa: F401  (fixtures)
    hang_first_time,
    mongo_base_uri,
    mongo_uri,
    private_server,
    record_and_square,
    wait_until,
    with_database,
    worker_env,
    workers,
)

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(180)]

SPACE = {"x": hp.uniform("x", -5, 5)}
MISC = {"tid": 0, "cmd": None, "idxs": {}, "vals": {}}


def _doc(tid, exp_key, state=JOB_STATE_NEW, **more):
    return {"tid": tid, "state": state, "exp_key": exp_key, "misc": dict(MISC, tid=tid),
            "result": {"status": "new"}, "spec": None, "owner": None, "version": 0,
            "book_time": None, "refresh_time": None, **more}


def _queue(uri, exp_key, fn, n=1, secret=None):
    trials = MongoTrials(uri, exp_key=exp_key, secret=secret)
    domain = Domain(fn, SPACE)
    trials.prepare_fmin(domain)
    trials.insert_trial_docs(rand.suggest(trials.new_trial_ids(n), domain, trials, 1))
    trials.end_fmin()
    trials.refresh()
    return trials


def _evaluations(path):
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [line.split() for line in fh if line.strip()]


# 1 --------------------------------------------------------------------------------------------
def test_points_to_evaluate_are_queued_naming_the_published_domain(mongo_uri, workers):
    workers.start(mongo_uri, "--exp-key", "pts", env=worker_env(HYPERQ_TEST_LOG=os.devnull))
    trials = MongoTrials(mongo_uri, exp_key="pts")
    fmin(record_and_square, SPACE, algo=rand.suggest, max_evals=3, trials=trials,
         points_to_evaluate=[{"x": 0.5}, {"x": 1.5}], show_progressbar=False)
    key = trials.store.experiment_domain("pts")
    assert [t["misc"]["cmd"] for t in trials.trials] == [["domain_attachment", key]] * 3
    assert [t["state"] for t in trials.trials] == [JOB_STATE_DONE] * 3


# 2 --------------------------------------------------------------------------------------------
def test_server_outage_longer_than_the_lease_does_not_rerun_the_trial(private_server, workers,
                                                                     tmp_path):
    server = private_server()
    uri = with_database(server.uri, "outage")
    log_path = str(tmp_path / "evals.log")
    env = worker_env(HYPERQ_TEST_LOG=log_path, HYPERQ_TEST_SLEEP="7")
    trials = _queue(uri, "out", record_and_square)
    workers.start(uri, "--exp-key", "out", "--heartbeat", "0.3", "--lease", "3", env=env)
    wait_until(lambda: _evaluations(log_path), 60, "the objective to start")
    # an idle worker scans for expired leases while the first one runs the trial
    workers.start(uri, "--exp-key", "out", "--heartbeat", "0.3", "--lease", "3", env=env)
    time.sleep(1.0)
    server.stop()
    time.sleep(5.0)  # longer than the 3 s lease
    server.start()
    wait_until(lambda: trials.store.jobs.find_one({"state": JOB_STATE_DONE}), 60,
               "the trial to finish")
    doc = trials.store.jobs.find_one({"exp_key": "out"})
    assert doc["attempt"] == 1 and not doc.get("requeues"), "the outage cost no attempt"
    assert len(_evaluations(log_path)) == 1, "the objective ran once"


def test_a_worker_that_lost_its_lease_stops_the_objective(mongo_uri, workers, tmp_path):
    marker = str(tmp_path / "marker")
    trials = _queue(mongo_uri, "lost", hang_first_time)
    proc = workers.start(mongo_uri, "--exp-key", "lost", "--heartbeat", "0.2", "--lease", "30",
                         env=worker_env(HYPERQ_TEST_MARKER=marker))
    wait_until(lambda: os.path.exists(marker) and open(marker).read(), 60, "the objective")
    jobs = trials.store.jobs
    # an operator (or a lease scan) re-queues the trial and another worker claims it
    jobs.update_one({"exp_key": "lost"}, {"$set": {"state": JOB_STATE_NEW},
                                          "$unset": {"lease_token": ""}})
    other = trials.store.claim("other-worker", "lost", lease_s=60)
    assert other is not None
    wait_until(lambda: "objective stopped" in workers.output(proc), 20,
               "the worker to stop the objective")
    assert proc.poll() is None, "the worker carries on"
    doc = jobs.find_one({"exp_key": "lost"})
    assert doc["state"] == JOB_STATE_RUNNING and doc["lease_token"] == other["lease_token"]


def test_a_worker_never_starts_an_objective_whose_lease_is_gone(mongo_uri):
    from hyperq.mongo.worker import LeaseLostInterrupt, Worker

    trials = _queue(mongo_uri, "gone", record_and_square)
    store = trials.store
    job = store.job(store.claim("w", "gone", lease_s=60))
    job.lost.set()
    called = []
    domain = Domain(lambda p: called.append(p) or 0.0, SPACE)
    with pytest.raises(LeaseLostInterrupt):
        Worker(store)._evaluate(domain, job.doc, job)
    assert called == []


# 3 --------------------------------------------------------------------------------------------
def test_refresh_loads_trials_finished_elsewhere_below_the_highest_tid(mongo_uri):
    store = connect_store(mongo_uri)
    store.ensure_indexes()
    store.insert([_doc(t, "R") for t in (0, 5)])
    mine = MongoTrials(mongo_uri, exp_key="R")
    assert [t["tid"] for t in mine.trials] == [0, 5]
    # another driver (or a worker's inject_results) adds a finished trial with tid 3
    store.insert([_doc(3, "R", state=JOB_STATE_DONE, result={"status": "ok", "loss": 0.25})])
    mine.refresh()
    assert [t["tid"] for t in mine.trials] == [0, 3, 5]
    assert mine.losses()[1] == 0.25


# 4 --------------------------------------------------------------------------------------------
def test_a_late_checkpoint_cannot_overwrite_a_finished_result(mongo_uri):
    from hyperq.mongo.job import LeaseLost
    from hyperq.mongo.worker import _FencedCtrl

    trials = _queue(mongo_uri, "ck", record_and_square)
    store = trials.store
    job = store.job(store.claim("w", "ck", lease_s=60))
    ctrl = _FencedCtrl(trials, job)
    ctrl.checkpoint({"status": "running", "loss": 5.0})
    assert job.finish(JOB_STATE_DONE, {"status": "ok", "loss": 1.0})
    with pytest.raises(LeaseLost):
        ctrl.checkpoint({"status": "running", "loss": 9.0})
    doc = store.jobs.find_one({"_id": job.id})
    assert doc["state"] == JOB_STATE_DONE and doc["result"] == {"status": "ok", "loss": 1.0}


# 5 --------------------------------------------------------------------------------------------
def test_attachment_reads_follow_the_trial_not_upload_dates(mongo_uri):
    trials = _queue(mongo_uri, "att", record_and_square)
    trial = trials.trials[0]
    trials.trial_attachments(trial)["model"] = b"current"
    fs = trials.store.fs
    files = trials.store.conn.fs_files
    # a stale writer's file under the same name, with a newer upload date (a fast clock)
    (current,) = list(files.find({"metadata.name": "model"}))
    stale_id = fs.put(b"stale", filename=current["filename"],
                      metadata=dict(current["metadata"]))
    files.update_one({"_id": stale_id}, {"$set": {"uploadDate": datetime.datetime(2100, 1, 1)}})
    files.update_one({"_id": current["_id"]},
                     {"$set": {"uploadDate": datetime.datetime(1990, 1, 1)}})
    assert trials.trial_attachments(trial)["model"] == b"current"


def test_a_stale_attachment_write_is_refused_and_leaves_no_file(mongo_uri):
    from hyperq.mongo.job import LeaseLost
    from hyperq.mongo.worker import _FencedCtrl

    trials = _queue(mongo_uri, "att2", record_and_square)
    store = trials.store
    stale = store.job(store.claim("w1", "att2", lease_s=60))
    store.jobs.update_one({"_id": stale.id}, {"$set": {"state": JOB_STATE_NEW}})
    rerun = store.job(store.claim("w2", "att2", lease_s=60))
    _FencedCtrl(trials, rerun).attachments["model"] = b"re-run"
    n_files = store.conn.fs_files.count_documents({})
    with pytest.raises(LeaseLost):
        _FencedCtrl(trials, stale).attachments["model"] = b"stale"
    assert store.conn.fs_files.count_documents({}) == n_files
    assert trials.trial_attachments(trials.trials[0])["model"] == b"re-run"


# 6 --------------------------------------------------------------------------------------------
def test_a_domain_upload_cut_off_before_its_files_document_is_redone(mongo_uri):
    from bson import Binary

    from hyperq.mongo.domain import DomainCache, publish_domain
    from hyperq.mongo.signing import content_hash
    import cloudpickle

    store = connect_store(mongo_uri)
    domain = Domain(record_and_square, SPACE)
    key = content_hash(cloudpickle.dumps(domain))
    # what a connection lost mid-upload leaves: chunks, no files document
    store.conn.fs_chunks.insert_one({"files_id": "domain:" + key, "n": 0,
                                     "data": Binary(b"partial")})
    assert publish_domain(store, domain, None, "cut") == key
    assert DomainCache(store, None).get(key).fn is record_and_square


# 7 --------------------------------------------------------------------------------------------
def test_a_worker_with_a_secret_refuses_altered_parameters(mongo_uri, workers, tmp_path):
    log_path = str(tmp_path / "evals.log")
    trials = _queue(mongo_uri, "sig", record_and_square, secret="s3")
    assert trials.trials[0]["misc"]["sig"]
    # someone with write access to the database changes the parameters of a signed trial
    trials.store.jobs.update_one({"exp_key": "sig"}, {"$set": {"misc.vals.x": [4.99]}})
    proc = workers.start(mongo_uri, "--exp-key", "sig", "--secret", "s3",
                         env=worker_env(HYPERQ_TEST_LOG=log_path))
    assert proc.wait(30) == 3
    assert "signature does not match" in workers.output(proc)
    assert _evaluations(log_path) == []
    doc = trials.store.jobs.find_one({"exp_key": "sig"})
    assert doc["state"] == JOB_STATE_NEW and doc["refusals"]


def test_signature_checks_refuse_rather_than_crash():
    from hyperq.mongo.attachments import decode_value, encode_value
    from hyperq.mongo.signing import SignatureError, verify

    with pytest.raises(SignatureError, match="does not match"):
        verify(b"payload", "é" * 64, b"k")
    with pytest.raises(SignatureError, match="unsigned"):
        decode_value(encode_value({"a": 1}), secret=b"k")
    signed = encode_value({"a": 1}, secret=b"k")
    assert decode_value(signed, secret=b"k") == {"a": 1}
    with pytest.raises(SignatureError, match="does not match"):
        decode_value(signed, secret=b"other")


# 8 --------------------------------------------------------------------------------------------
def test_deleting_an_experiment_keeps_attachments_of_one_whose_key_extends_it(mongo_uri):
    a = _queue(mongo_uri, "a", record_and_square)
    ab = _queue(mongo_uri, "a/b", record_and_square)
    a.trial_attachments(a.trials[0])["m"] = b"of a"
    ab.trial_attachments(ab.trials[0])["m"] = b"of a/b"
    ab.attachments["summary"] = "of a/b"
    a.delete_all()
    assert ab.trial_attachments(ab.trials[0])["m"] == b"of a/b"
    assert ab.attachments["summary"] == "of a/b"


def test_exp_key_must_be_a_string(mongo_uri):
    with pytest.raises(InvalidArgument, match="exp_key must be a string"):
        MongoTrials(mongo_uri, exp_key=("a", 1))


# 9 --------------------------------------------------------------------------------------------
def test_algorithms_see_a_trial_that_was_requeued_and_rerun(mongo_uri):
    from hyperq._history import history_for

    store = connect_store(mongo_uri)
    store.ensure_indexes()
    store.insert([_doc(0, "T", state=JOB_STATE_DONE, result={"status": "ok", "loss": 5.0},
                       misc=dict(MISC, vals={"x": [1.0]}, idxs={"x": [0]}))])
    trials = MongoTrials(mongo_uri, exp_key="T")
    assert list(history_for(trials)[0].loss_array()) == [5.0]
    store.jobs.update_one({"exp_key": "T"}, {"$set": {"state": JOB_STATE_NEW},
                                             "$currentDate": {"changed": True}})
    job = store.job(store.claim("w", "T", lease_s=60))
    assert job.finish(JOB_STATE_DONE, {"status": "ok", "loss": 2.0})
    trials.refresh()
    assert list(history_for(trials)[0].loss_array()) == [2.0]


# 10 -------------------------------------------------------------------------------------------
def test_a_claim_whose_reply_was_lost_is_recovered_not_orphaned(mongo_uri):
    trials = _queue(mongo_uri, "rc", record_and_square)
    store = trials.store
    real = store.queue.jobs.find_one_and_update
    calls = []

    def applied_then_lost(*args, **kwargs):
        calls.append(1)
        real(*args, **kwargs)
        if len(calls) == 1:
            raise AutoReconnect("connection closed after the server applied the claim")
        return None

    store.queue.jobs = type("Jobs", (), {"find_one_and_update": staticmethod(applied_then_lost),
                                         "find_one": store.jobs.find_one})()
    doc = store.claim("w", "rc", lease_s=60)
    assert doc is not None and doc["tid"] == trials.trials[0]["tid"]
    assert store.jobs.count_documents({"exp_key": "rc", "state": JOB_STATE_RUNNING}) == 1


def test_a_tid_reservation_retried_after_a_lost_reply_leaves_no_gap(mongo_uri):
    store = connect_store(mongo_uri)
    counters = store.conn.counters
    real = counters.find_one_and_update
    lost = []

    class Flaky:
        def __getattr__(self, name):
            return getattr(counters, name)

        def find_one_and_update(self, *args, **kwargs):
            doc = real(*args, **kwargs)
            if not lost:
                lost.append(1)
                raise AutoReconnect("reply lost")
            return doc

    store.conn.counters = Flaky()
    assert store.new_tids("g", 3) == [0, 1, 2]
    assert store.new_tids("g", 2) == [3, 4]


def test_a_tid_taken_by_another_trial_is_refused_and_the_first_kept(mongo_uri):
    from pymongo.errors import DuplicateKeyError

    store = connect_store(mongo_uri)
    store.ensure_indexes()
    store.insert([_doc(0, "dup", misc=dict(MISC, tid=0, vals={"x": [1.0]}))])
    store.insert([_doc(0, "other"), _doc(0, None)])  # the same tid in other experiments is fine
    with pytest.raises(DuplicateKeyError, match="already taken.*new_trial_ids"):
        store.insert([_doc(0, "dup", misc=dict(MISC, tid=0, vals={"x": [2.0]})), _doc(1, "dup")])
    kept = store.jobs.find_one({"exp_key": "dup", "tid": 0})
    assert kept["misc"]["vals"] == {"x": [1.0]}
    assert store.jobs.count_documents({"tid": 0}) == 3


def test_an_insert_retried_after_a_lost_reply_keeps_its_trials_once(mongo_uri):
    store = connect_store(mongo_uri)
    store.ensure_indexes()
    jobs = store.queue.jobs
    lost = []

    class Flaky:
        def __getattr__(self, name):
            return getattr(jobs, name)

        def insert_many(self, *args, **kwargs):
            jobs.insert_many(*args, **kwargs)
            if not lost:
                lost.append(1)
                raise AutoReconnect("reply lost")

    store.queue.jobs = Flaky()
    # values as a suggestion may hold them (a tuple is stored as a list)
    ids = store.insert([_doc(t, "retry", misc=dict(MISC, tid=t, vals={"x": (0.5 * t,)}))
                        for t in range(3)])
    assert lost and sorted(ids) == ["0:retry", "1:retry", "2:retry"]
    assert store.jobs.count_documents({"exp_key": "retry"}) == 3


def test_a_store_with_the_older_unique_tid_index_still_opens(mongo_uri):
    import pymongo

    db = pymongo.MongoClient(mongo_uri).get_default_database()
    db.jobs.create_index([("exp_key", 1), ("tid", 1)], name="exp_tid", unique=True)
    store = connect_store(mongo_uri)
    store.ensure_indexes()
    assert store.jobs.index_information()["exp_tid"].get("unique")
    store.insert([_doc(0, "old")])
    assert store.claim("w", "old", lease_s=60)["tid"] == 0


# 11 -------------------------------------------------------------------------------------------
def test_refusals_domains_cache_and_registry_stay_bounded(mongo_uri):
    from hyperq.mongo.domain import DomainCache
    from hyperq.mongo.job import MAX_REFUSALS

    trials = _queue(mongo_uri, "bound", record_and_square)
    store = trials.store
    for i in range(MAX_REFUSALS + 5):
        job = store.job(store.claim(f"w{i}", "bound", lease_s=60))
        assert job.refuse(f"w{i}", "no")
    assert len(store.jobs.find_one({"exp_key": "bound"})["refusals"]) == MAX_REFUSALS
    ttl = store.workers.index_information()["worker_ttl"]
    assert ttl.get("expireAfterSeconds")
    cache = DomainCache(store, None, max_size=2)
    for k in range(3):
        d = MongoTrials(store, exp_key=f"c{k}")
        d.prepare_fmin(Domain(lambda p, k=k: k, SPACE))
        cache.get(d.store.experiment_domain(f"c{k}"))
    assert len(cache) == 2
    trials.delete_all()
    assert store.experiment_domain("bound") is None


def test_delete_all_removes_the_experiments_domain(mongo_uri):
    trials = _queue(mongo_uri, "del", record_and_square)
    key = trials.trials[0]["misc"]["cmd"][1]
    assert trials.store.fs.exists("domain:" + key)
    trials.delete_all()
    assert not trials.store.fs.exists("domain:" + key)


# 12 -------------------------------------------------------------------------------------------
class _Commands(monitoring.CommandListener):
    def __init__(self):
        self.seen = []

    def started(self, event):
        self.seen.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def test_the_liveness_probe_reads_only_the_registry(mongo_uri):
    import socket

    import pymongo

    from hyperq.mongo.store import JobStore
    from hyperq.mongo.uri import parse_mongo_uri
    from hyperq.ops.health import check_worker_health

    store = connect_store(mongo_uri)
    store.ensure_indexes()
    store.insert([_doc(t, "H", state=JOB_STATE_DONE, worker="me") for t in range(50)])
    store.register_worker("me", {"host": socket.gethostname(), "pid": 1, "state": "idle",
                                 "lease_ms": 60_000, "serves": "*"})
    listener = _Commands()
    target = parse_mongo_uri(mongo_uri)
    watched = JobStore(pymongo.MongoClient(target.uri, event_listeners=[listener]), target)
    report = check_worker_health(watched, socket.gethostname())
    assert report.healthy
    assert not [c for c in listener.seen if c[1] == target.collection], listener.seen


# 13 -------------------------------------------------------------------------------------------
def test_an_early_stop_cancels_only_this_drivers_queued_trials(mongo_uri):
    other = _queue(mongo_uri, "two", record_and_square, n=3)
    mine = MongoTrials(mongo_uri, exp_key="two")
    with pytest.raises(Exception):
        fmin(record_and_square, SPACE, algo=rand.suggest, max_evals=10, timeout=1.5,
             trials=mine, max_queue_len=5, show_progressbar=False)
    states = {t["tid"]: t["state"] for t in MongoTrials(mongo_uri, exp_key="two").trials}
    assert all(states[t["tid"]] == JOB_STATE_NEW for t in other.trials)
    assert any(s == JOB_STATE_CANCEL for s in states.values())


def test_count_by_state_synced_is_local_and_unsynced_asks_the_database(mongo_uri):
    trials = _queue(mongo_uri, "cnt", record_and_square, n=2)
    trials.store.jobs.update_many({"exp_key": "cnt"}, {"$set": {"state": JOB_STATE_DONE}})
    assert trials.count_by_state_synced(JOB_STATE_NEW) == 2  # as of the last refresh
    assert trials.count_by_state_unsynced(JOB_STATE_DONE) == 2  # the database now
