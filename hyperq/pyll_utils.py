"""Reading a space's hyperparameters and the choices that make them active (hyperopt's
``pyll_utils``): :func:`expr_to_config`, the condition type :class:`EQ`, and argument checks."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, NamedTuple

from hyperq import hp as _hp
from hyperq.pyll.base import Apply, Param, as_apply


class Cond(NamedTuple):
    """A condition on a choice: ``name op val``."""

    op: str
    name: str
    val: Any


class EQ(Cond):
    """``name == val``: the choice ``name`` took option ``val``."""

    def __new__(cls, name: str, val: Any) -> "EQ":
        return super().__new__(cls, "=", name, val)

    def __repr__(self) -> str:
        return f"EQ({self.name!r}, {self.val!r})"


def validate_label(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the first argument (the label) must be a string."""
    @functools.wraps(fn)
    def wrapper(label: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(label, str):
            raise TypeError(f"require string label, got {label!r}")
        return fn(label, *args, **kwargs)

    return wrapper


def validate_distribution_range(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: ``low`` must be below ``high`` (given by position or by name)."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = sig.bind_partial(*args, **kwargs).arguments
        low, high = bound.get("low"), bound.get("high")
        if low is not None and high is not None and low >= high:
            raise ValueError(f"low ({low}) must be less than high ({high})")
        return fn(*args, **kwargs)

    return wrapper


def hyperopt_param(label: str, obj: Any) -> Param:
    """A hyperparameter from a prior node: ``hyperopt_param('x', scope.uniform(0, 1))``."""
    from hyperq.pyll.base import scope

    return scope.hyperopt_param(label, obj)


hp_choice = _hp.choice
hp_pchoice = _hp.pchoice
hp_randint = _hp.randint
hp_uniform = _hp.uniform
hp_uniformint = _hp.uniformint
hp_quniform = _hp.quniform
hp_loguniform = _hp.loguniform
hp_qloguniform = _hp.qloguniform
hp_normal = _hp.normal
hp_qnormal = _hp.qnormal
hp_lognormal = _hp.lognormal
hp_qlognormal = _hp.qlognormal


def expr_to_config(expr: Any, conditions: tuple[Any, ...] | None,
                   hps: dict[str, dict[str, Any]]) -> None:
    """Fill ``hps`` with ``{label: {"label", "node", "conditions"}}`` for each hyperparameter.

    ``node`` is the prior node (``uniform``, ``randint``, ...); ``conditions`` is a set of
    tuples, each a conjunction of ``EQ(choice_label, option)`` (after the given
    ``conditions`` prefix) under which the hyperparameter is used. A hyperparameter reached
    through every option of a choice does not depend on it.
    """
    prefix = tuple(conditions) if conditions is not None else ()
    _collect(as_apply(expr), prefix, hps, set())
    _remove_allpaths(hps, prefix)


def _collect(node: Apply, conds: tuple[Any, ...], hps: dict[str, dict[str, Any]],
             seen: set[tuple[int, tuple[Any, ...]]]) -> None:
    key = (id(node), conds)
    if key in seen:
        return
    seen.add(key)
    if isinstance(node, Param):
        entry = hps.setdefault(node.label, {"label": node.label, "node": node.pos_args[1],
                                            "conditions": set()})
        if entry["node"] is not node.pos_args[1]:
            raise ValueError(f"label {node.label!r} is used by two different hyperparameters")
        entry["conditions"].add(conds)
        return
    if node.name == "switch" and isinstance(node.pos_args[0], Param):
        index = node.pos_args[0]
        _collect(index, conds, hps, seen)
        for i, option in enumerate(node.pos_args[1:]):
            _collect(option, conds + (EQ(index.label, i),), hps, seen)
        return
    for child in node.inputs():
        _collect(child, conds, hps, seen)


def _n_options(hps: dict[str, dict[str, Any]], label: str) -> int | None:
    node = hps.get(label, {}).get("node")
    if node is not None and node.name == "randint" and len(node.pos_args) == 1:
        return int(node.pos_args[0].obj)
    if node is not None and node.name == "categorical":
        return len(node.pos_args[0].obj)
    return None


def _remove_allpaths(hps: dict[str, dict[str, Any]], prefix: tuple[Any, ...]) -> None:
    """Collapse conditions covering every option of a choice into their common prefix."""
    for entry in hps.values():
        conds = set(entry["conditions"])
        changed = True
        while changed:
            changed = False
            groups: dict[tuple[Any, ...], dict[str, set[Any]]] = {}
            for c in conds:
                if len(c) > len(prefix) and isinstance(c[-1], EQ):
                    groups.setdefault(c[:-1], {}).setdefault(c[-1].name, set()).add(c[-1].val)
            for head, by_name in groups.items():
                for name, vals in by_name.items():
                    n = _n_options(hps, name)
                    if n is not None and vals >= set(range(n)):
                        conds = {c for c in conds if not (c[:-1] == head and isinstance(
                            c[-1], EQ) and c[-1].name == name)} | {head}
                        changed = True
        entry["conditions"] = conds
