"""The dashboard end to end in headless Chromium (Playwright): a real MongoDB-protocol server,
real `hyperq-worker` processes and a real driver; and 10,000 trials, both in a trials file and
in a real MongoDB-protocol server read over TCP.

Set HYPERQ_DASHBOARD_SCREENSHOTS=DIR to keep the screenshots (docs/dashboard.md uses them).
"""
from __future__ import annotations

import datetime
import os
import random
import shutil
import socket
import threading
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("pandas")
playwright_api = pytest.importorskip("playwright.sync_api")

import pymongo  # noqa: E402
from app_server import serve  # noqa: E402
from mongo_server import (  # noqa: E402,F401
    URI_ENV,
    MongoServer,
    Workers,
    mongo_base_uri,
    mongoeco_python,
    wait_until,
    with_database,
    worker_env,
)

from hyperq import fmin, hp, rand  # noqa: E402
from hyperq.dashboard.app import create_app  # noqa: E402
from hyperq.dashboard.sources import FileSource, MongoSource  # noqa: E402
from hyperq.mongo.trials import MongoTrials  # noqa: E402
from hyperq.ops.connection import open_store  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                       "(Debian: apt-get install -y chromium)"),
    pytest.mark.timeout(240),
]
TOKEN = "test-token-0123456789"
SHOTS = os.environ.get("HYPERQ_DASHBOARD_SCREENSHOTS")
SPACE = {"x": hp.uniform("x", -5, 5), "act": hp.choice("act", ["relu", "tanh"])}
N_TRIALS = 14


def dash_objective(params):
    """Imported by the workers: fails the first time it sees an x above 3, then succeeds."""
    time.sleep(float(os.environ.get("HYPERQ_DASH_SLEEP", "0.3")))
    x = params["x"]
    marker = os.path.join(os.environ["HYPERQ_DASH_DIR"], f"{x!r}")
    if x > 3 and not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError(f"x too large the first time: {x:.3f}")
    return {"loss": (x - 1.0) ** 2 + (0.3 if params["act"] == "tanh" else 0.0), "status": "ok"}


# -- the server and the browser ---------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, request):
    # the tests' own probes (wait_for_function) are evaluated strings, which the dashboard's
    # CSP forbids; test_the_page_runs_under_its_csp loads the page with the CSP in force
    strict = getattr(request, "param", None) == "strict"
    context = browser.new_context(viewport={"width": 1300, "height": 900}, bypass_csp=not strict)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # (ERR_CONNECTION_REFUSED: the page polls on after a test stopped its server)
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error"
          and "ERR_CONNECTION_REFUSED" not in m.text else None)
    pg.set_default_timeout(20_000)
    pg.reported_errors = errors
    yield pg
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def shot(pg, name, tmp_path):
    path = tmp_path / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000, "the screenshot is blank"
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        shutil.copy(path, os.path.join(SHOTS, f"{name}.png"))


def text(pg, selector):
    return pg.locator(selector).inner_text().strip()


def within_2s(pg, js, arg):
    """Wait (at most 2 s, no reload) until the page's ``js(arg)`` is true."""
    pg.wait_for_function(js, arg=arg, timeout=2000, polling=100)


# -- a real cluster: server, driver, worker ---------------------------------------------------
class Cluster:
    def __init__(self, uri, pool, tmp):
        self.uri, self.pool, self.tmp = uri, pool, tmp
        self.client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        self.db = self.client.get_default_database()
        self.driver: threading.Thread | None = None
        self.worker = None

    def count(self, exp_key, *states):
        return self.db.jobs.count_documents({"exp_key": exp_key, "state": {"$in": list(states)}})

    def start_driver(self, exp_key, n):
        def run():
            # two x above 3 for certain: how many random draws land there depends on how the
            # driver batches its suggestions (timing), and one or none left the tests below
            # nothing to re-queue about one run in five
            fmin(dash_objective, SPACE, algo=rand.suggest, max_evals=n, max_queue_len=1,
                 trials=MongoTrials(self.uri, exp_key=exp_key), show_progressbar=False,
                 rstate=np.random.default_rng(5), catch_eval_exceptions=True,
                 points_to_evaluate=[{"x": 4.0, "act": 0}, {"x": 3.5, "act": 1}])

        self.driver = threading.Thread(target=run, daemon=True)
        self.driver.start()


