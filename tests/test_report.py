"""The HTML report: hyperq.report(...) and `hyperq report`, checked as text and in Chromium."""
import html
import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from click.testing import CliRunner  # noqa: E402

import hyperq  # noqa: E402
from hyperq import STATUS_OK, Domain, Trials, fmin, hp, rand  # noqa: E402
from hyperq.cli import main  # noqa: E402

SPACE = {"x": hp.uniform("x", -2, 2), "act": hp.choice("act", ["relu", "tanh"]),
         "lr": hp.loguniform("lr", -5, 0)}


def objective(p):
    if p["x"] > 1.6:
        raise RuntimeError("exploded <b>badly</b>")
    return {"loss": p["x"] ** 2 + (0.25 if p["act"] == "tanh" else 0), "status": STATUS_OK,
            "note": "<script>alert(1)</script>"}


def run(n=25, exp_key=None):
    t = Trials(exp_key=exp_key)
    fmin(objective, SPACE, algo=rand.suggest, max_evals=n, trials=t, show_progressbar=False,
         rstate=np.random.default_rng(11), catch_eval_exceptions=True)
    return t


@pytest.fixture(scope="module")
def trials():
    return run()


@pytest.fixture(scope="module")
def page(trials, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    assert hyperq.report(trials, path, title="Demo <run>") == str(path)
    return path


def _rows(text):
    return re.findall(r'<tr class="[^"]*" data-tid="(\d+)">', text)


def test_page_has_summary_best_trial_plots_and_every_trial(trials, page):
    text = page.read_text(encoding="utf-8")
    best = trials.best_trial
    assert f'<strong id="best-loss">{best["result"]["loss"]:.6g}</strong>' in text
    assert f'<strong id="best-tid">{best["tid"]}</strong>' in text
    assert "<h1>Demo &lt;run&gt;</h1>" in text
    assert sorted(map(int, _rows(text))) == trials.tids
    assert text.count('src="data:image/png;base64,') == 6
    assert "could not be drawn" not in text
    assert "RuntimeError: exploded &lt;b&gt;badly&lt;/b&gt;" in text  # errors listed, escaped
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)" in text
    assert ">relu<" in text  # choices by name


def test_page_is_self_contained(page):
    text = page.read_text(encoding="utf-8")
    assert "default-src 'none'" in text  # the browser may not fetch anything
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "@import" not in text and "url(" not in text


def test_report_of_no_trials(tmp_path):
    path = tmp_path / "empty.html"
    hyperq.report(Trials(), path)
    text = path.read_text()
    assert 'id="empty">No trials yet.' in text and _rows(text) == []


def test_report_without_the_space_says_choices_are_indices(trials, tmp_path):
    from hyperq import trials_from_docs

    path = tmp_path / "bare.html"
    hyperq.report(trials_from_docs(trials.trials), path)
    assert "show option indices" in path.read_text()


# -- command line -----------------------------------------------------------------------------
def test_cli_report_from_a_trials_file(tmp_path):
    saved = tmp_path / "t.pkl"
    fmin(objective, SPACE, algo=rand.suggest, max_evals=8, trials_save_file=str(saved),
         show_progressbar=False, rstate=np.random.default_rng(1), catch_eval_exceptions=True)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "--trials-file", str(saved), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith(f"wrote {out} (8 trials, best loss ")
    assert len(_rows(out.read_text())) == 8


def test_cli_needs_a_source():
    res = CliRunner().invoke(main, ["report", "exp1"], env={"HYPERQ_MONGO_URI": "",
                                                             "HYPERQ_MONGO": ""})
    assert res.exit_code == 2 and "give --mongo URI" in res.output
    res = CliRunner().invoke(main, ["report"])
    assert res.exit_code == 2 and "experiment key" in res.output


@pytest.fixture
def mock_store(monkeypatch):
    pytest.importorskip("mongomock")
    import mongomock
    import mongomock.gridfs

    from hyperq.mongo.store import JobStore
    from hyperq.mongo.uri import parse_mongo_uri

    mongomock.gridfs.enable_gridfs_integration()
    store = JobStore(mongomock.MongoClient(), parse_mongo_uri("mongodb://localhost/rep"),
                     reconnect_timeout=1)
    opened = []
    monkeypatch.setattr("hyperq.reporting._open_store", lambda uri: opened.append(uri) or store)
    store.opened = opened
    return store


