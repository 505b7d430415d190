"""The MongoDB queue with real worker processes against a real MongoDB-protocol server (TCP)."""
from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from hyperq import JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW, fmin, hp, rand
from hyperq.mongo.trials import MongoTrials
from mongo_server import (  # noqa: F401  (fixtures)
    TESTS_DIR,
    hang_first_time,
    misbehaving,
    mongo_base_uri,
    mongo_uri,
    private_server,
    read_eval_log,
    record_and_square,
    run_fmin_in_thread,
    wait_until,
    with_database,
    worker_env,
    workers,
)

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(180)]

SPACE = {"x": hp.uniform("x", -5, 5)}


def test_four_workers_finish_200_trials_each_evaluated_once(mongo_uri, workers, tmp_path):
    log_path = str(tmp_path / "evals.log")
    env = worker_env(HYPERQ_TEST_LOG=log_path)
    for _ in range(4):
        workers.start(mongo_uri, "--exp-key", "four", env=env)
    trials = MongoTrials(mongo_uri, exp_key="four")
    best = fmin(record_and_square, SPACE, algo=rand.suggest, max_evals=200, trials=trials,
                max_queue_len=4, show_progressbar=False)
    trials.refresh()
    assert len(trials.trials) == 200
    assert all(t["state"] == JOB_STATE_DONE for t in trials.trials)
    assert sorted(t["tid"] for t in trials.trials) == list(range(200))
    assert all(t["attempt"] == 1 for t in trials.trials)
    evals = read_eval_log(log_path)
    assert len(evals) == 200, "every trial evaluated exactly once"
    xs = collections.Counter(x for _, x in evals)
    assert set(xs.values()) == {1}
    assert {repr(t["misc"]["vals"]["x"][0]) for t in trials.trials} == set(xs)
    assert len({pid for pid, _ in evals}) >= 2, "the work was shared between workers"
    assert abs(best["x"] - 1.0) < 1.0


def test_sigkill_mid_trial_is_rerun_and_fmin_completes(mongo_uri, workers, tmp_path):
    marker = str(tmp_path / "marker")
    env = worker_env(HYPERQ_TEST_MARKER=marker)
    victim = workers.start(mongo_uri, "--exp-key", "kill", env=env)
    trials = MongoTrials(mongo_uri, exp_key="kill")
    thread, box = run_fmin_in_thread(fn=hang_first_time, space=SPACE, algo=rand.suggest,
                                     max_evals=5, trials=trials)
    wait_until(lambda: os.path.exists(marker) and open(marker).read(), 60, "the first trial")
    assert int(open(marker).read().split()[0]) == victim.pid
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    workers.start(mongo_uri, "--exp-key", "kill", env=env)
    thread.join(120)
    assert not thread.is_alive() and "error" not in box
    trials.refresh()
    assert [t["state"] for t in trials.trials] == [JOB_STATE_DONE] * 5
    rerun = [t for t in trials.trials if t["attempt"] == 2]
    assert len(rerun) == 1 and rerun[0].get("requeues") == 1
    assert repr(rerun[0]["misc"]["vals"]["x"][0]) == open(marker).read().split()[1]


def test_sigterm_hands_the_trial_back_and_exits_cleanly(mongo_uri, workers, tmp_path):
    marker = str(tmp_path / "marker")
    env = worker_env(HYPERQ_TEST_MARKER=marker)
    first = workers.start(mongo_uri, "--exp-key", "term", env=env)
    trials = MongoTrials(mongo_uri, exp_key="term")
    thread, box = run_fmin_in_thread(fn=hang_first_time, space=SPACE, algo=rand.suggest,
                                     max_evals=3, trials=trials)
    wait_until(lambda: os.path.exists(marker) and open(marker).read(), 60, "the first trial")
    t0 = time.monotonic()
    os.kill(first.pid, signal.SIGTERM)
    assert first.wait(10) == 0
    assert time.monotonic() - t0 < 5
    assert "handed back" in workers.output(first)
    trials.refresh()
    tid0 = [t for t in trials.trials if t["tid"] == 0][0]
    assert tid0["state"] == JOB_STATE_NEW and tid0["attempt"] == 0
    workers.start(mongo_uri, "--exp-key", "term", env=env)
    thread.join(120)
    assert not thread.is_alive() and "error" not in box
    trials.refresh()
    assert [t["state"] for t in trials.trials] == [JOB_STATE_DONE] * 3
    assert all(t["attempt"] == 1 for t in trials.trials), "a hand-back does not use the budget"


