"""The dashboard's sources, live view, API and security, without a browser (fast).

MongoDB here is mongomock; the browser tests against a real server and real workers are in
test_dashboard_browser.py.
"""
from __future__ import annotations

import datetime
import random
import uuid

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("starlette.testclient")
pytest.importorskip("pandas")
mongomock = pytest.importorskip("mongomock")

from click.testing import CliRunner  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from hyperq import STATUS_OK, Domain, fmin, hp, rand  # noqa: E402
from hyperq.cli import main  # noqa: E402
from hyperq.dashboard import security  # noqa: E402
from hyperq.dashboard.app import create_app  # noqa: E402
from hyperq.dashboard.live import LiveExperiment, best_so_far, sample_evenly  # noqa: E402
from hyperq.dashboard.sources import FileSource, MongoSource, PageQuery  # noqa: E402
from hyperq.mongo.store import JobStore  # noqa: E402
from hyperq.mongo.uri import parse_mongo_uri  # noqa: E402

SPACE = {"x": hp.uniform("x", -2, 2), "act": hp.choice("act", ["relu", "tanh"])}
TOKEN = "correct-horse-battery"
OLD = datetime.datetime(2026, 1, 1)


def objective(p):
    if p["x"] > 1.5:
        raise RuntimeError("too far")
    return {"loss": p["x"] ** 2 + (0.5 if p["act"] == "tanh" else 0.0), "status": STATUS_OK}


@pytest.fixture
def store():
    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()
    s = JobStore(mongomock.MongoClient(), parse_mongo_uri(
        f"mongodb://localhost/dash_{uuid.uuid4().hex[:6]}"), reconnect_timeout=1)
    s.server_time = _utcnow  # mongomock has no `hello`
    return s


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def make_docs(n, exp_key="big", seed=0, when=OLD, spacing=datetime.timedelta(milliseconds=1)):
    """``n`` finished trials: every 7th an error, every 11th a failure without loss."""
    rng = random.Random(seed)
    docs = []
    for tid in range(n):
        state = 3 if tid % 7 == 3 else 2
        result = {"status": "ok", "loss": rng.random()}
        if tid % 11 == 5:
            result = {"status": "fail", "failure": "nan loss"}
        if state == 3:
            result = {"status": "new"}
        x = rng.uniform(-2, 2)
        docs.append({
            "_id": uuid.uuid4().hex, "tid": tid, "exp_key": exp_key, "state": state,
            "result": result, "owner": None, "version": 0, "spec": None,
            "misc": {"tid": tid, "cmd": None, "idxs": {"x": [tid], "act": [tid]},
                     "vals": {"x": [x], "act": [tid % 2]},
                     **({"error": ["<class 'ValueError'>", "bad"]} if state == 3 else {})},
            "book_time": when, "refresh_time": when + tid * spacing,
            "worker": f"w{tid % 3}",
        })
    return docs


def expected_page(docs, query):
    """The page the dashboard must show, computed the obvious way."""
    rows = [d for d in docs if (not query.states or d["state"] in query.states)
            and (query.status is None or d["result"].get("status") == query.status)]

    def loss(d):
        v = d["result"].get("loss")
        return v if isinstance(v, float) else None

    if query.sort == "loss":
        with_loss = sorted((d for d in rows if loss(d) is not None),
                           key=lambda d: (loss(d), d["tid"]), reverse=query.descending)
        rest = sorted((d for d in rows if loss(d) is None), key=lambda d: d["tid"],
                      reverse=query.descending)
        ordered = with_loss + rest
    else:
        ordered = sorted(rows, key=lambda d: (d[query.sort], d["tid"]), reverse=query.descending)
    return [d["tid"] for d in ordered[query.skip:query.skip + query.size]], len(rows)


