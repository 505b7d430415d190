"""SparkTrials against a real local Spark (one SparkContext for the whole test session)."""
from __future__ import annotations

import logging
import os
import pickle
import platform
import subprocess
import sys
import threading

import numpy as np
import pytest

import hyperq
from hyperq import (
    JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR, STATUS_OK, fmin, hp, rand, tpe,
)
from hyperq.exceptions import AllTrialsFailed, InvalidArgument, NoTrialsFinished

SPACE = {"x": hp.uniform("x", -5, 5)}


@pytest.fixture(scope="session")
def sc():
    """A local SparkContext with 2 slots; tasks may be attempted up to 3 times.

    No interpreter is configured: SparkTrials must pick the driver's own in local mode."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'hyperq[spark]'")
    import shutil

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java (no java on PATH and no JAVA_HOME)")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark import SparkConf, SparkContext

    conf = (SparkConf().setMaster("local[2,3]").setAppName("hyperq-tests")
            .set("spark.ui.enabled", "false")
            .set("spark.ui.showConsoleProgress", "false")
            .set("spark.driver.memory", "512m")
            .set("spark.default.parallelism", "2")
            .set("spark.driver.extraJavaOptions",
                 "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:-UsePerfData"))
    context = SparkContext(conf=conf)
    context.setLogLevel("ERROR")
    yield context
    context.stop()


def _call_counter(directory):
    """A function (pickled by value) that notes each call in ``directory``; and a reader."""
    path = str(directory)

    def note(tag: str) -> None:
        with open(os.path.join(path, f"{tag}.calls"), "a") as f:
            f.write(f"{os.getpid()}\n")

    def calls(tag: str) -> int:
        try:
            with open(os.path.join(path, f"{tag}.calls")) as f:
                return len(f.read().split())
        except FileNotFoundError:
            return 0

    return note, calls


@pytest.mark.spark
def test_trials_run_as_spark_tasks_in_reused_python_workers(sc):
    def objective(p):
        return {"loss": (p["x"] - 1.0) ** 2, "status": STATUS_OK, "pid": os.getpid()}

    trials = hyperq.SparkTrials()
    assert trials.parallelism == 2  # the context's task slots
    best = fmin(objective, SPACE, algo=tpe.suggest, max_evals=12, trials=trials, rstate=0,
                show_progressbar=False)
    assert len(trials) == 12 and all(t["state"] == JOB_STATE_DONE for t in trials.trials)
    pids = {t["result"]["pid"] for t in trials.trials}
    assert os.getpid() not in pids
    assert len(pids) < 12, "Python workers are reused between trials"
    assert -5 <= best["x"] <= 5
    assert hyperq.SparkTrials is hyperq.spark.SparkTrials


@pytest.mark.spark
def test_exceptions_become_error_trials_and_failing_trials_run_once(sc, tmp_path):
    note, calls = _call_counter(tmp_path)

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a} and {b}")

    def objective(p):
        if p["x"] == -3.0:
            note("value_error")
            raise ValueError("bad x")
        if p["x"] == 3.0:
            note("unpicklable")
            raise Unpicklable("cannot", "travel")
        if p["x"] == 4.0:
            note("crash")
            os._exit(1)  # kills the Python worker: the Spark task fails and is retried
        return p["x"] ** 2

    trials = hyperq.SparkTrials(parallelism=2)
    fmin(objective, SPACE, algo=rand.suggest, max_evals=5, trials=trials, rstate=1,
         show_progressbar=False,
         points_to_evaluate=[{"x": -3.0}, {"x": 3.0}, {"x": 4.0}, {"x": 0.5}])
    by_x = {t["misc"]["vals"]["x"][0]: t for t in trials.trials}
    bad, weird, crash = by_x[-3.0], by_x[3.0], by_x[4.0]
    assert bad["state"] == JOB_STATE_ERROR
    assert bad["misc"]["error"] == ("<class 'ValueError'>", "bad x")
    assert bad["misc"]["traceback"].endswith("ValueError: bad x\n")
    assert 'raise ValueError("bad x")' in bad["misc"]["traceback"]
    assert weird["state"] == JOB_STATE_ERROR
    assert "Unpicklable" in weird["misc"]["error"][0]
    assert weird["misc"]["error"][1] == "cannot and travel"
    assert crash["state"] == JOB_STATE_ERROR
    assert "SparkTaskFailed" in crash["misc"]["error"][0]
    assert "the objective is not run again" in crash["misc"]["error"][1]
    assert by_x[0.5]["state"] == JOB_STATE_DONE and len(trials) == 5
    assert trials.count_failed_trials() == 3 and trials.count_successful_trials() == 2
    assert trials.count_total_trials() == 5 and trials.count_cancelled_trials() == 0
    # the objective ran once per failing trial, although Spark may attempt a task 3 times
    assert (calls("value_error"), calls("unpicklable"), calls("crash")) == (1, 1, 1)


@pytest.mark.spark
def test_timeout_cancels_our_spark_jobs_only(sc, tmp_path):
    """fmin's timeout cancels the trial's job group; a user's concurrent job is untouched."""
    note, calls = _call_counter(tmp_path)
    user_result = {}

    def user_job():
        sc.setJobGroup("users-own-group", "not hyperq's")
        user_result["value"] = sc.parallelize([20], 1).map(
            lambda x: __import__("time").sleep(8) or x + 1).collect()

    worker = threading.Thread(target=user_job)
    worker.start()

    def objective(p):
        note("started")
        __import__("time").sleep(600)
        return 0.0

    trials = hyperq.SparkTrials(parallelism=1, timeout=6)
    with pytest.raises(NoTrialsFinished, match="timeout"):
        fmin(objective, SPACE, algo=rand.suggest, max_evals=3, trials=trials,
             show_progressbar=False)
    assert trials.trials and all(t["state"] == JOB_STATE_CANCEL for t in trials.trials)
    # fmin returned after its Spark work ended: only the user's job may still be active
    tracker = sc.statusTracker()
    assert set(tracker.getActiveJobsIds()) <= set(tracker.getJobIdsForGroup("users-own-group"))
    assert calls("started") >= 1
    worker.join()
    assert user_result["value"] == [21]


