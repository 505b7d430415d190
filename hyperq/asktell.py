"""Ask-and-tell: hyperq suggests, you evaluate anywhere, you tell it the results.

For loops hyperq does not drive (a scheduler of your own, a notebook, trials that run on
machines hyperq cannot reach)::

    from hyperq import AskTell, hp, tpe
    from hyperq.pruners import MedianPruner

    opt = AskTell({"lr": hp.loguniform("lr", -9, -1)}, algo=tpe.suggest,
                  pruner=MedianPruner(), trials_file="study.pkl")
    for _ in range(50):
        trial = opt.ask()                    # or opt.ask(8) for a batch of 8
        for epoch in range(1, 21):
            loss = train_one_epoch(trial.params["lr"])
            trial.report(epoch, loss)        # or opt.report(trial.tid, epoch, loss)
            if trial.should_prune():
                opt.tell(trial, pruned=True)
                break
        else:
            opt.tell(trial, loss)            # a number, or a result dict as fmin takes
    print(opt.best_params)

The same ``Trials`` (also a ``MongoTrials``), algorithms and pruners as ``fmin``. Asked
trials are RUNNING until told; :meth:`AskTell.pending` gives them back after a restart
(``trials_file`` is written atomically after every ask and tell; a ``MongoTrials`` keeps
everything in the database).
"""
from __future__ import annotations

import logging
import os
import socket
import traceback
from typing import Any, Callable

from hyperq.base import (
    JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_RUNNING, STATUS_FAIL, Domain, Trials,
    normalize_result, utcnow,
)
from hyperq.exceptions import InvalidArgument
from hyperq.intermediate import TrialHandle, memory_handle

logger = logging.getLogger(__name__)

__all__ = ["AskTell", "AskedTrial"]

ASK_TELL_OWNER = "ask-tell"


def _no_objective(*args: Any, **kwargs: Any) -> Any:
    raise InvalidArgument("this experiment is driven by ask-and-tell: evaluate the asked "
                          "trials yourself and tell the results (it has no objective to call)")


class AskedTrial:
    """A trial handed out by :meth:`AskTell.ask`.

    Attributes:
        tid: its trial id (what :meth:`AskTell.tell` and :meth:`AskTell.report` accept too).
        params: the point to evaluate, as an objective given to fmin would receive it.
        values: ``{label: value}`` of its active hyperparameters (choices as indices).
    """

    def __init__(self, handle: TrialHandle, params: Any, values: dict[str, Any]) -> None:
        self.tid = handle.tid
        self.params = params
        self.values = values
        self.handle = handle

    def report(self, step: int, value: float) -> bool:
        """Store an intermediate value; returns :meth:`should_prune`."""
        self.handle.report(step, value)
        return self.handle.should_prune()

    def should_prune(self) -> bool:
        """Should this trial stop now (the pruner's decision after the last report)?"""
        return self.handle.should_prune()

    @property
    def intermediate(self) -> list[dict[str, Any]]:
        return self.handle.intermediate

    def __repr__(self) -> str:
        return f"AskedTrial(tid={self.tid}, params={self.params!r})"


