"""``MongoTrials``: trials stored in MongoDB and evaluated by ``hyperq-worker`` processes.

``fmin(fn, space, algo, max_evals, trials=MongoTrials("mongodb://host/db", exp_key="exp1"))``
publishes the domain, queues suggested trials and waits for workers to finish them. Re-running
with the same ``exp_key`` resumes the experiment. When fmin stops early (timeout,
loss_threshold, early_stop_fn) the trials this driver queued are cancelled; trials already
running finish on their workers and their results are stored, but fmin does not wait for them.

Requests: while fmin runs, the driver reads the database once per wake-up (every trial changed
since the last read, by the ``changed`` stamp), reserves trial ids in blocks and inserts the
trials of one suggestion in one request. Wake-ups come from a change stream when the server
has one, else from polling that backs off while nothing finishes.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import MutableMapping
from typing import Any, Iterable, Mapping

from hyperq.base import JOB_STATE_CANCEL, JOB_STATE_NEW, Trials
from hyperq.exceptions import InvalidArgument

from .attachments import AttachmentMap
from .domain import publish_domain
from .pruning import asked_handle, prepare_asked_doc
from .queue import FINISHED_STATES
from .registry import DEFAULT_MAX_ATTEMPTS
from .signing import resolve_secret, sign_trial
from .store import JobStore, connect_store
from .uri import MongoTarget
from .wakeups import ChangeFeed, finished_pipeline, open_feed

log = logging.getLogger(__name__)

__all__ = ["MongoTrials"]

#: trial ids reserved per request to the counter (unused ones are simply skipped)
TID_BLOCK = 32
#: seconds between the driver's lease-expiry scans (5x longer while workers scan) and counts
#: of live workers
SCAN_EVERY_S = 2.0
COUNT_WORKERS_EVERY_S = 3.0
#: shortest time between the waiting driver's empty change-stream reads (servers that do not
#: hold a getMore for its await time)
FEED_PACE_S = 0.05


class MongoTrials(Trials):
    """Trials kept in a MongoDB collection, evaluated asynchronously by workers.

    Parameters
    ----------
    arg:
        Where the trials live: ``mongodb://[user:pass@]host[:port]/db[?options]``,
        ``mongodb+srv://...``, hyperopt's ``mongo://host:port/db/collection``, or an open
        :class:`~hyperq.mongo.store.JobStore`. The collection defaults to ``jobs``.
    exp_key:
        Names the experiment (a string, or None); several experiments share one collection.
    refresh:
        Load the existing trials now.
    secret:
        Shared secret to sign the domain and each trial (HMAC); defaults to
        ``$HYPERQ_SECRET``. Workers given the same secret refuse anything unsigned or altered.
    max_attempts:
        How many times a trial is run when its worker dies (lease expiry) before it becomes
        ERROR.
    poll_max:
        Longest sleep (seconds) between the driver's checks while waiting for workers, on
        servers without change streams.
    reconnect_timeout:
        How long to keep retrying when the server is unreachable before giving up.
    """

    asynchronous = True

    def __init__(
        self,
        arg: str | MongoTarget | JobStore,
        exp_key: str | None = None,
        cmd: Any = None,
        workdir: str | None = None,
        refresh: bool = True,
        *,
        secret: str | bytes | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        poll_max: float = 0.25,
        reconnect_timeout: float = 300.0,
    ) -> None:
        if exp_key is not None and not isinstance(exp_key, str):
            raise InvalidArgument(f"exp_key must be a string or None, got {exp_key!r} "
                                  f"({type(exp_key).__name__}); use str(...) to name it")
        if isinstance(arg, JobStore):
            self._store = arg
        else:
            self._store = connect_store(arg, reconnect_timeout=reconnect_timeout)
        self._store.ensure_indexes()
        self._uri_arg = arg if isinstance(arg, (str, MongoTarget)) else arg.target
        self._secret = resolve_secret(secret)
        self._secret_arg = secret
        self.max_attempts = int(max_attempts)
        self.poll_max = float(poll_max)
        self.workdir = workdir
        self._domain_key: str | None = None
        self._reset_local()
        self._in_fmin = False
        self._stale = True  # the next refresh must read the database
        self._feed: ChangeFeed | None = None
        self._feed_checked = False
        self._last_scan = 0.0
        self._live_cache: tuple[float, int] = (-1e9, 0)
        self._warned_no_worker = False
        self._rate = 0.0  # finished trials per second, smoothed
        self._last_return = 0.0
        super().__init__(exp_key=exp_key, refresh=refresh)
        self.attachments = AttachmentMap(
            self._store.blobs, self._store.experiments, {"_id": f"exp:{exp_key}"}, exp_key,
            secret=self._secret, create_owner=True)

    def _reset_local(self) -> None:
        self._by_id: dict[Any, dict[str, Any]] = {}
        self._since: Any = None          # newest ``changed`` stamp seen
        self._fetched: list[dict[str, Any]] | None = None  # read by the last wake-up
        self._tid_block: list[int] = []
        self._queued_here: set[Any] = set()  # NEW trials this driver inserted

    # -- state kept in MongoDB ----------------------------------------------------------------
    @property
    def store(self) -> JobStore:
        """The :class:`~hyperq.mongo.store.JobStore` behind these trials."""
        return self._store

    def _read_changes(self) -> list[dict[str, Any]]:
        return self._store.queue.changed_since(self._exp_key, self._since)

    def refresh(self) -> None:
        """Bring the trials up to date with the database.

        Outside fmin this reads every trial changed since the last refresh (one indexed read).
        While fmin runs, the read happens when fmin wakes up, and a refresh applies it.
        """
        if self._fetched is not None:
            docs, self._fetched = self._fetched, None
        elif self._in_fmin and not self._stale:
            docs = []  # nothing was read since the last wake-up's read was applied
        else:
            docs = self._read_changes()
            self._stale = False
        self._apply(docs)

    def _apply(self, docs: list[dict[str, Any]]) -> None:
        appended = reordered = False
        max_tid = self._dynamic_trials[-1]["tid"] if self._dynamic_trials else -1
        for doc in docs:
            stamp = doc.get("changed")
            if stamp is not None and (self._since is None or stamp > self._since):
                self._since = stamp
            local = self._by_id.get(doc["_id"])
            if local is None:
                self._by_id[doc["_id"]] = doc
                appended = True
                reordered = reordered or doc["tid"] < max_tid
                max_tid = max(max_tid, doc["tid"])
                continue
            was_finished = local.get("state") in FINISHED_STATES
            if was_finished and (doc.get("state") != local.get("state")
                                 or doc.get("result") != local.get("result")):
                reordered = True  # re-queued and re-run: the algorithms must re-read it
            local.clear()
            local.update(doc)
            if doc.get("state") != JOB_STATE_NEW:
                self._queued_here.discard(doc["_id"])
        if appended:
            self._dynamic_trials = sorted(self._by_id.values(), key=lambda d: d["tid"])
            self._ids = {d["tid"] for d in self._dynamic_trials}
        if reordered:
            self.__dict__.pop("_hyperq_history", None)  # the algorithms' cache: rebuild it
        self._trials = self._dynamic_trials
        self._next_tid = max(self._next_tid, max_tid + 1)

    def new_trial_ids(self, n: int) -> list[int]:
        """Reserve ``n`` trial ids from a counter in the database (safe across drivers).

        Ids are reserved in blocks of :data:`TID_BLOCK`, so most calls need no request.
        """
        if len(self._tid_block) < n:
            more = max(n - len(self._tid_block), TID_BLOCK)
            self._tid_block += self._store.queue.reserve_tids(self._exp_key, more)
        ids, self._tid_block = self._tid_block[:n], self._tid_block[n:]
        return ids

    def _insert_trial_docs(self, docs: list[dict[str, Any]]) -> list[int]:
        docs = [copy.deepcopy(d) for d in docs]
        for doc in docs:
            doc.setdefault("max_attempts", self.max_attempts)
            doc.setdefault("attempt", 0)
            misc = doc.setdefault("misc", {})
            if self._domain_key is not None:
                misc["cmd"] = ["domain_attachment", self._domain_key]
            elif isinstance(misc.get("cmd"), tuple):
                misc["cmd"] = list(misc["cmd"])
            if self.workdir is not None and misc.get("workdir") is None:
                misc["workdir"] = self.workdir
            if self._secret:
                misc["sig"] = sign_trial(doc, self._secret)
        self._store.insert(docs)
        self._queued_here.update(d["_id"] for d in docs if d.get("state") == JOB_STATE_NEW)
        self._apply([copy.deepcopy(d) for d in docs])
        return [d["tid"] for d in docs]

    def delete_all(self) -> None:
        """Delete every trial, attachment and stored domain of this experiment."""
        self._store.delete_experiment(self._exp_key)
        self._reset_local()
        self._dynamic_trials = []
        self._trials = []
        self._ids = set()
        self._next_tid = 0
        self.__dict__.pop("_hyperq_history", None)

    def trial_attachments(self, trial: Mapping[str, Any]) -> MutableMapping:
        """The attachments of ``trial`` (written by its worker), stored in GridFS."""
        exp_key = trial.get("exp_key", self._exp_key)
        return AttachmentMap(self._store.blobs, self._store.jobs,
                             {"exp_key": exp_key, "tid": trial["tid"]}, exp_key, trial["tid"],
                             secret=self._secret)

    def count_by_state_unsynced(self, arg: int | Iterable[int]) -> int:
        """Trials of this experiment in state(s) ``arg`` in the database now (one request)."""
        states = [arg] if isinstance(arg, int) else list(arg)
        store = self._store
        return store.retry(lambda: store.jobs.count_documents(
            {"exp_key": self._exp_key, "state": {"$in": states}}), "count trials")

    # -- hooks used by fmin -------------------------------------------------------------------
    def prepare_fmin(self, domain: Any) -> None:
        """Publish the domain (content-addressed, signed if a secret is set) for workers."""
        super().prepare_fmin(domain)  # remembers the space for to_dataframe / report
        self._domain_key = publish_domain(self._store, domain, self._secret, self._exp_key)
        log.debug("domain %s published for exp_key=%r", self._domain_key[:12], self._exp_key)
        self._in_fmin = True
        self._stale = True

    def end_fmin(self) -> None:
        """Stop reading on wake-ups only; close the change stream."""
        self._in_fmin = False
        self._stale = True
        if self._feed is not None:
            self._feed.close()
            self._feed = None
            self._feed_checked = False

    def live_worker_count(self, max_age: float = COUNT_WORKERS_EVERY_S) -> int:
        """How many live workers serve this experiment (cached for ``max_age`` seconds)."""
        stamp, count = self._live_cache
        now = time.monotonic()
        if now - stamp > max_age:
            reg = self._store.registry
            count = self._store.retry(lambda: reg.count_live(self._exp_key), "count workers")
            self._live_cache = (now, count)
        return count

    def desired_queue_len(self, max_queue_len: int) -> int:
        """Two queued trials per live worker (so that none waits for the driver), or
        ``max_queue_len`` if larger."""
        return max(int(max_queue_len), 2 * self.live_worker_count())

    def _housekeeping(self) -> None:
        """Re-queue expired leases and say (once) when no live worker serves the experiment."""
        now = time.monotonic()
        live = self.live_worker_count()
        # live workers scan for expired leases on their own timers: the driver adds a little
        if now - self._last_scan < (SCAN_EVERY_S if live == 0 else 5 * SCAN_EVERY_S):
            return
        self._last_scan = now
        self._store.requeue_expired(self._exp_key)
        store = self._store
        if live == 0:
            if not self._warned_no_worker:
                self._warned_no_worker = True
                log.warning(
                    "no live hyperq-worker serves exp_key=%r on %s; queued trials wait until one "
                    "starts, e.g.: hyperq-worker --mongo '%s' --exp-key %s",
                    self._exp_key, store.target.display, store.target.display.split(" ")[0],
                    self._exp_key)
        elif self._warned_no_worker:
            self._warned_no_worker = False
            log.info("a worker now serves exp_key=%r", self._exp_key)

    def _unfinished(self) -> int:
        return sum(1 for d in self._dynamic_trials if d["state"] not in FINISHED_STATES)

    def wait_for_change(self, timeout: float) -> None:
        """Block until a trial of this experiment finishes, or ``timeout`` seconds pass.

        With a change stream the driver sleeps until the server reports a finished trial;
        otherwise it polls, first after the time a few trials take to finish (so that one read
        collects several) and backing off to ``poll_max`` while nothing finishes. Either way
        one read then fetches everything that changed. Also re-queues expired leases.
        """
        if not self._feed_checked:
            self._feed_checked = True
            self._feed = open_feed(self._store.jobs, finished_pipeline(),
                                   pace=lambda: FEED_PACE_S)
        deadline = time.monotonic() + max(0.0, timeout)
        workers = max(1, self.live_worker_count())
        before_queued = sum(1 for d in self._dynamic_trials if d["state"] == JOB_STATE_NEW)
        if self._rate > 0:
            interval = min(self.poll_max, max(0.002, 0.5 * workers / self._rate))
        else:
            interval = 0.01
        while True:
            self._housekeeping()
            remaining = deadline - time.monotonic()
            if self._feed is not None:
                woke = self._feed.wait(min(max(remaining, 0.0), SCAN_EVERY_S))
            else:
                time.sleep(min(interval, max(remaining, 0.0)))
                woke = True
                interval = min(interval * 1.5, self.poll_max)
            if woke:
                before = {d["_id"]: d["state"] for d in self._dynamic_trials}
                docs = self._read_changes()
                finished = [d for d in docs if d.get("state") in FINISHED_STATES
                            and before.get(d["_id"]) not in FINISHED_STATES]
                self._fetched = (self._fetched or []) + docs
                now_states = {**before, **{d["_id"]: d.get("state") for d in docs}}
                queued = sum(1 for s in now_states.values() if s == JOB_STATE_NEW)
                if queued < before_queued and queued <= workers // 2:
                    return  # the queue runs low: refill it before a worker finds it empty
                if finished:
                    now = time.monotonic()
                    if self._last_return:
                        rate = len(finished) / max(now - self._last_return, 1e-3)
                        self._rate = 0.7 * self._rate + 0.3 * rate if self._rate else rate
                    self._last_return = now
                    return
            if time.monotonic() >= deadline:
                return

    def cancel_queued(self) -> int:
        """Cancel the trials this driver queued; running trials finish on their workers.

        Trials queued by another driver on the same experiment are left alone.
        """
        ids = [i for i in self._queued_here if self._by_id.get(i, {}).get("state")
               == JOB_STATE_NEW]
        n = self._store.cancel_new(self._exp_key, ids)
        for i in ids:
            self._by_id[i]["state"] = JOB_STATE_CANCEL
        self._queued_here.clear()
        self._stale = True  # cancellations may have raced with claims: read again
        return n

    # -- ask-and-tell (hyperq.AskTell, issue 14) ---------------------------------------------
    def _asktell_prepare(self, doc: dict[str, Any]) -> None:
        prepare_asked_doc(doc)

    def _asktell_handle(self, doc: dict[str, Any], pruner: Any, fresh: bool) -> Any:
        return asked_handle(self._store, doc, pruner, fresh)

    def _asktell_finish(self, doc: dict[str, Any], state: int, result: dict[str, Any],
                        misc: dict[str, Any]) -> None:
        from hyperq.evaluation import plain

        if not self._store.finish(doc["_id"], doc["lease_token"], state, plain(result),
                                  plain(misc)):
            raise InvalidArgument(f"trial {doc['tid']} is not pending any more (told or "
                                  "cancelled by another process); nothing written")
        self.refresh()

    # -- pickling: keep the address, not the connection -------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "uri": self._uri_arg,
            "exp_key": self._exp_key,
            "secret": self._secret_arg,
            "max_attempts": self.max_attempts,
            "poll_max": self.poll_max,
            "workdir": self.workdir,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["uri"],
            exp_key=state["exp_key"],
            workdir=state.get("workdir"),
            secret=state.get("secret"),
            max_attempts=state.get("max_attempts", DEFAULT_MAX_ATTEMPTS),
            poll_max=state.get("poll_max", 0.25),
        )

    def __repr__(self) -> str:
        return f"MongoTrials({self._store.target.display}, exp_key={self._exp_key!r})"
