"""The one evaluation path: run an objective on a trial and turn what happens into an outcome.

Every backend (inline ``Trials``, ``ProcessTrials``, ``SparkTrials``, ``hyperq-worker``) calls
:func:`evaluate_trial` and, where results are stored in a database, :func:`storable`. So what
counts as a result, how an exception is recorded, what happens to a NaN loss, a non-numeric
loss, numpy values, an oversized result and attachments is decided here, once:

- the objective's return goes through :func:`hyperq.base.normalize_result`: a number or a dict
  with ``status``; a non-numeric loss is an error (``InvalidLoss``); a NaN or infinite loss
  gives status ``fail`` with a ``failure`` message;
- an exception in the objective gives an error outcome with ``(type, message)`` and the
  traceback; ``BaseException``s that are not ``Exception`` (interrupts) propagate;
- a result's ``attachments`` dict is written to ``ctrl.attachments``;
- :func:`storable` makes a result fit a BSON document: numpy values become plain Python, a NaN
  loss is stored as null (the ``failure`` message says what it was), values BSON cannot hold
  and results over the size limit become errors that say what to do instead.
"""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Outcome", "evaluate_trial", "storable", "plain", "describe_exception"]

#: room left in a document for the trial's other fields when checking a result's size
DOC_HEADROOM = 64 * 1024


@dataclass
class Outcome:
    """What evaluating one trial produced."""

    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: tuple[str, str] | None = None
    traceback: str | None = None
    attachments: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: the objective's exception (for callers that re-raise it); never pickled or stored
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def misc_updates(self) -> dict[str, Any]:
        """The ``misc`` fields an error outcome sets on the trial document."""
        if self.ok:
            return {}
        out: dict[str, Any] = {"error": list(self.error or ("Error", ""))}
        if self.traceback:
            out["traceback"] = self.traceback
        return out


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """``(str(type), str(exc))``, even when ``str(exc)`` itself fails."""
    try:
        msg = str(exc)
    except Exception:
        msg = f"<unprintable {type(exc).__name__}>"
    return str(type(exc)), msg


def evaluate_trial(domain: Any, config: Mapping[str, Any], ctrl: Any) -> Outcome:
    """Call ``domain``'s objective on ``config`` and return the :class:`Outcome`.

    A result's ``attachments`` are written to ``ctrl.attachments`` (for a worker: GridFS,
    fenced by the lease; for the process and Spark backends: a local dict shipped back).
    """
    t0 = time.perf_counter()
    try:
        result = domain.evaluate(config, ctrl, attach_attachments=True)
    except Exception as exc:
        return Outcome(False, {"status": "fail"}, describe_exception(exc),
                       traceback.format_exc(), {}, time.perf_counter() - t0, exc)
    return Outcome(True, result, None, None, {}, time.perf_counter() - t0)


def plain(value: Any) -> Any:
    """numpy values -> Python values, recursively (tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def storable(outcome: Outcome, max_bytes: int, other: Mapping[str, Any] | None = None
             ) -> Outcome:
    """``outcome`` with a result that fits a BSON document of ``max_bytes``, or an error
    outcome that says why it cannot (``InvalidResult``, ``ResultTooLarge``)."""
    import bson

    if not outcome.ok:
        return outcome
    result = plain(outcome.result)
    loss = result.get("loss")
    if isinstance(loss, float) and not math.isfinite(loss):
        result["loss"] = None  # not storable on every server; the failure says what it was
        result.setdefault("failure", f"loss is {loss}, not a finite number")
        result["status"] = "fail"
    try:
        size = len(bson.encode({"result": result, **dict(other or {})}))
    except Exception as exc:
        return Outcome(False, {"status": "fail"}, (
            "InvalidResult",
            f"the result holds a value MongoDB cannot store ({exc}); return plain numbers, "
            "strings, lists and dicts, and put other objects in 'attachments'"),
            None, {}, outcome.seconds)
    limit = max_bytes - DOC_HEADROOM
    if size > limit:
        return Outcome(False, {"status": "fail"}, (
            "ResultTooLarge",
            f"the result is {size} bytes, over the {limit} bytes a MongoDB document can hold "
            "here; return large objects as 'attachments' (stored in GridFS)"),
            None, {}, outcome.seconds)
    return Outcome(True, result, None, None, outcome.attachments, outcome.seconds)
