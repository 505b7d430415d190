"""The search-space expression graph.

A space is a tree (a DAG when nodes are shared) of :class:`Expr` nodes:

* :class:`Literal` holds a constant,
* :class:`Param` is a hyperparameter: a label and a distribution,
* :class:`Switch` picks one of its options by the value of an index expression (``hp.choice``),
* :class:`Apply` calls a function registered in :data:`scope` on the values of its arguments.

Python containers (dict, list, tuple) inside a space become ``Apply`` nodes via :func:`as_apply`.
Arithmetic, comparison and indexing on nodes build new ``Apply`` nodes, so
``1 + hp.lognormal("x", 0, 1)`` is a space expression.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable, Iterator, Mapping

from hyperq.exceptions import BadSearchSpace


class Expr:
    """A node of a search-space expression."""

    def inputs(self) -> list["Expr"]:
        """The child nodes this node depends on."""
        return []

    def __add__(self, other: Any) -> "Apply":
        return Apply("add", [self, other])

    def __radd__(self, other: Any) -> "Apply":
        return Apply("add", [other, self])

    def __sub__(self, other: Any) -> "Apply":
        return Apply("sub", [self, other])

    def __rsub__(self, other: Any) -> "Apply":
        return Apply("sub", [other, self])

    def __mul__(self, other: Any) -> "Apply":
        return Apply("mul", [self, other])

    def __rmul__(self, other: Any) -> "Apply":
        return Apply("mul", [other, self])

    def __truediv__(self, other: Any) -> "Apply":
        return Apply("truediv", [self, other])

    def __rtruediv__(self, other: Any) -> "Apply":
        return Apply("truediv", [other, self])

    def __floordiv__(self, other: Any) -> "Apply":
        return Apply("floordiv", [self, other])

    def __rfloordiv__(self, other: Any) -> "Apply":
        return Apply("floordiv", [other, self])

    def __mod__(self, other: Any) -> "Apply":
        return Apply("mod", [self, other])

    def __rmod__(self, other: Any) -> "Apply":
        return Apply("mod", [other, self])

    def __pow__(self, other: Any) -> "Apply":
        return Apply("pow", [self, other])

    def __rpow__(self, other: Any) -> "Apply":
        return Apply("pow", [other, self])

    def __neg__(self) -> "Apply":
        return Apply("neg", [self])

    def __pos__(self) -> "Apply":
        return Apply("pos", [self])

    def __abs__(self) -> "Apply":
        return Apply("abs", [self])

    def __lt__(self, other: Any) -> "Apply":
        return Apply("lt", [self, other])

    def __le__(self, other: Any) -> "Apply":
        return Apply("le", [self, other])

    def __gt__(self, other: Any) -> "Apply":
        return Apply("gt", [self, other])

    def __ge__(self, other: Any) -> "Apply":
        return Apply("ge", [self, other])

    def __getitem__(self, key: Any) -> "Apply":
        return Apply("getitem", [self, key])

    # Nodes are compared and hashed by identity so they can key memo dicts.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError(
            "a search-space expression has no truth value until it is sampled; "
            "use scope.switch or hp.choice for conditional spaces"
        )

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("a search-space expression cannot be iterated; index it instead")


class Literal(Expr):
    """A constant inside a space."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Literal({self.value!r})"


class Param(Expr):
    """A hyperparameter: a label and the distribution its values are drawn from."""

    def __init__(self, label: str, dist: Any) -> None:
        self.label = label
        self.dist = dist

    def __repr__(self) -> str:
        return f"Param({self.label!r}, {self.dist!r})"


class Switch(Expr):
    """Evaluates to ``options[index]``, evaluating only the chosen option."""

    def __init__(self, index: Any, options: list[Any]) -> None:
        self.index = as_apply(index)
        self.options = [as_apply(o) for o in options]

    def inputs(self) -> list[Expr]:
        return [self.index, *self.options]

    def __repr__(self) -> str:
        return f"Switch({self.index!r}, {len(self.options)} options)"


class Apply(Expr):
    """A call of the function registered in :data:`scope` under ``name``."""

    def __init__(self, name: str, args: list[Any] | tuple[Any, ...] = (),
                 kwargs: Mapping[str, Any] | None = None) -> None:
        if name not in scope._impls:
            raise BadSearchSpace(
                f"unknown function {name!r} in a search space; register it with @scope.define"
            )
        self.name = name
        self.pos_args = [as_apply(a) for a in args]
        self.named_args = {k: as_apply(v) for k, v in (kwargs or {}).items()}

    def inputs(self) -> list[Expr]:
        return [*self.pos_args, *self.named_args.values()]

    def __repr__(self) -> str:
        return f"Apply({self.name!r}, {len(self.pos_args)} args)"


