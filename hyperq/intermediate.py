"""Intermediate results: the handle through which a running objective reports and is pruned.

An objective gets the handle of the trial it is evaluating in one of two ways::

    def objective(params):                 # a plain hyperopt-style objective
        trial = hyperq.get_trial()
        ...

    def objective(params, trial):          # or: declare a parameter named ``trial``
        for epoch in range(1, 51):
            loss = train_one_epoch(...)
            trial.report(epoch, loss)
            if trial.should_prune():
                raise hyperq.TrialPruned()
        return loss

Each report is stored in the trial document under ``intermediate``: a list of
``{"step": int, "value": float, "time": datetime}`` in report order (a pruner may add a
``"rung"`` key to the report it compares trials at). A trial whose objective raises
:class:`TrialPruned` ends DONE with ``result = {"status": "pruned", "loss": <last reported
value>, "pruned_at_step": <its step>}``.

Where the reports go and where the pruning decision is made depends on the backend; each
backend builds a :class:`TrialHandle` with a *sink* (persists one report) and a
:class:`PruningHistory` (what the other trials reported). The in-memory store is served by
:class:`MemoryHistory`, an index kept up to date as reports arrive.
"""
from __future__ import annotations

import contextvars
import datetime
import inspect
import logging
import numbers
import weakref
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from hyperq.exceptions import HyperqError, InvalidArgument

if TYPE_CHECKING:  # pragma: no cover
    from hyperq.pruners import Pruner

logger = logging.getLogger(__name__)

__all__ = [
    "TrialPruned", "TrialHandle", "PruningHistory", "MemoryHistory", "SnapshotHistory",
    "get_trial", "trial_context", "memory_history", "run_objective", "STATUS_PRUNED",
]

STATUS_PRUNED = "pruned"
JOB_STATE_DONE = 2  # (hyperq.base imports this module: no import cycle)

Sink = Callable[[dict[str, Any]], None]


class TrialPruned(HyperqError):
    """Raise it in an objective to stop the trial: it ends as ``pruned`` at its last report."""


def _utcnow() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def check_report(step: Any, value: Any) -> tuple[int, float]:
    """``(step, value)`` as stored, or :class:`InvalidArgument` saying what is wrong."""
    if isinstance(step, bool) or not isinstance(step, (numbers.Integral, np.integer)) \
            or int(step) < 0:
        raise InvalidArgument(
            f"trial.report(step, value): step must be a non-negative int (e.g. the epoch), "
            f"got {step!r}")
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise InvalidArgument(
            f"trial.report(step, value): value must be a number (the loss so far), got "
            f"{type(value).__name__} {value!r}")
    return int(step), float(value)


# -- what the other trials reported -----------------------------------------------------------
class PruningHistory:
    """What pruners may know about the *other* trials of the experiment."""

    def finished_values_at_step(self, step: int, exclude_tid: int) -> list[float]:
        """Values reported at exactly ``step`` by finished trials (ok or pruned)."""
        raise NotImplementedError

    def values_at_rung(self, rung: str, exclude_tid: int) -> list[float]:
        """Values of the reports tagged ``rung`` by any trial (running ones too)."""
        raise NotImplementedError


