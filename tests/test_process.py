"""ProcessTrials: trials evaluated in real local worker processes."""
from __future__ import annotations

import os
import pickle
import signal

import pytest

import hyperq
from hyperq import (
    JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW, STATUS_OK, fmin, hp, rand,
    tpe,
)
from hyperq.exceptions import InvalidArgument, NoTrialsFinished
from hyperq.process import ProcessTrials

SPACE = {"x": hp.uniform("x", -5, 5)}


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _pids_in(directory) -> list[int]:
    return [int(p.read_text()) for p in directory.iterdir() if p.suffix == ".pid"]


def _pid_writer(directory):
    """A function (pickled by value, so workers need not import this module) noting its pid."""
    path = str(directory)

    def note() -> None:
        with open(os.path.join(path, f"{os.getpid()}.pid"), "w") as f:
            f.write(str(os.getpid()))

    return note


def test_trials_run_in_worker_processes_and_tpe_finds_the_minimum():
    def objective(p):
        return {"loss": (p["x"] - 1.0) ** 2, "status": STATUS_OK, "pid": os.getpid()}

    trials = hyperq.ProcessTrials(n_jobs=2)
    best = fmin(objective, SPACE, algo=tpe.suggest, max_evals=40, trials=trials, rstate=0,
                show_progressbar=False)
    assert len(trials) == 40
    assert all(t["state"] == JOB_STATE_DONE for t in trials.trials)
    pids = {t["result"]["pid"] for t in trials.trials}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert abs(best["x"] - 1.0) < 0.5
    assert not any(_alive(pid) for pid in pids), "workers exit when fmin returns"


def test_objective_exceptions_become_error_trials_even_unpicklable_ones():
    class Unpicklable(Exception):
        def __init__(self, a, b):  # pickling drops b: unpickling it fails
            super().__init__(f"{a} and {b}")

    def objective(p):
        if p["x"] < -1:
            raise ValueError(f"bad x {p['x']:.2f}")
        if p["x"] > 1:
            raise Unpicklable("cannot", "travel")
        return p["x"] ** 2

    trials = ProcessTrials(n_jobs=2)
    fmin(objective, SPACE, algo=rand.suggest, max_evals=12, trials=trials, rstate=3,
         show_progressbar=False, points_to_evaluate=[{"x": -3.0}, {"x": 3.0}, {"x": 0.5}])
    by_x = {t["misc"]["vals"]["x"][0]: t for t in trials.trials}
    bad, weird, good = by_x[-3.0], by_x[3.0], by_x[0.5]
    assert bad["state"] == JOB_STATE_ERROR
    assert bad["misc"]["error"] == ("<class 'ValueError'>", "bad x -3.00")
    assert 'raise ValueError(f"bad x' in bad["misc"]["traceback"]
    assert bad["misc"]["traceback"].endswith("ValueError: bad x -3.00\n")
    assert weird["state"] == JOB_STATE_ERROR
    assert "Unpicklable" in weird["misc"]["error"][0]
    assert weird["misc"]["error"][1] == "cannot and travel"
    assert good["state"] == JOB_STATE_DONE and good["result"]["loss"] == 0.25
    assert len(trials) == 12


@pytest.mark.parametrize("how, reason", [
    ("exit", "exited with code 7"),
    ("segfault", "segmentation fault"),
    ("sigkill", "SIGKILL"),
])
def test_a_crashing_worker_becomes_an_error_trial_and_the_run_goes_on(how, reason):
    def objective(p):
        if p["x"] > 4.0:
            if how == "exit":
                os._exit(7)
            elif how == "segfault":
                import ctypes

                ctypes.string_at(0)
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return p["x"] ** 2

    trials = ProcessTrials(n_jobs=2)
    best = fmin(objective, SPACE, algo=rand.suggest, max_evals=6, trials=trials, rstate=0,
                show_progressbar=False, points_to_evaluate=[{"x": 4.5}, {"x": 0.1}])
    crashed = trials.trials[0]
    assert crashed["state"] == JOB_STATE_ERROR
    assert crashed["misc"]["error"][0] == str(hyperq.exceptions.WorkerCrashed)
    assert reason in crashed["misc"]["error"][1]
    assert len(trials) == 6
    assert sum(t["state"] == JOB_STATE_DONE for t in trials.trials) >= 4
    assert best["x"] != 4.5


