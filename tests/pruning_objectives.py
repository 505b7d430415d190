"""Objectives with intermediate reports that ``hyperq-worker`` processes import (tests dir is on
their PYTHONPATH). They log to ``$HYPERQ_TEST_LOG``: ``start <pid> <x>`` when an attempt starts,
``report <pid> <x> <step>`` after each stored report, ``lost <pid> <x> <step> <exception>`` when
a report was refused or interrupted because the lease was lost."""
from __future__ import annotations

import os
import time

import hyperq

N_STEPS = 8


def _log(*words) -> None:
    with open(os.environ["HYPERQ_TEST_LOG"], "a") as fh:
        fh.write(" ".join(str(w) for w in words) + "\n")


def _attempt(x: float) -> int:
    """How many attempts at ``x`` started before this one (from the log)."""
    try:
        with open(os.environ["HYPERQ_TEST_LOG"]) as fh:
            return sum(1 for line in fh if line.startswith("start ") and
                       line.split()[2] == repr(x))
    except FileNotFoundError:
        return 0


def curve(params):
    """Reports ``x**2 + 1/step`` for 8 steps (sleeping $HYPERQ_TEST_SLEEP each), pruned when the
    pruner says so."""
    x = params["x"]
    trial = hyperq.get_trial()
    _log("start", os.getpid(), repr(x))
    value = None
    for step in range(1, N_STEPS + 1):
        time.sleep(float(os.environ.get("HYPERQ_TEST_SLEEP", "0")))
        value = x * x + 1.0 / step
        trial.report(step, value)
        _log("report", os.getpid(), repr(x), step)
        if trial.should_prune():
            raise hyperq.TrialPruned()
    return value


def attempt_curve(params):
    """Reports ``1000 * attempt + step`` (attempt = 1, 2, ... for the same x), so stored reports
    tell which attempt made them. Waits for $HYPERQ_TEST_GO (a file) before step 2 on the
    first attempt, so a test can stop its worker in between."""
    x = params["x"]
    attempt = _attempt(x) + 1
    trial = hyperq.get_trial()
    _log("start", os.getpid(), repr(x))
    for step in range(1, N_STEPS + 1):
        try:
            if attempt == 1 and step == 2:
                while not os.path.exists(os.environ["HYPERQ_TEST_GO"]):
                    time.sleep(0.02)
            trial.report(step, 1000.0 * attempt + step)
        except BaseException as exc:  # LeaseLost from the report, or the worker's interrupt
            _log("lost", os.getpid(), repr(x), step, type(exc).__name__)
            raise
        _log("report", os.getpid(), repr(x), step)
        time.sleep(0.05)
    return float(attempt)
