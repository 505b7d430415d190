"""The interface every pruner implements."""
from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

from hyperq.exceptions import InvalidArgument
from hyperq.intermediate import PruningHistory


class Pruner:
    """Decides, after each report of a running trial, whether it should stop.

    A pruner sees the trial's own reports of this evaluation and a :class:`PruningHistory`
    of the other trials; it must not keep state of its own between calls, because the same
    pruner runs in many processes at once (MongoDB workers, Spark tasks).
    """

    #: reads :meth:`PruningHistory.finished_values_at_step`
    uses_steps = True
    #: reads :meth:`PruningHistory.values_at_rung`
    uses_rungs = True

    def rung_for(self, tid: int, step: int, tagged: set[str]) -> str | None:
        """A rung name to tag the report of ``step`` with (``tagged``: rungs tagged so far)."""
        return None

    def should_prune(self, tid: int, reports: Sequence[Mapping[str, Any]],
                     history: PruningHistory) -> bool:
        """Should trial ``tid``, whose reports so far are ``reports``, stop now?"""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or a clear :class:`InvalidArgument`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidArgument(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_pruner(pruner: Any) -> Pruner:
    """``pruner`` if it is a :class:`Pruner`, else a clear :class:`InvalidArgument`."""
    if not isinstance(pruner, Pruner):
        raise InvalidArgument(
            f"pruner must be a hyperq pruner such as hyperq.pruners.MedianPruner(), "
            f"ASHAPruner() or HyperbandPruner(max_resource=...), got {pruner!r}")
    return pruner