class _Scope:
    """The registry of functions a space may call: ``scope.int(x)`` builds ``Apply('int', [x])``.

    Register your own with ``@scope.define``; the decorated function is returned unchanged and
    ``scope.<name>(...)`` builds a node that calls it when the space is evaluated.
    """

    def __init__(self) -> None:
        self._impls: dict[str, Callable[..., Any]] = {}

    def define(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn`` under its ``__name__`` (replacing an earlier definition)."""
        self._impls[fn.__name__] = fn
        return fn

    define_pure = define

    def define_if_new(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn`` unless a function of that name is registered already."""
        self._impls.setdefault(fn.__name__, fn)
        return fn

    def define_info(self, **_info: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form accepted for hyperopt compatibility; the info is not needed here."""
        return self.define

    def undefine(self, fn_or_name: Callable[..., Any] | str) -> None:
        """Remove a registered function."""
        name = fn_or_name if isinstance(fn_or_name, str) else fn_or_name.__name__
        del self._impls[name]

    def impl(self, name: str) -> Callable[..., Any]:
        """The Python function registered under ``name``."""
        return self._impls[name]

    def __contains__(self, name: str) -> bool:
        return name in self._impls

    def switch(self, index: Any, *options: Any) -> Switch:
        """``options[index]``, evaluating only the chosen option."""
        return Switch(index, list(options))

    def __getattr__(self, name: str) -> Callable[..., Apply]:
        if name.startswith("__") or name not in self._impls:
            raise AttributeError(
                f"scope has no function {name!r}; register it with @scope.define"
            )

        def build(*args: Any, **kwargs: Any) -> Apply:
            return Apply(name, args, kwargs)

        build.__name__ = name
        return build


scope = _Scope()

for _name, _fn in {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "truediv": operator.truediv, "div": operator.truediv, "floordiv": operator.floordiv,
    "mod": operator.mod, "pow": operator.pow, "neg": operator.neg, "pos": operator.pos,
    "abs": abs, "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
    "eq": operator.eq, "ne": operator.ne, "getitem": operator.getitem,
    "int": int, "float": float, "bool": bool, "str": str, "len": len, "round": round,
    "min": min, "max": max, "sum": sum, "exp": math.exp, "log": math.log, "sqrt": math.sqrt,
    "identity": lambda x: x,
}.items():
    scope._impls[_name] = _fn


@scope.define
def pos_args(*args: Any) -> list[Any]:
    """A list of its arguments."""
    return list(args)


scope._impls["list"] = pos_args


@scope.define
def tuple_(*args: Any) -> tuple[Any, ...]:
    """A tuple of its arguments."""
    return tuple(args)


scope._impls["tuple"] = tuple_


@scope.define
def dict_(keys: tuple[Any, ...], *values: Any) -> dict[Any, Any]:
    """A dict built from a tuple of keys and the matching values."""
    return dict(zip(keys, values))


scope._impls["dict"] = dict_


def as_apply(obj: Any) -> Expr:
    """Turn a space written with Python containers into an expression node."""
    if isinstance(obj, Expr):
        return obj
    if isinstance(obj, dict):
        keys = tuple(obj)
        return Apply("dict", [Literal(keys), *[obj[k] for k in keys]])
    if isinstance(obj, list):
        return Apply("list", obj)
    if isinstance(obj, tuple):
        return Apply("tuple", obj)
    return Literal(obj)


def dfs(expr: Any) -> list[Expr]:
    """Every node reachable from ``expr``, each once, children before parents."""
    root = as_apply(expr)
    seen: set[int] = set()
    order: list[Expr] = []
    stack: list[tuple[Expr, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for child in reversed(node.inputs()):
            if id(child) not in seen:
                stack.append((child, False))
    return order


class MissingValue(KeyError):
    """A hyperparameter needed to evaluate the space has no value in the assignment."""


def rec_eval(expr: Any, memo: Mapping[Expr, Any] | None = None,
             values: Mapping[str, Any] | None = None,
             sampler: Callable[[Param], Any] | None = None) -> Any:
    """Evaluate ``expr``.

    A node in ``memo`` evaluates to its memo value. A :class:`Param` takes its value from
    ``values`` (by label), else from ``sampler(param)``; it is an error if neither has it.
    Only the chosen option of a :class:`Switch` is evaluated.
    """
    cache: dict[int, Any] = {}
    if memo:
        for node, value in memo.items():
            cache[id(node)] = value
    by_label: dict[str, Any] = {}

    def ev(node: Expr) -> Any:
        key = id(node)
        if key in cache:
            return cache[key]
        if isinstance(node, Literal):
            out = node.value
        elif isinstance(node, Param):
            if node.label in by_label:
                out = by_label[node.label]
            elif values is not None and node.label in values:
                out = node.dist.coerce(values[node.label])
            elif sampler is not None:
                out = sampler(node)
            else:
                raise MissingValue(
                    f"no value for hyperparameter {node.label!r}; the assignment must give a "
                    "value for every hyperparameter the chosen branches use"
                )
            by_label[node.label] = out
        elif isinstance(node, Switch):
            index = ev(node.index)
            try:
                index = int(index)
                if index < 0:
                    raise IndexError
                option = node.options[index]
            except (IndexError, TypeError, ValueError):
                raise BadSearchSpace(
                    f"choice index {index!r} is out of range for {len(node.options)} options"
                ) from None
            out = ev(option)
        elif isinstance(node, Apply):
            fn = scope.impl(node.name)
            args = [ev(a) for a in node.pos_args]
            kwargs = {k: ev(v) for k, v in node.named_args.items()}
            out = fn(*args, **kwargs)
        else:  # pragma: no cover - all node types are handled above
            raise TypeError(f"unknown node type {type(node).__name__}")
        cache[key] = out
        return out

    return ev(as_apply(expr))
