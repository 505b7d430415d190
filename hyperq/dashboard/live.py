"""The live view of one experiment, kept up to date incrementally.

A :class:`LiveExperiment` holds the compact documents of the experiment's trials (the fields in
:data:`~hyperq.dashboard.sources.ROW_PROJECTION`) and a cursor. Each refresh asks the source
only for what changed since the cursor, plus the per-state counts and the running trials (both
cheap, indexed reads), so a tick costs the same with 100 or 100,000 trials. Refreshes are
shared by every browser watching the experiment and happen at most every ``min_interval``
seconds. The snapshot sent to browsers carries a ``version`` that changes only when something
visible changed, so an idle browser's poll is answered with a few bytes.
"""
from __future__ import annotations

import datetime
import heapq
import logging
import math
import threading
import time
from types import SimpleNamespace
from typing import Any

from hyperq.ops.output import fmt_error

from .sources import TrialSource, _naive

log = logging.getLogger(__name__)

__all__ = ["LiveExperiment", "best_so_far", "sample_evenly"]

DONE, ERROR = 2, 3
THROUGHPUT_WINDOW_S = 300.0


def _loss(doc: dict[str, Any]) -> float | None:
    loss = (doc.get("result") or {}).get("loss")
    if isinstance(loss, bool) or not isinstance(loss, (int, float)):
        return None
    loss = float(loss)
    return loss if math.isfinite(loss) else None


def _is_ok(doc: dict[str, Any]) -> bool:
    return doc.get("state") == DONE and (doc.get("result") or {}).get("status") == "ok" \
        and _loss(doc) is not None