@pytest.mark.spark
def test_loss_threshold_from_the_constructor_stops_and_cancels(sc):
    def objective(p):
        if p["x"] == 0.0:
            return 0.0
        __import__("time").sleep(600)
        return 1.0

    trials = hyperq.SparkTrials(parallelism=2, loss_threshold=0.1)
    best = fmin(objective, SPACE, algo=tpe.suggest, max_evals=8, trials=trials,
                show_progressbar=False, points_to_evaluate=[{"x": 3.0}, {"x": 0.0}])
    assert best == {"x": 0.0}
    states = [t["state"] for t in trials.trials]
    assert states.count(JOB_STATE_DONE) == 1 and JOB_STATE_CANCEL in states


@pytest.mark.spark
def test_points_attachments_and_resume_from_trials_save_file(sc, tmp_path):
    path = str(tmp_path / "trials.pkl")

    def objective(p):
        return {"loss": p["x"] ** 2, "status": STATUS_OK,
                "attachments": {"x_text": f"{p['x']:.3f}".encode()}}

    fmin(objective, SPACE, algo=tpe.suggest, max_evals=3, trials=hyperq.SparkTrials(),
         trials_save_file=path, points_to_evaluate=[{"x": 0.25}], show_progressbar=False)
    with open(path, "rb") as f:
        saved = pickle.load(f)
    assert isinstance(saved, hyperq.SparkTrials) and len(saved) == 3
    assert saved.trials[0]["misc"]["vals"]["x"] == [0.25]
    fmin(objective, SPACE, algo=tpe.suggest, max_evals=5, trials=hyperq.SparkTrials(),
         trials_save_file=path, show_progressbar=False)
    with open(path, "rb") as f:
        resumed = pickle.load(f)
    assert len(resumed) == 5 and resumed.trials[0]["misc"]["vals"]["x"] == [0.25]
    for t in resumed.trials:
        assert t["state"] == JOB_STATE_DONE
        expected = f"{t['misc']['vals']['x'][0]:.3f}".encode()
        assert resumed.trial_attachments(t)["x_text"] == expected


@pytest.mark.spark
def test_parallelism_is_capped_with_a_warning(sc, caplog):
    with caplog.at_level(logging.WARNING, logger="hyperq.spark"):
        trials = hyperq.SparkTrials(parallelism=1000)
    assert trials.parallelism == 128
    assert any("capped" in r.getMessage() for r in caplog.records)
    assert any("task slots" in r.getMessage() for r in caplog.records)


def test_importing_hyperq_without_pyspark_works_and_sparktrials_says_how_to_install():
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import hyperq, hyperq.spark\n"
        "try:\n"
        "    hyperq.SparkTrials()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "pip install 'hyperq[spark]'" in out


# -- which interpreter runs the trials ---------------------------------------------------------
def _wrapper(path, target: str, marker=None) -> str:
    """An executable that notes it ran (in ``marker``) and then runs ``target``."""
    note = f'echo ran >> "{marker}"\n' if marker else ""
    path.write_text(f'#!/bin/sh\n{note}exec "{target}" "$@"\n')
    path.chmod(0o755)
    return str(path)


