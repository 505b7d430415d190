"""Exceptions raised by hyperq. Names match hyperopt's so existing ``except`` clauses keep working."""
from __future__ import annotations


class HyperqError(Exception):
    """Base class of every hyperq error."""


class BadSearchSpace(HyperqError, ValueError):
    """The search space is invalid: the message names the parameter and the fix."""


class DuplicateLabel(BadSearchSpace):
    """Two different hyperparameters share one label."""


class InvalidTrial(HyperqError, ValueError):
    """A trial document does not follow the trial schema."""

    def __init__(self, msg: str, obj: object = None) -> None:
        super().__init__(msg)
        self.obj = obj


class InvalidResultStatus(HyperqError, ValueError):
    """An objective returned a result whose ``status`` is not one of ``STATUS_STRINGS``."""

    def __init__(self, result: object, detail: str = "an invalid status") -> None:
        super().__init__(
            f"objective returned {detail} in {result!r}; "
            "use one of 'ok', 'fail', 'new', 'running', 'suspended' (hyperq.STATUS_*)"
        )
        self.result = result


class InvalidLoss(HyperqError, ValueError):
    """An objective returned a loss that is not a finite real number."""

    def __init__(self, result: object, detail: str = "") -> None:
        msg = f"objective returned an invalid loss in {result!r}"
        if detail:
            msg += f": {detail}"
        msg += (
            "; return a float (or a dict with a numeric 'loss' and status STATUS_OK), "
            "or set status STATUS_FAIL for a failed evaluation"
        )
        super().__init__(msg)
        self.result = result


class AllTrialsFailed(HyperqError):
    """No trial finished with status 'ok', so there is no best trial."""


class InvalidAnnotatedParameter(HyperqError, ValueError):
    """``fmin(fn, space="annotated")``: a parameter of ``fn`` is not annotated with an ``hp.*``
    expression."""


class InvalidArgument(HyperqError, ValueError):
    """A function was called with an argument it cannot use; the message says which and why."""


class NoTrialsFinished(AllTrialsFailed):
    """fmin stopped (e.g. its timeout) before any trial finished, so there is no result at all."""


class WorkerCrashed(HyperqError):
    """A worker process died while evaluating a trial (recorded as the trial's error type)."""