def sample_evenly(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` of ``items``, evenly spaced, always keeping the first and last."""
    n = len(items)
    if n <= limit:
        return list(items)
    step = (n - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def best_so_far(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The points (tid order) where the best loss so far improved."""
    out: list[tuple[int, float]] = []
    for tid, loss in points:
        if not out or loss < out[-1][1]:
            out.append((tid, loss))
    return out


def _intermediate(doc: dict[str, Any]) -> list[tuple[int, float | None]] | None:
    """The reports of a trial (``[{"step", "value"}, ...]``) as ``(step, value)`` pairs."""
    items = doc.get("intermediate")
    if not isinstance(items, list) or not items:
        return None
    out: list[tuple[int, float | None]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        try:
            step = int(item.get("step"))
            value = float(item.get("value"))
        except (TypeError, ValueError):
            continue
        out.append((step, value if math.isfinite(value) else None))
    return out or None


class LiveExperiment:
    """Incrementally maintained state of one experiment; see the module docstring."""

    def __init__(self, source: TrialSource, exp_key: Any, min_interval: float = 0.4,
                 max_points: int = 2000, keep_intermediate: int = 40) -> None:
        self.source = source
        self.exp_key = exp_key
        self.min_interval = min_interval
        self.max_points = max_points
        self.keep_intermediate = keep_intermediate
        self._lock = threading.Lock()
        self._docs: dict[Any, dict[str, Any]] = {}
        self._intermediate: dict[Any, dict[str, Any]] = {}
        self._cursor: Any = None
        self._refreshed = 0.0
        self._version = 0
        self._signature: Any = None
        self._view: dict[str, Any] | None = None
        self._counts: dict[str, int] = {}
        self._running: list[dict[str, Any]] = []
        self._now: datetime.datetime | None = None
        self._params_cache: tuple[int, dict[str, Any]] | None = None
        self.reads = 0
        self._loader: threading.Thread | None = None
        self._loader_lock = threading.Lock()
        self._load_error: BaseException | None = None
        """How many trial documents the source returned so far (for tests and benchmarks)."""

    # -- refreshing ----------------------------------------------------------------------
    def _apply(self, docs: list[dict[str, Any]], full: bool) -> bool:
        changed = full
        if full:
            self._docs.clear()
            self._intermediate.clear()
        for doc in docs:
            tid = doc.get("tid")
            has_reports = "intermediate" in doc
            compact = {k: v for k, v in doc.items() if k != "intermediate"} \
                if has_reports else doc
            if full:
                self._docs[tid] = compact
            elif self._docs.get(tid) != compact:
                self._docs[tid] = compact
                changed = True
            if not has_reports:
                continue
            reports = _intermediate(doc)
            if reports is not None:
                entry = {"tid": tid, "state": doc.get("state"),
                         "status": (doc.get("result") or {}).get("status"),
                         "points": reports, "updated": _naive(doc.get("refresh_time"))}
                old = self._intermediate.get(tid)
                if old is None or old["points"] != reports or old["state"] != entry["state"] \
                        or old["status"] != entry["status"]:
                    self._intermediate[tid] = entry
                    changed = True
            elif tid in self._intermediate:
                del self._intermediate[tid]  # re-run: the reports start again
                changed = True
        if len(self._intermediate) > self.keep_intermediate:
            newest = sorted(self._intermediate.values(),
                            key=lambda e: (e["updated"] or datetime.datetime.min, e["tid"]),
                            reverse=True)[: self.keep_intermediate]
            self._intermediate = {e["tid"]: e for e in newest}
        return changed

    def refresh(self, force: bool = False) -> None:
        """Read what changed, unless the last read is younger than ``min_interval``."""
        with self._lock:
            if not force and time.monotonic() - self._refreshed < self.min_interval:
                return
            docs, cursor, full = self.source.changes(self.exp_key, self._cursor)
            self.reads += len(docs)
            changed = self._apply(docs, full)
            self._cursor = cursor
            self._counts = self.source.state_counts(self.exp_key)
            total = sum(self._counts.values())
            if len(self._docs) > total:  # trials were deleted: start again from scratch
                log.info("exp %r: %d cached trials but %d in the store; reloading",
                         self.exp_key, len(self._docs), total)
                docs, self._cursor, full = self.source.changes(self.exp_key, None)
                self.reads += len(docs)
                self._apply(docs, True)
                changed = True
            self._running = self.source.running(self.exp_key) if self._counts.get("running") \
                else []
            self._now = self.source.now()
            running_sig = sorted((d.get("tid"), d.get("worker")) for d in self._running)
            signature = (tuple(sorted(self._counts.items())), tuple(running_sig))
            if changed or signature != self._signature:
                self._version += 1
                self._signature = signature
                self._view = None
            self._refreshed = time.monotonic()

    @property
    def loaded(self) -> bool:
        """Has the first (full) read of the experiment finished?"""
        return self._version > 0

    def first_view(self) -> dict[str, Any] | None:
        """While the first full read runs (in a thread, started here), the counts alone, so that
        a large experiment opens at once; ``None`` once the full view is available."""
        if self.loaded:
            return None
        with self._loader_lock:  # not self._lock: the loader holds that while it reads
            if self._loader is None:
                self._loader = threading.Thread(target=self._first_load, daemon=True,
                                                name=f"dashboard-load-{self.exp_key}")
                self._loader.start()
        if self._load_error is not None:
            error, self._load_error, self._loader = self._load_error, None, None
            raise error
        counts = self.source.state_counts(self.exp_key)
        return {"version": 0, "loading": True, "counts": counts, "total": sum(counts.values())}

    def _first_load(self) -> None:
        try:
            self.refresh(force=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the next request
            log.warning("cannot read experiment %r: %s", self.exp_key, exc)
            self._load_error = exc

    # -- what browsers see ---------------------------------------------------------------
    @property
    def version(self) -> int:
        """Changes whenever the snapshot would."""
        return self._version

    def snapshot(self) -> dict[str, Any]:
        """Counts, best loss, throughput, the curve, recent and running trials, reports."""
        self.refresh()
        with self._lock:
            if self._view is None:
                self._view = self._build()
            view = dict(self._view)
        return view

    def _build(self) -> dict[str, Any]:
        now = self._now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        recent_cut = now - datetime.timedelta(seconds=THROUGHPUT_WINDOW_S)
        ok: list[tuple[int, float]] = []
        finished: list[tuple[datetime.datetime, int, dict[str, Any]]] = []
        statuses: dict[str, int] = {}
        first_start: datetime.datetime | None = None
        n_recent = 0
        for d in self._docs.values():  # one pass: this runs on every change
            state = d.get("state")
            start = _naive(d.get("book_time"))
            if start is not None and (first_start is None or start < first_start):
                first_start = start
            if state not in (DONE, ERROR):
                continue
            end = _naive(d.get("refresh_time"))
            finished.append((end or datetime.datetime.min, d.get("tid", 0), d))
            if end is not None and end >= recent_cut:
                n_recent += 1
            if state == DONE:
                status = str((d.get("result") or {}).get("status"))
                statuses[status] = statuses.get(status, 0) + 1
                loss = _loss(d)
                if status == "ok" and loss is not None:
                    ok.append((d["tid"], loss))
        ok.sort(key=lambda p: p[0])
        best = min(ok, key=lambda p: (p[1], p[0]), default=None)
        span = THROUGHPUT_WINDOW_S
        if first_start is not None:
            span = min(span, (now - first_start).total_seconds())
        per_minute = n_recent * 60.0 / max(span, 1.0) if n_recent else 0.0
        latest = [d for _, _, d in heapq.nlargest(10, finished, key=lambda f: (f[0], f[1]))]
        intermediate = sorted(self._intermediate.values(), key=lambda e: e["tid"])
        return {
            "version": self._version,
            "server_time": now,
            "counts": dict(self._counts),
            "total": sum(self._counts.values()),
            "statuses": statuses,
            "stale": self.source.stale_count(self.exp_key) if self._counts.get("running") else 0,
            "best": {"tid": best[0], "loss": best[1]} if best else None,
            "trials_per_minute": round(per_minute, 3),
            "curve": {
                "n_ok": len(ok),
                "points": sample_evenly(ok, self.max_points),
                "best": best_so_far(ok),
            },
            "recent": [{"tid": d.get("tid"), "state": d.get("state"),
                        "status": (d.get("result") or {}).get("status"), "loss": _loss(d),
                        "refresh_time": d.get("refresh_time"),
                        "error": fmt_error((d.get("misc") or {}).get("error"), 80) or None}
                       for d in latest],
            "running": [{"tid": d.get("tid"), "worker": d.get("worker"),
                         "book_time": d.get("book_time"), "attempt": d.get("attempt"),
                         "age_s": (now - _naive(d["book_time"])).total_seconds()
                         if _naive(d.get("book_time")) else None}
                        for d in sorted(self._running, key=lambda d: d.get("tid", 0))],
            "intermediate": [{"tid": e["tid"], "state": e["state"], "status": e["status"],
                              "points": e["points"]} for e in intermediate],
        }

    # -- parameters -----------------------------------------------------------------------
    def parameters(self, max_points: int = 1000) -> dict[str, Any]:
        """Loss against each parameter, parallel coordinates and importance, from a sample of
        at most ``max_points`` successful trials (the best tenth always included)."""
        self.refresh()
        with self._lock:
            if self._params_cache and self._params_cache[0] == self._version:
                return self._params_cache[1]
            version = self._version
            ok = sorted((d for d in self._docs.values() if _is_ok(d)), key=lambda d: d["tid"])
        by_loss = sorted(ok, key=lambda d: _loss(d))  # type: ignore[arg-type, return-value]
        keep = {d["tid"]: d for d in by_loss[: max(1, max_points // 10)]}
        for d in sample_evenly(ok, max_points - len(keep)):
            keep.setdefault(d["tid"], d)
        sample = sorted(keep.values(), key=lambda d: d["tid"])
        result = self._parameter_view(sample, len(ok))
        with self._lock:
            self._params_cache = (version, result)
        return result

    def _parameter_view(self, sample: list[dict[str, Any]], n_ok: int) -> dict[str, Any]:
        try:
            from hyperq.analysis import NotEnoughTrials, param_importance, trials_to_dataframe
            import pandas  # noqa: F401
        except ImportError:
            return {"error": "parameter plots need pandas: pip install 'hyperq[dashboard]'",
                    "n_ok": n_ok}
        space = self.source.space(self.exp_key)
        frame = trials_to_dataframe(SimpleNamespace(trials=sample), space=space)
        params = list(frame.attrs["params"])
        categorical = set(frame.attrs["categorical"])
        columns: dict[str, Any] = {}
        for p in params:
            values = frame[p].tolist()
            if p in categorical:
                values = [None if v is None or (isinstance(v, float) and math.isnan(v))
                          else str(v) for v in values]
            else:
                values = [None if v is None or not math.isfinite(float(v)) else float(v)
                          for v in values]
            columns[p] = values
        importance: list[dict[str, Any]] = []
        importance_error = None
        method = None
        try:
            scores = param_importance(frame, method="auto")
            method = scores.attrs.get("method")
            importance = [{"param": k, "score": float(v)} for k, v in scores.items()]
        except NotEnoughTrials as exc:
            importance_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn says why
            log.debug("importance failed", exc_info=True)
            importance_error = f"{type(exc).__name__}: {exc}"
        return {
            "n_ok": n_ok,
            "n_sample": len(sample),
            "decoded": bool(frame.attrs.get("decoded")),
            "params": params,
            "categorical": sorted(categorical),
            "log_scale": list(frame.attrs.get("log_scale", [])),
            "tids": frame["tid"].tolist(),
            "loss": [float(v) for v in frame["loss"].tolist()],
            "values": columns,
            "importance": importance,
            "importance_method": method,
            "importance_error": importance_error,
        }
