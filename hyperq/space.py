"""A compiled view of a search space: its hyperparameters and which of them a trial uses."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from hyperq.exceptions import BadSearchSpace, DuplicateLabel
from hyperq.pyll.base import Apply, Expr, Literal, Param, Switch, as_apply, dfs, rec_eval
from hyperq.pyll.distributions import Categorical, Numeric

Chooser = Callable[[Param], Any]


class SearchSpace:
    """The hyperparameters of a space, in a fixed order, and the rules that make them active.

    A hyperparameter is *active* in a trial when the trial's choices reach it: a parameter inside
    option 2 of ``hp.choice('model', ...)`` is active only when ``model == 2``.
    """

    def __init__(self, expr: Any) -> None:
        self.expr: Expr = as_apply(expr)
        self.params: dict[str, Param] = {}
        self.int_labels: set[str] = set()
        for node in dfs(self.expr):
            if isinstance(node, Param):
                other = self.params.get(node.label)
                if other is not None and other is not node:
                    raise DuplicateLabel(
                        f"label {node.label!r} is used by two different hyperparameters; "
                        "give each one its own label (reuse the same hp object to share a value)"
                    )
                self.params[node.label] = node
            elif isinstance(node, Apply) and node.name == "int" and len(node.pos_args) == 1:
                inner = node.pos_args[0]
                if isinstance(inner, Param) and isinstance(inner.dist, Numeric) \
                        and inner.dist.q is not None and float(inner.dist.q).is_integer():
                    # Recorded here, not on the user's parameter object: trials then store
                    # (and argmin returns) ints for it, while space_eval keeps its own types.
                    self.int_labels.add(inner.label)
        self.labels: list[str] = list(self.params)
        self.conditions: dict[str, list[tuple[tuple[str, int], ...]]] = self._conditions()

    def _conditions(self) -> dict[str, list[tuple[tuple[str, int], ...]]]:
        """For each label, the choice paths (``(choice_label, index)`` conjunctions) reaching it."""
        out: dict[str, list[tuple[tuple[str, int], ...]]] = {lab: [] for lab in self.labels}
        seen: set[tuple[int, tuple[tuple[str, int], ...]]] = set()
        stack: list[tuple[Expr, tuple[tuple[str, int], ...]]] = [(self.expr, ())]
        while stack:
            node, path = stack.pop()
            key = (id(node), path)
            if key in seen:
                continue
            seen.add(key)
            if isinstance(node, Param):
                if path not in out[node.label]:
                    out[node.label].append(path)
            elif isinstance(node, Switch) and isinstance(node.index, Param):
                stack.append((node.index, path))
                for i, option in enumerate(node.options):
                    stack.append((option, path + ((node.index.label, i),)))
            else:
                stack.extend((child, path) for child in node.inputs())
        return out

    def assign(self, choose: Chooser) -> dict[str, Any]:
        """Walk the space, calling ``choose(param)`` for each active parameter, in a fixed order.

        Returns ``{label: value}`` for the active parameters only.
        """
        values: dict[str, Any] = {}
        visited: set[int] = set()

        def walk(node: Expr) -> None:
            if id(node) in visited:
                return
            visited.add(id(node))
            if isinstance(node, Param):
                if node.label not in values:
                    value = node.dist.coerce(choose(node))
                    if node.label in self.int_labels:
                        value = int(round(value))
                    values[node.label] = value
            elif isinstance(node, Switch):
                walk(node.index)
                index = rec_eval(node.index, values=values)
                n = len(node.options)
                if not 0 <= int(index) < n:
                    raise BadSearchSpace(f"choice index {index!r} is out of range for {n} options")
                walk(node.options[int(index)])
            elif not isinstance(node, Literal):
                for child in node.inputs():
                    walk(child)

        walk(self.expr)
        return values

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw the active parameters of one trial from the prior."""
        return self.assign(lambda p: p.dist.sample(rng))

    def active(self, proposal: Mapping[str, Any]) -> dict[str, Any]:
        """Keep the values of ``proposal`` that the choices in it make active."""
        def choose(p: Param) -> Any:
            try:
                return proposal[p.label]
            except KeyError:
                raise BadSearchSpace(
                    f"no value for hyperparameter {p.label!r}, which the other choices make "
                    "active; add it to the point"
                ) from None

        return self.assign(choose)

    def check_point(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a user-given point (``points_to_evaluate``) and keep its active values."""
        unknown = sorted(set(point) - set(self.params))
        if unknown:
            raise BadSearchSpace(
                f"point {dict(point)!r} names {unknown} which are not in the space; "
                f"the labels are {self.labels}"
            )
        for label, value in point.items():
            dist = self.params[label].dist
            if isinstance(dist, Categorical) and not (
                    isinstance(value, (int, np.integer)) and 0 <= value < dist.n_options):
                raise BadSearchSpace(
                    f"point gives {label!r} = {value!r}, but hp.choice values are option indices "
                    f"in 0..{dist.n_options - 1}"
                )
        return self.active(point)

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """The object the objective receives for these hyperparameter values."""
        return rec_eval(self.expr, values=values)

    def memo(self, values: Mapping[str, Any]) -> dict[Expr, Any]:
        """``{param node: value}`` for ``pass_expr_memo_ctrl`` objectives."""
        return {self.params[k]: self.params[k].dist.coerce(v) for k, v in values.items()
                if k in self.params}