def test_driver_killed_and_restarted_resumes(mongo_uri, workers, tmp_path):
    log_path = str(tmp_path / "evals.log")
    env = worker_env(HYPERQ_TEST_LOG=log_path, HYPERQ_TEST_SLEEP="0.05")
    for _ in range(2):
        workers.start(mongo_uri, "--exp-key", "resume", env=env)
    driver_cmd = [sys.executable, str(TESTS_DIR / "mongo_server.py"), mongo_uri, "resume", "30"]
    driver = subprocess.Popen(driver_cmd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(read_eval_log(log_path)) >= 8, 60, "8 evaluations")
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    out = subprocess.run(driver_cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "DRIVER DONE" in out.stdout, out.stdout[-2000:]
    trials = MongoTrials(mongo_uri, exp_key="resume")
    states = collections.Counter(t["state"] for t in trials.trials)
    assert states[JOB_STATE_DONE] == 30
    assert set(states) <= {JOB_STATE_DONE, JOB_STATE_CANCEL}
    assert len({t["tid"] for t in trials.trials}) == len(trials.trials)
    xs = collections.Counter(x for _, x in read_eval_log(log_path))
    assert len(xs) == sum(xs.values()), "no trial was evaluated twice"


def test_server_stopped_and_restarted_mid_run(private_server, workers, tmp_path):
    server = private_server()
    uri = with_database(server.uri, "restart")
    log_path = str(tmp_path / "evals.log")
    env = worker_env(HYPERQ_TEST_LOG=log_path, HYPERQ_TEST_SLEEP="0.05")
    for _ in range(2):
        workers.start(uri, "--exp-key", "rs", "--lease", "4", env=env)
    trials = MongoTrials(uri, exp_key="rs")
    thread, box = run_fmin_in_thread(fn=record_and_square, space=SPACE, algo=rand.suggest,
                                     max_evals=40, trials=trials)
    wait_until(lambda: len(read_eval_log(log_path)) >= 10, 60, "10 evaluations")
    server.stop()
    # Down until a worker has run into the outage: a fixed second could pass while both were
    # between requests, and the driver's retry then hid the outage from them.
    wait_until(lambda: any("unreachable" in workers.output(p) for p in workers.procs), 60,
               "a worker noticing the outage")
    server.start()
    thread.join(150)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    trials.refresh()
    done = [t for t in trials.trials if t["state"] == JOB_STATE_DONE]
    assert len(done) == 40
    assert all(p.poll() is None for p in workers.procs), "workers survived the outage"
    assert any("unreachable" in workers.output(p) for p in workers.procs)


def test_wrong_credentials_give_a_clear_error(private_server, workers):
    server = private_server(user="alice", password="right-pw")
    bad = f"mongodb://alice:wrong-pw@127.0.0.1:{server.port}/exp?authSource=admin&authMechanism=SCRAM-SHA-256"
    proc = workers.start(bad, "--exp-key", "auth")
    assert proc.wait(30) == 2
    out = workers.output(proc)
    assert "refused the credentials" in out and "wrong-pw" not in out
    from hyperq.mongo.store import AuthenticationFailed

    with pytest.raises(AuthenticationFailed, match="user, password and authSource"):
        MongoTrials(bad, exp_key="auth")
    good = f"mongodb://alice:right-pw@127.0.0.1:{server.port}/exp?authSource=admin&authMechanism=SCRAM-SHA-256"
    workers.start(good, "--exp-key", "auth", env=worker_env(HYPERQ_TEST_LOG=os.devnull))
    trials = MongoTrials(good, exp_key="auth")
    fmin(record_and_square, SPACE, algo=rand.suggest, max_evals=3, trials=trials,
         show_progressbar=False)
    assert [t["state"] for t in trials.trials] == [JOB_STATE_DONE] * 3


def _queue_one_trial(uri, exp_key, fn, secret=None):
    from hyperq.base import Domain

    trials = MongoTrials(uri, exp_key=exp_key, secret=secret)
    domain = Domain(fn, SPACE)
    trials.prepare_fmin(domain)
    trials.insert_trial_docs(rand.suggest(trials.new_trial_ids(1), domain, trials, 1))
    trials.refresh()
    return trials


@pytest.mark.parametrize("how", ["tampered", "unsigned"])
def test_worker_with_secret_refuses_bad_payload_and_runs_nothing(how, mongo_uri, workers,
                                                                tmp_path):
    log_path = str(tmp_path / "evals.log")
    trials = _queue_one_trial(mongo_uri, how, record_and_square,
                              secret="s3" if how == "tampered" else None)
    if how == "tampered":  # replace the stored objective, keeping the old signature
        import cloudpickle

        fs, key = trials.store.fs, trials.trials[0]["misc"]["cmd"][1]
        meta = fs.get("domain:" + key).metadata
        fs.delete("domain:" + key)
        fs.put(cloudpickle.dumps(os.system), _id="domain:" + key, metadata=meta)
    proc = workers.start(mongo_uri, "--exp-key", how, "--secret", "s3",
                         env=worker_env(HYPERQ_TEST_LOG=log_path))
    assert proc.wait(30) == 3
    out = workers.output(proc)
    assert ("altered" if how == "tampered" else "unsigned") in out
    assert "runs nothing" in out
    assert read_eval_log(log_path) == []
    trials.refresh()
    assert trials.trials[0]["state"] == JOB_STATE_NEW and trials.trials[0]["attempt"] == 0
    if how == "unsigned":  # the same worker without a secret runs it
        workers.start(mongo_uri, "--exp-key", how, "--max-jobs", "1",
                      env=worker_env(HYPERQ_TEST_LOG=log_path)).wait(30)
        assert len(read_eval_log(log_path)) == 1


def test_objective_errors_and_bad_results_are_recorded(mongo_uri, workers):
    cases = ["raise", "nan", "string", "big", "attach", "ok"]
    proc = workers.start(mongo_uri, "--exp-key", "bad")
    trials = MongoTrials(mongo_uri, exp_key="bad")
    fmin(misbehaving, {"case": hp.choice("case", cases)}, algo=rand.suggest, max_evals=6,
         trials=trials, show_progressbar=False,
         points_to_evaluate=[{"case": i} for i in range(6)])
    by_case = {cases[t["misc"]["vals"]["case"][0]]: t for t in trials.trials}
    raised = by_case["raise"]
    assert raised["state"] == JOB_STATE_ERROR
    assert "ValueError" in raised["misc"]["error"][0]
    assert raised["misc"]["error"][1] == "objective exploded on purpose"
    assert "misbehaving" in raised["misc"]["traceback"]
    nan = by_case["nan"]
    assert nan["result"]["status"] == "fail" and "nan" in nan["result"]["failure"]
    assert by_case["string"]["state"] == JOB_STATE_ERROR
    assert "InvalidLoss" in by_case["string"]["misc"]["error"][0]
    big = by_case["big"]
    assert big["state"] == JOB_STATE_ERROR and big["misc"]["error"][0] == "ResultTooLarge"
    assert "attachments" in big["misc"]["error"][1]
    attach = by_case["attach"]
    assert attach["state"] == JOB_STATE_DONE
    assert trials.trial_attachments(attach)["blob"] == b"\x00" * 300_000
    ok = by_case["ok"]
    assert ok["state"] == JOB_STATE_DONE and ok["result"]["pid"] == proc.pid
    assert proc.poll() is None, "the worker carried on"


def test_driver_says_once_when_no_worker_serves_and_cancels_on_timeout(mongo_uri, caplog):
    trials = MongoTrials(mongo_uri, exp_key="lonely")
    with caplog.at_level(logging.WARNING, logger="hyperq.mongo"):
        with pytest.raises(Exception, match="no trials were evaluated|argmin|no trial"):
            fmin(record_and_square, SPACE, algo=rand.suggest, max_evals=10, timeout=2.5,
                 trials=trials, max_queue_len=3, show_progressbar=False)
    warnings = [r for r in caplog.records if "no live hyperq-worker" in r.getMessage()]
    assert len(warnings) == 1
    assert "hyperq-worker --mongo" in warnings[0].getMessage()
    trials.refresh()
    assert trials.trials and all(t["state"] == JOB_STATE_CANCEL for t in trials.trials)
