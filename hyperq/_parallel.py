"""What the parallel backends without a database (SparkTrials, ProcessTrials) share.

The driver side is :class:`DispatchTrials`: an in-memory :class:`~hyperq.base.Trials` whose
NEW trials are started on free *slots* (a Spark task, a worker process) from fmin's thread,
whose outcomes are applied to the trial documents from fmin's thread too (so the search
algorithm never sees a document change under it), and which cancels what still runs when fmin
stops early.

The worker side is :func:`evaluate_outcome`: evaluate one trial of a :class:`~hyperq.base.Domain`
and turn whatever happens (a result, an exception, an unpicklable result) into a plain,
picklable *outcome* dict::

    {"ok": bool, "result": dict | None, "attachments": {name: value},
     "error": (type, message) | None, "traceback": str | None, "owner": str,
     "seconds": float, "intermediate": [report, ...]}

Intermediate reports (``hyperq.get_trial().report``) are decided on where the trial runs: the
driver sends each trial a snapshot of what the other trials reported (:class:`SnapshotHistory`)
for its pruner, and the reports come back with the outcome (and, from local worker processes,
also one by one as they are made, through :meth:`DispatchTrials._on_report`).
"""
from __future__ import annotations

import hashlib
import linecache
import logging
import os
import re
import socket
import time
import traceback
import types
from typing import Any, Callable, Mapping

import cloudpickle

from hyperq.base import (
    JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW, JOB_STATE_RUNNING, Ctrl,
    Domain, Trials, utcnow,
)
from hyperq.evaluation import evaluate_trial
from hyperq.exceptions import InvalidArgument
from hyperq.intermediate import SnapshotHistory, TrialHandle, memory_history, trial_context

logger = logging.getLogger(__name__)

CANCEL_REASON = ("cancelled", "fmin stopped (timeout, loss_threshold or early_stop_fn) while this "
                 "trial was running; its evaluation was interrupted")


# -- worker side ----------------------------------------------------------------------------------
def pickle_domain(domain: Domain) -> tuple[str, bytes]:
    """``(content hash, cloudpickled domain)``; raises a clear error if it cannot be pickled."""
    try:
        blob = cloudpickle.dumps(domain)
    except Exception as exc:
        raise InvalidArgument(
            f"the objective or the search space cannot be pickled to send it to workers "
            f"({type(exc).__name__}: {exc}); make sure the objective does not capture open "
            "files, locks, sockets or database connections (create them inside the objective)"
        ) from exc
    return hashlib.sha256(blob).hexdigest()[:16], blob


def _describe(exc: BaseException) -> tuple[str, str]:
    """``(str(type), str(exc))`` like the in-process loop records, even if ``str`` fails."""
    try:
        msg = str(exc)
    except Exception:  # an exception whose __str__ raises
        msg = f"<unprintable {type(exc).__name__}>"
    return str(type(exc)), msg


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def evaluate_outcome(domain: Domain, tid: int, vals: Mapping[str, Any],
                     exp_key: str | None = None, history: SnapshotHistory | None = None,
                     on_report: Callable[[dict[str, Any]], None] | None = None) -> bytes:
    """Evaluate trial ``tid`` at ``vals`` (misc-style ``{label: [v]}``); returns a pickled outcome.

    Never raises for what the objective does: its exceptions (even unpicklable ones) and
    results that cannot be pickled become an error outcome with type, message and traceback.
    ``history`` is what the pruner knows of the other trials; ``on_report`` is called with each
    intermediate report as it is made.
    """
    local = Trials(exp_key=exp_key)
    doc = {"tid": tid, "state": JOB_STATE_RUNNING, "spec": None, "result": {"status": "running"},
           "misc": {"tid": tid, "idxs": {k: [tid] if v else [] for k, v in vals.items()},
                    "vals": dict(vals), "cmd": None, "workdir": None},
           "exp_key": exp_key, "owner": _owner(), "version": 0, "book_time": utcnow(),
           "refresh_time": utcnow()}
    ctrl = Ctrl(local, current_trial=doc)
    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"ok": False, "result": None, "attachments": {}, "error": None,
                               "traceback": None, "owner": doc["owner"]}
    handle = TrialHandle(tid, sink=on_report, history=history,
                         pruner=getattr(domain, "pruner", None))
    with trial_context(handle):
        result = evaluate_trial(domain, vals, ctrl)  # the evaluation path of every backend
    if result.ok:
        outcome["result"] = result.result
        outcome["attachments"] = dict(ctrl.attachments)
        outcome["ok"] = True
    else:
        outcome["error"], outcome["traceback"] = result.error, result.traceback
    outcome["seconds"] = time.perf_counter() - t0
    outcome["intermediate"] = handle.intermediate
    try:
        return cloudpickle.dumps(outcome)
    except Exception as exc:
        bad = {"ok": False, "result": None, "attachments": {}, "owner": doc["owner"],
               "seconds": outcome["seconds"], "traceback": traceback.format_exc(),
               "intermediate": handle.intermediate,
               "error": (str(type(exc)), f"the objective's result or attachments cannot be "
                         f"pickled to send them back to the driver: {_describe(exc)[1]}")}
        return cloudpickle.dumps(bad)


