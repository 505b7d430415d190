"""Pruning with MongoTrials and real hyperq-worker processes against a real server (TCP)."""
from __future__ import annotations

import os
import signal

import pytest

from hyperq import (
    JOB_STATE_DONE, JOB_STATE_RUNNING, STATUS_OK, STATUS_PRUNED, AskTell, fmin, hp, rand,
)
from hyperq.mongo.trials import MongoTrials
from hyperq.pruners import ASHAPruner, MedianPruner
from mongo_server import (  # noqa: F401  (fixtures)
    mongo_base_uri,
    mongo_uri,
    read_eval_log,
    run_fmin_in_thread,
    wait_until,
    worker_env,
    workers,
)
from pruning_objectives import N_STEPS, attempt_curve, curve

pytestmark = [pytest.mark.mongo, pytest.mark.timeout(180)]

SPACE = {"x": hp.uniform("x", -3, 3)}


@pytest.mark.parametrize("pruner", [MedianPruner(n_startup_trials=2),
                                    ASHAPruner(max_resource=N_STEPS)], ids=["median", "asha"])
def test_workers_report_and_prune_each_trial_with_its_own_reports(pruner, mongo_uri, workers,
                                                                  tmp_path):
    log = str(tmp_path / "log")
    env = worker_env(HYPERQ_TEST_LOG=log)
    procs = [workers.start(mongo_uri, "--exp-key", "prune", env=env) for _ in range(2)]
    trials = MongoTrials(mongo_uri, exp_key="prune")
    import numpy as np

    fmin(curve, SPACE, algo=rand.suggest, max_evals=16, trials=trials, pruner=pruner,
         show_progressbar=False, rstate=np.random.default_rng(0))
    trials.refresh()
    statuses = [t["result"]["status"] for t in trials.trials]
    assert STATUS_PRUNED in statuses and STATUS_OK in statuses
    reporters = set()
    for t in trials.trials:
        assert t["state"] == JOB_STATE_DONE
        x = t["misc"]["vals"]["x"][0]
        items = t["intermediate"]
        # every stored report is this trial's own: its x, its steps, in order, no duplicates
        assert [i["step"] for i in items] == list(range(1, len(items) + 1))
        assert [i["value"] for i in items] == pytest.approx([x * x + 1 / s for s in
                                                             range(1, len(items) + 1)])
        if t["result"]["status"] == STATUS_PRUNED:
            assert len(items) < N_STEPS and t["result"]["loss"] == items[-1]["value"]
            assert t["result"]["pruned_at_step"] == items[-1]["step"]
        reporters |= {int(w[1]) for w in read_eval_log(log) if w[0] == "report" and w[2] == repr(x)}
    assert reporters <= {p.pid for p in procs}
    # the pruned trials were stopped on the workers: fewer reports than a full run
    assert sum(1 for w in read_eval_log(log) if w[0] == "report") < 16 * N_STEPS


def test_a_stale_attempt_cannot_report_into_the_rerun(mongo_uri, workers, tmp_path):
    """A worker that lost its lease (stopped, its trial re-run elsewhere) gets LeaseLost on its
    next report, and none of its reports mix with the re-run's."""
    log, go = str(tmp_path / "log"), str(tmp_path / "go")
    env = worker_env(HYPERQ_TEST_LOG=log, HYPERQ_TEST_GO=go)
    stale = workers.start(mongo_uri, "--exp-key", "lease", env=env)
    trials = MongoTrials(mongo_uri, exp_key="lease")
    thread, box = run_fmin_in_thread(fn=attempt_curve, space=SPACE, algo=rand.suggest,
                                     max_evals=1, trials=trials)
    wait_until(lambda: any(w[0] == "report" and w[3] == "1" for w in read_eval_log(log)), 60,
               "the first attempt's first report")
    os.kill(stale.pid, signal.SIGSTOP)
    try:
        fresh = workers.start(mongo_uri, "--exp-key", "lease", env=env)
        thread.join(90)
        assert not thread.is_alive() and "error" not in box
        trials.refresh()
        (t,) = trials.trials
        assert t["state"] == JOB_STATE_DONE and t["attempt"] == 2 and t["result"]["loss"] == 2.0
        assert [i["step"] for i in t["intermediate"]] == list(range(1, N_STEPS + 1))
        assert [i["value"] for i in t["intermediate"]] == [2000.0 + s for s in
                                                           range(1, N_STEPS + 1)]
        open(go, "w").close()
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    wait_until(lambda: any(w[0] == "lost" for w in read_eval_log(log)), 30,
               "the stale attempt to find its lease lost")
    lost = [w for w in read_eval_log(log) if w[0] == "lost"]
    assert int(lost[0][1]) == stale.pid and lost[0][3] == "2"
    assert lost[0][4] in ("LeaseLost", "LeaseLostInterrupt")
    trials.refresh()
    assert [i["value"] for i in trials.trials[0]["intermediate"]] == [
        2000.0 + s for s in range(1, N_STEPS + 1)], "the stale attempt wrote nothing"
    assert {int(w[1]) for w in read_eval_log(log) if w[0] == "report" and w[3] != "1"} == {fresh.pid}