@pytest.fixture(scope="module")
def cluster(mongo_base_uri, tmp_path_factory):  # noqa: F811
    uri = with_database(mongo_base_uri, "dash_" + uuid.uuid4().hex[:8])
    tmp = tmp_path_factory.mktemp("dash-cluster")
    pool = Workers(tmp)
    c = Cluster(uri, pool, tmp)
    env = worker_env(HYPERQ_DASH_DIR=str(tmp), HYPERQ_DASH_SLEEP="0.4")
    c.worker = pool.start(uri, "--exp-key", "live", "--lease", "5", env=env)
    try:
        yield c
    finally:
        pool.stop_all()
        if c.driver is not None:
            c.driver.join(60)
        c.client.drop_database(c.db.name)
        c.client.close()


@pytest.fixture(scope="module")
def store(cluster):
    return open_store(cluster.uri)


def test_counts_and_curve_update_live_while_workers_finish_trials(cluster, store, page,
                                                                    tmp_path):
    cluster.start_driver("live", N_TRIALS)
    wait_until(lambda: cluster.count("live", 2) >= 2, 90, "two finished trials")
    with serve(create_app(MongoSource(store))) as url:
        page.goto(f"{url}/experiment?key=live")
        page.wait_for_selector("#curve svg[data-points]")
        page.evaluate("window.__notReloaded = true")
        assert page.locator("#requeue").is_disabled(), "read-only without a token"
        assert "--token" in text(page, "#actions-why")

        seen = set()
        while cluster.driver.is_alive() or len(seen) < 3:
            finished = cluster.count("live", 2, 3)
            if finished not in seen:
                seen.add(finished)
                within_2s(page, """n => (+(document.getElementById('count-done')||{innerText: ''}).innerText) +
                                     (+(document.getElementById('count-error')||{innerText: ''}).innerText) >= n""",
                          finished)
                ok = cluster.db.jobs.count_documents({"exp_key": "live", "state": 2})
                within_2s(page, """n => +document.querySelector('#curve svg')
                                     .getAttribute('data-points') >= n""", ok)
            if not cluster.driver.is_alive() and len(seen) < 3:
                break
            time.sleep(0.1)
        assert len(seen) >= 3, f"the page followed too few changes: {sorted(seen)}"

        # at the end the page agrees with the database exactly
        cluster.driver.join(60)
        done, errors = cluster.count("live", 2), cluster.count("live", 3)
        too_large = cluster.db.jobs.count_documents({"exp_key": "live", "misc.vals.x": {"$gt": 3}})
        why = [(d["misc"]["vals"], d["misc"].get("error")) for d in cluster.db.jobs.find({"exp_key": "live", "state": 3})]
        assert done + errors == N_TRIALS and errors == too_large >= 2, why
        within_2s(page, """c => (document.getElementById('count-done')||{innerText: ''}).innerText == c[0] &&
                              (document.getElementById('count-error')||{innerText: ''}).innerText == c[1] &&
                              (document.getElementById('count-total')||{innerText: ''}).innerText == c[2]""",
                  [str(done), str(errors), str(N_TRIALS)])
        best = cluster.db.jobs.find_one({"exp_key": "live", "state": 2},
                                        sort=[("result.loss", 1)])
        assert text(page, "#best-loss").endswith(f"(#{best['tid']})")
        assert page.evaluate("window.__notReloaded") is True
        page.wait_for_selector("#importance svg")
        page.wait_for_selector("#parallel svg")
        assert page.locator("#loss-vs-params svg").count() == 2
        within_2s(page, "n => document.querySelectorAll('#trials-body tr[data-tid]').length == n",
                  N_TRIALS)  # the table follows too
        rows = page.locator("#trials-body tr[data-tid]")
        assert rows.first.get_attribute("data-tid") == str(N_TRIALS - 1)
        shot(page, "dashboard-experiment", tmp_path)

        # the experiments page
        page.goto(f"{url}/")
        row = page.locator("#experiments tr[data-key='live']")
        row.wait_for()
        assert row.locator("td").nth(2).inner_text() == str(N_TRIALS)
        shot(page, "dashboard-experiments", tmp_path)

        # the trial view of a failed trial: error and traceback
        failed = cluster.db.jobs.find_one({"exp_key": "live", "state": 3})
        page.goto(f"{url}/trial?key=live&tid={failed['tid']}")
        page.wait_for_selector("#traceback")
        assert "ValueError: x too large the first time" in text(page, "#error")
        assert "dash_objective" in text(page, "#traceback")
        assert "--secret" in text(page, "#parameters-note")
        shot(page, "dashboard-trial", tmp_path)

        # the workers view
        page.goto(f"{url}/workers")
        row = page.locator(f"#workers tr[data-pid='{cluster.worker.pid}']")
        row.wait_for()
        assert "alive" in row.inner_text() and socket.gethostname() in row.inner_text()
        assert row.locator("td").nth(7).inner_text() == str(
            cluster.db.jobs.count_documents({"exp_key": "live", "state": 2}))
        shot(page, "dashboard-workers", tmp_path)


