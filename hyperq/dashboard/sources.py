"""Where the dashboard reads trials from: a MongoDB job store or a local ``trials_save_file``.

Both sources answer the same questions, each in the cheapest way its storage allows:

- ``state_counts``: trials per state (MongoDB: one indexed count per state);
- ``changes``: the trial documents that changed since a cursor, so the live view never re-reads
  every trial on a tick (MongoDB: ``refresh_time`` at or after the cursor, on an index; the
  file: the whole file, but only when its modification time changed);
- ``page``: one page of the trials table, sorted and filtered by the server;
- ``trial``: one trial in full, with its parameters as the objective saw them when that is
  possible without unpickling untrusted code.

MongoDB reads reuse the operator CLI's queries and actions (:mod:`hyperq.ops`), so the
dashboard and ``hyperq status`` / ``requeue`` / ``cancel`` follow the same rules.
"""
from __future__ import annotations

import collections
import datetime
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import OperationFailure

from hyperq.mongo.store import FINISHED_STATES as FINISHED
from hyperq.mongo.store import JOB_STATE_RUNNING
from hyperq.ops import actions, queries
from hyperq.ops.errors import NotFound
from hyperq.ops.params import raw_values

log = logging.getLogger(__name__)

__all__ = ["FileSource", "MongoSource", "PageQuery", "SORT_KEYS", "TrialSource", "exp_from_label",
           "experiment_summary"]

STATE_NAMES = queries.STATE_NAMES
STATE_CODES = queries.STATE_CODES

SORT_KEYS = {
    "tid": "tid",
    "state": "state",
    "loss": "result.loss",
    "book_time": "book_time",
    "refresh_time": "refresh_time",
    "worker": "worker",
}
"""Columns the trials table can be sorted by, and the document field behind each."""

MAX_PAGE_SIZE = 500
CHANGE_OVERLAP = datetime.timedelta(seconds=5)
"""How far before the newest ``refresh_time`` already seen the next ``changes`` read starts.

Two writes can commit in the opposite order of their server timestamps; re-reading the last
few seconds (and de-duplicating by tid) means such a trial is never missed."""

# Fields of a trial document the table, the curve and the live view need (never the whole
# ``result`` of every trial: it may hold large objects).
ROW_PROJECTION = {
    "tid": 1, "exp_key": 1, "state": 1, "result.status": 1, "result.loss": 1,
    "result.failure": 1, "misc.vals": 1, "misc.error": 1, "book_time": 1, "refresh_time": 1,
    "worker": 1, "owner": 1, "attempt": 1,
}
LIVE_PROJECTION = {**ROW_PROJECTION, "intermediate": 1, "_id": 0}

QUEUE_READ_INDEXES = [[("exp_key", 1), ("tid", 1)], [("exp_key", 1), ("state", 1)]]
"""Keys of the queue's indexes that the dashboard reads on: pages in tid order, one trial,
counts per state (the queue creates them as ``exp_tid`` and ``claim_by_exp``)."""
DASHBOARD_INDEXES = {
    "exp_refresh": [("exp_key", 1), ("refresh_time", 1)],
    "exp_best": [("exp_key", 1), ("state", 1), ("result.status", 1), ("result.loss", 1)],
}
"""The dashboard's own indexes: what changed since a time; the best trial and loss order."""


