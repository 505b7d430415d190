"""An incremental, columnar view of finished and pending trials for the search algorithms.

Algorithms call :func:`history_for` on every suggestion. The view is cached on the trials
object and updated in O(new + unfinished trials) per call, so a long run never rescans all
of its history.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from hyperq.base import JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW, JOB_STATE_RUNNING, \
    STATUS_OK, STATUS_PRUNED, Trials

#: statuses whose loss is an observation: a pruned trial counts at its last reported value
OBSERVED_STATUSES = (STATUS_OK, STATUS_PRUNED)


MAX_FAILED = 200


class _Columns:
    """Growable (row, value) columns of one label, stored in numpy buffers (amortized O(1))."""

    def __init__(self) -> None:
        self._rows = np.empty(64, dtype=np.int64)
        self._values = np.empty(64, dtype=float)
        self.n = 0

    def append(self, row: int, value: Any) -> None:
        if self.n == len(self._rows):
            self._rows = np.concatenate([self._rows, np.empty_like(self._rows)])
            self._values = np.concatenate([self._values, np.empty_like(self._values)])
        self._rows[self.n] = row
        self._values[self.n] = float(value)
        self.n += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self._rows[:self.n], self._values[:self.n]


class History:
    """Finished 'ok' trials as columns: ``losses[row]`` and per-label ``(rows, values)``.

    ``pending`` lists the misc vals of trials that are NEW or RUNNING, ``failed`` those of the
    latest trials that failed (status 'fail', a NaN loss, or an error).
    """

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.columns: dict[str, _Columns] = {}
        self.n_failed = 0
        self.failed: list[dict[str, Any]] = []  # vals of the latest failed or errored trials
        self._pos = 0
        self._open: dict[int, int] = {}   # index in trials.trials -> tid, not finished yet
        self._tids: list[int] = []
        self._losses = _Columns()

    def loss_array(self) -> np.ndarray:
        """The losses of the finished 'ok' trials, by row."""
        return self._losses.arrays()[1]

    def column(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, values) of ``label`` in the finished 'ok' trials where it was active."""
        col = self.columns.get(label)
        if col is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return col.arrays()

    def _add(self, trial: dict[str, Any]) -> None:
        r = trial.get("result") or {}
        loss = r.get("loss")
        if trial["state"] != JOB_STATE_DONE or r.get("status") not in OBSERVED_STATUSES \
                or loss is None \
                or not math.isfinite(loss):
            self.n_failed += 1
            if trial["state"] in (JOB_STATE_DONE, JOB_STATE_ERROR):
                self.failed.append(trial["misc"]["vals"])
                del self.failed[:-MAX_FAILED]
            return
        row = len(self.losses)
        self.losses.append(float(loss))
        self._losses.append(row, loss)
        for label, vals in trial["misc"]["vals"].items():
            if vals:
                col = self.columns.get(label)
                if col is None:
                    col = self.columns[label] = _Columns()
                col.append(row, vals[0])

    def update(self, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Take in what changed; returns the pending trials' misc vals."""
        if len(trials) < self._pos or any(
                i >= len(trials) or trials[i]["tid"] != tid for i, tid in self._open.items()):
            self.__init__()  # the store was rewritten: start over
        for i, tid in list(self._open.items()):
            if trials[i]["state"] in (JOB_STATE_DONE, JOB_STATE_ERROR) or \
                    trials[i]["state"] not in (JOB_STATE_NEW, JOB_STATE_RUNNING):
                del self._open[i]
                self._add(trials[i])
        for i in range(self._pos, len(trials)):
            t = trials[i]
            if t["state"] in (JOB_STATE_NEW, JOB_STATE_RUNNING):
                self._open[i] = t["tid"]
            else:
                self._add(t)
        self._pos = len(trials)
        return [trials[i]["misc"]["vals"] for i in self._open]


def history_for(trials: Trials) -> tuple[History, list[dict[str, Any]]]:
    """The cached :class:`History` of ``trials``, brought up to date, and the pending vals."""
    hist = trials.__dict__.get("_hyperq_history")
    if hist is None:
        hist = History()
        trials.__dict__["_hyperq_history"] = hist
    pending = hist.update(trials.trials)
    return hist, pending