def test_timeout_terminates_running_trials_and_says_nothing_finished(tmp_path):
    note = _pid_writer(tmp_path)

    def objective(p):
        note()
        import time

        time.sleep(600)
        return 0.0

    trials = ProcessTrials(n_jobs=2)
    with pytest.raises(NoTrialsFinished, match="timeout"):
        fmin(objective, SPACE, algo=rand.suggest, max_evals=5, trials=trials, timeout=4,
             show_progressbar=False)
    assert trials.trials and all(t["state"] == JOB_STATE_CANCEL for t in trials.trials)
    assert all(t["misc"]["error"][0] == "cancelled" for t in trials.trials)
    pids = _pids_in(tmp_path)
    assert pids and not any(_alive(pid) for pid in pids)


def test_loss_threshold_cancels_the_rest_and_returns_the_point_that_reached_it(tmp_path):
    note = _pid_writer(tmp_path)

    def objective(p):
        if p["x"] == 0.0:
            return 0.0
        note()
        import time

        time.sleep(600)
        return 1.0

    trials = ProcessTrials(n_jobs=2)
    best = fmin(objective, SPACE, algo=tpe.suggest, max_evals=10, trials=trials,
                loss_threshold=0.1, show_progressbar=False,
                points_to_evaluate=[{"x": 3.0}, {"x": 0.0}])
    assert best == {"x": 0.0}
    states = [t["state"] for t in trials.trials]
    assert states.count(JOB_STATE_DONE) == 1
    assert set(states) == {JOB_STATE_DONE, JOB_STATE_CANCEL}
    assert not any(_alive(pid) for pid in _pids_in(tmp_path))


def test_early_stop_fn_stops_the_run():
    def stop_after_three(trials, *args):
        done = [t for t in trials.trials if t["state"] == JOB_STATE_DONE]
        return len(done) >= 3, []

    trials = ProcessTrials(n_jobs=2)
    fmin(lambda p: p["x"] ** 2, SPACE, algo=tpe.suggest, max_evals=50, trials=trials,
         early_stop_fn=stop_after_three, show_progressbar=False)
    assert 3 <= sum(t["state"] == JOB_STATE_DONE for t in trials.trials) < 50


def test_when_fmin_raises_workers_are_gone_and_running_trials_go_back_to_new(tmp_path):
    note = _pid_writer(tmp_path)
    directory = str(tmp_path)

    def objective(p):
        import time

        if p["x"] > 0:
            note()
            time.sleep(600)
        for _ in range(600):  # finish only once the slow trial is surely running
            if any(name.endswith(".pid") for name in os.listdir(directory)):
                break
            time.sleep(0.1)
        return p["x"] ** 2

    def explode(trials, *args):
        raise RuntimeError("boom from early_stop_fn")

    trials = ProcessTrials(n_jobs=2)
    with pytest.raises(RuntimeError, match="boom"):
        fmin(objective, SPACE, algo=rand.suggest, max_evals=10, trials=trials,
             early_stop_fn=explode, show_progressbar=False,
             points_to_evaluate=[{"x": 2.0}, {"x": -1.0}])
    assert trials.trials[0]["state"] == JOB_STATE_NEW, "an interrupted trial is redone on resume"
    assert trials.trials[1]["state"] == JOB_STATE_DONE
    pids = _pids_in(tmp_path)
    assert pids and not any(_alive(pid) for pid in pids)


def test_attachments_and_ctrl_work_in_workers():
    def objective(p):
        return {"loss": p["x"] ** 2, "status": STATUS_OK,
                "attachments": {"blob": b"\x01" * 1000}}

    trials = ProcessTrials(n_jobs=2)
    fmin(objective, SPACE, algo=rand.suggest, max_evals=3, trials=trials,
         show_progressbar=False)
    for t in trials.trials:
        assert trials.trial_attachments(t)["blob"] == b"\x01" * 1000

    def with_ctrl(expr, memo, ctrl):
        ctrl.attachments["note"] = f"tid {ctrl.current_trial['tid']}"
        return 1.0

    trials = ProcessTrials(n_jobs=2)
    fmin(with_ctrl, SPACE, algo=rand.suggest, max_evals=2, trials=trials,
         pass_expr_memo_ctrl=True, show_progressbar=False)
    assert [trials.trial_attachments(t)["note"] for t in trials.trials] == ["tid 0", "tid 1"]