def test_requeue_from_the_page_and_a_worker_runs_the_trials_again(cluster, store, page,
                                                                   tmp_path):
    if cluster.driver is None:
        pytest.skip("needs the experiment of the previous test")
    cluster.driver.join(60)
    failed = sorted(d["tid"] for d in cluster.db.jobs.find({"exp_key": "live", "state": 3}))
    n = len(failed)
    assert n >= 2
    with serve(create_app(MongoSource(store), token=TOKEN)) as url:
        page.goto(f"{url}/experiment?key=live")
        page.wait_for_url("**/login")
        page.fill("#token", "wrong-token-guess")
        page.click("#sign-in")
        assert "Wrong token" in text(page, "#login-error")
        page.reported_errors.clear()  # the browser logs the 401 of the refused sign-in
        page.fill("#token", TOKEN)
        page.click("#sign-in")
        page.wait_for_url(f"{url}/")
        page.locator("#experiments tr[data-key='live']").wait_for()
        page.goto(f"{url}/experiment?key=live")
        page.wait_for_function("(document.getElementById('count-error')||{innerText: ''})"
                               f".innerText === '{n}'")
        assert page.locator("#requeue").is_enabled()

        page.click("#requeue")  # first refuse: nothing changes
        assert page.locator("#confirm").is_visible()
        assert f"{n} failed (error) trial(s)" in text(page, "#confirm-text")
        page.click("#confirm-no")
        time.sleep(0.5)
        assert cluster.count("live", 3) == n

        page.click("#requeue")
        page.locator("#confirm").wait_for()
        shot(page, "dashboard-requeue-confirm", tmp_path)
        page.click("#confirm-yes")
        page.wait_for_selector("#toast")
        assert f"Re-queued {n} failed" in text(page, "#toast")
        # the worker runs them again; they succeed the second time
        page.wait_for_function("""() => (document.getElementById('count-error')||{innerText: ''}).innerText === '0'
            && (document.getElementById('count-done')||{innerText: ''}).innerText === '%d'""" % N_TRIALS,
                               timeout=60_000)
        for tid in failed:
            doc = cluster.db.jobs.find_one({"exp_key": "live", "tid": tid})
            assert doc["state"] == 2 and doc["requeues"] == 1
            assert "x too large" in str(doc["misc"]["previous_errors"][0]["error"])

        # cancel the queued trials of an experiment no worker serves
        cluster.db.jobs.insert_many([
            {"_id": uuid.uuid4().hex, "tid": t, "exp_key": "parked", "state": 0,
             "result": {"status": "new"}, "misc": {"tid": t, "cmd": None, "idxs": {}, "vals": {}},
             "refresh_time": datetime.datetime.utcnow()} for t in range(5)])
        page.goto(f"{url}/experiment?key=parked")
        page.wait_for_function("(document.getElementById('count-new')||{innerText: ''}).innerText === '5'")
        page.click("#cancel")
        assert "5 queued (new) trial(s)" in text(page, "#confirm-text")
        page.click("#confirm-yes")
        within_2s(page, "() => (document.getElementById('count-cancel')||{innerText: ''}).innerText === '5'", None)
        assert cluster.count("parked", 4) == 5