@dataclass
class PageQuery:
    """One page of the trials table: 1-based ``page``, sort column and direction, filters."""

    page: int = 1
    size: int = 50
    sort: str = "tid"
    descending: bool = True
    states: list[int] = field(default_factory=list)
    status: str | None = None
    loss_max: float | None = None
    tid: int | None = None

    def __post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise ValueError(f"cannot sort by {self.sort!r}; use one of {', '.join(SORT_KEYS)}")
        if self.page < 1:
            raise ValueError(f"page must be 1 or more, got {self.page}")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise ValueError(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {self.size}")

    @property
    def skip(self) -> int:
        """How many matching trials come before this page."""
        return (self.page - 1) * self.size


def exp_from_label(keys: list[Any], label: str) -> Any:
    """The exp_key shown as ``label`` (``(none)`` is ``None``); :class:`NotFound` otherwise."""
    for key in keys:
        if queries.exp_label(key) == label:
            return key
    raise NotFound(f"no experiment {label!r}")


def _naive(when: Any) -> datetime.datetime | None:
    """``when`` as a naive UTC datetime (None if it is not a datetime)."""
    if not isinstance(when, datetime.datetime):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return when


def _loss_of(doc: dict[str, Any]) -> float | None:
    loss = (doc.get("result") or {}).get("loss")
    if isinstance(loss, bool) or not isinstance(loss, (int, float)):
        return None
    return float(loss)


class TrialSource:
    """What every source answers; see the module docstring."""

    kind = "?"
    description = ""
    can_act = False
    """Can this source re-queue and cancel trials (MongoDB: yes; a local file: no)?"""

    def experiment_keys(self) -> list[Any]:
        """Every exp_key with trials, sorted."""
        raise NotImplementedError

    def experiment_for_label(self, label: str) -> Any:
        """The exp_key shown as ``label``; :class:`NotFound` if there is none."""
        return exp_from_label(self.experiment_keys(), label)

    def state_counts(self, exp_key: Any) -> dict[str, int]:
        """``{state name: number of trials}`` for every state."""
        raise NotImplementedError

    def now(self) -> datetime.datetime:
        """The time trials are stamped with (MongoDB: the server's clock), naive UTC."""
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)

    def changes(self, exp_key: Any, cursor: Any) -> tuple[list[dict[str, Any]], Any, bool]:
        """``(docs, new cursor, full)``: trials changed since ``cursor`` (``None``: all of them);
        ``full`` says that ``docs`` is every trial of the experiment (replace, don't merge)."""
        raise NotImplementedError

    def running(self, exp_key: Any) -> list[dict[str, Any]]:
        """The RUNNING trials (few: at most one per worker)."""
        raise NotImplementedError

    def page(self, exp_key: Any, query: PageQuery) -> tuple[list[dict[str, Any]], int]:
        """``(documents of the page, number of matching trials)``."""
        raise NotImplementedError

    def trial(self, exp_key: Any, tid: int) -> dict[str, Any]:
        """Trial ``tid``'s whole document; :class:`NotFound` if absent."""
        raise NotImplementedError

    def parameters(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Any, str | None]:
        """``(raw values, values as the objective saw them or None, why not)``."""
        raise NotImplementedError

    def space(self, exp_key: Any) -> Any:
        """The experiment's search space if it can be had safely, else ``None``."""
        return None

    def workers(self, count_trials: bool = True) -> list[dict[str, Any]] | None:
        """The worker registry (``None``: this source has none); ``count_trials`` counts each
        worker's finished and failed trials in the trials (else its own counters)."""
        return None

    def stale_count(self, exp_key: Any) -> int:
        """RUNNING trials whose worker died (lease expired)."""
        return 0

    def best(self, exp_key: Any) -> dict[str, Any] | None:
        """The DONE trial with status ok and the lowest loss."""
        raise NotImplementedError

    def activity(self, exp_key: Any, since: datetime.datetime
                 ) -> tuple[int, datetime.datetime | None, datetime.datetime | None]:
        """``(trials finished since `since`, first start, last update)``."""
        raise NotImplementedError

    def requeue(self, exp_key: Any, stale: bool, errors: bool, tids: list[int]) -> dict[str, int]:
        """Re-queue failed and/or stale trials."""
        raise PermissionError(f"a {self.kind} source cannot re-queue trials")

    def cancel(self, exp_key: Any) -> int:
        """Cancel the queued trials."""
        raise PermissionError(f"a {self.kind} source cannot cancel trials")


