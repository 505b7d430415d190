"""Operator commands (`hyperq status`, `workers`, `best`, ...) against a real MongoDB-protocol
server, with experiments run by real `hyperq-worker` processes."""
from __future__ import annotations

import csv
import datetime
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import numpy as np
import pymongo
import pytest
from click.testing import CliRunner
from mongo_server import (  # noqa: F401  (fixtures)
    Workers,
    mongo_base_uri,
    private_server,
    wait_until,
    with_database,
    worker_env,
)

from hyperq import fmin, hp, rand
from hyperq.cli import main
from hyperq.fmin import space_eval
from hyperq.mongo.trials import MongoTrials
from hyperq.pyll import scope

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(120)]

SPACE = {
    "x": hp.uniform("x", -5, 5),
    "model": hp.choice("model", [
        {"kind": "linear"},
        {"kind": "tree", "depth": scope.int(hp.quniform("depth", 1, 6, 1))},
    ]),
}


def ops_objective(params):
    """Imported by the workers (tests/ is on their PYTHONPATH): fails for x > 3."""
    if params["x"] > 3:
        raise ValueError(f"x too large: {params['x']:.3f}")
    return {"loss": (params["x"] - 1.0) ** 2, "status": "ok", "kind": params["model"]["kind"]}


class Cluster:
    """A database with experiments run by real workers, and handles on those workers."""

    def __init__(self, uri: str, pool: Workers) -> None:
        self.uri, self.pool = uri, pool
        self.client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        self.db = self.client.get_default_database()
        self.lost = self.stopped = self.live = None

    def run(self, *args: str, input: str | None = None, env: dict | None = None):
        """Invoke `hyperq ARGS` in-process with the cluster's URI in the environment."""
        full_env = {"HYPERQ_MONGO_URI": self.uri, "HYPERQ_SECRET": ""}
        full_env.update(env or {})
        return CliRunner().invoke(main, list(args), env=full_env, input=input,
                                  catch_exceptions=False)

    def insert(self, docs: list[dict]) -> None:
        for doc in docs:
            doc.setdefault("_id", uuid.uuid4().hex)
            doc.setdefault("misc", {"tid": doc["tid"], "cmd": None, "idxs": {"x": [doc["tid"]]},
                                    "vals": {"x": [0.5]}})
            doc.setdefault("result", {"status": "new"})
        self.db.jobs.insert_many(docs)


@pytest.fixture(scope="module")
def cluster(mongo_base_uri, tmp_path_factory):  # noqa: F811
    """Experiments 'ops' (24 trials, some errors) and 'small' (4 trials), run by two workers
    of which one is then killed (lost) and one stopped; then a third worker serving 'ops'."""
    uri = with_database(mongo_base_uri, "ops_" + uuid.uuid4().hex[:8])
    pool = Workers(tmp_path_factory.mktemp("ops-workers"))
    c = Cluster(uri, pool)
    try:
        env = worker_env()
        first, second = pool.start(uri, env=env), pool.start(uri, env=env)
        for key, n in (("ops", 24), ("small", 4)):
            fmin(ops_objective, SPACE, algo=rand.suggest, max_evals=n, max_queue_len=2,
                 trials=MongoTrials(uri, exp_key=key), show_progressbar=False,
                 rstate=np.random.default_rng(7))
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        os.kill(second.pid, signal.SIGTERM)
        assert second.wait(15) == 0
        c.lost, c.stopped = first, second
        c.live = pool.start(uri, "--exp-key", "ops", "--lease", "5", env=env)  # robust under load
        wait_until(lambda: c.db["jobs.workers"].find_one({"pid": c.live.pid}), 30,
                   "the third worker to register")
        alive = {"$gte": [{"$add": ["$last_heartbeat", "$lease_ms"]}, "$$NOW"]}
        wait_until(lambda: not c.db["jobs.workers"].find_one({"pid": first.pid, "$expr": alive}),
                   30, "the killed worker's lease to run out")
        yield c
    finally:
        pool.stop_all()
        c.client.drop_database(c.db.name)
        c.client.close()


def _counts(db, exp_key):
    return {s: db.jobs.count_documents({"exp_key": exp_key, "state": code})
            for s, code in (("new", 0), ("running", 1), ("done", 2), ("error", 3), ("cancel", 4))}