def test_intermediate_values_are_drawn(cluster, store, page, tmp_path):
    now = datetime.datetime.utcnow()
    docs = []
    for tid, (status, steps) in enumerate([("ok", 8), ("pruned", 3), ("pruned", 5),
                                           ("running", 4)]):
        curve = [{"step": s, "value": 1.0 / (s + 1) + 0.1 * tid, "time": now} for s in range(steps)]
        state = 1 if status == "running" else 2
        result = {"status": status, "loss": curve[-1]["value"]} if state == 2 else {
            "status": "running"}
        if status == "pruned":
            result["pruned_at_step"] = steps - 1
        docs.append({"_id": uuid.uuid4().hex, "tid": tid, "exp_key": "reports", "state": state,
                     "result": result, "intermediate": curve, "book_time": now,
                     "refresh_time": now, "lease_ms": 600_000, "worker": "elsewhere:1:x",
                     "misc": {"tid": tid, "cmd": None, "idxs": {"x": [tid]},
                              "vals": {"x": [0.1 * tid]}}})
    cluster.db.jobs.insert_many(docs)
    with serve(create_app(MongoSource(store))) as url:
        page.goto(f"{url}/experiment?key=reports")
        page.wait_for_selector("#intermediate svg[data-series='4']")
        assert text(page, "#statuses") == "done trials by status: 1 ok · 2 pruned"
        assert page.locator("#intermediate path.series").count() == 4
        shot(page, "dashboard-intermediate", tmp_path)
        page.goto(f"{url}/trial?key=reports&tid=1")
        page.wait_for_selector("#trial-intermediate svg")
        assert "pruned" in text(page, "#trial-info")
        assert '"pruned_at_step": 2' in text(page, "#result")


# -- 10,000 trials from a file ----------------------------------------------------------------
@pytest.fixture(scope="module")
def ten_thousand_file(tmp_path_factory):
    from hyperq import trials_from_docs
    from hyperq.fmin import save_trials

    rng = random.Random(1)
    start = datetime.datetime(2026, 11, 1)
    docs = []
    for tid in range(10_000):
        error = tid % 9 == 4
        docs.append({
            "tid": tid, "exp_key": "sweep", "state": 3 if error else 2, "owner": None,
            "version": 0, "spec": None,
            "result": {"status": "new"} if error else {"status": "ok", "loss": rng.random()},
            "misc": {"tid": tid, "cmd": None, "idxs": {"x": [tid]}, "vals": {"x": [rng.random()]},
                     **({"error": ["<class 'ValueError'>", "bad luck"]} if error else {})},
            "book_time": start + datetime.timedelta(seconds=tid),
            "refresh_time": start + datetime.timedelta(seconds=tid + 1)})
    path = tmp_path_factory.mktemp("sweep") / "sweep.pkl"
    save_trials(trials_from_docs(docs, exp_key="sweep"), str(path))
    return path, docs


