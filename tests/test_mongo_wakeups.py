"""Wake-ups: change streams on a server that has them (SecantusDB, a one-member replica set),
paced polling on one that has not (mongoeco); idle workers stay quiet either way."""
from __future__ import annotations

import collections
import os
import threading
import time

import pymongo
import pytest
from pymongo import monitoring

from hyperq import JOB_STATE_DONE, fmin, hp, rand
from hyperq.mongo.store import JobStore, connect_store
from hyperq.mongo.trials import MongoTrials
from hyperq.mongo.uri import parse_mongo_uri
from hyperq.mongo.wakeups import FleetPace, new_work_pipeline, open_feed
from hyperq.mongo.worker import Worker, WorkerConfig
from mongo_server import (  # noqa: F401  (fixtures)
    change_stream_uri,
    mongo_base_uri,
    mongo_uri,
    record_and_square,
    wait_until,
    worker_env,
    workers,
)

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(180)]

SPACE = {"x": hp.uniform("x", -5, 5)}


class Counter(monitoring.CommandListener):
    def __init__(self):
        self.counts = collections.Counter()

    def started(self, event):
        self.counts[event.command_name] += 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def counting_store(uri):
    counter = Counter()
    target = parse_mongo_uri(uri)
    return JobStore(pymongo.MongoClient(target.uri, event_listeners=[counter]), target), counter


def test_fleet_pace_spreads_a_fixed_budget_over_any_fleet():
    pace = FleetPace(25.0)
    for fleet in (1, 16, 1000):
        mean = sum(pace.interval(fleet) for _ in range(2000)) / 2000
        assert abs(fleet / mean - 25.0) < 2.5, "the fleet together checks ~25 times a second"


def test_no_change_streams_on_mongoeco_means_polling(mongo_uri):
    store = connect_store(mongo_uri)
    assert open_feed(store.jobs, new_work_pipeline("x")) is None


def test_idle_worker_waits_on_the_change_stream_without_polling_reads(change_stream_uri):
    store, counter = counting_store(change_stream_uri)
    worker = Worker(store, WorkerConfig(exp_key="cs", heartbeat=0.5, lease=5.0))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker._feed is not None, 30, "the worker to watch")
        time.sleep(2.0)
        before = dict(counter.counts)
        time.sleep(4.0)
        during = collections.Counter(counter.counts)
        during.subtract(before)
        # no reads of the jobs collection and no claims while idle: only the stream's getMore
        # and the janitor's registry and lease timers
        # each lease scan (~1/s for the fleet) is one clock tick (findAndModify) and one read;
        # there are no other reads and no claims
        # (the window may cut one scan in two)
        assert abs(during["find"] - during["findAndModify"]) <= 1, during
        assert during["find"] <= 7, during
        assert during["getMore"] >= 1
        # an inserted trial wakes it within milliseconds (not a poll period)
        trials = MongoTrials(store, exp_key="cs")
        from hyperq.base import Domain

        domain = Domain(record_and_square, SPACE)
        trials.prepare_fmin(domain)
        os.environ["HYPERQ_TEST_LOG"] = os.devnull
        t0 = time.monotonic()
        trials.insert_trial_docs(rand.suggest(trials.new_trial_ids(1), domain, trials, 1))
        wait_until(lambda: store.jobs.find_one({"exp_key": "cs", "state": {"$gte": 1}}), 30,
                   "the claim")
        assert time.monotonic() - t0 < 5.0
    finally:
        worker.stop()
        thread.join(30)


def test_fmin_with_change_streams_end_to_end(change_stream_uri, workers, tmp_path):
    log_path = str(tmp_path / "evals.log")
    workers.start(change_stream_uri, "--exp-key", "e2e", env=worker_env(HYPERQ_TEST_LOG=log_path))
    trials = MongoTrials(change_stream_uri, exp_key="e2e")
    fmin(record_and_square, SPACE, algo=rand.suggest, max_evals=4, trials=trials,
         show_progressbar=False)
    assert [t["state"] for t in trials.trials] == [JOB_STATE_DONE] * 4
    assert trials._feed is None, "the driver's change stream is closed after fmin"
