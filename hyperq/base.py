"""Trial documents, the in-memory :class:`Trials` store, :class:`Domain` and :class:`Ctrl`.

The trial document follows hyperopt's schema so tools written for hyperopt can read it::

    {"tid": int, "state": JOB_STATE_*, "spec": None, "result": {...},
     "misc": {"tid", "cmd", "workdir", "idxs": {label: [tid] or []}, "vals": {label: [v] or []}},
     "exp_key": str | None, "owner": str | None, "version": int,
     "book_time": datetime | None, "refresh_time": datetime | None}
"""
from __future__ import annotations

import copy
import datetime
import logging
import math
import numbers
from collections.abc import MutableMapping
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from hyperq.exceptions import AllTrialsFailed, InvalidLoss, InvalidResultStatus, InvalidTrial
from hyperq.intermediate import run_objective
from hyperq.space import SearchSpace
from hyperq import pyll  # noqa: E402,F401 - hyperopt code reads hyperopt.base.pyll

logger = logging.getLogger(__name__)

STATUS_NEW = "new"
STATUS_RUNNING = "running"
STATUS_SUSPENDED = "suspended"
STATUS_OK = "ok"
STATUS_FAIL = "fail"
STATUS_STRINGS = (STATUS_NEW, STATUS_RUNNING, STATUS_SUSPENDED, STATUS_OK, STATUS_FAIL)
#: a trial stopped early by a pruner: DONE, with its last reported value as its loss (issue 14)
STATUS_PRUNED = "pruned"

JOB_STATE_NEW = 0
JOB_STATE_RUNNING = 1
JOB_STATE_DONE = 2
JOB_STATE_ERROR = 3
JOB_STATE_CANCEL = 4
JOB_STATES = [JOB_STATE_NEW, JOB_STATE_RUNNING, JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_CANCEL]
JOB_VALID_STATES = set(JOB_STATES)
#: The states hyperopt's Trials lists (see :attr:`Trials.listed_states`).
HYPEROPT_LISTED_STATES = frozenset({JOB_STATE_NEW, JOB_STATE_RUNNING, JOB_STATE_DONE})
FINISHED_STATES = (JOB_STATE_DONE, JOB_STATE_ERROR)

TRIAL_KEYS = ["tid", "spec", "result", "misc", "state", "owner", "book_time", "refresh_time",
              "exp_key"]
TRIAL_MISC_KEYS = ["tid", "cmd", "idxs", "vals"]
DOMAIN_CMD = ("domain_attachment", "FMinIter_Domain")


def utcnow() -> datetime.datetime:
    """Naive UTC time at millisecond precision, as MongoDB stores it."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


coarse_utcnow = utcnow


def miscs_to_idxs_vals(miscs: Iterable[Mapping[str, Any]], keys: Sequence[str] | None = None
                       ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Column view of many trials: ``{label: [tids]}`` and ``{label: [values]}``."""
    miscs = list(miscs)
    if keys is None:
        keys = list(miscs[0]["idxs"]) if miscs else []
    idxs: dict[str, list[Any]] = {k: [] for k in keys}
    vals: dict[str, list[Any]] = {k: [] for k in keys}
    for misc in miscs:
        for k in keys:
            t_idxs = misc["idxs"].get(k, [])
            t_vals = misc["vals"].get(k, [])
            if len(t_idxs) != len(t_vals):
                raise InvalidTrial(f"misc idxs and vals disagree for {k!r}", misc)
            idxs[k].extend(t_idxs)
            vals[k].extend(t_vals)
    return idxs, vals