def test_cli_report_from_mongodb(mock_store, tmp_path):
    from hyperq.mongo.domain import publish_domain

    docs = run(12, exp_key="exp1").trials
    for d in docs:
        d["misc"]["cmd"] = list(d["misc"]["cmd"])
    mock_store.insert(docs)
    publish_domain(mock_store, Domain(objective, SPACE), None, "exp1")
    out = tmp_path / "m.html"
    res = CliRunner().invoke(main, ["report", "exp1", "--out", str(out), "--trust-domain"],
                             env={"HYPERQ_MONGO_URI": "mongodb://localhost/rep",
                                  "HYPERQ_SECRET": ""})
    assert res.exit_code == 0, res.output
    assert mock_store.opened == ["mongodb://localhost/rep"]
    text = out.read_text()
    assert "<h1>Experiment exp1</h1>" in text and len(_rows(text)) == 12
    assert ">relu<" in text or ">tanh<" in text  # the published domain decoded the choices
    # without a secret or --trust-domain the domain (pickled code) is not loaded
    res = CliRunner().invoke(main, ["report", "exp1", "--mongo", "mongodb://localhost/rep",
                                    "--out", str(out)], env={"HYPERQ_SECRET": ""})
    assert res.exit_code == 0 and "show option indices" in out.read_text()
    # --no-domain never unpickles: choices stay indices
    res = CliRunner().invoke(main, ["report", "exp1", "--mongo", "mongodb://localhost/rep",
                                    "--no-domain", "--out", str(out)])
    assert res.exit_code == 0 and "show option indices" in out.read_text()
    res = CliRunner().invoke(main, ["report", "nope", "--mongo", "mongodb://localhost/rep"])
    assert res.exit_code == 1
    assert "no trials with exp_key 'nope'" in res.output and "exp1" in res.output


# -- in a real browser --------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Runs in the page after load: checks the images decoded, clicks the "loss" header twice and
# types into the filter, and writes what it saw into <pre id="test-out">.
PROBE = """<script>
window.addEventListener('load', function () {
  var out = {}, ths = document.querySelectorAll('#trials thead th');
  var imgs = Array.prototype.slice.call(document.images);
  out.images = imgs.length;
  out.broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  out.bestLoss = document.getElementById('best-loss').innerText;
  out.summary = document.getElementById('summary').innerText;
  var col = -1;
  ths.forEach(function (th, i) { if (th.innerText.trim().replace(/[\\u25B2\\u25BC]/g, '').trim() === 'loss') col = i; });
  function losses() { return Array.prototype.map.call(
    document.querySelectorAll('#trials tbody tr'), function (r) { return r.cells[col].innerText; }); }
  var button = ths[col].querySelector('button');
  button.click(); out.asc = losses(); out.ariaAsc = ths[col].getAttribute('aria-sort');
  button.click(); out.desc = losses(); out.ariaDesc = ths[col].getAttribute('aria-sort');
  var f = document.getElementById('filter'); f.value = 'RuntimeError';
  f.dispatchEvent(new Event('input'));
  out.shown = document.getElementById('shown').innerText;
  out.visibleRows = Array.prototype.filter.call(document.querySelectorAll('#trials tbody tr'),
    function (r) { return !r.hidden; }).length;
  var pre = document.createElement('pre'); pre.id = 'test-out';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def _chromium(args, timeout=120):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(Debian: apt-get install -y chromium)")
def test_report_in_headless_chromium(trials, page, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"),
                      encoding="utf-8")
    res = _chromium(["--dump-dom", probed.as_uri()])
    m = re.search(r'<pre id="test-out">(.*?)</pre>', res.stdout, re.DOTALL)
    assert m, f"the probe did not run; chromium said: {res.stderr[-2000:]}"
    seen = json.loads(html.unescape(m.group(1)))

    assert seen["images"] == 6 and seen["broken"] == 0
    assert seen["bestLoss"] == f"{trials.best_trial['result']['loss']:.6g}"
    assert "BEST LOSS" in seen["summary"].upper() and "TRIALS\n" in seen["summary"].upper()

    ok = sorted(r["loss"] for r in trials.results if r.get("status") == "ok")
    n_empty = len(trials) - len(ok)
    assert seen["ariaAsc"] == "ascending" and seen["ariaDesc"] == "descending"
    assert [float(v) for v in seen["asc"][:len(ok)]] == pytest.approx(ok, rel=1e-5)
    assert seen["asc"][len(ok):] == [""] * n_empty  # no loss: always last
    assert [float(v) for v in seen["desc"][:len(ok)]] == pytest.approx(ok[::-1], rel=1e-5)

    n_err = sum(t["state"] == 3 for t in trials.trials)
    assert n_err > 0
    assert seen["shown"] == str(n_err) and seen["visibleRows"] == n_err


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()])
    assert shot.exists() and os.path.getsize(shot) > 50_000