@pytest.fixture(scope="module")
def ten_thousand_mongo(ten_thousand_file, tmp_path_factory):
    """The same 10,000 trials in a MongoDB-protocol server over TCP: ``$HYPERQ_TEST_MONGO_URI``
    (inserted with insert_many), else a private mongoeco server that bulk-loads them from a
    BSON file before it starts serving. Yields the database's URI.

    mongoeco's ``insert`` command checks each new document against every stored one, so
    inserting 10,000 trials over the wire takes hours there; its bulk load takes about 12 s.
    The dashboard creates the indexes it reads on itself (the queue's, through the queue's own
    code, and its own two), as it would on a store no driver has opened."""
    import bson

    _, docs = ten_thousand_file
    rows = [{"_id": uuid.UUID(int=random.Random(d["tid"]).getrandbits(128)).hex, **d}
            for d in docs]
    name = "dash10k_" + uuid.uuid4().hex[:8]
    server = None
    if os.environ.get(URI_ENV):
        uri = with_database(os.environ[URI_ENV], name)
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        client[name].jobs.insert_many(rows)
    else:
        python = mongoeco_python()
        if python is None:
            pytest.skip("no mongoeco server to load 10,000 trials into")
        tmp = tmp_path_factory.mktemp("mongo-10000")
        with open(tmp / "jobs.bson", "wb") as fh:
            fh.writelines(bson.encode(row) for row in rows)
        server = MongoServer(python, str(tmp / "db"),
                             load=[f"{name}.jobs={tmp / 'jobs.bson'}"]).start(timeout=300)
        uri = with_database(server.uri, name)
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        assert client[name].jobs.estimated_document_count() == len(docs)
        yield uri
    finally:
        if server is None:
            client.drop_database(name)
        client.close()
        if server is not None:
            server.stop()


@pytest.fixture(params=["trials-file", "mongodb"])
def ten_thousand(request, ten_thousand_file):
    """The dashboard's source of the 10,000 trials: the trials file or the MongoDB server."""
    _, docs = ten_thousand_file
    if request.param == "trials-file":
        return FileSource(str(ten_thousand_file[0])), docs
    return MongoSource(open_store(request.getfixturevalue("ten_thousand_mongo"))), docs


def test_pagination_sort_and_filter_at_10000_trials(ten_thousand, page, tmp_path):
    source, docs = ten_thousand
    tids_on_page = "Array.from(document.querySelectorAll('#trials-body tr[data-tid]'))" \
                   ".map(r => +r.dataset.tid)"
    with serve(create_app(source)) as url:
        page.goto(f"{url}/experiment?key=sweep")
        page.wait_for_function("(document.getElementById('page-info')||{innerText: ''}).innerText.includes('10000')")
        assert text(page, "#page-info") == "page 1 of 200 · 10000 trial(s)"
        assert page.evaluate(tids_on_page) == list(range(9999, 9949, -1))
        page.click("#next-page")
        page.wait_for_function("(document.getElementById('page-info')||{innerText: ''}).innerText.startsWith('page 2 ')")
        assert page.evaluate(tids_on_page) == list(range(9949, 9899, -1))
        page.click("#last-page")
        page.wait_for_function("(document.getElementById('page-info')||{innerText: ''}).innerText.startsWith('page 200 ')")
        assert page.evaluate(tids_on_page) == list(range(49, -1, -1))
        assert page.locator("#next-page").is_disabled()
        if isinstance(source, FileSource):
            shot(page, "dashboard-10000-trials", tmp_path)

        # sort by loss (ascending first), trials without a loss last
        page.click("#trials th[data-col='loss'] button")
        page.wait_for_function("document.querySelector(\"#trials th[data-col='loss']\")"
                               ".getAttribute('aria-sort') === 'ascending'")
        ok = sorted((d for d in docs if d["state"] == 2), key=lambda d: (d["result"]["loss"],
                                                                         d["tid"]))
        assert page.evaluate(tids_on_page) == [d["tid"] for d in ok[:50]]
        page.fill("#goto-page", "7")
        page.dispatch_event("#goto-page", "change")
        page.wait_for_function("(document.getElementById('page-info')||{innerText: ''}).innerText.startsWith('page 7 ')")
        assert page.evaluate(tids_on_page) == [d["tid"] for d in ok[300:350]]

        # filter: errors only, newest first, page 3
        page.select_option("#filter-state", "error")
        errors = sorted((d["tid"] for d in docs if d["state"] == 3), reverse=True)
        page.wait_for_function("(document.getElementById('page-info')||{dataset:{}}).dataset.total === '%d'"
                               % len(errors))
        page.click("#trials th[data-col='tid'] button")
        page.wait_for_function("document.querySelector(\"#trials th[data-col='tid']\")"
                               ".getAttribute('aria-sort') === 'descending'")
        page.click("#next-page")
        page.click("#next-page")
        page.wait_for_function("(document.getElementById('page-info')||{innerText: ''}).innerText.startsWith('page 3 ')")
        assert page.evaluate(tids_on_page) == errors[100:150]
        assert "ValueError: bad luck" in page.locator("#trials-body tr").first.inner_text()
    if isinstance(source, MongoSource):
        assert source.count_command is True, "the server counted with the count command"