def test_status_shows_counts_best_loss_and_live_workers(cluster):
    out = cluster.run("status")
    assert out.exit_code == 0, out.output
    lines = {line.split()[0]: line.split() for line in out.output.splitlines()[2:]}
    counts = _counts(cluster.db, "ops")
    assert counts["error"] > 0 and counts["done"] > 0, "the fixture must produce both"
    row = lines["ops"]
    assert row[1:7] == [str(sum(counts.values())), "0", "0", str(counts["done"]),
                        str(counts["error"]), "0"]
    best = cluster.db.jobs.find_one({"exp_key": "ops", "state": 2},
                                    sort=[("result.loss", 1)])
    assert row[7] == f"{best['result']['loss']:.6g}" and row[8] == str(best["tid"])
    assert float(row[9]) > 0, "trials per minute"
    assert row[10] == "1", "one live worker serves 'ops'"
    assert lines["small"][10] == "0"
    assert "1 live worker(s)" in out.output.splitlines()[0]

    data = json.loads(cluster.run("status", "--exp-key", "small", "--json").stdout)
    assert [e["exp_key"] for e in data["experiments"]] == ["small"]
    assert data["experiments"][0]["total"] == 4 and data["live_workers"] == 1


def test_workers_lists_live_lost_and_stopped_workers(cluster):
    wait_until(lambda: '"lost"' in cluster.run("workers", "--json").output, 20,
               "the killed worker's lease to expire")
    out = cluster.run("workers")
    assert out.exit_code == 0
    status_by_pid = {int(line.split()[2]): line.split()[0]
                     for line in out.output.splitlines()[2:]}
    assert status_by_pid[cluster.live.pid] == "alive"
    assert status_by_pid[cluster.lost.pid] == "lost"
    assert status_by_pid[cluster.stopped.pid] == "stopped"
    data = json.loads(cluster.run("workers", "--json").stdout)["workers"]
    mine = {w["pid"]: w for w in data}
    assert mine[cluster.live.pid]["host"] == socket.gethostname()
    assert mine[cluster.live.pid]["serves"] == "ops"
    done = cluster.db.jobs.count_documents({"worker": mine[cluster.lost.pid]["id"], "state": 2})
    assert mine[cluster.lost.pid]["n_done"] == done


def test_best_shows_parameters_as_the_objective_saw_them(cluster):
    best = cluster.db.jobs.find_one({"exp_key": "ops", "state": 2}, sort=[("result.loss", 1)])
    raw = {k: v[0] for k, v in best["misc"]["vals"].items() if v}
    expected = space_eval(SPACE, raw)
    data = json.loads(cluster.run("best", "ops", "--json", "--trust-domain").stdout)
    assert data["tid"] == best["tid"] and data["parameters_error"] is None
    assert data["parameters"] == json.loads(json.dumps(expected))
    assert data["values"] == raw
    out = cluster.run("best", "ops", "--trust-domain")
    assert out.exit_code == 0
    assert f"tid {best['tid']}" in out.output and "as the objective saw them" in out.output
    assert repr(expected["model"]["kind"]) in out.output
    raw_out = cluster.run("best", "ops", "--raw")
    assert "raw values only" in raw_out.output and f"x = {raw['x']!r}" in raw_out.output


def test_best_never_unpickles_the_domain_without_a_secret_or_trust(cluster, monkeypatch):
    from hyperq.mongo.domain import DomainCache

    def refuse(*args, **kwargs):
        raise AssertionError("the domain was unpickled")

    monkeypatch.setattr(DomainCache, "get", refuse)
    out = cluster.run("best", "ops")
    assert out.exit_code == 0, out.output
    assert "raw values only" in out.output and "no secret was given" in out.output
    assert "--trust-domain" in out.output
    data = json.loads(cluster.run("best", "ops", "--json").stdout)
    assert data["parameters"] is None and "--secret" in data["parameters_error"]