class MemoryHistory(PruningHistory):
    """An index of the reports in an in-memory :class:`~hyperq.base.Trials`.

    Built once from the trial documents, then kept current by :meth:`add` / :meth:`forget`,
    which every writer of reports in this process calls; a query costs O(trials at that step).
    """

    def __init__(self, trials: Any) -> None:
        self._trials = trials
        self._by_step: dict[int, dict[int, float]] = {}
        self._by_rung: dict[str, dict[int, float]] = {}
        self._docs: dict[int, Mapping[str, Any]] = {}
        self._n_docs = -1
        self._rebuild()

    def _all_docs(self) -> list[Mapping[str, Any]]:
        return self._trials.trials  # this experiment's documents (exp_key), oldest first

    def _rebuild(self) -> None:
        self._by_step, self._by_rung, self._docs = {}, {}, {}
        docs = self._all_docs()
        self._n_docs = len(docs)
        for doc in docs:
            self._docs[doc["tid"]] = doc
            for item in doc.get("intermediate") or ():
                self._index(doc["tid"], item)

    def _sync(self) -> None:
        docs = self._all_docs()
        if len(docs) < self._n_docs:  # the store was emptied or replaced
            self._rebuild()
            return
        for doc in docs[self._n_docs:]:  # new docs (inserted with reports, e.g. injected)
            self._docs[doc["tid"]] = doc
            for item in doc.get("intermediate") or ():
                self._index(doc["tid"], item)
        self._n_docs = len(docs)

    def _index(self, tid: int, item: Mapping[str, Any]) -> None:
        self._by_step.setdefault(int(item["step"]), {}).setdefault(tid, float(item["value"]))
        rung = item.get("rung")
        if rung is not None:
            self._by_rung.setdefault(str(rung), {})[tid] = float(item["value"])

    def add(self, doc: Mapping[str, Any], item: Mapping[str, Any]) -> None:
        """Index one report that was just appended to ``doc['intermediate']``."""
        self._sync()
        self._docs[doc["tid"]] = doc
        self._index(doc["tid"], item)

    def forget(self, tid: int) -> None:
        """Drop the reports of ``tid`` (its evaluation starts over)."""
        for table in (*self._by_step.values(), *self._by_rung.values()):
            table.pop(tid, None)

    def finished_values_at_step(self, step: int, exclude_tid: int) -> list[float]:
        self._sync()
        out = []
        for tid, value in (self._by_step.get(step) or {}).items():
            doc = self._docs.get(tid)
            if tid != exclude_tid and doc is not None and doc["state"] == JOB_STATE_DONE:
                out.append(value)
        return out

    def values_at_rung(self, rung: str, exclude_tid: int) -> list[float]:
        self._sync()
        return [v for tid, v in (self._by_rung.get(rung) or {}).items() if tid != exclude_tid]

    def snapshot(self, steps: bool = True, rungs: bool = True) -> "SnapshotHistory":
        """A picklable copy of what a pruner needs (the finished trials' values by step, the
        values at rungs), for a trial evaluated in another process."""
        self._sync()
        by_step: dict[int, dict[int, float]] = {}
        if steps:
            finished = {tid for tid, d in self._docs.items() if d["state"] == JOB_STATE_DONE}
            for s, tab in self._by_step.items():
                kept = {t: v for t, v in tab.items() if t in finished}
                if kept:
                    by_step[s] = kept
        by_rung = {r: dict(tab) for r, tab in self._by_rung.items()} if rungs else {}
        return SnapshotHistory(by_step, by_rung)


class SnapshotHistory(PruningHistory):
    """The other trials' reports as they were when a trial was sent to a worker process."""

    def __init__(self, finished_by_step: dict[int, dict[int, float]],
                 by_rung: dict[str, dict[int, float]]) -> None:
        self.finished_by_step = finished_by_step
        self.by_rung = by_rung

    def finished_values_at_step(self, step: int, exclude_tid: int) -> list[float]:
        return [v for t, v in (self.finished_by_step.get(step) or {}).items() if t != exclude_tid]

    def values_at_rung(self, rung: str, exclude_tid: int) -> list[float]:
        return [v for t, v in (self.by_rung.get(rung) or {}).items() if t != exclude_tid]


class _EmptyHistory(PruningHistory):
    def finished_values_at_step(self, step: int, exclude_tid: int) -> list[float]:
        return []

    def values_at_rung(self, rung: str, exclude_tid: int) -> list[float]:
        return []


_HISTORIES: "weakref.WeakKeyDictionary[Any, MemoryHistory]" = weakref.WeakKeyDictionary()


def memory_history(trials: Any) -> MemoryHistory:
    """The report index of an in-memory ``trials`` (created on first use, then cached)."""
    hist = _HISTORIES.get(trials)
    if hist is None:
        hist = _HISTORIES[trials] = MemoryHistory(trials)
    return hist