# -- MongoDB ------------------------------------------------------------------------------
class MongoSource(TrialSource):
    """Trials and workers in a MongoDB job store (``hyperq dashboard --mongo URI``).

    The domain (objective + space) is unpickled only when ``secret`` is given, and then only
    after its HMAC signature checked out; without it, parameters show as stored (choice
    indices) and the trial view says why.
    """

    kind = "mongo"
    can_act = True

    def __init__(self, store: Any, secret: bytes | None = None) -> None:
        self.store = store
        self.secret = secret
        self.description = store.target.display
        self._spaces: dict[Any, Any] = {}
        self.count_command: bool | None = None
        """Does the server answer the ``count`` command (None: not asked yet)?"""
        self.created_indexes: list[str] = []
        """The indexes this dashboard had to create (none when the store already had them)."""
        self._ensure_indexes()

    def _ensure_indexes(self) -> None:
        """Make sure the reads of every tick are indexed, creating only what is missing.

        A job store that hyperq's driver or workers opened already has the queue's indexes,
        and one the dashboard opened before has its own two, so usually nothing is created:
        asking for an index that exists still costs a request and the createIndex right, and a
        store whose queue indexes are missing gets them from the queue's own code, so both
        always define them alike. Another index whose keys start
        with the same fields serves the same reads and counts as present. A user without the
        createIndex right gets a warning and a slower dashboard, not an error."""
        try:
            have = [list(ix.get("key", {}).items()) for ix in self.store.retry(
                lambda: list(self.store.jobs.list_indexes()), "list the indexes")]

            def present(keys: list[tuple[str, int]]) -> bool:
                return any(h[:len(keys)] == keys for h in have)

            if not all(present(keys) for keys in QUEUE_READ_INDEXES):
                self.store.ensure_indexes()
                self.created_indexes.append("queue")
            for name, keys in DASHBOARD_INDEXES.items():
                if not present(keys):
                    self.store.retry(lambda keys=keys, name=name: self.store.jobs.create_index(
                        keys, name=name), "create an index")
                    self.created_indexes.append(name)
        except Exception as exc:  # noqa: BLE001 - read-only users still get a dashboard
            log.warning("could not create the dashboard's indexes (%s); reads will scan", exc)

    def count(self, flt: dict[str, Any]) -> int:
        """The number of trials matching ``flt``, with the ``count`` command when the server
        has it (it counts on the index; ``count_documents`` runs an aggregation, which is the
        same work on MongoDB but loads every matching document on some servers: 1.45 s
        against 0.06 s for 10,000 trials on mongoeco), else with ``count_documents``.
        ``flt`` always names the experiment: a count with a query is exact (sharded clusters
        too, since MongoDB 4.0); only a count of a whole collection reads metadata."""
        jobs = self.store.jobs
        if self.count_command is not False:
            try:
                reply = self.store.retry(lambda: jobs.database.command(
                    {"count": jobs.name, "query": flt}), "count trials")
                self.count_command = True
                return int(reply["n"])
            except (OperationFailure, NotImplementedError, KeyError) as exc:
                if self.count_command:  # it worked before: a real failure
                    raise
                log.info("the server does not answer the count command (%s); "
                         "using count_documents", exc)
                self.count_command = False
        return self.store.retry(lambda: jobs.count_documents(flt), "count trials")

    def experiment_keys(self) -> list[Any]:
        return queries.experiment_keys(self.store)

    def experiment_for_label(self, label: str) -> Any:
        """Looks for a trial of the exp_key ``label`` names (the string, ``None`` for
        ``(none)``, the integer for digits) on the (exp_key, tid) index, and lists every
        experiment only when none is found: listing is a ``distinct`` over all trials, which
        some servers answer by reading every trial (1.4 s for 10,000 on mongoeco)."""
        candidates: list[Any] = [None] if label == queries.NONE_KEY else []
        candidates.append(label)
        if label.lstrip("-").isdigit():
            candidates.append(int(label))
        for key in candidates:
            if queries.exp_label(key) == label and self.store.retry(
                    lambda key=key: self.store.jobs.find_one({"exp_key": key}, {"_id": 1}),
                    "look up an experiment") is not None:
                return key
        return super().experiment_for_label(label)

    def state_counts(self, exp_key: Any) -> dict[str, int]:
        return {name: self.count({"exp_key": exp_key, "state": code})
                for code, name in STATE_NAMES.items()}

    def now(self) -> datetime.datetime:
        return self.store.server_time()

    def changes(self, exp_key: Any, cursor: Any) -> tuple[list[dict[str, Any]], Any, bool]:
        flt: dict[str, Any] = {"exp_key": exp_key}
        if cursor is not None:
            flt["refresh_time"] = {"$gte": cursor - CHANGE_OVERLAP}
        docs = self.store.retry(lambda: list(self.store.jobs.find(flt, LIVE_PROJECTION)),
                                "read changed trials")
        times = [d["refresh_time"] for d in docs if isinstance(d.get("refresh_time"),
                                                               datetime.datetime)]
        newest = max(times, default=None)
        new_cursor = max(filter(None, [cursor, newest]), default=None)
        return docs, new_cursor, cursor is None

    def running(self, exp_key: Any) -> list[dict[str, Any]]:
        return self.store.retry(lambda: list(self.store.jobs.find(
            {"exp_key": exp_key, "state": JOB_STATE_RUNNING}, ROW_PROJECTION)),
            "read running trials")

    def _filter(self, exp_key: Any, query: PageQuery) -> dict[str, Any]:
        flt: dict[str, Any] = {"exp_key": exp_key}
        if query.states:
            flt["state"] = {"$in": list(query.states)}
        if query.status:
            flt["result.status"] = query.status
        if query.loss_max is not None:
            flt["result.loss"] = {"$lte": query.loss_max}
        if query.tid is not None:
            flt["tid"] = query.tid
        return flt

    def page(self, exp_key: Any, query: PageQuery) -> tuple[list[dict[str, Any]], int]:
        flt = self._filter(exp_key, query)
        jobs = self.store.jobs
        direction = -1 if query.descending else 1
        total = self.count(flt)

        def read(extra: dict[str, Any], skip: int, limit: int) -> list[dict[str, Any]]:
            if limit <= 0:
                return []
            sort = [(SORT_KEYS[query.sort], direction)]
            if query.sort != "tid":
                sort.append(("tid", direction))
            cursor = jobs.find({**flt, **extra}, ROW_PROJECTION).sort(sort).skip(skip)
            return self.store.retry(lambda: list(cursor.limit(limit)), "read a page of trials")

        if query.sort != "loss":
            return read({}, query.skip, query.size), total
        # trials without a loss always come last, whichever way the losses are sorted
        numeric = {"result.loss": {"$type": "number"}}
        if "result.loss" in flt:
            numeric = {"result.loss": {**flt["result.loss"], "$type": "number"}}
        n_numeric = self.count({**flt, **numeric})
        rows = read(numeric, query.skip, min(query.size, n_numeric - query.skip))
        rest = query.size - len(rows)
        if rest > 0:
            rows += read({"result.loss": {"$not": {"$type": "number"}}},
                         max(0, query.skip - n_numeric), rest)
        return rows, total

    def trial(self, exp_key: Any, tid: int) -> dict[str, Any]:
        return queries.get_trial(self.store, exp_key, tid)

    def space(self, exp_key: Any) -> Any:
        if self.secret is None:
            return None
        if exp_key not in self._spaces:
            from hyperq.mongo.domain import DomainCache

            space = None
            key = self.store.experiment_domain(exp_key)
            if key:
                try:
                    space = DomainCache(self.store, self.secret).get(key).expr
                except Exception as exc:  # noqa: BLE001 - shown as indices instead
                    log.warning("cannot load the domain of %r: %s", exp_key, exc)
            self._spaces[exp_key] = space
        return self._spaces[exp_key]

    def parameters(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Any, str | None]:
        from hyperq.ops.params import trial_parameters

        if self.secret is None:
            return (raw_values(doc), None,
                    "the dashboard was started without the signing secret, so it does not "
                    "unpickle the stored domain; values are as stored (hp.choice as option "
                    "index). Start it with --secret (or $HYPERQ_SECRET) to see them as the "
                    "objective saw them.")
        params = trial_parameters(self.store, doc, secret=self.secret, load_domain=True)
        return params.values, params.evaluated if params.ok else None, params.error

    def workers(self, count_trials: bool = True) -> list[dict[str, Any]] | None:
        return [w.as_dict() for w in queries.list_workers(self.store, count_trials=count_trials)]

    def stale_count(self, exp_key: Any) -> int:
        return queries.count_stale(self.store, exp_key)

    def best(self, exp_key: Any) -> dict[str, Any] | None:
        return queries.best_trial(self.store, exp_key)

    def activity(self, exp_key: Any, since: datetime.datetime
                 ) -> tuple[int, datetime.datetime | None, datetime.datetime | None]:
        jobs, retry = self.store.jobs, self.store.retry
        recent = self.count({"exp_key": exp_key, "refresh_time": {"$gte": since},
                             "state": {"$in": [FINISHED[0], FINISHED[1]]}})
        first = retry(lambda: jobs.find_one({"exp_key": exp_key}, {"book_time": 1,
                                                                     "refresh_time": 1},
                                            sort=[("tid", 1)]), "read the first trial")
        last = retry(lambda: jobs.find_one({"exp_key": exp_key, "refresh_time": {"$type": "date"}},
                                           {"refresh_time": 1}, sort=[("refresh_time", -1)]),
                     "read the last activity")
        start = (first or {}).get("book_time") or (first or {}).get("refresh_time")
        return recent, _naive(start), _naive((last or {}).get("refresh_time"))

    def requeue(self, exp_key: Any, stale: bool, errors: bool, tids: list[int]) -> dict[str, int]:
        return actions.requeue(self.store, exp_key, stale=stale, errors=errors,
                               tids=tids or None).as_dict()

    def cancel(self, exp_key: Any) -> int:
        return actions.cancel_queued(self.store, exp_key)