def test_best_without_a_loadable_domain_shows_raw_values_and_why(cluster):
    cluster.insert([{"tid": 0, "exp_key": "nodomain", "state": 2,
                     "result": {"status": "ok", "loss": 0.25}}])
    out = cluster.run("best", "nodomain", "--trust-domain")
    assert out.exit_code == 0, out.output
    assert "raw values only" in out.output and "stored no domain" in out.output
    assert "x = 0.5" in out.output
    # a secret the driver did not sign with: the domain is refused, raw values still shown
    out = cluster.run("best", "small", env={"HYPERQ_SECRET": "not-the-drivers"})
    assert out.exit_code == 0 and "unsigned" in out.output and "raw values only" in out.output


def test_trials_lists_filters_and_shows_one_with_its_traceback(cluster):
    errors = list(cluster.db.jobs.find({"exp_key": "ops", "state": 3}).sort("tid", 1))
    out = cluster.run("trials", "ops", "--state", "error", "--limit", "0")
    assert out.exit_code == 0
    rows = out.output.splitlines()[1:-1]
    assert [int(r.split()[0]) for r in rows] == [d["tid"] for d in errors]
    assert all(" error " in r and "ValueError: x too large" in r for r in rows)
    assert cluster.run("trials", "ops", "--limit", "3").output.count("\n") == 5
    detail = cluster.run("trials", "ops", "--tid", str(errors[0]["tid"]))
    assert "error: ValueError: x too large" in detail.output
    assert "Traceback (most recent call last)" in detail.output and "ops_objective" in detail.output
    one = json.loads(cluster.run("trials", "ops", "--tid", "0", "--json").stdout)
    assert one["tid"] == 0 and "lease_token" not in one
    missing = cluster.run("trials", "ops", "--tid", "9999")
    assert missing.exit_code == 5 and "no trial with tid 9999" in missing.output


def test_requeue_errors_are_rerun_by_a_worker_and_keep_their_history(cluster):
    n_errors = cluster.db.jobs.count_documents({"exp_key": "ops", "state": 3})
    out = cluster.run("requeue", "ops", "--no-stale")
    assert out.exit_code == 0 and f"{n_errors} errored trial(s) requeued" in out.output
    wait_until(lambda: cluster.db.jobs.count_documents({"exp_key": "ops", "state": 3})
               == n_errors, 60, "the live worker to re-run them")
    tid = cluster.db.jobs.find_one({"exp_key": "ops", "state": 3})["tid"]
    detail = cluster.run("trials", "ops", "--tid", str(tid)).output
    assert "previous error 1: ValueError: x too large" in detail
    assert "requeued 1 time(s)" in detail


def test_requeue_stale_trials_of_a_dead_worker(cluster):
    cluster.insert([{"tid": t, "exp_key": "stale", "state": 1, "attempt": a, "max_attempts": 2,
                     "lease_ms": 1000, "lease_token": "dead", "worker": "gone:1:x",
                     "refresh_time": datetime.datetime(2020, 1, 1)}
                    for t, a in ((0, 1), (1, 2))])
    status = cluster.run("status", "--exp-key", "stale").output
    assert "2 (2 stale)" in status
    out = cluster.run("requeue", "stale", "--json")
    assert json.loads(out.stdout) == {"exp_key": "stale", "stale_requeued": 1,
                                      "stale_failed": 1, "errors_requeued": 0}
    assert _counts(cluster.db, "stale")["new"] == 1


def test_cancel_marks_queued_trials_cancelled(cluster):
    cluster.insert([{"tid": t, "exp_key": "queued", "state": 0} for t in range(5)])
    out = cluster.run("cancel", "queued")
    assert out.exit_code == 0 and "cancelled 5 queued trial(s)" in out.output
    assert _counts(cluster.db, "queued")["cancel"] == 5
    nothing = cluster.run("best", "queued")
    assert nothing.exit_code == 6 and "no successful trial yet (5 cancel)" in nothing.output