# -- the handle -------------------------------------------------------------------------------
class TrialHandle:
    """The running trial as its objective sees it: report values, ask whether to stop.

    Attributes:
        tid: the trial id.
        intermediate: this evaluation's reports, ``[{"step", "value", ...}]`` in report order.
    """

    def __init__(self, tid: int, sink: Sink | None = None, history: PruningHistory | None = None,
                 pruner: "Pruner | None" = None) -> None:
        self.tid = tid
        self.intermediate: list[dict[str, Any]] = []
        self._sink = sink
        self._history = history or _EmptyHistory()
        self._pruner = pruner
        self._rungs: set[str] = set()
        self._steps: set[int] = set()
        self._decision: bool | None = None
        self._prune = False

    @property
    def pruner(self) -> "Pruner | None":
        """The pruner deciding about this trial (None: :meth:`should_prune` is always False)."""
        return self._pruner

    @property
    def last_step(self) -> int | None:
        return self.intermediate[-1]["step"] if self.intermediate else None

    @property
    def last_value(self) -> float | None:
        return self.intermediate[-1]["value"] if self.intermediate else None

    def report(self, step: int, value: float) -> None:
        """Store ``value`` (e.g. the validation loss) reached at ``step`` (e.g. the epoch).

        Steps are compared across trials, so report the same steps in every trial. A step
        already reported in this evaluation is ignored with a warning.
        """
        step, value = check_report(step, value)
        if step in self._steps:
            logger.warning("trial %s: step %d was reported already; this report is ignored",
                           self.tid, step)
            return
        item: dict[str, Any] = {"step": step, "value": value, "time": _utcnow()}
        rung = None if self._pruner is None else self._pruner.rung_for(self.tid, step, self._rungs)
        if rung is not None:
            item["rung"] = rung
        if self._sink is not None:
            self._sink(item)  # may raise (e.g. the lease was lost): the report is not kept
        if rung is not None:
            self._rungs.add(rung)
        self._steps.add(step)
        self.intermediate.append(item)
        self._decision = None

    def should_prune(self) -> bool:
        """Should the objective stop now? Ask after :meth:`report`; then ``raise TrialPruned()``.

        Once True it stays True. Always False without a pruner or before the first report.
        """
        if self._prune:
            return True
        if self._pruner is None or not self.intermediate:
            return False
        if self._decision is None:
            self._decision = bool(self._pruner.should_prune(self.tid, self.intermediate,
                                                            self._history))
            if self._decision:
                self._prune = True
                logger.debug("trial %s: pruned at step %s (value %s)", self.tid,
                             self.last_step, self.last_value)
        return self._decision

    def resume(self, items: list[Mapping[str, Any]]) -> None:
        """Go on from reports stored earlier by this same evaluation (not written again)."""
        self.intermediate = [dict(i) for i in items]
        self._rungs = {str(i["rung"]) for i in items if i.get("rung") is not None}
        self._steps = {int(i["step"]) for i in items}
        self._decision = None

    def pruned_result(self) -> dict[str, Any]:
        """The result of this trial when its objective raised :class:`TrialPruned`."""
        return {"status": STATUS_PRUNED, "loss": self.last_value, "pruned_at_step": self.last_step}


_CURRENT: contextvars.ContextVar[TrialHandle | None] = contextvars.ContextVar(
    "hyperq_current_trial", default=None)


def get_trial() -> TrialHandle:
    """The handle of the trial being evaluated (on whichever backend evaluates it).

    Called outside an evaluation (e.g. an objective called by hand in a test), it returns a
    detached handle that keeps reports in memory and never prunes.
    """
    handle = _CURRENT.get()
    if handle is None:
        handle = TrialHandle(tid=-1)
        logger.debug("get_trial() outside an evaluation: reports go nowhere")
    return handle


class trial_context:
    """``with trial_context(handle):`` makes ``handle`` what :func:`get_trial` returns."""

    def __init__(self, handle: TrialHandle) -> None:
        self.handle = handle
        self._token: contextvars.Token | None = None

    def __enter__(self) -> TrialHandle:
        self._token = _CURRENT.set(self.handle)
        return self.handle

    def __exit__(self, *exc: Any) -> None:
        assert self._token is not None
        _CURRENT.reset(self._token)


def _takes_trial(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    p = params.get("trial")
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def memory_handle(trials: Any, doc: dict[str, Any], pruner: "Pruner | None",
                  fresh: bool = True) -> TrialHandle:
    """A handle writing into ``doc`` of the in-memory ``trials``.

    ``fresh``: the evaluation starts over, its old reports are dropped; otherwise it goes on
    from the reports ``doc`` holds (ask-and-tell resumed from a file).
    """
    hist = memory_history(trials)
    if fresh:
        hist.forget(doc["tid"])
        doc["intermediate"] = []

    def sink(item: dict[str, Any]) -> None:
        doc.setdefault("intermediate", []).append(item)
        hist.add(doc, item)

    handle = TrialHandle(doc["tid"], sink=sink, history=hist, pruner=pruner)
    if not fresh:
        handle.resume(doc.get("intermediate") or [])
    return handle


def run_objective(domain: Any, values: Mapping[str, Any], ctrl: Any) -> Any:
    """Call ``domain``'s objective on ``values`` with a trial handle in place.

    Uses the handle the backend entered with :func:`trial_context`; otherwise one writing into
    ``ctrl.current_trial`` of ``ctrl.trials``. :class:`TrialPruned` becomes the pruned result.
    """
    handle = _CURRENT.get()
    if handle is None:
        doc = getattr(ctrl, "current_trial", None)
        trials = getattr(ctrl, "trials", None)
        pruner = getattr(domain, "pruner", None)
        if doc is not None and trials is not None and isinstance(doc, dict):
            handle = memory_handle(trials, doc, pruner)
        else:
            handle = TrialHandle(tid=-1, pruner=pruner)
    with trial_context(handle):
        try:
            if domain.pass_expr_memo_ctrl:
                return domain.fn(expr=domain.expr, memo=domain.space.memo(values), ctrl=ctrl)
            point = domain.space.evaluate(values)
            if _takes_trial(domain.fn):
                return domain.fn(point, trial=handle)
            return domain.fn(point)
        except TrialPruned:
            return handle.pruned_result()