def miscs_update_idxs_vals(miscs: Sequence[dict[str, Any]], idxs: Mapping[str, Sequence[Any]],
                           vals: Mapping[str, Sequence[Any]], assert_all_vals_used: bool = True,
                           idxs_map: Mapping[Any, Any] | None = None) -> Sequence[dict[str, Any]]:
    """Write the column view ``idxs``/``vals`` (see :func:`miscs_to_idxs_vals`) into ``miscs``.

    Each misc gets ``idxs[label] = [tid]``, ``vals[label] = [value]`` where its tid (mapped
    through ``idxs_map``) appears in the column, else empty lists. Raises
    :class:`InvalidTrial` if ``assert_all_vals_used`` and a column entry matches no misc.
    """
    if set(idxs) != set(vals):
        raise InvalidTrial(f"idxs and vals name different labels: {sorted(idxs)} vs {sorted(vals)}")
    by_tid = {misc["tid"]: misc for misc in miscs}
    for label in idxs:
        if len(idxs[label]) != len(vals[label]):
            raise InvalidTrial(f"idxs and vals of {label!r} have different lengths")
        for misc in miscs:
            misc["idxs"][label], misc["vals"][label] = [], []
        for tid, val in zip(idxs[label], vals[label]):
            tid = idxs_map.get(tid, tid) if idxs_map else tid
            misc = by_tid.get(tid)
            if misc is None:
                if assert_all_vals_used:
                    raise InvalidTrial(f"value of {label!r} for tid {tid!r} matches no misc")
                continue
            misc["idxs"][label], misc["vals"][label] = [tid], [val]
    return miscs


def misc_from_values(tid: int, values: Mapping[str, Any], labels: Iterable[str]) -> dict[str, Any]:
    """The ``misc`` sub-document of a trial whose active parameters are ``values``."""
    idxs, vals = {}, {}
    for label in labels:
        if label in values:
            idxs[label], vals[label] = [tid], [values[label]]
        else:
            idxs[label], vals[label] = [], []
    return {"tid": tid, "cmd": DOMAIN_CMD, "workdir": None, "idxs": idxs, "vals": vals}


def values_from_misc_vals(vals: Mapping[str, Any]) -> dict[str, Any]:
    """``{label: [v]}`` (or ``{label: []}``) -> ``{label: v}`` for the active labels.

    Plain ``{label: v}`` mappings pass through unchanged.
    """
    out = {}
    for k, v in vals.items():
        if isinstance(v, (list, tuple)):
            if len(v) == 1:
                out[k] = v[0]
            elif len(v) > 1:
                raise InvalidTrial(f"trial vals for {k!r} hold {len(v)} values, expected 0 or 1")
        else:
            out[k] = v
    return out


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, so argmin and documents hold plain values."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def validate_trial(trial: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidTrial` unless ``trial`` follows the trial schema."""
    if not isinstance(trial, Mapping):
        raise InvalidTrial("a trial must be a dict", trial)
    missing = [k for k in TRIAL_KEYS if k not in trial]
    if missing:
        raise InvalidTrial(f"trial is missing keys {missing}", trial)
    misc = trial["misc"]
    missing = [k for k in TRIAL_MISC_KEYS if k not in misc]
    if missing:
        raise InvalidTrial(f"trial misc is missing keys {missing}", trial)
    if trial["tid"] != misc["tid"]:
        raise InvalidTrial(f"trial tid {trial['tid']} differs from misc tid {misc['tid']}", trial)
    if trial["state"] not in JOB_VALID_STATES:
        raise InvalidTrial(f"trial state {trial['state']!r} is not one of {JOB_STATES}", trial)
    for label, idxs in misc["idxs"].items():
        if any(i != trial["tid"] for i in idxs):
            raise InvalidTrial(f"misc idxs for {label!r} refer to another trial", trial)
        if len(idxs) != len(misc["vals"].get(label, [])):
            raise InvalidTrial(f"misc idxs and vals disagree for {label!r}", trial)