@pytest.mark.parametrize("page", ["strict"], indirect=True)
def test_the_page_runs_under_its_csp(ten_thousand_file, page):
    """With the Content-Security-Policy in force, the page draws everything and the browser
    reports no violation (the page fixture fails the test on any console error)."""
    path, _ = ten_thousand_file
    with serve(create_app(FileSource(str(path)))) as url:
        page.goto(f"{url}/experiment?key=sweep")
        page.locator("#trials-body tr[data-tid='9999']").wait_for()
        page.locator("#curve svg").wait_for()
        page.locator("#loss-vs-params svg").first.wait_for(timeout=60_000)
        assert text(page, "#count-total") == "10000"
        page.goto(f"{url}/")
        page.locator("#experiments tr[data-key='sweep']").wait_for()


# -- a local run with real intermediate reports and a pruner ----------------------------------
def reporting_objective(params, trial):
    value = 1.0
    for step in range(6):
        value = value * 0.8 + params["x"]
        trial.report(step, value)
        if trial.should_prune():
            from hyperq import TrialPruned

            raise TrialPruned()
        time.sleep(0.02)
    return value


def test_a_local_run_with_a_pruner_is_followed_from_its_trials_file(page, tmp_path):
    """fmin(trials_save_file=...) with trial.report and MedianPruner, watched while it runs:
    the counts, the curve and the reports follow the file as fmin rewrites it."""
    from hyperq.fmin import load_trials
    from hyperq.pruners import MedianPruner

    path = tmp_path / "local.pkl"
    space = {"x": hp.uniform("x", 0, 1)}

    def run(n):
        fmin(reporting_objective, space, algo=rand.suggest, max_evals=n, show_progressbar=False,
             trials_save_file=str(path), rstate=np.random.default_rng(0),
             pruner=MedianPruner(n_startup_trials=3))

    run(3)
    with serve(create_app(FileSource(str(path)))) as url:
        page.goto(f"{url}/experiment?key=(none)")
        page.wait_for_selector("#intermediate svg[data-series='3']")
        page.evaluate("window.__notReloaded = true")
        driver = threading.Thread(target=run, args=(16,), daemon=True)
        driver.start()
        driver.join(120)
        trials = load_trials(str(path))
        pruned = sum(1 for t in trials.trials if t["result"].get("status") == "pruned")
        assert len(trials.trials) == 16 and pruned > 0, "the pruner stopped some trials"
        page.wait_for_function("() => (document.getElementById('count-total')||{}).innerText"
                               " === '16'", timeout=5000)
        page.wait_for_selector("#intermediate svg[data-series='16']", timeout=5000)
        assert f"{pruned} pruned" in text(page, "#statuses")
        assert page.evaluate("window.__notReloaded") is True
        page.select_option("#filter-status", "pruned")
        page.wait_for_function("(document.getElementById('page-info')||{dataset:{}})"
                               f".dataset.total === '{pruned}'")
        tid = page.locator("#trials-body tr[data-tid]").first.get_attribute("data-tid")
        page.goto(f"{url}/trial?key=(none)&tid={tid}")
        page.wait_for_selector("#trial-intermediate svg")
        assert '"status": "pruned"' in text(page, "#result")
