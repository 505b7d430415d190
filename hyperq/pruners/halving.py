"""Successive halving without waiting (ASHA) and Hyperband (several ASHA brackets).

Trials are compared at *rungs*: the first report at or after step ``min_resource * eta**k``
(``eta`` = ``reduction_factor``) is tagged with the rung's name, and a trial goes on past a
rung only if its value there is among the best ``1 / eta`` of the values every trial (running
ones included) reached at that rung. Trials never wait for others: the first ones at a rung are
judged against the few that are there, as in asynchronous successive halving (Li et al., 2020).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from hyperq.exceptions import InvalidArgument
from hyperq.intermediate import PruningHistory

from .base import Pruner, check_int

_GOLDEN = 0.6180339887498949


def _rung_index(step: int, min_resource: int, eta: int) -> int:
    """The highest k with ``min_resource * eta**k <= step`` (-1 if step < min_resource)."""
    k, r = -1, min_resource
    while r <= step:
        k += 1
        r *= eta
    return k


def default_min_resource(max_resource: int | None, reduction_factor: int) -> int:
    """The first rung :class:`ASHAPruner` uses when not told: ``max_resource // eta**2``.

    Measured (``scripts/bench/pruning.py``, 20 seeds, docs/benchmarks.md): a first rung at
    step 1 stops trials on their first value, which on learning curves that cross (a
    configuration that starts high and ends low) keeps the fast starters and loses the best
    ones; a first rung at about a ninth of the training reached the no-pruning result with
    less compute on both benchmarks (crossing curves, 81 steps: first rung 1, 3, 9, 27 ->
    not reached in the median seed, 0.58, 0.44, 0.61 of the budget; SGD on digits, 27
    epochs: first rung 1, 3 -> 0.34, 0.31).
    """
    if max_resource is None:
        return 1
    return max(1, max_resource // reduction_factor ** 2)


def _keeps(value: float, peers: list[float], eta: int, n_startup_trials: int) -> bool:
    if math.isnan(value):
        return False
    peers = [v for v in peers if not math.isnan(v)]
    if len(peers) < n_startup_trials:
        return True
    n_keep = max(1, (len(peers) + 1) // eta)
    n_better = sum(1 for v in peers if v < value)
    return n_better < n_keep


class ASHAPruner(Pruner):
    """Asynchronous successive halving.

    Args:
        min_resource: the step of the first rung (e.g. 3 epochs). Default: with
            ``max_resource`` given, ``max_resource // reduction_factor**2`` (at least 1), so
            trials are compared first after about a ninth of their training (27 epochs: at
            3 and 9; 81 steps: at 9 and 27); without ``max_resource``, 1. See
            :func:`default_min_resource`.
        reduction_factor: ``eta``; rungs are ``min_resource * eta**k`` and the best
            ``1 / eta`` of the trials at a rung go on.
        min_early_stopping_rate: skip this many rungs (the first rung is at
            ``min_resource * eta**rate``).
        n_startup_trials: at a rung, decide only once this many other trials reached it.
        max_resource: the last step of a full-length trial, if known: no rung is placed at
            or after it, so a trial that ran to the end is never pruned there.
    """

    uses_steps = False

    def __init__(self, min_resource: int | None = None, reduction_factor: int = 3,
                 min_early_stopping_rate: int = 0, n_startup_trials: int = 0,
                 max_resource: int | None = None) -> None:
        self.reduction_factor = check_int("reduction_factor", reduction_factor, 2)
        self.min_early_stopping_rate = check_int("min_early_stopping_rate",
                                                 min_early_stopping_rate, 0)
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self.max_resource = None if max_resource is None else check_int(
            "max_resource", max_resource, 1)
        self.min_resource = (default_min_resource(self.max_resource, self.reduction_factor)
                             if min_resource is None
                             else check_int("min_resource", min_resource, 1))
        self._prefix = ""

    def rung_for(self, tid: int, step: int, tagged: set[str]) -> str | None:
        if self.max_resource is not None and step >= self.max_resource:
            step = self.max_resource - 1
        k = _rung_index(step, self.min_resource, self.reduction_factor) \
            - self.min_early_stopping_rate
        if k < 0:
            return None
        name = f"{self._prefix}r{k}"
        if name in tagged or any(_rung_number(t) >= k for t in tagged):
            return None
        return name

    def should_prune(self, tid: int, reports: Sequence[Mapping[str, Any]],
                     history: PruningHistory) -> bool:
        last = reports[-1]
        if math.isnan(last["value"]):
            return True
        rung = last.get("rung")
        if rung is None:
            return False
        peers = history.values_at_rung(rung, tid)
        return not _keeps(last["value"], peers, self.reduction_factor, self.n_startup_trials)


def _rung_number(name: str) -> int:
    return int(name.rsplit("r", 1)[1])


class HyperbandPruner(Pruner):
    """Hyperband: trials spread over ASHA brackets that start pruning at different steps.

    Bracket ``b`` first compares trials at step ``min_resource * eta**b``; bracket 0 is the
    most aggressive. Each trial's bracket follows from its tid, in proportion to the number of
    trials Hyperband gives each bracket, and trials are compared only within their bracket.

    Args:
        max_resource: the last step of a full-length trial (e.g. the number of epochs).
        min_resource: the first rung of the most aggressive bracket. Default:
            ``max_resource // reduction_factor**3`` (at least 1): 81 steps -> 3, 27 -> 1.
            One rung earlier than :class:`ASHAPruner`'s default, since the other brackets
            already start later.
        reduction_factor: ``eta``, as for :class:`ASHAPruner`.
        n_startup_trials: as for :class:`ASHAPruner`.
    """

    uses_steps = False

    def __init__(self, max_resource: int, min_resource: int | None = None,
                 reduction_factor: int = 3, n_startup_trials: int = 0) -> None:
        self.max_resource = check_int("max_resource", max_resource, 1)
        self.reduction_factor = check_int("reduction_factor", reduction_factor, 2)
        self.min_resource = (max(1, self.max_resource // self.reduction_factor ** 3)
                             if min_resource is None
                             else check_int("min_resource", min_resource, 1))
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        if self.min_resource > self.max_resource:
            raise InvalidArgument(f"min_resource ({min_resource}) must not exceed max_resource "
                                  f"({max_resource})")
        s_max = _rung_index(self.max_resource, self.min_resource, self.reduction_factor)
        self.n_brackets = s_max + 1
        eta = self.reduction_factor
        # bracket b starts at min_resource * eta**b; Hyperband gives it ceil(B/(s+1) eta^s)
        # trials with s = s_max - b
        sizes = [math.ceil(self.n_brackets / (s_max - b + 1) * eta ** (s_max - b))
                 for b in range(self.n_brackets)]
        total = float(sum(sizes))
        self._cumulative = [sum(sizes[:b + 1]) / total for b in range(self.n_brackets)]
        self._brackets = []
        for b in range(self.n_brackets):
            asha = ASHAPruner(self.min_resource, eta, b, self.n_startup_trials,
                              self.max_resource)
            asha._prefix = f"b{b}"
            self._brackets.append(asha)

    def bracket_of(self, tid: int) -> int:
        """The bracket of trial ``tid`` (deterministic, spread evenly over tids)."""
        u = (tid * _GOLDEN) % 1.0
        for b, edge in enumerate(self._cumulative):
            if u < edge:
                return b
        return self.n_brackets - 1

    def rung_for(self, tid: int, step: int, tagged: set[str]) -> str | None:
        return self._brackets[self.bracket_of(tid)].rung_for(tid, step, tagged)

    def should_prune(self, tid: int, reports: Sequence[Mapping[str, Any]],
                     history: PruningHistory) -> bool:
        return self._brackets[self.bracket_of(tid)].should_prune(tid, reports, history)

    def __repr__(self) -> str:
        return (f"HyperbandPruner(max_resource={self.max_resource}, min_resource="
                f"{self.min_resource}, reduction_factor={self.reduction_factor})")