class TrialAttachments(MutableMapping):
    """The attachments of one trial, stored in ``trials.attachments`` under prefixed keys."""

    def __init__(self, trials: "Trials", trial: Mapping[str, Any]) -> None:
        self._trials = trials
        self._prefix = f"ATTACH::{trial['tid']}::"

    def __getitem__(self, name: str) -> Any:
        return self._trials.attachments[self._prefix + name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._trials.attachments[self._prefix + name] = value

    def __delitem__(self, name: str) -> None:
        del self._trials.attachments[self._prefix + name]

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        return (k[n:] for k in list(self._trials.attachments) if k.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Trials:
    """All trials of an experiment, evaluated in this process (hyperopt's ``Trials``).

    Backends that evaluate elsewhere (``MongoTrials``, ``SparkTrials``) subclass it and override
    the hooks fmin uses: :attr:`asynchronous`, :meth:`prepare_fmin`, :meth:`desired_queue_len`,
    :meth:`wait_for_change` and :meth:`cancel_queued`.
    """

    #: True when trials are evaluated by something other than the fmin loop itself.
    asynchronous = False

    #: The states of the trials listed in :attr:`trials` (and counted by ``len``); None lists
    #: every trial. hyperq lists failed (ERROR) and cancelled trials too, so errors stay in
    #: view; hyperopt lists only NEW, RUNNING and DONE ones: set this to
    #: :data:`HYPEROPT_LISTED_STATES` (on one Trials or on the class) for hyperopt's view.
    listed_states: frozenset[int] | None = None

    def __init__(self, exp_key: str | None = None, refresh: bool = True) -> None:
        self._ids: set[int] = set()
        self._next_tid = 0
        self._dynamic_trials: list[dict[str, Any]] = []
        self._trials: list[dict[str, Any]] = []
        self._n_scanned = 0
        self._exp_key = exp_key
        self.attachments: dict[str, Any] = {}
        if refresh:
            self.refresh()

    # -- views --------------------------------------------------------------------------------
    def view(self, exp_key: str | None = None, refresh: bool = True) -> "Trials":
        """A Trials sharing this store, restricted to ``exp_key``."""
        rval = object.__new__(self.__class__)
        rval.__dict__.update(self.__dict__)
        rval.__dict__.pop("_hyperq_history", None)
        rval._exp_key = exp_key
        rval._trials = []
        rval._n_scanned = 0
        if refresh:
            rval.refresh()
        return rval

    def aname(self, trial: Mapping[str, Any], name: str) -> str:
        """The key under which attachment ``name`` of ``trial`` is stored."""
        return f"ATTACH::{trial['tid']}::{name}"

    def trial_attachments(self, trial: Mapping[str, Any]) -> MutableMapping:
        """A dict-like view of the attachments of ``trial``."""
        return TrialAttachments(self, trial)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._trials)

    def __len__(self) -> int:
        return len(self._trials)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self._trials[item]

    def refresh(self) -> None:
        """Bring :attr:`trials` up to date with the store (new documents only; O(new))."""
        if self._n_scanned > len(self._dynamic_trials):
            self._trials, self._n_scanned = [], 0
        new = self._dynamic_trials[self._n_scanned:]
        self._n_scanned = len(self._dynamic_trials)
        if self.listed_states is not None:  # hyperopt's view: states change, so rebuild
            self._trials = [t for t in self._dynamic_trials if t["state"] in self.listed_states
                            and (self._exp_key is None or t["exp_key"] == self._exp_key)]
        elif self._exp_key is None:
            self._trials.extend(new)
        else:
            self._trials.extend(t for t in new if t["exp_key"] == self._exp_key)
        for t in new:
            self._note_tid(t["tid"])

    def _note_tid(self, tid: Any) -> None:
        self._ids.add(tid)
        if isinstance(tid, numbers.Integral):  # hyperopt allows any hashable tid
            self._next_tid = max(self._next_tid, int(tid) + 1)

    # -- column views -------------------------------------------------------------------------
    @property
    def trials(self) -> list[dict[str, Any]]:
        """The trial documents of this experiment, oldest first."""
        return self._trials

    @property
    def tids(self) -> list[int]:
        return [t["tid"] for t in self._trials]

    @property
    def specs(self) -> list[Any]:
        return [t["spec"] for t in self._trials]

    @property
    def results(self) -> list[dict[str, Any]]:
        return [t["result"] for t in self._trials]

    @property
    def miscs(self) -> list[dict[str, Any]]:
        return [t["misc"] for t in self._trials]

    @property
    def idxs_vals(self) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        labels: dict[str, None] = {}
        for t in self._trials:
            labels.update(dict.fromkeys(t["misc"]["idxs"]))
        return miscs_to_idxs_vals(self.miscs, keys=list(labels))

    @property
    def idxs(self) -> dict[str, list[Any]]:
        """``{label: [tid of each trial where it was active]}``."""
        return self.idxs_vals[0]

    @property
    def vals(self) -> dict[str, list[Any]]:
        """``{label: [value in each trial where it was active]}``."""
        return self.idxs_vals[1]

    # -- writing ------------------------------------------------------------------------------
    def assert_valid_trial(self, trial: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidTrial` if ``trial`` is malformed or its exp_key is wrong."""
        validate_trial(trial)
        if trial["exp_key"] != self._exp_key:
            raise InvalidTrial(
                f"trial exp_key {trial['exp_key']!r} differs from this store's {self._exp_key!r}",
                trial,
            )

    def _insert_trial_docs(self, docs: list[dict[str, Any]]) -> list[int]:
        self._dynamic_trials.extend(docs)
        for d in docs:
            self._note_tid(d["tid"])
        return [d["tid"] for d in docs]

    def insert_trial_doc(self, doc: dict[str, Any]) -> int:
        """Validate and store one trial document; returns its tid."""
        self.assert_valid_trial(doc)
        return self._insert_trial_docs([copy.deepcopy(doc)])[0]

    def insert_trial_docs(self, docs: Iterable[dict[str, Any]]) -> list[int]:
        """Validate and store trial documents; returns their tids."""
        docs = [copy.deepcopy(d) for d in docs]
        for d in docs:
            self.assert_valid_trial(d)
        return self._insert_trial_docs(docs)

    def new_trial_ids(self, n: int) -> list[int]:
        """Reserve ``n`` fresh trial ids."""
        start = self._next_tid
        ids = list(range(start, start + n))
        self._next_tid = start + n
        self._ids.update(ids)
        return ids

    def new_trial_docs(self, tids: Sequence[int], specs: Sequence[Any],
                       results: Sequence[dict[str, Any]], miscs: Sequence[dict[str, Any]]
                       ) -> list[dict[str, Any]]:
        """Build NEW trial documents (not yet stored) from parallel lists."""
        if not len(tids) == len(specs) == len(results) == len(miscs):
            raise InvalidTrial("tids, specs, results and miscs must have the same length")
        docs = []
        for tid, spec, result, misc in zip(tids, specs, results, miscs):
            doc = {
                "state": JOB_STATE_NEW, "tid": tid, "spec": spec, "result": result,
                "misc": misc, "exp_key": self._exp_key, "owner": None, "version": 0,
                "book_time": None, "refresh_time": None,
            }
            self.assert_valid_trial(doc)
            docs.append(doc)
        return docs

    def source_trial_docs(self, tids: Sequence[int], specs: Sequence[Any],
                          results: Sequence[dict[str, Any]], miscs: Sequence[dict[str, Any]],
                          sources: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Like :meth:`new_trial_docs`, copying state and times from ``sources``."""
        docs = self.new_trial_docs(tids, specs, results, miscs)
        for doc, src in zip(docs, sources):
            doc["misc"]["from_tid"] = src["tid"]
            for key in ("state", "owner", "book_time", "refresh_time", "version"):
                doc[key] = src.get(key, doc[key])
        return docs

    def delete_all(self) -> None:
        """Forget every trial and attachment."""
        self._dynamic_trials = []
        self._trials = []
        self._n_scanned = 0
        self._ids = set()
        self._next_tid = 0
        self.attachments = {}

    # -- counting -----------------------------------------------------------------------------
    @staticmethod
    def _count(trials: Iterable[Mapping[str, Any]], arg: int | Iterable[int]) -> int:
        states = {arg} if isinstance(arg, int) else set(arg)
        return sum(1 for t in trials if t["state"] in states)

    def count_by_state_synced(self, arg: int | Iterable[int], trials: Any = None) -> int:
        """Trials in state(s) ``arg`` as of the last :meth:`refresh`."""
        return self._count(self._trials if trials is None else trials, arg)

    def count_by_state_unsynced(self, arg: int | Iterable[int]) -> int:
        """Trials in state(s) ``arg`` in the store now."""
        if self._exp_key is None:
            return self._count(self._dynamic_trials, arg)
        return self._count((t for t in self._dynamic_trials if t["exp_key"] == self._exp_key), arg)

    # -- results ------------------------------------------------------------------------------
    def losses(self, bandit: Any = None) -> list[float | None]:
        """The loss of every trial (None where there is none)."""
        return [r.get("loss") for r in self.results]

    def statuses(self, bandit: Any = None) -> list[str]:
        """The result status of every trial."""
        return [r.get("status") for r in self.results]

    @property
    def best_trial(self) -> dict[str, Any]:
        """The finished trial with status 'ok' and the lowest loss."""
        best, best_loss = None, math.inf
        for t in self._trials:
            r = t["result"]
            if t["state"] == JOB_STATE_DONE and r.get("status") == STATUS_OK:
                loss = r.get("loss")
                if loss is not None and math.isfinite(loss) and (best is None or loss < best_loss):
                    best, best_loss = t, loss
        if best is None:
            raise AllTrialsFailed(
                "no trial finished with status 'ok'; check the objective (see trials.trials "
                "for errors) or evaluate more trials"
            )
        return best

    @property
    def argmin(self) -> dict[str, Any]:
        """The best trial's hyperparameter values: ``{label: value}`` (choice -> index)."""
        return {k: _plain(v) for k, v in values_from_misc_vals(self.best_trial["misc"]["vals"]).items()}

    def average_best_error(self, bandit: Any = None) -> float:
        """The mean ``true_loss`` (else loss) of the trials tied for the best loss."""
        ok = [r for r in self.results if r.get("status") == STATUS_OK and r.get("loss") is not None]
        if not ok:
            raise AllTrialsFailed("no trial finished with status 'ok'")
        best = min(r["loss"] for r in ok)
        tied = [r.get("true_loss", r["loss"]) for r in ok if r["loss"] == best]
        return float(np.mean(tied))

    def to_dataframe(self, space: Any = None) -> Any:
        """One row per trial as a pandas DataFrame (needs ``hyperq[plot]``).

        See :func:`hyperq.analysis.trials_to_dataframe`; ``space`` decodes ``hp.choice``
        options and defaults to the space of the last fmin run on these trials.
        """
        from hyperq.analysis import trials_to_dataframe

        return trials_to_dataframe(self, space=space)

    # -- hooks for fmin -----------------------------------------------------------------------
    def prepare_fmin(self, domain: "Domain") -> None:
        """Called once before fmin's loop (e.g. to publish the domain to workers)."""
        from hyperq.analysis import SpaceRef  # issue 7: lets to_dataframe/report decode choices
        self._space_expr = SpaceRef(domain.expr)

    def desired_queue_len(self, max_queue_len: int) -> int:
        """How many NEW trials fmin keeps queued."""
        return max_queue_len

    def wait_for_change(self, timeout: float) -> None:
        """Block until a trial finishes or ``timeout`` passes (asynchronous backends only)."""

    def end_fmin(self) -> None:
        """Called once when fmin's loop ends, also when it raises (e.g. to stop workers)."""

    def cancel_queued(self) -> int:
        """Mark NEW trials CANCEL (fmin stopped early); returns how many."""
        n = 0
        for t in self._dynamic_trials:
            if t["state"] == JOB_STATE_NEW and (self._exp_key is None
                                                or t["exp_key"] == self._exp_key):
                t["state"] = JOB_STATE_CANCEL
                n += 1
        return n

    def fmin(self, fn: Callable[..., Any], space: Any, algo: Any = None,
             max_evals: int | None = None, **kwargs: Any) -> Any:
        """``hyperq.fmin`` with ``trials=self``."""
        from hyperq.fmin import fmin

        return fmin(fn, space, algo=algo, max_evals=max_evals, trials=self,
                    allow_trials_fmin=False, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_hyperq_history", None)  # a cache, rebuilt on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_n_scanned", 0)
        state.setdefault("_next_tid", max(state.get("_ids") or [-1]) + 1)
        self.__dict__.update(state)
        if "_trials" not in state:
            self._trials = []
            self._n_scanned = 0
            self.refresh()


def trials_from_docs(docs: Iterable[dict[str, Any]], validate: bool = True,
                     **kwargs: Any) -> Trials:
    """A :class:`Trials` holding ``docs``."""
    rval = Trials(**kwargs)
    if validate:
        rval.insert_trial_docs(docs)
    else:
        rval._insert_trial_docs(list(docs))
    rval.refresh()
    return rval


class Ctrl:
    """What an objective called with ``pass_expr_memo_ctrl`` gets to talk back to the trials."""

    def __init__(self, trials: Trials, current_trial: dict[str, Any] | None = None) -> None:
        self.trials = trials
        self.current_trial = current_trial

    @property
    def attachments(self) -> MutableMapping:
        """The current trial's attachments."""
        return self.trials.trial_attachments(self.current_trial)

    def checkpoint(self, result: dict[str, Any] | None = None) -> None:
        """Store a partial result on the current trial."""
        if result is not None:
            self.current_trial["result"] = result
        self.current_trial["refresh_time"] = utcnow()

    def inject_results(self, specs: Sequence[Any], results: Sequence[dict[str, Any]],
                       miscs: Sequence[dict[str, Any]], new_tids: Sequence[int] | None = None
                       ) -> list[int]:
        """Add finished trials (e.g. evaluated by other means) to the store."""
        if new_tids is None:
            new_tids = self.trials.new_trial_ids(len(specs))
        docs = self.trials.source_trial_docs(new_tids, specs, results, miscs,
                                             [self.current_trial] * len(specs))
        for d in docs:
            d["state"] = JOB_STATE_DONE
        return self.trials.insert_trial_docs(docs)


def normalize_result(rval: Any) -> dict[str, Any]:
    """Turn what an objective returned into a result dict, or raise with a clear reason.

    A number becomes ``{"loss": x, "status": "ok"}``. A dict keeps all its keys; with status
    'ok' its loss must be a real number. A NaN or infinite loss turns the result into a failure
    (status 'fail') that keeps the loss and says why, so no data is lost.
    """
    if isinstance(rval, np.ndarray) and rval.ndim == 0 and rval.dtype.kind in "fiu":
        rval = rval.item()  # e.g. a draw of scope.normal(...) inside the space
    if isinstance(rval, (numbers.Real, np.floating, np.integer)) and not isinstance(rval, bool):
        result: dict[str, Any] = {"loss": float(rval), "status": STATUS_OK}
    elif isinstance(rval, Mapping):
        result = dict(rval)
        if "status" not in result:
            raise InvalidResultStatus(result, "a dict without a 'status' key")
    else:
        raise InvalidLoss(rval, f"got a {type(rval).__name__}")
    if result["status"] not in STATUS_STRINGS and result["status"] != STATUS_PRUNED:
        raise InvalidResultStatus(result)
    if result["status"] == STATUS_OK:
        if "loss" not in result:
            raise InvalidLoss(result, "status is 'ok' but there is no 'loss' key")
        loss = result["loss"]
        if isinstance(loss, np.ndarray) and loss.ndim == 0 and loss.dtype.kind in "fiu":
            loss = loss.item()
        if isinstance(loss, bool) or not isinstance(loss, (numbers.Real, np.floating, np.integer)):
            raise InvalidLoss(result, f"loss is a {type(loss).__name__}")
        loss = float(loss)
        result["loss"] = loss
        if not math.isfinite(loss):
            result["status"] = STATUS_FAIL
            result["failure"] = f"loss is {loss}, not a finite number"
    elif result.get("loss") is not None:
        try:
            result["loss"] = float(result["loss"])
        except (TypeError, ValueError):
            raise InvalidLoss(result, "loss is not a number") from None
    return result


class Domain:
    """An objective together with its search space and the result contract."""

    rec_eval_print_node_on_error = False
    #: the pruner running trials consult (``fmin(..., pruner=...)``); travels to workers
    pruner: Any = None

    def __init__(self, fn: Callable[..., Any], expr: Any,
                 workdir: str | None = None, pass_expr_memo_ctrl: bool | None = None,
                 name: str | None = None, loss_target: float | None = None) -> None:
        self.fn = fn
        if pass_expr_memo_ctrl is None:
            pass_expr_memo_ctrl = getattr(fn, "fmin_pass_expr_memo_ctrl", False)
        self.pass_expr_memo_ctrl = bool(pass_expr_memo_ctrl)
        self.space = SearchSpace(expr)
        self.expr = self.space.expr
        self.params = self.space.params
        self.workdir = workdir
        self.name = name
        self.loss_target = loss_target

    def memo_from_config(self, config: Mapping[str, Any]) -> dict[Any, Any]:
        """``{param node: value}`` for the active values of ``config``."""
        return self.space.memo(values_from_misc_vals(config))

    def evaluate(self, config: Mapping[str, Any], ctrl: Ctrl | None,
                 attach_attachments: bool = True) -> dict[str, Any]:
        """Call the objective on ``config`` (``{label: v}`` or misc-style ``{label: [v]}``).

        Returns the normalized result dict; an exception from the objective propagates.
        """
        values = values_from_misc_vals(config)
        rval = run_objective(self, values, ctrl)  # with the trial handle (hyperq.get_trial)
        result = normalize_result(rval)
        attachments = result.pop("attachments", None)
        if attachments:
            if not isinstance(attachments, Mapping):
                raise InvalidLoss(result, "'attachments' must be a dict of name -> value")
            if attach_attachments and ctrl is not None:
                for name, value in attachments.items():
                    ctrl.attachments[name] = value
        return result

    def evaluate_async(self, config: Mapping[str, Any], ctrl: Ctrl | None,
                       attach_attachments: bool = True) -> dict[str, Any]:
        """Same as :meth:`evaluate` (kept for hyperopt compatibility)."""
        return self.evaluate(config, ctrl, attach_attachments)

    def short_str(self) -> str:
        return f"Domain{{{self.fn!r}}}"

    def loss(self, result: Mapping[str, Any], config: Any = None) -> float | None:
        """The loss of a result, or None."""
        return result.get("loss")

    def loss_variance(self, result: Mapping[str, Any], config: Any = None) -> float:
        return result.get("loss_variance", 0.0)

    def true_loss(self, result: Mapping[str, Any], config: Any = None) -> float | None:
        return result.get("true_loss", self.loss(result, config))

    def status(self, result: Mapping[str, Any], config: Any = None) -> str:
        return result["status"]

    def new_result(self) -> dict[str, Any]:
        """The result a NEW trial starts with."""
        return {"status": STATUS_NEW}


def docs_from_values(trials: Trials, domain: Domain, tids: Sequence[int],
                     values: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """NEW trial documents for ``tids`` whose active parameters are ``values`` (one per tid)."""
    labels = domain.space.labels
    miscs = [misc_from_values(tid, {k: _plain(v) for k, v in vals.items()}, labels)
             for tid, vals in zip(tids, values)]
    return trials.new_trial_docs(list(tids), [None] * len(miscs),
                                 [domain.new_result() for _ in miscs], miscs)


def spec_from_misc(misc: Mapping[str, Any]) -> dict[str, Any]:
    """``{label: value}`` of the active parameters of a trial's misc."""
    return values_from_misc_vals(misc["vals"])


def SONify(arg: Any, memo: dict[int, Any] | None = None) -> Any:  # noqa: N802 - hyperopt's name
    """``arg`` with numpy values turned into the Python values BSON (MongoDB) can store.

    numpy scalars become ``int``/``float``, arrays nested lists, bools stay bools; dicts, lists
    and tuples are converted recursively. Raises ``TypeError`` naming the value that has no
    BSON form.
    """
    if isinstance(arg, (bool, str, bytes, int, float, type(None), datetime.datetime)):
        return arg
    if isinstance(arg, np.bool_):
        return bool(arg)
    if isinstance(arg, np.integer):
        return int(arg)
    if isinstance(arg, np.floating):
        return float(arg)
    if isinstance(arg, np.ndarray):
        return SONify(arg.item()) if arg.ndim == 0 else [SONify(a) for a in arg]
    if isinstance(arg, (list, tuple)):
        return type(arg)(SONify(a) for a in arg)
    if isinstance(arg, Mapping):
        return {SONify(k): SONify(v) for k, v in arg.items()}
    if type(arg).__name__ == "ObjectId":
        return arg
    raise TypeError(f"SONify: {type(arg).__name__} value {arg!r} cannot be stored in BSON")
