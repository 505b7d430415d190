"""``MongoTrials``: trials stored in MongoDB and evaluated by ``hyperq-worker`` processes.

``fmin(fn, space, algo, max_evals, trials=MongoTrials("mongodb://host/db", exp_key="exp1"))``
publishes the domain, queues suggested trials and waits for workers to finish them. Re-running
with the same ``exp_key`` resumes the experiment. When fmin stops early (timeout,
loss_threshold, early_stop_fn) the queued trials are cancelled; trials already running finish on
their workers and their results are stored, but fmin does not wait for them.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import MutableMapping
from typing import Any, Iterable, Mapping

from hyperq.base import JOB_STATE_CANCEL, JOB_STATE_NEW, JOB_STATE_RUNNING, Trials

from .attachments import GridFSAttachments
from .domain import publish_domain
from .signing import resolve_secret
from .store import DEFAULT_MAX_ATTEMPTS, FINISHED_STATES, JobStore, connect_store
from .uri import MongoTarget

log = logging.getLogger(__name__)

__all__ = ["MongoTrials"]


class MongoTrials(Trials):
    """Trials kept in a MongoDB collection, evaluated asynchronously by workers.

    Parameters
    ----------
    arg:
        Where the trials live: ``mongodb://[user:pass@]host[:port]/db[?options]``,
        ``mongodb+srv://...``, hyperopt's ``mongo://host:port/db/collection``, or an open
        :class:`~hyperq.mongo.store.JobStore`. The collection defaults to ``jobs``.
    exp_key:
        Names the experiment; several experiments share one collection without interfering.
    refresh:
        Load the existing trials now.
    secret:
        Shared secret to sign the domain (HMAC); defaults to ``$HYPERQ_SECRET``. Workers given
        the same secret refuse anything unsigned or altered.
    max_attempts:
        How many times a trial is run when its worker dies (lease expiry) before it becomes
        ERROR.
    poll_max:
        Longest sleep (seconds) of the driver between checks while waiting for workers.
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
        poll_max: float = 0.05,
        reconnect_timeout: float = 300.0,
    ) -> None:
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
        self._by_id: dict[Any, dict[str, Any]] = {}
        self._unfinished: set[Any] = set()
        self._max_tid = -1
        self._last_requeue = 0.0
        self._live_cache: tuple[float, int] = (0.0, 0)
        self._warned_no_worker = False
        super().__init__(exp_key=exp_key, refresh=refresh)
        self.attachments = GridFSAttachments(self._store, f"exp/{exp_key}/")

    # -- state kept in MongoDB ----------------------------------------------------------------
    @property
    def store(self) -> JobStore:
        """The :class:`~hyperq.mongo.store.JobStore` behind these trials."""
        return self._store

    def refresh(self) -> None:
        """Reload the trials of this experiment that may have changed since the last refresh.

        A refresh reads only the trials this object saw unfinished, new ones, and any that are
        queued or running now (an operator may have re-queued a finished one with
        ``hyperq requeue``); all three are served by indexes.
        """
        store = self._store
        if not self._by_id:
            flt: dict[str, Any] = {"exp_key": self._exp_key}
        else:
            flt = {
                "exp_key": self._exp_key,
                "$or": [{"_id": {"$in": list(self._unfinished)}}, {"tid": {"$gt": self._max_tid}},
                        {"state": {"$in": [JOB_STATE_NEW, JOB_STATE_RUNNING]}}],
            }
        docs = store.retry(lambda: list(store.jobs.find(flt).sort("tid", 1)), "read trials")
        added = False
        for doc in docs:
            local = self._by_id.get(doc["_id"])
            if local is None:
                self._by_id[doc["_id"]] = doc
                local = doc
                added = True
                self._max_tid = max(self._max_tid, int(doc["tid"]))
            else:
                local.clear()
                local.update(doc)
            if local["state"] in FINISHED_STATES:
                self._unfinished.discard(doc["_id"])
            else:
                self._unfinished.add(doc["_id"])
        if added:
            self._dynamic_trials = sorted(self._by_id.values(), key=lambda d: d["tid"])
            self._ids = {d["tid"] for d in self._dynamic_trials}
        self._trials = self._dynamic_trials
        self._next_tid = self._max_tid + 1

    def new_trial_ids(self, n: int) -> list[int]:
        """Reserve ``n`` trial ids from a counter in the database (safe across drivers)."""
        store = self._store
        return store.retry(lambda: store.new_tids(self._exp_key, n), "reserve trial ids")

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
        self._store.insert(docs)
        return [d["tid"] for d in docs]

    def delete_all(self) -> None:
        """Delete every trial and attachment of this experiment from the database."""
        self._store.delete_experiment(self._exp_key)
        self._by_id.clear()
        self._unfinished.clear()
        self._max_tid = -1
        self._dynamic_trials = []
        self._trials = []
        self._ids = set()
        self._next_tid = 0

    def trial_attachments(self, trial: Mapping[str, Any]) -> MutableMapping:
        """The attachments of ``trial`` (written by its worker), stored in GridFS."""
        prefix = self._store.attachment_name(trial.get("exp_key", self._exp_key), trial["tid"], "")
        return GridFSAttachments(self._store, prefix)

    def count_by_state_synced(self, arg: int | Iterable[int], trials: Any = None) -> int:
        """Count this experiment's trials in the given state(s), asking the database."""
        states = [arg] if isinstance(arg, int) else list(arg)
        store = self._store
        return store.retry(
            lambda: store.jobs.count_documents(
                {"exp_key": self._exp_key, "state": {"$in": states}}
            ),
            "count trials",
        )

    # -- hooks used by fmin -------------------------------------------------------------------
    def prepare_fmin(self, domain: Any) -> None:
        """Publish the domain (content-addressed, signed if a secret is set) for workers."""
        super().prepare_fmin(domain)  # remembers the space for to_dataframe / report
        self._domain_key = publish_domain(self._store, domain, self._secret, self._exp_key)
        log.debug("domain %s published for exp_key=%r", self._domain_key[:12], self._exp_key)

    def live_worker_count(self, max_age: float = 1.0) -> int:
        """How many live workers serve this experiment (cached for ``max_age`` seconds)."""
        stamp, count = self._live_cache
        now = time.monotonic()
        if now - stamp > max_age:
            store = self._store
            count = len(store.retry(lambda: store.live_workers(self._exp_key), "list workers"))
            self._live_cache = (now, count)
        return count

    def desired_queue_len(self, max_queue_len: int) -> int:
        """Keep at least one queued trial per live worker, so none of them idles."""
        return max(int(max_queue_len), self.live_worker_count())

    def _housekeeping(self) -> None:
        """Re-queue expired leases and say (once) when no live worker serves the experiment."""
        now = time.monotonic()
        if now - self._last_requeue < 1.0:
            return
        self._last_requeue = now
        store = self._store
        store.retry(lambda: store.requeue_expired(self._exp_key), "re-queue expired trials")
        if self.live_worker_count() == 0:
            if not self._warned_no_worker:
                self._warned_no_worker = True
                log.warning(
                    "no live hyperq-worker serves exp_key=%r on %s; queued trials wait until one "
                    "starts, e.g.: hyperq-worker --mongo '%s' --exp-key %s",
                    self._exp_key,
                    store.target.display,
                    store.target.display.split(" ")[0],
                    self._exp_key,
                )
        elif self._warned_no_worker:
            self._warned_no_worker = False
            log.info("a worker now serves exp_key=%r", self._exp_key)

    def wait_for_change(self, timeout: float) -> None:
        """Block until a trial of this experiment finishes, or ``timeout`` seconds pass.

        Polls the database adaptively: every few milliseconds at first, backing off to
        ``poll_max``. Also re-queues trials whose worker died (expired lease).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        watched = [d["_id"] for d in self._dynamic_trials if d["state"] not in FINISHED_STATES]
        interval = 0.002
        store = self._store
        while True:
            self._housekeeping()
            if store.retry(lambda: store.any_finished(watched), "poll trials"):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.poll_max)

    def cancel_queued(self) -> int:
        """Mark this experiment's NEW trials CANCEL; running trials finish on their workers."""
        n = self._store.cancel_new(self._exp_key)
        for doc in self._dynamic_trials:
            if doc["state"] == JOB_STATE_NEW:
                doc["state"] = JOB_STATE_CANCEL
        return n

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
            poll_max=state.get("poll_max", 0.05),
        )

    def __repr__(self) -> str:
        return f"MongoTrials({self._store.target.display}, exp_key={self._exp_key!r})"