def test_a_sigkilled_workers_trial_reruns_with_clean_reports(mongo_uri, workers, tmp_path):
    log = str(tmp_path / "log")
    env = worker_env(HYPERQ_TEST_LOG=log, HYPERQ_TEST_SLEEP="0.3")
    victim = workers.start(mongo_uri, "--exp-key", "kill", env=env)
    trials = MongoTrials(mongo_uri, exp_key="kill")
    thread, box = run_fmin_in_thread(fn=curve, space=SPACE, algo=rand.suggest, max_evals=1,
                                     trials=trials)
    wait_until(lambda: sum(1 for w in read_eval_log(log) if w[0] == "report") >= 3, 60,
               "three reports of the first attempt")
    (running,) = MongoTrials(mongo_uri, exp_key="kill").trials  # what any reader sees now
    assert running["state"] == JOB_STATE_RUNNING
    assert len(running["intermediate"]) >= 3  # stored while the trial runs
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    rescuer = workers.start(mongo_uri, "--exp-key", "kill",
                            env=worker_env(HYPERQ_TEST_LOG=log))
    thread.join(120)
    assert not thread.is_alive() and "error" not in box
    trials.refresh()
    (t,) = trials.trials
    assert t["state"] == JOB_STATE_DONE and t["attempt"] == 2
    assert [i["step"] for i in t["intermediate"]] == list(range(1, N_STEPS + 1))
    starts = [int(w[1]) for w in read_eval_log(log) if w[0] == "start"]
    assert starts == [victim.pid, rescuer.pid]


def test_ask_and_tell_on_mongodb_resumes_and_prunes(mongo_uri):
    opt = AskTell(SPACE, algo=rand.suggest, trials=MongoTrials(mongo_uri, exp_key="ask"),
                  pruner=MedianPruner(n_startup_trials=1), rstate=0)
    first = opt.ask()
    for step in (1, 2, 3):
        opt.report(first, step, 0.1 * step)
    opt.tell(first, 0.3)
    second = opt.ask()
    opt.report(second, 1, 5.0)
    # another process picks the experiment up from the database
    again = AskTell(SPACE, algo=rand.suggest, trials=MongoTrials(mongo_uri, exp_key="ask"),
                    pruner=MedianPruner(n_startup_trials=1), rstate=1)
    (pending,) = again.pending()
    assert pending.tid == second.tid and [i["value"] for i in pending.intermediate] == [5.0]
    assert again.report(pending.tid, 2, 6.0) is True  # worse than the finished trial at step 2
    again.tell(pending.tid, pruned=True)
    docs = {t["tid"]: t for t in MongoTrials(mongo_uri, exp_key="ask").trials}
    assert docs[second.tid]["result"] == {"status": STATUS_PRUNED, "loss": 6.0,
                                          "pruned_at_step": 2}
    assert [i["step"] for i in docs[second.tid]["intermediate"]] == [1, 2]
    assert docs[first.tid]["result"]["loss"] == 0.3
    # the first process's handle no longer holds the trial: its report is refused
    with pytest.raises(Exception, match="not pending|lease"):
        opt.report(second, 3, 1.0)



def test_a_decision_costs_at_most_one_read_and_halving_reads_only_at_rungs(mongo_uri):
    from hyperq.intermediate import TrialHandle
    from hyperq.mongo.pruning import MongoHistory, push_report

    trials = MongoTrials(mongo_uri, exp_key="reads")
    jobs = trials.store.jobs
    jobs.insert_many([{"_id": f"d{tid}", "tid": tid, "exp_key": "reads", "state": JOB_STATE_DONE,
                       "result": {"status": "ok", "loss": 0.0},
                       "intermediate": [{"step": s, "value": tid + 1.0 / s} for s in
                                        range(1, 10)]} for tid in range(3)])
    jobs.insert_one({"_id": "me", "tid": 9, "exp_key": "reads", "state": JOB_STATE_RUNNING,
                     "lease_token": "tok", "intermediate": []})
    for pruner, expected_reads in [(MedianPruner(n_startup_trials=3), 9),
                                   (ASHAPruner(max_resource=9), 2)]:  # rungs at steps 1 and 3
        jobs.update_one({"_id": "me"}, {"$set": {"intermediate": []}})
        history = MongoHistory(jobs, "reads")
        handle = TrialHandle(9, history=history, pruner=pruner,
                             sink=lambda item: push_report(jobs, "me", "tok", item))
        for step in range(1, 10):
            handle.report(step, 0.5 + 1.0 / step)  # better than every finished trial
            assert handle.should_prune() is False
        assert history.n_reads == expected_reads
        stored = jobs.find_one({"_id": "me"})["intermediate"]
        assert [i["step"] for i in stored] == list(range(1, 10))
    # the median's read is the finished trials' value at that step, never this trial's own
    assert sorted(MongoHistory(jobs, "reads").finished_values_at_step(2, 9)) == [0.5, 1.5, 2.5]
    assert push_report(jobs, "me", "other-token", {"step": 10, "value": 0.0}) is False