def test_export_csv_and_jsonl(cluster, tmp_path):
    out = cluster.run("export", "small", "--format", "csv")
    assert out.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.output)))
    docs = {d["tid"]: d for d in cluster.db.jobs.find({"exp_key": "small"})}
    assert sorted(int(r["tid"]) for r in rows) == sorted(docs)
    for row in rows:
        doc = docs[int(row["tid"])]
        assert float(row["param.x"]) == doc["misc"]["vals"]["x"][0]
        if doc["state"] == 2:
            assert row["state"] == "done" and float(row["loss"]) == doc["result"]["loss"]
            assert row["result.kind"] in ("linear", "tree")
        else:
            assert row["state"] == "error" and row["error"].startswith("ValueError")
    path = tmp_path / "small.jsonl"
    out = cluster.run("export", "small", "--format", "jsonl", "-o", str(path))
    assert out.exit_code == 0 and f"exported 4 trials of 'small' to {path}" in out.output
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 4 and all("lease_token" not in d and "misc" in d for d in lines)


def test_delete_asks_for_confirmation(cluster):
    cluster.insert([{"tid": t, "exp_key": "doomed", "state": 2,
                     "result": {"status": "ok", "loss": 1.0}} for t in range(3)])
    no = cluster.run("delete", "doomed", input="n\n")
    assert no.exit_code == 1 and "nothing deleted" in no.output
    assert cluster.db.jobs.count_documents({"exp_key": "doomed"}) == 3
    yes = cluster.run("delete", "doomed", input="y\n")
    assert yes.exit_code == 0 and "deleted 'doomed': 3 trial(s)" in yes.output
    assert cluster.db.jobs.count_documents({"exp_key": "doomed"}) == 0
    gone = cluster.run("status", "--exp-key", "doomed")
    assert gone.exit_code == 5 and "no experiment with exp_key 'doomed'" in gone.output


def test_worker_health(cluster):
    out = cluster.run("worker-health", "--pid", str(cluster.live.pid))
    assert out.exit_code == 0 and out.output.startswith("healthy: worker")
    out = cluster.run("worker-health", "--pid", str(cluster.stopped.pid))
    assert out.exit_code == 1 and "is stopped" in out.output
    out = cluster.run("worker-health", "--host", "no-such-host")
    assert out.exit_code == 1 and "no worker from host 'no-such-host'" in out.output
    down = {"HYPERQ_MONGO_URI": "mongodb://127.0.0.1:1/x"}
    out = cluster.run("worker-health", "--timeout", "0.3", env=down)
    assert out.exit_code == 0 and "healthy (unchecked)" in out.output
    out = cluster.run("worker-health", "--timeout", "0.3", "--strict", env=down)
    assert out.exit_code == 1


def test_status_watch_refreshes_until_interrupted(cluster):
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperq", "status", "--watch", "--interval", "0.2", "--json"],
        env={**os.environ, "HYPERQ_MONGO_URI": cluster.uri}, stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        second = json.loads(proc.stdout.readline())
        assert first["server_time"] < second["server_time"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


@pytest.mark.parametrize("uri, code, message", [
    ("http://host/db", 2, "unsupported scheme 'http'"),
    ("mongodb://localhost", 2, "names no database"),
    ("mongodb://localhost:notaport/db", 2, "bad MongoDB URI"),
    ("mongodb://127.0.0.1:1/db", 3, "cannot reach MongoDB"),
])
def test_bad_uri_and_unreachable_server_exit_codes(uri, code, message):
    start = time.monotonic()
    out = CliRunner().invoke(main, ["status", "--mongo", uri, "--timeout", "0.5"])
    assert out.exit_code == code, out.output
    assert message in out.output and "Traceback" not in out.output
    assert time.monotonic() - start < 10


def test_missing_uri_says_how_to_give_one():
    out = CliRunner().invoke(main, ["workers"], env={"HYPERQ_MONGO_URI": "", "HYPERQ_MONGO": ""})
    assert out.exit_code == 2 and "set HYPERQ_MONGO_URI" in out.output


def test_bad_credentials_exit_4(private_server):  # noqa: F811
    server = private_server(user="ops", password="right")
    base = f"127.0.0.1:{server.port}/db?authSource=admin&authMechanism=SCRAM-SHA-256"
    out = CliRunner().invoke(main, ["status", "--mongo", f"mongodb://ops:wrong@{base}"])
    assert out.exit_code == 4 and "refused the credentials" in out.output
    assert "wrong" not in out.output, "the password is not echoed"
    out = CliRunner().invoke(main, ["status", "--mongo", f"mongodb://ops:right@{base}"])
    assert out.exit_code == 0 and "0 experiment(s)" in out.output