def test_resume_from_trials_save_file(tmp_path):
    path = str(tmp_path / "trials.pkl")
    fmin(lambda p: p["x"] ** 2, SPACE, algo=tpe.suggest, max_evals=4,
         trials=ProcessTrials(n_jobs=2), trials_save_file=path, show_progressbar=False)
    with open(path, "rb") as f:
        saved = pickle.load(f)
    assert isinstance(saved, ProcessTrials) and len(saved) == 4
    first = [t["misc"]["vals"] for t in saved.trials]
    fmin(lambda p: p["x"] ** 2, SPACE, algo=tpe.suggest, max_evals=9,
         trials=ProcessTrials(n_jobs=2), trials_save_file=path, show_progressbar=False)
    with open(path, "rb") as f:
        resumed = pickle.load(f)
    assert len(resumed) == 9
    assert [t["misc"]["vals"] for t in resumed.trials[:4]] == first
    assert all(t["state"] == JOB_STATE_DONE for t in resumed.trials)


def test_unpicklable_objective_is_a_clear_error():
    import threading

    lock = threading.Lock()

    def objective(p):
        with lock:
            return p["x"]

    with pytest.raises(InvalidArgument, match="cannot be pickled"):
        fmin(objective, SPACE, max_evals=2, trials=ProcessTrials(n_jobs=1),
             show_progressbar=False)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4"])
def test_bad_n_jobs_is_rejected(bad):
    with pytest.raises(InvalidArgument, match="n_jobs"):
        ProcessTrials(n_jobs=bad)


def test_workers_exit_by_themselves_when_the_driver_is_killed(tmp_path):
    import subprocess
    import sys
    import time

    script = tmp_path / "driver.py"
    script.write_text(
        "import os, time\n"
        "from hyperq import fmin, hp, rand, ProcessTrials\n"
        f"d = {str(tmp_path)!r}\n"
        "def objective(p):\n"
        "    open(os.path.join(d, f'{os.getpid()}.pid'), 'w').write(str(os.getpid()))\n"
        "    time.sleep(600)\n"
        "fmin(objective, {'x': hp.uniform('x', 0, 1)}, algo=rand.suggest, max_evals=4,\n"
        "     trials=ProcessTrials(n_jobs=2), show_progressbar=False)\n"
    )
    driver = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 120
        while len(_pids_in(tmp_path)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = _pids_in(tmp_path)
        assert len(pids) == 2, "both workers started a trial"
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids), "orphaned workers exit on their own"


def test_a_trial_saved_while_running_is_evaluated_when_the_run_resumes(tmp_path):
    path = str(tmp_path / "trials.pkl")
    trials = ProcessTrials(n_jobs=2)
    fmin(lambda p: p["x"] ** 2, SPACE, algo=rand.suggest, max_evals=2, trials=trials,
         show_progressbar=False)
    interrupted = trials.trials[1]
    interrupted["state"], interrupted["result"] = hyperq.JOB_STATE_RUNNING, {"status": "running"}
    with open(path, "wb") as f:  # what trials_save_file holds when the driver dies mid-trial
        pickle.dump(trials, f)
    fmin(lambda p: p["x"] ** 2, SPACE, algo=rand.suggest, max_evals=3, trials=None,
         trials_save_file=path, show_progressbar=False)
    with open(path, "rb") as f:
        resumed = pickle.load(f)
    assert len(resumed) == 3
    assert all(t["state"] == JOB_STATE_DONE for t in resumed.trials)
    x = resumed.trials[1]["misc"]["vals"]["x"][0]
    assert resumed.trials[1]["result"]["loss"] == pytest.approx(x ** 2)