def live_view(client, key, timeout=30.0):
    """The full live view (the first answers may be counts only while the server reads)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        view = client.get(f"/api/live?key={key}").json()
        if not view.get("loading"):
            return view
        assert time.monotonic() < deadline, "the live view never finished loading"
        time.sleep(0.05)


# -- pagination ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ten_thousand():
    return make_docs(10_000)


@pytest.fixture(scope="module")
def big_store(ten_thousand):
    import mongomock.gridfs

    mongomock.gridfs.enable_gridfs_integration()
    s = JobStore(mongomock.MongoClient(), parse_mongo_uri("mongodb://localhost/dash_big"),
                 reconnect_timeout=1)
    s.server_time = _utcnow
    s.jobs.insert_many([dict(d) for d in ten_thousand])
    return s


QUERIES = [
    PageQuery(page=1, size=50),
    PageQuery(page=200, size=50),
    PageQuery(page=37, size=100, descending=False),
    PageQuery(page=1, size=50, sort="loss", descending=False),
    PageQuery(page=181, size=50, sort="loss", descending=False),  # across the no-loss boundary
    PageQuery(page=3, size=25, sort="loss", descending=True),
    PageQuery(page=2, size=50, states=[3]),
    PageQuery(page=4, size=20, status="fail", sort="worker"),
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.sort}-{q.page}-{q.size}")
def test_mongo_pagination_at_10000_trials(big_store, ten_thousand, query):
    docs, total = MongoSource(big_store).page("big", query)
    tids, n = expected_page(ten_thousand, query)
    assert total == n
    assert [d["tid"] for d in docs] == tids


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.sort}-{q.page}-{q.size}")
def test_file_pagination_matches_mongo(ten_thousand, tmp_path_factory, query):
    from hyperq import trials_from_docs
    from hyperq.fmin import save_trials

    path = tmp_path_factory.getbasetemp() / "ten_thousand.pkl"
    if not path.exists():
        save_trials(trials_from_docs([dict(d) for d in ten_thousand], exp_key="big"), str(path))
    docs, total = FileSource(str(path)).page("big", query)
    tids, n = expected_page(ten_thousand, query)
    assert (total, [d["tid"] for d in docs]) == (n, tids)


def test_indexes_are_created_only_when_missing(store):
    first = MongoSource(store)
    assert first.created_indexes == ["queue", "exp_refresh", "exp_best"]
    names = {ix["name"] for ix in store.jobs.list_indexes()}
    assert {"exp_tid", "claim_by_exp", "exp_refresh", "exp_best"} <= names
    # a second dashboard (or a restart) finds them all and creates nothing
    assert MongoSource(store).created_indexes == []


def test_an_index_on_the_same_leading_keys_serves_and_is_not_duplicated(store):
    store.jobs.create_index([("exp_key", 1), ("tid", 1), ("state", 1)])
    store.jobs.create_index([("exp_key", 1), ("state", 1)])
    store.jobs.create_index([("exp_key", 1), ("refresh_time", 1), ("tid", 1)])
    source = MongoSource(store)
    assert source.created_indexes == ["exp_best"]
    assert "exp_tid" not in {ix["name"] for ix in store.jobs.list_indexes()}


def test_counts_fall_back_to_count_documents_without_the_count_command(store):
    store.jobs.insert_many(make_docs(50, exp_key="c"))
    source = MongoSource(store)  # mongomock has no `count` command
    counts = source.state_counts("c")
    assert source.count_command is False
    assert counts["error"] == sum(1 for t in range(50) if t % 7 == 3)
    assert counts["done"] == 50 - counts["error"]


def test_an_experiment_is_found_without_listing_every_experiment(store, monkeypatch):
    from hyperq.ops.errors import NotFound

    store.jobs.insert_many(make_docs(3, exp_key="plain") + make_docs(2, exp_key=7)
                           + make_docs(1, exp_key=None))
    source = MongoSource(store)
    listed = []
    real = source.experiment_keys
    monkeypatch.setattr(source, "experiment_keys", lambda: listed.append(1) or real())
    assert source.experiment_for_label("plain") == "plain"
    assert source.experiment_for_label("7") == 7
    assert source.experiment_for_label("(none)") is None
    assert listed == [], "found on the index, without a distinct over every trial"
    with pytest.raises(NotFound):
        source.experiment_for_label("missing")
    assert listed == [1], "an unknown label is looked for in the full list before giving up"
    client = TestClient(create_app(source))
    assert client.get("/api/trials?key=7").json()["total"] == 2
    assert client.get("/api/trials?key=nope").status_code == 404


def test_the_experiments_page_reads_the_worker_registry_only(store, monkeypatch):
    """Counting each worker's trials is an aggregation over every trial: the workers page
    needs it, the experiments page (which only shows who is alive) does not."""
    from hyperq.ops import queries

    asked = []
    monkeypatch.setattr(queries, "list_workers",
                        lambda store, count_trials=True: asked.append(count_trials) or [])
    store.jobs.insert_many(make_docs(3, exp_key="e"))
    client = TestClient(create_app(MongoSource(store)))
    row = client.get("/api/experiments").json()["experiments"][0]
    assert (row["label"], row["total"], row["live_workers"]) == ("e", 3, 0)
    assert client.get("/api/workers").status_code == 200
    assert asked == [False, True]


def test_bad_page_queries_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="cannot sort by 'params'"):
        PageQuery(sort="params")
    with pytest.raises(ValueError, match="page size must be between 1 and 500"):
        PageQuery(size=5000)


# -- the live view reads only what changed -------------------------------------------------
def test_live_view_reads_only_changed_trials(store):
    # trials finished a minute apart: a tick re-reads only the last few seconds' changes
    store.jobs.insert_many(make_docs(300, exp_key="e", spacing=datetime.timedelta(minutes=1)))
    live = LiveExperiment(MongoSource(store), "e", min_interval=0)
    first = live.snapshot()
    assert live.reads == 300 and first["total"] == 300
    assert first["counts"]["error"] == sum(1 for t in range(300) if t % 7 == 3)

    for _ in range(3):
        live.refresh()
    assert live.reads == 303, "nothing changed: only the newest trial is read again"
    assert live.snapshot()["version"] == first["version"]

    before = live.reads
    store.jobs.update_one({"exp_key": "e", "tid": 12}, {
        "$set": {"result": {"status": "ok", "loss": -1.0}},
        "$currentDate": {"refresh_time": True}})
    snap = live.snapshot()
    assert live.reads - before == 2, "the changed trial and the newest one already seen"
    live.refresh()
    assert live.reads - before == 3, "then only the changed one, the newest"
    assert snap["version"] > first["version"]
    assert snap["best"] == {"tid": 12, "loss": -1.0}
    assert tuple(snap["curve"]["best"][-1]) == (12, -1.0)

    store.jobs.delete_many({"exp_key": "e", "tid": {"$gte": 200}})
    snap = live.snapshot()
    assert snap["total"] == 200 and snap["curve"]["n_ok"] == sum(
        1 for d in make_docs(200, exp_key="e") if d["result"].get("status") == "ok")


def test_a_large_experiment_shows_its_counts_while_the_server_reads_it(store):
    import threading

    store.jobs.insert_many(make_docs(50, exp_key="slow"))
    release = threading.Event()

    class SlowSource(MongoSource):
        def changes(self, exp_key, cursor):
            assert release.wait(30)
            return super().changes(exp_key, cursor)

    client = TestClient(create_app(SlowSource(store)))
    first = client.get("/api/live?key=slow").json()
    assert first["loading"] is True and first["total"] == 50
    assert first["counts"]["error"] == sum(1 for t in range(50) if t % 7 == 3)
    assert client.get("/api/live?key=slow").json()["loading"] is True, "still reading"
    release.set()
    full = live_view(client, "slow")
    assert full["version"] >= 1 and full["curve"]["n_ok"] == sum(
        1 for d in make_docs(50) if d["result"].get("status") == "ok")


def test_intermediate_values_are_kept_for_the_latest_trials(store):
    docs = make_docs(5, exp_key="r", when=datetime.datetime(2026, 6, 1))
    docs[1]["intermediate"] = [{"step": 1, "value": 0.9}, {"step": 2, "value": float("nan")},
                               {"step": 3, "value": 0.4, "rung": "r0"}]
    docs[2]["intermediate"] = [{"step": 1, "value": 0.8}]
    docs[2]["result"] = {"status": "pruned", "loss": 0.8, "pruned_at_step": 1}
    store.jobs.insert_many(docs)
    app = TestClient(create_app(MongoSource(store)))
    live = live_view(app, "r")
    inter = {e["tid"]: e for e in live["intermediate"]}
    assert inter[1]["points"] == [[1, 0.9], [2, None], [3, 0.4]]  # NaN travels as null
    assert inter[2]["status"] == "pruned" and live["statuses"]["pruned"] == 1
    trial = app.get("/api/trial?key=r&tid=1").json()
    assert [i["step"] for i in trial["intermediate"]] == [1, 2, 3]
    assert trial["intermediate"][1]["value"] is None


def test_helpers():
    assert best_so_far([(0, 3.0), (1, 4.0), (2, 1.0), (3, 1.0), (4, 0.5)]) == [
        (0, 3.0), (2, 1.0), (4, 0.5)]
    picked = sample_evenly(list(range(1000)), 10)
    assert len(picked) == 10 and picked[0] == 0 and picked[-1] == 999


# -- API on a trials file --------------------------------------------------------------------
@pytest.fixture(scope="module")
def trials_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "run.pkl"
    fmin(objective, SPACE, algo=rand.suggest, max_evals=30, trials_save_file=str(path),
         show_progressbar=False, rstate=np.random.default_rng(3), catch_eval_exceptions=True)
    return path


def test_file_source_api(trials_file):
    from hyperq.fmin import load_trials

    trials = load_trials(str(trials_file))
    client = TestClient(create_app(FileSource(str(trials_file))))
    info = client.get("/api/info").json()
    assert info == {"source": "file", "description": str(trials_file), "actions": False,
                    "token": False, "secret": False}
    exps = client.get("/api/experiments").json()["experiments"]
    assert [e["label"] for e in exps] == ["(none)"] and exps[0]["total"] == 30
    assert exps[0]["best_loss"] == pytest.approx(trials.best_trial["result"]["loss"])
    page = client.get("/api/trials?key=(none)&sort=loss&order=asc&size=5").json()
    ok = sorted(r["loss"] for r in trials.results if r["status"] == "ok")
    assert [r["loss"] for r in page["rows"]] == pytest.approx(ok[:5])
    assert {r["params"]["act"] for r in page["rows"]} <= {"relu", "tanh"}, "choices decoded"
    err = next(t for t in trials.trials if t["state"] == 3)
    detail = client.get(f"/api/trial?key=(none)&tid={err['tid']}").json()
    assert detail["error"].startswith("RuntimeError: too far")
    assert "Traceback" in detail["traceback"]
    assert detail["parameters"]["act"] in ("relu", "tanh") and detail["parameters_note"] is None
    # a file cannot be changed from the dashboard, token or not
    assert client.post("/api/cancel", json={"key": "(none)"}).status_code == 403
    assert client.get("/api/workers").json() == {"workers": None, "registry": False}


def test_file_is_reread_when_fmin_writes_it(trials_file, tmp_path):
    import shutil

    path = tmp_path / "grow.pkl"
    shutil.copy(trials_file, path)
    source = FileSource(str(path), min_interval=0)
    client = TestClient(create_app(source, live_interval=0))
    assert live_view(client, "(none)")["total"] == 30
    fmin(objective, SPACE, algo=rand.suggest, max_evals=34, trials_save_file=str(path),
         show_progressbar=False, rstate=np.random.default_rng(4), catch_eval_exceptions=True)
    assert live_view(client, "(none)")["total"] == 34


def test_api_errors_name_the_problem(trials_file):
    client = TestClient(create_app(FileSource(str(trials_file))))
    r = client.get("/api/trials?key=nope")
    assert r.status_code == 404 and "no experiment 'nope'" in r.json()["error"]
    r = client.get("/api/trials?key=(none)&sort=bogus")
    assert r.status_code == 400 and "cannot sort by 'bogus'" in r.json()["error"]
    r = client.get("/api/trials?key=(none)&state=sleeping")
    assert r.status_code == 400 and "unknown state 'sleeping'" in r.json()["error"]
    r = client.get("/api/trial?key=(none)&tid=999")
    assert r.status_code == 404 and "no trial with tid 999" in r.json()["error"]
    assert client.get("/api/live").status_code == 400


def test_pages_and_assets_are_served_from_the_package_with_a_strict_csp(trials_file):
    client = TestClient(create_app(FileSource(str(trials_file))))
    page = client.get("/experiment?key=x")
    assert page.status_code == 200 and "/static/app.js" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "http" not in csp
    for asset in ("app.js", "plots.js", "app.css", "favicon.svg"):
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and "http://" not in r.text.replace(
            "http://www.w3.org/2000/svg", "")


# -- security ------------------------------------------------------------------------------
def test_listening_beyond_localhost_needs_a_token():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        security.check_bind(host, None)
    for host in ("0.0.0.0", "192.0.2.7", "::", "example.org"):
        with pytest.raises(security.InsecureBind, match="pass --token"):
            security.check_bind(host, None)
        security.check_bind(host, TOKEN)
    with pytest.raises(security.InsecureBind, match="at least 12"):
        security.check_bind("127.0.0.1", "short")


def test_cli_refuses_a_network_address_without_a_token(trials_file):
    out = CliRunner().invoke(main, ["dashboard", "--trials-file", str(trials_file),
                                    "--host", "0.0.0.0"], env={"HYPERQ_DASHBOARD_TOKEN": ""})
    assert out.exit_code == 2 and "pass --token" in out.output
    out = CliRunner().invoke(main, ["dashboard"], env={"HYPERQ_MONGO_URI": "",
                                                       "HYPERQ_MONGO": ""})
    assert out.exit_code == 2 and "give either --mongo URI or --trials-file PATH" in out.output
    out = CliRunner().invoke(main, ["dashboard", "--trials-file", "/nonexistent/t.pkl"])
    assert out.exit_code == 2 and "does not exist" in out.output


def _published(store):
    from hyperq.mongo.domain import publish_domain

    docs = make_docs(12, exp_key="signed")
    store.jobs.insert_many(docs)
    publish_domain(store, Domain(objective, SPACE), b"s3cret", "signed")
    return docs


def test_token_guards_everything_and_enables_actions(store):
    _published(store)
    client = TestClient(create_app(MongoSource(store), token=TOKEN), follow_redirects=False)
    assert client.get("/api/experiments").status_code == 401
    assert client.get("/").headers["location"] == "/login"
    assert client.post("/login", data={"token": "wrong-token-guess"}).status_code == 401
    signed_in = client.post("/login", data={"token": TOKEN})
    assert signed_in.status_code == 303
    cookie = signed_in.cookies[security.COOKIE]
    assert TOKEN not in cookie, "the browser keeps a hash, not the token"
    assert client.get("/api/info").json()["actions"] is True
    # an action needs the header a cross-site form cannot send
    assert client.post("/api/requeue", json={"key": "signed"}).status_code == 403
    r = client.post("/api/requeue", json={"key": "signed", "stale": False},
                    headers={"X-Hyperq-Action": "1"})
    n_errors = sum(1 for t in range(12) if t % 7 == 3)
    assert r.status_code == 200 and r.json()["errors_requeued"] == n_errors
    assert store.jobs.count_documents({"exp_key": "signed", "state": 0}) == n_errors
    r = client.post("/api/cancel", json={"key": "signed"}, headers={"X-Hyperq-Action": "1"})
    assert r.json()["cancelled"] == n_errors
    bearer = TestClient(create_app(MongoSource(store), token=TOKEN))
    assert bearer.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_actions_are_disabled_without_a_token(store):
    _published(store)
    client = TestClient(create_app(MongoSource(store)))
    assert client.get("/api/info").json()["actions"] is False
    r = client.post("/api/requeue", json={"key": "signed"}, headers={"X-Hyperq-Action": "1"})
    assert r.status_code == 403 and "--token" in r.json()["error"]
    assert store.jobs.count_documents({"exp_key": "signed", "state": 0}) == 0


def test_the_domain_is_unpickled_only_with_the_secret(store, monkeypatch):
    _published(store)
    import hyperq.mongo.domain as domain_module

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the dashboard unpickled a domain without the secret")

    with monkeypatch.context() as m:
        m.setattr(domain_module.DomainCache, "get", no_unpickling)
        client = TestClient(create_app(MongoSource(store)))
        detail = client.get("/api/trial?key=signed&tid=0").json()
        assert detail["parameters"] is None and "--secret" in detail["parameters_note"]
        assert detail["values"]["act"] == 0, "raw index"
        assert client.get("/api/params?key=signed").json()["decoded"] is False
        assert client.get("/api/trials?key=signed").json()["rows"][0]["params"]["act"] in (0, 1)

    client = TestClient(create_app(MongoSource(store, secret=b"s3cret")))
    detail = client.get("/api/trial?key=signed&tid=0").json()
    assert detail["parameters"]["act"] == "relu" and detail["parameters_note"] is None
    assert client.get("/api/trials?key=signed").json()["rows"][0]["params"]["act"] in (
        "relu", "tanh")
    wrong = TestClient(create_app(MongoSource(store, secret=b"not-it")))
    detail = wrong.get("/api/trial?key=signed&tid=0").json()
    assert detail["parameters"] is None and "signature" in detail["parameters_note"]


def test_parameter_view(store):
    store.jobs.insert_many(make_docs(60, exp_key="p"))
    data = TestClient(create_app(MongoSource(store))).get("/api/params?key=p").json()
    ok = [d for d in make_docs(60, exp_key="p") if d["result"].get("status") == "ok"]
    assert data["n_ok"] == len(ok) and data["params"] == ["x", "act"]
    assert len(data["values"]["x"]) == len(data["loss"]) == len(ok)
    assert {i["param"] for i in data["importance"]} == {"x", "act"}


def test_hyperq_dashboard_command_serves_the_page(trials_file, tmp_path):
    """`hyperq dashboard` as a user starts it: a process listening on 127.0.0.1."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "dashboard.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hyperq", "dashboard", "--trials-file", str(trials_file),
         "--port", str(port), "--token", TOKEN], stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "HYPERQ_MONGO_URI": ""})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/info", timeout=5)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401, "the token guards the API"
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
                assert time.monotonic() < deadline, "the dashboard did not start in 60 s"
                time.sleep(0.2)
        request = urllib.request.Request(f"{base}/api/info",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        info = json.loads(urllib.request.urlopen(request, timeout=5).read())
        assert info["source"] == "file" and info["description"] == str(trials_file)
        assert info["actions"] is False, "a trials file offers no actions, token or not"
    finally:
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(20) == 0
    output = (tmp_path / "dashboard.log").read_text()
    assert f"hyperq dashboard for {trials_file} on http://127.0.0.1:{port}/" in output