def _python_outside_the_venv() -> str:
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a venv, so there is no Python without its packages")
    for name in (f"python{sys.version_info[0]}.{sys.version_info[1]}", "python3"):
        candidate = os.path.join(sys.base_prefix, "bin", name)
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip(f"no interpreter found under {sys.base_prefix}")


@pytest.mark.spark
def test_local_mode_runs_trials_with_the_drivers_interpreter(sc, tmp_path, monkeypatch):
    """Spark alone would start ``python3`` from PATH: here a Python without the venv's packages
    (as on a machine where the README's venv is not activated)."""
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    marker = tmp_path / "other-python-ran"
    monkeypatch.setattr(sc, "pythonExec",
                        _wrapper(tmp_path / "python3", _python_outside_the_venv(), marker))

    def objective(p):
        return {"loss": p["x"] ** 2, "status": STATUS_OK, "python": sys.executable}

    trials = hyperq.SparkTrials(parallelism=2)
    assert trials.python == sys.executable
    fmin(objective, SPACE, algo=rand.suggest, max_evals=4, trials=trials, rstate=2,
         show_progressbar=False)
    assert [t["state"] for t in trials.trials] == [JOB_STATE_DONE] * 4, trials.trials[0]["misc"]
    assert {t["result"]["python"] for t in trials.trials} == {sys.executable}
    assert not marker.exists()


@pytest.mark.spark
def test_a_chosen_interpreter_runs_the_trials(sc, tmp_path):
    marker = tmp_path / "chosen-python-ran"
    chosen = _wrapper(tmp_path / "my-python", sys.executable, marker)
    trials = hyperq.SparkTrials(parallelism=1, python=chosen)
    assert trials.python == chosen
    fmin(lambda p: p["x"] ** 2, SPACE, algo=rand.suggest, max_evals=2, trials=trials,
         rstate=3, show_progressbar=False)
    assert [t["state"] for t in trials.trials] == [JOB_STATE_DONE] * 2
    assert marker.exists(), "Spark started its Python worker with the chosen interpreter"
    with pytest.raises(InvalidArgument, match="python must be the path"):
        hyperq.SparkTrials(python="")


@pytest.mark.spark
def test_an_executor_without_the_drivers_packages_names_its_interpreter(sc):
    other = _python_outside_the_venv()
    trials = hyperq.SparkTrials(parallelism=1, python=other)
    with pytest.raises(AllTrialsFailed):
        fmin(lambda p: p["x"], SPACE, algo=rand.suggest, max_evals=1, trials=trials, rstate=4,
             show_progressbar=False)
    (trial,) = trials.trials
    assert trial["state"] == JOB_STATE_ERROR
    message = trial["misc"]["error"][1]
    # either that Python lacks a package (hyperq, numpy, ...) or it cannot unpickle the domain
    assert other in message or os.path.realpath(other) in message, message
    assert sys.executable in message and "SparkTrials(python=...)" in message


def test_a_domain_that_cannot_be_loaded_names_both_interpreters_and_the_mismatch():
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'hyperq[spark]'")
    import cloudpickle

    from hyperq.spark import _spark_task

    class Broadcast:
        value = b"not a pickle"

    driver = {"python": "/opt/driver/bin/python", "version": "3.99.0", "cloudpickle": "0.1.0"}
    (blob,) = _spark_task(Broadcast(), "key-for-this-test", 7, {"x": [1.0]}, None, driver, [0])
    outcome = cloudpickle.loads(blob)
    message = str(outcome)
    assert f"The executor runs {sys.executable}" in message
    assert "/opt/driver/bin/python (Python 3.99.0, cloudpickle 0.1.0)" in message
    assert f"cloudpickle {cloudpickle.__version__} here, 0.1.0 on the driver" in message
    assert f"Python {platform.python_version()} here, 3.99.0 on the driver" in message

@pytest.mark.spark
def test_spark_tasks_report_and_prune(sc):
    from hyperq.pruners import ASHAPruner

    def objective(params):
        trial = hyperq.get_trial()
        value = None
        for step in range(1, 10):
            value = params["x"] ** 2 + 1.0 / step
            trial.report(step, value)
            if trial.should_prune():
                raise hyperq.TrialPruned()
        return value

    trials = hyperq.SparkTrials(parallelism=2)
    fmin(objective, SPACE, algo=rand.suggest, max_evals=12, trials=trials,
         pruner=ASHAPruner(max_resource=9), show_progressbar=False,
         rstate=np.random.default_rng(0))
    statuses = [t["result"]["status"] for t in trials.trials]
    assert "pruned" in statuses and "ok" in statuses
    for t in trials.trials:
        steps = [i["step"] for i in t["intermediate"]]
        assert steps == list(range(1, len(steps) + 1))
        assert t["result"]["loss"] == t["intermediate"][-1]["value"]
        assert (len(steps) < 9) == (t["result"]["status"] == "pruned")
