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
    STATUS_OK, Trials


class _Columns:
    """Growable columns of (row, value) per label."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.values: list[float] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def append(self, row: int, value: Any) -> None:
        self.rows.append(row)
        self.values.append(float(value))
        self._arrays = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = (np.asarray(self.rows, dtype=np.int64),
                            np.asarray(self.values, dtype=float))
        return self._arrays


class History:
    """Finished 'ok' trials as columns: ``losses[row]`` and per-label ``(rows, values)``.

    ``pending`` lists the ``{label: value}`` of trials that are NEW or RUNNING.
    """

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.columns: dict[str, _Columns] = {}
        self.n_failed = 0
        self._pos = 0
        self._open: dict[int, int] = {}   # index in trials.trials -> tid, not finished yet
        self._tids: list[int] = []
        self._loss_array: np.ndarray | None = None

    def loss_array(self) -> np.ndarray:
        if self._loss_array is None or len(self._loss_array) != len(self.losses):
            self._loss_array = np.asarray(self.losses, dtype=float)
        return self._loss_array

    def column(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, values) of ``label`` in the finished 'ok' trials where it was active."""
        col = self.columns.get(label)
        if col is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        return col.arrays()

    def _add(self, trial: dict[str, Any]) -> None:
        r = trial.get("result") or {}
        loss = r.get("loss")
        if trial["state"] != JOB_STATE_DONE or r.get("status") != STATUS_OK or loss is None \
                or not math.isfinite(loss):
            self.n_failed += 1
            return
        row = len(self.losses)
        self.losses.append(float(loss))
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
