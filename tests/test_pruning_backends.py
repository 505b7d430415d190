"""Intermediate reports and pruning with ProcessTrials: real worker processes."""
from __future__ import annotations

import os
import threading
import time

import pytest

from hyperq import (
    JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW, JOB_STATE_RUNNING, STATUS_OK, STATUS_PRUNED,
    fmin, hp, rand,
)
from hyperq.process import ProcessTrials
from hyperq.pruners import ASHAPruner, MedianPruner

SPACE = {"x": hp.uniform("x", -3, 3)}
N_STEPS = 9


def make_curve(exit_at: float | None = None):
    """A learning-curve objective (pickled by value: workers need not import this module)."""
    import hyperq

    def objective(params):
        trial = hyperq.get_trial()
        value = None
        for step in range(1, N_STEPS + 1):
            value = params["x"] ** 2 + 1.0 / step
            trial.report(step, value)
            if exit_at is not None and params["x"] > exit_at and step == 3:
                os._exit(7)  # the worker process dies after 3 reports
            if trial.should_prune():
                raise hyperq.TrialPruned()
        return value

    return objective


def _run(trials, pruner, n, fn=None, **kw):
    import numpy as np

    fmin(fn or make_curve(), SPACE, algo=rand.suggest, max_evals=n, trials=trials,
         pruner=pruner, show_progressbar=False, rstate=np.random.default_rng(0), **kw)
    return trials


@pytest.mark.parametrize("pruner", [MedianPruner(n_startup_trials=3),
                                    ASHAPruner(max_resource=N_STEPS)], ids=["median", "asha"])
def test_worker_processes_report_and_prune(pruner):
    trials = _run(ProcessTrials(n_jobs=2), pruner, 24)
    by_status = {}
    for t in trials.trials:
        by_status.setdefault(t["result"]["status"], []).append(t)
        x = t["misc"]["vals"]["x"][0]
        items = t["intermediate"]
        assert [i["step"] for i in items] == list(range(1, len(items) + 1))
        assert [i["value"] for i in items] == pytest.approx([x * x + 1 / s for s in
                                                             range(1, len(items) + 1)])
    assert by_status.get(STATUS_PRUNED) and by_status.get(STATUS_OK)
    for t in by_status[STATUS_PRUNED]:
        assert t["state"] == JOB_STATE_DONE and len(t["intermediate"]) < N_STEPS
        assert t["result"]["loss"] == t["intermediate"][-1]["value"]
    owners = {t["owner"] for t in trials.trials}
    assert all(o and int(o.rsplit(":", 1)[1]) != os.getpid() for o in owners)


def test_reports_reach_the_driver_while_the_trial_runs(tmp_path):
    flag = str(tmp_path / "go")

    def objective(params):
        import os as _os
        import time as _time

        import hyperq

        hyperq.get_trial().report(1, 0.5)
        deadline = _time.monotonic() + 60
        while not _os.path.exists(flag) and _time.monotonic() < deadline:
            _time.sleep(0.01)
        return 0.25

    trials = ProcessTrials(n_jobs=1)
    runner = threading.Thread(target=_run, args=(trials, None, 1, objective))
    runner.start()
    seen_running = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not seen_running:
        for t in list(trials.trials):
            if t["state"] == JOB_STATE_RUNNING and t.get("intermediate"):
                seen_running = t["intermediate"][0]["value"] == 0.5
        time.sleep(0.01)
    open(flag, "w").close()
    runner.join(60)
    assert seen_running, "the report was not stored on the driver while the trial ran"
    assert trials.trials[0]["state"] == JOB_STATE_DONE


def test_a_crashed_worker_keeps_its_reports_and_a_rerun_starts_clean():
    trials = _run(ProcessTrials(n_jobs=2), None, 8, fn=make_curve(exit_at=1.0))
    crashed = [t for t in trials.trials if t["state"] == JOB_STATE_ERROR]
    assert crashed, "some x > 1 must have crashed its worker"
    for t in crashed:
        assert [i["step"] for i in t["intermediate"]] == [1, 2, 3]
    # queue one of them again with its stale reports: the re-run replaces them
    t = crashed[0]
    t["state"], t["result"] = JOB_STATE_NEW, {"status": "new"}
    t["misc"]["vals"]["x"] = [0.5]
    t["intermediate"].append({"step": 99, "value": -1.0})
    _run(trials, None, 9)
    assert t["state"] == JOB_STATE_DONE
    assert [i["step"] for i in t["intermediate"]] == list(range(1, N_STEPS + 1))