def error_outcome(type_name: str, message: str, owner: str | None = None) -> dict[str, Any]:
    """An outcome for a trial whose evaluation failed outside the objective (a crash, ...)."""
    return {"ok": False, "result": None, "attachments": {}, "error": (type_name, message),
            "traceback": None, "owner": owner, "seconds": None}


# -- driver side ----------------------------------------------------------------------------------
_DYNAMIC_FRAME = re.compile(r'^  File "<dynamic-code>", line (\d+), in (\S+)$')


def code_files(fn: Callable[..., Any], limit: int = 500) -> dict[str, str]:
    """``{function name: source file}`` of ``fn`` and the functions it uses (driver side).

    cloudpickle names the file of functions it ships by value ``<dynamic-code>``; this map lets
    the driver put the real file and source line back into a worker's traceback.
    """
    out: dict[str, str] = {}
    seen: set[int] = set()
    stack: list[Any] = [fn]
    while stack and len(seen) < limit:
        obj = stack.pop()
        code = obj if isinstance(obj, types.CodeType) else getattr(obj, "__code__", None)
        if not isinstance(code, types.CodeType) or id(code) in seen:
            continue
        seen.add(id(code))
        out.setdefault(code.co_name, code.co_filename)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        if isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:  # empty cell
                    pass
            home = getattr(fn, "__globals__", None)
            stack.extend(g for g in (obj.__globals__.get(n) for n in code.co_names)
                         if isinstance(g, types.FunctionType) and g.__globals__ is home)
    return out


def restore_traceback(tb: str, files: Mapping[str, str]) -> str:
    """Put file names and source lines back into ``<dynamic-code>`` frames of ``tb``."""
    if "<dynamic-code>" not in tb or not files:
        return tb
    lines = tb.splitlines(keepends=True)
    out = []
    for i, line in enumerate(lines):
        m = _DYNAMIC_FRAME.match(line.rstrip("\n"))
        path = files.get(m.group(2)) if m else None
        if not m or not path:
            out.append(line)
            continue
        out.append(f'  File "{path}", line {m.group(1)}, in {m.group(2)}\n')
        source = linecache.getline(path, int(m.group(1))).strip()
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if source and not following.startswith("    "):
            out.append(f"    {source}\n")
    return "".join(out)