# -- a local trials file -------------------------------------------------------------------
class FileSource(TrialSource):
    """Trials that ``fmin(..., trials_save_file=PATH)`` writes (``--trials-file PATH``).

    The file is a pickle, so it is only opened when it is the user's own: the dashboard reads
    it again only when its modification time or size changed (fmin replaces it atomically as
    trials finish). Actions are not offered: the file belongs to the running fmin.
    """

    kind = "file"

    def __init__(self, path: str, min_interval: float = 0.25) -> None:
        self.path = os.path.abspath(path)
        self.description = self.path
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._signature: tuple[int, int] | None = None
        self._checked = 0.0
        self._trials: Any = None
        self._docs: dict[Any, list[dict[str, Any]]] = {}
        self._load()

    def _load(self) -> None:
        from hyperq.fmin import load_trials

        with self._lock:
            now = time.monotonic()
            if self._trials is not None and now - self._checked < self.min_interval:
                return
            self._checked = now
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                if self._trials is None:
                    raise FileNotFoundError(
                        f"{self.path} does not exist: give the file fmin writes with "
                        "trials_save_file=") from None
                return
            signature = (st.st_mtime_ns, st.st_size)
            if signature == self._signature:
                return
            trials = load_trials(self.path)
            docs: dict[Any, list[dict[str, Any]]] = {}
            for doc in trials.trials:
                docs.setdefault(doc.get("exp_key"), []).append(doc)
            self._trials, self._docs, self._signature = trials, docs, signature
            log.debug("read %d trials from %s", len(trials.trials), self.path)

    def _of(self, exp_key: Any) -> list[dict[str, Any]]:
        self._load()
        return self._docs.get(exp_key, [])

    def experiment_keys(self) -> list[Any]:
        self._load()
        keys = list(self._docs) or [None]
        return sorted(keys, key=lambda k: (k is not None, str(k)))

    def state_counts(self, exp_key: Any) -> dict[str, int]:
        counts = {name: 0 for name in STATE_CODES}
        for state, n in collections.Counter(d.get("state") for d in self._of(exp_key)).items():
            name = queries.state_name(state)
            counts[name] = counts.get(name, 0) + n
        return counts

    def changes(self, exp_key: Any, cursor: Any) -> tuple[list[dict[str, Any]], Any, bool]:
        docs = self._of(exp_key)
        if cursor == self._signature:
            return [], cursor, False
        return list(docs), self._signature, True

    def running(self, exp_key: Any) -> list[dict[str, Any]]:
        return [d for d in self._of(exp_key) if d.get("state") == JOB_STATE_RUNNING]

    def page(self, exp_key: Any, query: PageQuery) -> tuple[list[dict[str, Any]], int]:
        docs = self._of(exp_key)
        if query.states:
            docs = [d for d in docs if d.get("state") in query.states]
        if query.status:
            docs = [d for d in docs if (d.get("result") or {}).get("status") == query.status]
        if query.loss_max is not None:
            docs = [d for d in docs if (_loss_of(d) is not None and _loss_of(d) <= query.loss_max)]
        if query.tid is not None:
            docs = [d for d in docs if d.get("tid") == query.tid]
        if query.sort == "loss":
            with_loss = sorted((d for d in docs if _loss_of(d) is not None),
                               key=lambda d: (_loss_of(d), d.get("tid", 0)),
                               reverse=query.descending)
            without = sorted((d for d in docs if _loss_of(d) is None),
                             key=lambda d: d.get("tid", 0), reverse=query.descending)
            ordered = with_loss + without
        else:
            field_name = query.sort

            def key(d: dict[str, Any]) -> tuple[Any, ...]:
                value = d.get(field_name)
                # missing values sort first ascending, as MongoDB sorts them
                return (value is not None, value if value is not None else 0, d.get("tid", 0))

            ordered = sorted(docs, key=key, reverse=query.descending)
        return ordered[query.skip:query.skip + query.size], len(docs)

    def best(self, exp_key: Any) -> dict[str, Any] | None:
        ok = [d for d in self._of(exp_key) if d.get("state") == FINISHED[0]
              and (d.get("result") or {}).get("status") == "ok" and _loss_of(d) is not None]
        return min(ok, key=lambda d: (_loss_of(d), d.get("tid", 0)), default=None)

    def activity(self, exp_key: Any, since: datetime.datetime
                 ) -> tuple[int, datetime.datetime | None, datetime.datetime | None]:
        docs = self._of(exp_key)
        ends = [(_naive(d.get("refresh_time")), d.get("state")) for d in docs]
        recent = sum(1 for t, state in ends if t is not None and t >= since
                     and state in FINISHED[:2])
        starts = [t for t in (_naive(d.get("book_time")) for d in docs) if t is not None]
        return recent, min(starts, default=None), max((t for t, _ in ends if t is not None),
                                                      default=None)

    def trial(self, exp_key: Any, tid: int) -> dict[str, Any]:
        for doc in self._of(exp_key):
            if doc.get("tid") == tid:
                return doc
        raise NotFound(f"experiment {queries.exp_label(exp_key)!r} has no trial with tid {tid}")

    def space(self, exp_key: Any) -> Any:
        from hyperq.analysis import SpaceRef

        ref = getattr(self._trials, "_space_expr", None)
        return ref.expr if isinstance(ref, SpaceRef) else ref

    def parameters(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Any, str | None]:
        from hyperq.fmin import space_eval

        values = raw_values(doc)
        space = self.space(doc.get("exp_key"))
        if space is None:
            return values, None, ("the trials file holds no search space (it was not written "
                                  "by fmin), so values are shown as stored")
        try:
            return values, space_eval(space, values), None
        except Exception as exc:  # noqa: BLE001
            return values, None, f"space_eval failed: {type(exc).__name__}: {exc}"


# -- the experiments page --------------------------------------------------------------------
def experiment_summary(source: TrialSource, exp_key: Any, now: datetime.datetime,
                       window_s: float = 300.0) -> dict[str, Any]:
    """One row of the experiments page: counts, best loss, trials finished per minute over
    the last ``window_s`` seconds (cut to the experiment's age), last activity."""
    counts = source.state_counts(exp_key)
    best = source.best(exp_key)
    recent, first, last = source.activity(exp_key, now - datetime.timedelta(seconds=window_s))
    span = window_s
    if first is not None:
        span = min(window_s, (now - first).total_seconds())
    total = sum(counts.values())
    finished = counts.get("done", 0) + counts.get("error", 0) + counts.get("cancel", 0)
    return {
        "exp_key": exp_key,
        "label": queries.exp_label(exp_key),
        "counts": counts,
        "total": total,
        "progress": finished / total if total else 0.0,
        "best_loss": _loss_of(best) if best else None,
        "best_tid": best.get("tid") if best else None,
        "trials_per_minute": round(recent * 60.0 / max(span, 1.0), 3) if recent else 0.0,
        "last_activity": last,
    }