class AskTell:
    """Suggest trials on demand and record the results told back.

    Args:
        space: the search space (``hp.*`` expressions).
        algo: a suggest function (default ``tpe.suggest``).
        trials: where trials are stored: ``Trials`` (default), or ``MongoTrials`` to share and
            resume the experiment through MongoDB.
        pruner: a :mod:`hyperq.pruners` pruner for :meth:`AskedTrial.should_prune`.
        rstate: a ``numpy.random.Generator`` or int seed.
        trials_file: a file to resume from (if it exists) and to save to after each ask and
            tell (in-memory ``Trials`` only).
    """

    def __init__(self, space: Any, algo: Callable[..., list] | None = None,
                 trials: Trials | None = None, pruner: Any = None, rstate: Any = None,
                 trials_file: str = "") -> None:
        from hyperq.fmin import _as_rng, load_trials

        if algo is None:
            from hyperq import tpe

            algo = tpe.suggest
        if not callable(algo):
            raise InvalidArgument("algo must be a suggest function such as hyperq.tpe.suggest")
        self.algo = algo
        self.domain = Domain(_no_objective, space)
        if pruner is not None:
            from hyperq.pruners import check_pruner

            self.domain.pruner = check_pruner(pruner)
        self.pruner = pruner
        self.trials_file = trials_file
        if trials_file and trials is not None:
            raise InvalidArgument("pass either trials or trials_file, not both")
        if trials_file and os.path.exists(trials_file):
            trials = load_trials(trials_file)
            logger.info("resuming from %s with %d trials", trials_file, len(trials))
        self.trials = trials if trials is not None else Trials()
        self.rng = _as_rng(rstate)
        self.trials.refresh()
        Trials.prepare_fmin(self.trials, self.domain)  # remembers the space for tables
        self._handles: dict[int, AskedTrial] = {}

    # -- asking -------------------------------------------------------------------------------
    def ask(self, n: int | None = None) -> Any:
        """One suggestion (``n=None``), or a list of ``n``. The trials are RUNNING until told.

        Returns None (or a shorter list) when the algorithm has nothing left to suggest
        (``grid.suggest`` went through its grid).
        """
        k = 1 if n is None else n
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidArgument(f"ask(n): n must be a positive int or None, got {n!r}")
        ids = self.trials.new_trial_ids(k)
        self.trials.refresh()
        docs = self.algo(ids, self.domain, self.trials, int(self.rng.integers(2**31 - 1))) or []
        now = utcnow()
        owner = f"{ASK_TELL_OWNER}:{socket.gethostname()}:{os.getpid()}"
        for doc in docs:
            doc.update(state=JOB_STATE_RUNNING, owner=owner, book_time=now, refresh_time=now)
            prepare = getattr(self.trials, "_asktell_prepare", None)
            if prepare is not None:
                prepare(doc)
        if docs:
            self.trials.insert_trial_docs(docs)
            self.trials.refresh()
        asked = [self._asked(self._doc(d["tid"]), fresh=True) for d in docs]
        self._save()
        if n is None:
            return asked[0] if asked else None
        return asked

    def pending(self) -> list[AskedTrial]:
        """Trials asked and not told yet (also those asked before a restart)."""
        self.trials.refresh()
        out = []
        for doc in self.trials.trials:
            if doc["state"] == JOB_STATE_RUNNING and str(doc.get("owner") or "").startswith(
                    ASK_TELL_OWNER):
                out.append(self._handles.get(doc["tid"]) or self._asked(doc, fresh=False))
        return out

    # -- reporting ----------------------------------------------------------------------------
    def report(self, trial: AskedTrial | int, step: int, value: float) -> bool:
        """Store an intermediate value of a pending trial; returns whether to prune it."""
        return self._pending(trial).report(step, value)

    def should_prune(self, trial: AskedTrial | int) -> bool:
        """The pruner's decision for a pending trial after its last report."""
        return self._pending(trial).should_prune()

    # -- telling ------------------------------------------------------------------------------
    def tell(self, trial: AskedTrial | int, result: Any = None, *, pruned: bool = False
             ) -> dict[str, Any]:
        """Record how a pending trial ended; returns the stored result.

        ``result``: a loss, a result dict (``{"loss": ..., "status": "ok", ...}``) as an fmin
        objective returns, or an exception the evaluation raised (the trial becomes an ERROR
        trial with its traceback). ``pruned=True`` (no result): the trial stopped early and
        counts at its last reported value.
        """
        asked = self._pending(trial)
        doc = self._doc(asked.tid)
        misc: dict[str, Any] = {}
        if pruned:
            if result is not None:
                raise InvalidArgument("tell(trial, pruned=True) takes no result: a pruned "
                                      "trial's loss is its last reported value")
            state, stored = JOB_STATE_DONE, asked.handle.pruned_result()
        elif isinstance(result, BaseException):
            state, stored = JOB_STATE_ERROR, {"status": STATUS_FAIL}
            misc = {"error": (str(type(result)), str(result)),
                    "traceback": "".join(traceback.format_exception(
                        type(result), result, result.__traceback__))}
        elif result is None:
            raise InvalidArgument(f"tell(trial {asked.tid}, result): give the loss, a result "
                                  "dict, the exception, or pruned=True")
        else:
            state, stored = JOB_STATE_DONE, normalize_result(result)
            stored.pop("attachments", None)
        finish = getattr(self.trials, "_asktell_finish", None)
        if finish is not None:
            finish(doc, state, stored, misc)
        else:
            doc["state"], doc["result"], doc["refresh_time"] = state, stored, utcnow()
            doc["misc"].update(misc)
        self._handles.pop(asked.tid, None)
        self._save()
        return stored

    # -- results ------------------------------------------------------------------------------
    @property
    def best_trial(self) -> dict[str, Any]:
        """The finished trial with status 'ok' and the lowest loss."""
        self.trials.refresh()
        return self.trials.best_trial

    @property
    def best_params(self) -> Any:
        """The best trial's point, as the objective would have received it."""
        from hyperq.fmin import space_eval

        self.trials.refresh()
        return space_eval(self.domain.expr, self.trials.argmin)

    def save(self) -> None:
        """Write ``trials_file`` now (done after every ask and tell anyway)."""
        self._save()

    # -- internals ----------------------------------------------------------------------------
    def _save(self) -> None:
        if self.trials_file:
            from hyperq.fmin import save_trials

            save_trials(self.trials, self.trials_file)

    def _doc(self, tid: int) -> dict[str, Any]:
        for doc in reversed(self.trials.trials):
            if doc["tid"] == tid:
                return doc
        raise InvalidArgument(f"there is no trial {tid} in this experiment")

    def _asked(self, doc: dict[str, Any], fresh: bool) -> AskedTrial:
        make = getattr(self.trials, "_asktell_handle", None)
        if make is not None:
            handle = make(doc, self.domain.pruner, fresh)
        else:
            handle = memory_handle(self.trials, doc, self.domain.pruner, fresh=fresh)
        values = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
        asked = AskedTrial(handle, self.domain.space.evaluate(values), values)
        self._handles[doc["tid"]] = asked
        return asked

    def _pending(self, trial: AskedTrial | int) -> AskedTrial:
        tid = trial.tid if isinstance(trial, AskedTrial) else trial
        asked = self._handles.get(tid)
        if asked is not None:
            return asked
        for p in self.pending():
            if p.tid == tid:
                return p
        raise InvalidArgument(f"trial {tid} is not pending: it was told already, or was not "
                              "asked by ask-and-tell (see AskTell.pending())")