class DispatchTrials(Trials):
    """An in-memory Trials whose NEW trials are evaluated on ``slots`` parallel workers.

    Subclasses implement :meth:`_start_runtime`, :meth:`_launch`, :meth:`_collect`,
    :meth:`_abort` and :meth:`_stop_runtime`; everything they do happens in fmin's thread.
    """

    asynchronous = True
    #: attributes that live only while fmin runs; never pickled (trials_save_file)
    _RUNTIME_ATTRS: tuple[str, ...] = ("_domain_key", "_domain_blob", "_inflight", "_started",
                                       "_code_files", "_pruner")

    def __init__(self, exp_key: str | None = None, refresh: bool = True) -> None:
        super().__init__(exp_key=exp_key, refresh=refresh)
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._domain_key: str | None = None
        self._domain_blob: bytes | None = None
        self._inflight: dict[int, dict[str, Any]] = {}   # tid -> running trial doc
        self._started = False
        self._code_files: dict[str, str] = {}
        self._pruner: Any = None

    # -- to implement -------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        """How many trials may run at once."""
        raise NotImplementedError

    def _start_runtime(self) -> None:
        """Acquire workers (called before the first trial of an fmin call is launched)."""

    def _launch(self, trial: dict[str, Any]) -> None:
        """Start evaluating ``trial`` (already marked RUNNING)."""
        raise NotImplementedError

    def _collect(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        """Wait up to ``timeout`` s for outcomes; returns ``[(tid, outcome)]`` (maybe empty)."""
        raise NotImplementedError

    def _abort(self, tids: list[int]) -> None:
        """Stop evaluating the running trials ``tids`` (their results will be ignored)."""

    def _stop_runtime(self) -> None:
        """Release every worker; nothing of this fmin call may run afterwards."""

    # -- fmin hooks ---------------------------------------------------------------------------
    def prepare_fmin(self, domain: Domain) -> None:
        """Pickle the domain once (it is shipped once per worker) and requeue stale trials."""
        super().prepare_fmin(domain)
        self._domain_key, self._domain_blob = pickle_domain(domain)
        self._code_files = code_files(domain.fn)
        self._pruner = getattr(domain, "pruner", None)
        for t in self._mine():
            if t["state"] == JOB_STATE_RUNNING and t["tid"] not in self._inflight:
                # left RUNNING by an interrupted run that was saved (trials_save_file): redo it
                t["state"], t["owner"], t["book_time"] = JOB_STATE_NEW, None, None

    def desired_queue_len(self, max_queue_len: int) -> int:
        """Fill the idle slots (plus ``max_queue_len - 1`` trials suggested ahead)."""
        return max(0, self.slots - len(self._inflight)) + max(0, max_queue_len - 1)

    def wait_for_change(self, timeout: float) -> None:
        """Start queued trials on free slots; wait up to ``timeout`` s for one to finish."""
        self._launch_queued()
        if not self._inflight:
            return
        deadline = time.monotonic() + timeout
        while True:
            done = self._collect(max(0.0, deadline - time.monotonic()))
            if done:
                self._apply(done)
                self._launch_queued()
                return
            if time.monotonic() >= deadline:
                return

    def cancel_queued(self) -> int:
        """Cancel queued trials and interrupt the running ones; returns how many."""
        running = list(self._inflight)
        if running:
            self._abort(running)
            for tid in running:
                t = self._inflight.pop(tid)
                t["state"] = JOB_STATE_CANCEL
                t["misc"]["error"] = CANCEL_REASON
                t["refresh_time"] = utcnow()
        return super().cancel_queued() + len(running)

    def end_fmin(self) -> None:
        """Release the workers; trials still running (fmin raised) go back to NEW for resume."""
        if self._inflight:
            self._abort(list(self._inflight))
            for t in self._inflight.values():
                t["state"], t["owner"], t["book_time"] = JOB_STATE_NEW, None, None
            self._inflight.clear()
        try:
            if self._started:
                self._stop_runtime()
        finally:
            self._started = False

    # -- intermediate reports -----------------------------------------------------------------
    def _pruning_history(self) -> SnapshotHistory | None:
        """What a trial launched now gets to know of the others (None without a pruner)."""
        if self._pruner is None:
            return None
        return memory_history(self).snapshot(steps=self._pruner.uses_steps,
                                             rungs=self._pruner.uses_rungs)

    def _on_report(self, tid: int, item: dict[str, Any]) -> None:
        """Store one report of running trial ``tid`` as it arrives."""
        t = self._inflight.get(tid)
        if t is not None:
            t.setdefault("intermediate", []).append(item)
            memory_history(self).add(t, item)

    def _set_reports(self, t: dict[str, Any], items: list[dict[str, Any]] | None) -> None:
        """Replace the reports of ``t`` (the evaluation's own list is authoritative)."""
        if not items and "intermediate" not in t:
            return
        hist = memory_history(self)
        hist.forget(t["tid"])
        t["intermediate"] = []
        for item in items or ():
            t["intermediate"].append(item)
            hist.add(t, item)

    # -- internals ----------------------------------------------------------------------------
    def _mine(self) -> list[dict[str, Any]]:
        if self._exp_key is None:
            return self._dynamic_trials
        return [t for t in self._dynamic_trials if t["exp_key"] == self._exp_key]

    def _launch_queued(self) -> None:
        free = self.slots - len(self._inflight)
        if free <= 0:
            return
        for t in self._mine():
            if free <= 0:
                break
            if t["state"] != JOB_STATE_NEW:
                continue
            if not self._started:
                self._start_runtime()
                self._started = True
            now = utcnow()
            t["state"], t["book_time"], t["refresh_time"] = JOB_STATE_RUNNING, now, now
            self._set_reports(t, None)  # a re-run starts with no reports
            self._inflight[t["tid"]] = t
            try:
                self._launch(t)
            except BaseException:
                del self._inflight[t["tid"]]
                t["state"], t["book_time"] = JOB_STATE_NEW, None
                raise
            free -= 1

    def _apply(self, done: list[tuple[int, dict[str, Any]]]) -> None:
        for tid, outcome in done:
            t = self._inflight.pop(tid, None)
            if t is None:  # cancelled meanwhile: its late outcome is ignored
                continue
            t["owner"] = outcome.get("owner") or t["owner"]
            t["refresh_time"] = utcnow()
            if "intermediate" in outcome:
                self._set_reports(t, outcome["intermediate"])
            if outcome["ok"]:
                t["result"] = outcome["result"]
                t["state"] = JOB_STATE_DONE
                if outcome["attachments"]:
                    att = self.trial_attachments(t)
                    for name, value in outcome["attachments"].items():
                        att[name] = value
                if t["result"].get("failure"):
                    logger.warning("trial %s: %s", tid, t["result"]["failure"])
            else:
                t["state"] = JOB_STATE_ERROR
                t["misc"]["error"] = tuple(outcome["error"])
                if outcome.get("traceback"):
                    t["misc"]["traceback"] = restore_traceback(outcome["traceback"],
                                                               self._code_files)
                logger.error("trial %s failed: %s: %s", tid, outcome["error"][0],
                             outcome["error"][1])

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in self._RUNTIME_ATTRS:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._reset_runtime()
