"""The operator CLI shows intermediate reports (documents written straight to a real server)."""
from __future__ import annotations

import pytest

from hyperq import JOB_STATE_DONE
from mongo_server import mongo_base_uri, mongo_uri  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(120)]


def test_operator_cli_shows_reports(mongo_uri):
    import csv
    import datetime
    import io

    import pymongo
    from click.testing import CliRunner

    from hyperq.cli import main

    now = datetime.datetime(2026, 1, 1, 12, 0, 0)
    docs = [{"_id": f"id{tid}", "tid": tid, "exp_key": "ops", "state": JOB_STATE_DONE,
             "spec": None, "owner": "w", "book_time": now, "refresh_time": now, "version": 0,
             "misc": {"tid": tid, "cmd": None, "idxs": {"x": [tid]}, "vals": {"x": [0.5]}},
             "result": result, "intermediate": items}
            for tid, result, items in [
                (0, {"status": "ok", "loss": 0.25},
                 [{"step": s, "value": 1.0 / s, "time": now} for s in range(1, 4)]),
                (1, {"status": "pruned", "loss": 0.9, "pruned_at_step": 1},
                 [{"step": 1, "value": 0.9, "time": now, "rung": "r0"}])]]
    client = pymongo.MongoClient(mongo_uri)
    client.get_default_database().jobs.insert_many(docs)
    client.close()
    env = {"HYPERQ_MONGO_URI": mongo_uri, "HYPERQ_SECRET": ""}

    def run(*args):
        out = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert out.exit_code == 0, out.output
        return out.output

    detail = run("trials", "ops", "--tid", "1")
    assert "status    pruned" in detail and "reports (1):" in detail
    assert "step      1" in detail and "rung r0" in detail
    listing = run("trials", "ops")
    header, row0, row1 = listing.splitlines()[:3]
    assert "STEP" in header.split() and row0.split()[4] == "3" and row1.split()[4] == "1"
    rows = list(csv.DictReader(io.StringIO(run("export", "ops", "--format", "csv"))))
    assert [(r["n_reports"], r["last_step"]) for r in rows] == [("3", "3"), ("1", "1")]
