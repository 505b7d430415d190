"""The search-space expression graph, with hyperopt's ``pyll`` node model.

Every node is an :class:`Apply`: a call of the function registered in :data:`scope` under
``node.name`` on ``node.pos_args`` and ``node.named_args`` (a list of ``[key, node]`` pairs).
Three kinds of node are special:

* :class:`Literal` (name ``"literal"``) holds a constant (``node.obj``),
* :class:`Param` (name ``"hyperopt_param"``) is a hyperparameter: ``pos_args`` are the label
  literal and the prior node (``uniform(low, high)``, ``randint(n)``, ...); hyperq's search
  algorithms read its :attr:`Param.dist`,
* :class:`Switch` (name ``"switch"``) evaluates to ``pos_args[1 + index]``, evaluating only
  that option (``hp.choice``).

Python containers inside a space become nodes via :func:`as_apply`: a dict becomes a ``dict``
node whose ``named_args`` are its items, a list or tuple a ``pos_args`` node. Arithmetic,
comparison, indexing and calling nodes build new nodes, so ``1 + hp.lognormal("x", 0, 1)`` is
a space expression.
"""
from __future__ import annotations

import copy
import inspect
import io
import logging
import operator
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from hyperq.exceptions import BadSearchSpace

logger = logging.getLogger(__name__)


class MissingArgument:
    """Stands for a parameter that a node does not bind (in :attr:`Apply.arg`)."""


class UndefinedValue:
    """The value of the placeholder literals ``p0`` ... ``p4`` used in :class:`Lambda`."""


class Apply:
    """A call of the function registered in :data:`scope` under ``name``.

    ``o_len`` is the length of the value when it is known (tuples, ``define_info(o_len=)``),
    which lets a node be unpacked: ``a, b = scope.pair_fn()``. ``pure`` marks nodes without
    side effects, which :func:`clone_merge` may merge.
    """

    def __init__(self, name: str, pos_args: Sequence[Any] = (),
                 named_args: Mapping[str, Any] | Sequence[Sequence[Any]] | None = None,
                 o_len: int | None = None, pure: bool = False,
                 define_params: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.pos_args: list[Apply] = [as_apply(a) for a in pos_args]
        pairs = named_args.items() if isinstance(named_args, Mapping) else (named_args or ())
        self.named_args: list[list[Any]] = [[k, as_apply(v)] for k, v in pairs]
        self.o_len = o_len
        self.pure = pure
        self.define_params = define_params

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # pickled with __slots__ (Literal before issue 12)
            state = {**(state[0] or {}), **(state[1] or {})}
        state = _upgrade_state(self, dict(state))
        self.__dict__.update(state)
        if state.get("define_params"):  # a function defined on the driver, unknown here
            scope.define_if_new(**state["define_params"])

    # -- structure ----------------------------------------------------------------------------
    def inputs(self) -> list["Apply"]:
        """The child nodes: positional arguments, then named ones."""
        if self.named_args:
            return self.pos_args + [v for _, v in self.named_args]
        return self.pos_args

    @property
    def arg(self) -> dict[str, Any]:
        """``{parameter name: node}`` binding the arguments to the registered function's
        signature; parameters without an argument map to :class:`MissingArgument`."""
        fn = scope._impls.get(self.name)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return {}
        binding: dict[str, Any] = {}
        params = list(sig.parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        var_pos = next((p for p in params if p.kind == p.VAR_POSITIONAL), None)
        var_kw = next((p for p in params if p.kind == p.VAR_KEYWORD), None)
        if len(self.pos_args) > len(positional) and var_pos is None:
            raise TypeError(f"{self.name}: too many positional arguments")
        for p, a in zip(positional, self.pos_args):
            binding[p.name] = a
        if var_pos is not None:
            binding[var_pos.name] = self.pos_args[len(positional):]
        if var_kw is not None:
            binding[var_kw.name] = {}
        names = {p.name for p in params if p.kind != p.VAR_POSITIONAL and p.kind != p.VAR_KEYWORD}
        for k, v in self.named_args:
            if k in names:
                if k in binding:
                    raise TypeError(f"{self.name}: duplicate argument for parameter {k!r}")
                binding[k] = v
            elif var_kw is not None:
                binding[var_kw.name][k] = v
            else:
                raise TypeError(f"{self.name}: unrecognized keyword argument {k!r}")
        for p in params:
            binding.setdefault(p.name, MissingArgument)
        return binding

    def set_kwarg(self, name: str, value: Any) -> None:
        """Set (or add) the named argument ``name``."""
        for pair in self.named_args:
            if pair[0] == name:
                pair[1] = as_apply(value)
                return
        bound = self.arg
        if name in bound and bound[name] is not MissingArgument:
            raise NotImplementedError(f"{name!r} is given positionally; cannot set it by name")
        self.named_args.append([name, as_apply(value)])
        self.named_args.sort(key=lambda kv: str(kv[0]))

    def clone_from_inputs(self, inputs: Sequence["Apply"], o_len: Any = "same") -> "Apply":
        """A node like this one whose inputs are ``inputs`` (same order as :meth:`inputs`)."""
        if len(inputs) != len(self.inputs()):
            raise TypeError("clone_from_inputs needs as many inputs as the node has")
        n = len(self.pos_args)
        rval = copy.copy(self)
        rval.pos_args = list(inputs[:n])
        rval.named_args = [[k, inputs[n + i]] for i, (k, _) in enumerate(self.named_args)]
        if o_len != "same":
            rval.o_len = o_len
        return rval

    def replace_input(self, old_node: "Apply", new_node: "Apply") -> list[int]:
        """Replace every input that is ``old_node``; returns the input positions replaced."""
        where = []
        for i, a in enumerate(self.pos_args):
            if a is old_node:
                self.pos_args[i] = new_node
                where.append(i)
        for i, pair in enumerate(self.named_args):
            if pair[1] is old_node:
                pair[1] = new_node
                where.append(i + len(self.pos_args))
        return where

    # -- evaluation and printing --------------------------------------------------------------
    def eval(self, memo: Mapping[Any, Any] | None = None) -> Any:
        """The value of this expression (hyperparameters need values: see :func:`rec_eval`)."""
        return rec_eval(self, memo=memo)

    def pprint(self, ofile: Any, lineno: list[int] | None = None, indent: int = 0,
               memo: dict[Any, str] | None = None) -> None:
        """Write the graph as numbered lines, one node per line; shared nodes are printed once."""
        memo = {} if memo is None else memo
        lineno = [0] if lineno is None else lineno
        if self in memo:
            print(lineno[0], " " * indent + memo[self], file=ofile)
            lineno[0] += 1
            return
        memo[self] = f"{self.name}  [line:{lineno[0]}]"
        print(lineno[0], " " * indent + self.name, file=ofile)
        lineno[0] += 1
        for a in self.pos_args:
            a.pprint(ofile, lineno, indent + 2, memo)
        for k, a in self.named_args:
            print(lineno[0], " " * indent + " " + str(k) + " =", file=ofile)
            lineno[0] += 1
            a.pprint(ofile, lineno, indent + 2, memo)

    def __str__(self) -> str:
        out = io.StringIO()
        self.pprint(out)
        return out.getvalue()[:-1]

    def __repr__(self) -> str:
        return f"Apply({self.name!r}, {len(self.pos_args)} args)"

    # -- building expressions with Python operators -------------------------------------------
    def __add__(self, other: Any) -> "Apply":
        return _op("add", self, other)

    def __radd__(self, other: Any) -> "Apply":
        return _op("add", other, self)

    def __sub__(self, other: Any) -> "Apply":
        return _op("sub", self, other)

    def __rsub__(self, other: Any) -> "Apply":
        return _op("sub", other, self)

    def __mul__(self, other: Any) -> "Apply":
        return _op("mul", self, other)

    def __rmul__(self, other: Any) -> "Apply":
        return _op("mul", other, self)

    def __truediv__(self, other: Any) -> "Apply":
        return _op("truediv", self, other)

    def __rtruediv__(self, other: Any) -> "Apply":
        return _op("truediv", other, self)

    def __floordiv__(self, other: Any) -> "Apply":
        return _op("floordiv", self, other)

    def __rfloordiv__(self, other: Any) -> "Apply":
        return _op("floordiv", other, self)

    def __mod__(self, other: Any) -> "Apply":
        return _op("mod", self, other)

    def __rmod__(self, other: Any) -> "Apply":
        return _op("mod", other, self)

    def __pow__(self, other: Any) -> "Apply":
        return _op("pow", self, other)

    def __rpow__(self, other: Any) -> "Apply":
        return _op("pow", other, self)

    def __neg__(self) -> "Apply":
        return _op("neg", self)

    def __pos__(self) -> "Apply":
        return _op("pos", self)

    def __abs__(self) -> "Apply":
        return _op("abs", self)

    def __lt__(self, other: Any) -> "Apply":
        return _op("lt", self, other)

    def __le__(self, other: Any) -> "Apply":
        return _op("le", self, other)

    def __gt__(self, other: Any) -> "Apply":
        return _op("gt", self, other)

    def __ge__(self, other: Any) -> "Apply":
        return _op("ge", self, other)

    def __getitem__(self, idx: Any) -> "Apply":
        if self.o_len is not None and isinstance(idx, int) and idx >= self.o_len:
            raise IndexError(idx)  # ends tuple unpacking of nodes of known length
        return _op("getitem", self, idx)

    def __len__(self) -> int:
        if self.o_len is None:
            raise TypeError("the length of this search-space expression is not known")
        return self.o_len

    def __iter__(self) -> Iterator["Apply"]:
        if self.o_len is None:
            raise TypeError("a search-space expression cannot be iterated; index it instead")
        return (self[i] for i in range(self.o_len))

    def __call__(self, *args: Any, **kwargs: Any) -> "Apply":
        return Apply("call", [self, args, kwargs])

    # Nodes are compared and hashed by identity so they can key memo dicts.
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise TypeError(
            "a search-space expression has no truth value until it is sampled; "
            "use scope.switch or hp.choice for conditional spaces"
        )


def _upgrade_state(node: Apply, state: dict[str, Any]) -> dict[str, Any]:
    """The state of a node pickled by hyperq before issue 12 (spaces in saved trials files and
    MongoDB domains) in today's form: Literal ``value``, Param/Switch without ``pos_args``,
    ``named_args`` dicts, dict nodes with a keys literal, ``list`` nodes."""
    if isinstance(state.get("named_args"), list) and "name" in state:
        return state
    base = {"named_args": [], "o_len": None, "pure": True, "define_params": None}
    if isinstance(node, Literal) and "value" in state:
        value = state.pop("value")
        try:
            o_len = len(value)
        except (AttributeError, TypeError):
            o_len = None
        return {**base, **state, "name": "literal", "pos_args": [], "o_len": o_len,
                "_obj": value}
    if isinstance(node, Param) and "dist" in state:
        return {**base, **state, "name": "hyperopt_param",
                "pos_args": [Literal(state["label"]), prior_node(state["dist"])]}
    if isinstance(node, Switch) and "options" in state:
        return {**base, "name": "switch",
                "pos_args": [state.pop("index"), *state.pop("options")]}
    out = {**base, "pure": False, **state}
    named = out["named_args"]
    out["named_args"] = [[k, v] for k, v in (named.items() if isinstance(named, dict) else named)]
    if out["name"] == "dict" and out["pos_args"] and not out["named_args"]:
        keys_node, *values = out["pos_args"]
        keys = getattr(keys_node, "_obj", getattr(keys_node, "value", None))
        out["pos_args"], out["named_args"] = [], [[k, v] for k, v in zip(keys, values)]
        out["o_len"] = len(keys)
    elif out["name"] == "list":
        out["name"], out["as_list"] = "pos_args", True
    return out


#: hyperq's earlier name for :class:`Apply`.
Expr = Apply


def _op(name: str, *args: Any) -> Apply:
    return Apply(name, args, pure=True)


class Literal(Apply):
    """A constant inside a space (``node.obj``)."""

    def __init__(self, obj: Any = None) -> None:
        try:
            o_len = len(obj)
        except (AttributeError, TypeError):
            o_len = None
        super().__init__("literal", (), None, o_len, pure=True)
        self._obj = obj

    @property
    def obj(self) -> Any:
        """The constant."""
        return self._obj

    value = obj

    @property
    def arg(self) -> dict[str, Any]:
        return {}

    def eval(self, memo: Mapping[Any, Any] | None = None) -> Any:
        return self._obj

    def clone_from_inputs(self, inputs: Sequence[Apply], o_len: Any = "same") -> "Literal":
        return self.__class__(self._obj)

    def replace_input(self, old_node: Apply, new_node: Apply) -> list[int]:
        return []

    def pprint(self, ofile: Any, lineno: list[int] | None = None, indent: int = 0,
               memo: dict[Any, str] | None = None) -> None:
        memo = {} if memo is None else memo
        lineno = [0] if lineno is None else lineno
        if self in memo:
            print(lineno[0], " " * indent + memo[self], file=ofile)
        else:
            if isinstance(self._obj, np.ndarray):
                text = (f"Literal{{np.ndarray,shape={self._obj.shape},"
                        f"min={self._obj.min():f},max={self._obj.max():f}}}")
            else:
                text = f"Literal{{{self._obj}}}"
            memo[self] = f"{text}  [line:{lineno[0]}]"
            print(lineno[0], " " * indent + text, file=ofile)
        lineno[0] += 1

    def __repr__(self) -> str:
        return f"Literal({self._obj!r})"


# -- hyperparameters ----------------------------------------------------------------------------

#: prior node name -> (argument names, distribution keyword overrides)
_PRIORS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "uniform": (("low", "high"), {}),
    "loguniform": (("low", "high"), {"log": True}),
    "quniform": (("low", "high", "q"), {}),
    "qloguniform": (("low", "high", "q"), {"log": True}),
    "normal": (("mu", "sigma"), {}),
    "lognormal": (("mu", "sigma"), {"log": True}),
    "qnormal": (("mu", "sigma", "q"), {}),
    "qlognormal": (("mu", "sigma", "q"), {"log": True}),
}


def prior_node(dist: Any) -> Apply:
    """The hyperopt prior node (``uniform(low, high)``, ``randint(n)``, ...) of a distribution."""
    from hyperq.pyll.distributions import Categorical, Normal, RandInt, Uniform

    if isinstance(dist, Uniform) or isinstance(dist, Normal):
        first = ("low", "high") if isinstance(dist, Uniform) else ("mu", "sigma")
        base = "uniform" if isinstance(dist, Uniform) else "normal"
        name = ("q" if dist.q is not None else "") + ("log" if dist.log else "") + base
        args = [getattr(dist, a) for a in first] + ([dist.q] if dist.q is not None else [])
        return Apply(name, args, pure=True)
    if isinstance(dist, RandInt):
        return Apply("randint", [dist.high] if dist.low == 0 else [dist.low, dist.high], pure=True)
    if isinstance(dist, Categorical):
        if all(p == dist.probs[0] for p in dist.probs):
            return Apply("randint", [dist.n_options], pure=True)
        return Apply("categorical", [Literal(list(dist.probs))], pure=True)
    raise BadSearchSpace(f"no prior node for distribution {dist!r}")


def dist_from_prior(node: Apply) -> Any:
    """The hyperq distribution of a hyperopt prior node with constant arguments."""
    from hyperq.pyll.distributions import Categorical, Normal, RandInt, Uniform

    bound = {k: v for k, v in node.arg.items() if v is not MissingArgument
             and k not in ("rng", "size")}
    values = {}
    for k, v in bound.items():
        if not isinstance(v, Literal):
            raise BadSearchSpace(
                f"the argument {k!r} of the prior {node.name!r} must be a constant, not another "
                "expression; hyperq's search algorithms need fixed priors"
            )
        values[k] = v.obj
    if node.name in _PRIORS:
        names, extra = _PRIORS[node.name]
        kw = {n: float(values[n]) for n in names if n in values}
        cls = Uniform if "low" in names else Normal
        return cls(**kw, **extra)
    if node.name == "randint":
        low, high = values.get("low", 0), values.get("high")
        return RandInt(low=0, high=int(low)) if high is None else RandInt(low=int(low),
                                                                           high=int(high))
    if node.name in ("categorical", "randint_via_categorical"):
        probs = np.asarray(values["p"], dtype=float).ravel()
        return Categorical(probs=tuple(float(p) for p in probs / probs.sum()))
    raise BadSearchSpace(
        f"{node.name!r} is not a prior hyperq knows (uniform, loguniform, quniform, "
        "qloguniform, normal, lognormal, qnormal, qlognormal, randint, categorical)"
    )


class Param(Apply):
    """A hyperparameter (``hyperopt_param(label, prior)``): a label and its distribution."""

    def __init__(self, label: str, dist: Any) -> None:
        super().__init__("hyperopt_param", [Literal(label), prior_node(dist)], pure=True)
        self.label = label
        self.dist = dist

    def clone_from_inputs(self, inputs: Sequence[Apply], o_len: Any = "same") -> "Param":
        rval = super().clone_from_inputs(inputs, o_len)
        if isinstance(inputs[0], Literal):
            rval.label = inputs[0].obj
        return rval

    def __repr__(self) -> str:
        return f"Param({self.label!r}, {self.dist!r})"


class Switch(Apply):
    """``switch(index, *options)``: ``options[index]``, evaluating only the chosen option."""

    def __init__(self, index: Any, options: Sequence[Any]) -> None:
        super().__init__("switch", [index, *options], pure=True)

    @property
    def index(self) -> Apply:
        """The node whose value picks the option."""
        return self.pos_args[0]

    @property
    def options(self) -> list[Apply]:
        """The options."""
        return self.pos_args[1:]

    def __repr__(self) -> str:
        return f"Switch({self.index!r}, {len(self.options)} options)"


# -- the registry --------------------------------------------------------------------------------

class SymbolTableEntry:
    """``scope.<name>``: calling it builds an :class:`Apply` node calling ``<name>``."""

    def __init__(self, symbol_table: "SymbolTable", apply_name: str) -> None:
        self.symbol_table = symbol_table
        self.apply_name = apply_name

    def __call__(self, *args: Any, **kwargs: Any) -> Apply:
        table = self.symbol_table
        named = sorted(kwargs.items(), key=lambda kv: kv[0])
        return Apply(self.apply_name, args, named, o_len=table._o_len.get(self.apply_name),
                     pure=table._pure.get(self.apply_name, False))

    def __repr__(self) -> str:
        return f"SymbolTableEntry({self.apply_name!r})"


class SymbolTable:
    """The registry of functions a space may call: ``scope.int(x)`` builds ``Apply('int', [x])``.

    Register your own with ``@scope.define``; the decorated function is returned unchanged and
    ``scope.<name>(...)`` builds a node that calls it when the space is evaluated. Defining a
    name again replaces the earlier function.
    """

    def __init__(self) -> None:
        self._impls: dict[str, Callable[..., Any]] = {}
        self._o_len: dict[str, int | None] = {}
        self._pure: dict[str, bool] = {}

    def _define(self, fn: Callable[..., Any], o_len: int | None, pure: bool) -> Callable[..., Any]:
        name = fn.__name__
        self._impls[name] = fn
        self._o_len[name] = o_len
        self._pure[name] = pure
        return fn

    def define(self, fn: Callable[..., Any], o_len: int | None = None,
               pure: bool = False) -> Callable[..., Any]:
        """Register ``fn`` under its ``__name__`` (replacing an earlier definition)."""
        return self._define(fn, o_len, pure)

    def define_pure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn`` as free of side effects."""
        return self._define(fn, None, True)

    def define_if_new(self, fn: Callable[..., Any], o_len: int | None = None,
                      pure: bool = False) -> Callable[..., Any]:
        """Register ``fn`` unless a function of that name is registered already."""
        if fn.__name__ not in self._impls:
            self._define(fn, o_len, pure)
        return fn

    def define_info(self, o_len: int | None = None, pure: bool = False
                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a function whose value has ``o_len`` items."""
        return lambda fn: self._define(fn, o_len, pure)

    def undefine(self, fn_or_name: Callable[..., Any] | str) -> None:
        """Remove a registered function."""
        name = fn_or_name if isinstance(fn_or_name, str) else fn_or_name.__name__
        del self._impls[name]
        self._o_len.pop(name, None)
        self._pure.pop(name, None)

    def impl(self, name: str) -> Callable[..., Any]:
        """The Python function registered under ``name``."""
        return self._impls[name]

    def inject(self, *args: str, **kwargs: str) -> dict[str, SymbolTableEntry]:
        """``{name: scope.<name>}`` for import-like use (``kwargs`` rename)."""
        out = {}
        for alias, name in [(a, a) for a in args] + list(kwargs.items()):
            if name not in self._impls:
                raise ImportError(f"scope has no function {name!r}")
            out[alias] = getattr(self, name)
        return out

    def import_(self, _globals: dict[str, Any], *args: str, **kwargs: str) -> None:
        _globals.update(self.inject(*args, **kwargs))

    def __contains__(self, name: str) -> bool:
        return name in self._impls

    # -- nodes that are built specially -------------------------------------------------------
    def switch(self, index: Any, *options: Any) -> Switch:
        """``options[index]``, evaluating only the chosen option."""
        return Switch(index, list(options))

    def kwswitch(self, kw: Any, **options: Any) -> Switch:
        """The option named by the value of ``kw``, evaluating only that option."""
        names = sorted(options)
        return Switch(Apply("_kwswitch_index", [kw, Literal(names)], pure=True),
                      [options[n] for n in names])

    def hyperopt_param(self, label: Any, obj: Any) -> Param:
        """A hyperparameter named ``label`` drawn from the prior node ``obj``."""
        node = as_apply(obj)
        param = Param(label, dist_from_prior(node))
        param.pos_args[1] = node
        return param

    def one_of(self, *options: Any) -> Switch:
        """One of ``options``, drawn uniformly when the space is sampled."""
        return Switch(Apply("randint", [len(options)], pure=True), list(options))

    def choice(self, options: Sequence[Any]) -> Switch:
        """``one_of(*options)``."""
        return self.one_of(*options)

    def __getattr__(self, name: str) -> SymbolTableEntry:
        if name.startswith("__") or name not in self._impls:
            raise AttributeError(
                f"scope has no function {name!r}; register it with @scope.define"
            )
        return SymbolTableEntry(self, name)


_Scope = SymbolTable
scope = SymbolTable()


def apply(name: str, *args: Any, **kwargs: Any) -> Apply:
    """An :class:`Apply` node calling ``name`` (which may be defined later)."""
    return Apply(name, args, sorted(kwargs.items(), key=lambda kv: kv[0]))


def as_apply(obj: Any) -> Apply:
    """Turn a space written with Python containers into an expression node.

    A dict becomes a ``dict`` node (its items in ``named_args``, in the dict's order), a tuple a
    ``pos_args`` node of known length, a list a ``pos_args`` node that evaluates to a list
    (hyperopt's evaluates to a tuple), anything else a :class:`Literal`.
    """
    if isinstance(obj, Apply):
        return obj
    if isinstance(obj, dict):
        return Apply("dict", (), [[k, v] for k, v in obj.items()], o_len=len(obj), pure=True)
    if isinstance(obj, tuple):
        return Apply("pos_args", obj, o_len=len(obj), pure=True)
    if isinstance(obj, list):
        node = Apply("pos_args", obj, pure=True)
        node.as_list = True
        return node
    return Literal(obj)


# -- graph traversal ---------------------------------------------------------------------------

def dfs(aa: Any, seq: list[Apply] | None = None, seqset: dict[Apply, Any] | None = None
        ) -> list[Apply]:
    """Every node reachable from ``aa``, each once, children before parents (depth first)."""
    seq = [] if seq is None else seq
    seqset = {} if seqset is None else seqset
    stack: list[tuple[Apply, bool]] = [(as_apply(aa), False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            seq.append(node)
            continue
        if node in seqset:
            continue
        seqset[node] = node.inputs()
        stack.append((node, True))
        for child in reversed(seqset[node]):
            if child not in seqset:
                stack.append((child, False))
    return seq


def toposort(expr: Any) -> list[Apply]:
    """The nodes of ``expr`` in an order where every node comes after its inputs."""
    return dfs(expr)


def clone(expr: Any, memo: dict[Apply, Apply] | None = None) -> Apply:
    """A copy of the graph ``expr``; nodes in ``memo`` are replaced by their memo value."""
    memo = {} if memo is None else memo
    for node in dfs(expr):
        if node not in memo:
            memo[node] = node.clone_from_inputs([memo[a] for a in node.inputs()])
    return memo[as_apply(expr)]


def clone_merge(expr: Any, memo: dict[Apply, Apply] | None = None,
                merge_literals: bool = False) -> Apply:
    """A copy of ``expr`` where equal pure sub-expressions are computed once.

    Two pure nodes merge when they call the same function on the same (merged) inputs;
    literals merge only with ``merge_literals`` and when their values are equal.
    """
    memo = {} if memo is None else memo
    seen: dict[Any, Apply] = {}
    for node in dfs(expr):
        if node in memo:
            continue
        inputs = [memo[a] for a in node.inputs()]
        key = None
        if isinstance(node, Literal):
            if merge_literals:
                try:
                    key = ("literal", type(node.obj), node.obj)
                    hash(key)
                except TypeError:
                    key = None
        elif node.pure:
            key = (node.name, tuple(id(i) for i in inputs),
                   tuple(str(k) for k, _ in node.named_args), getattr(node, "as_list", False))
        if key is not None and key in seen:
            memo[node] = seen[key]
            continue
        new = node.clone_from_inputs(inputs)
        if key is not None:
            seen[key] = new
        memo[node] = new
    return memo[as_apply(expr)]


# -- evaluation ---------------------------------------------------------------------------------

class MissingValue(KeyError):
    """A hyperparameter needed to evaluate the space has no value in the assignment."""


def rec_eval(expr: Any, deepcopy_inputs: bool = False, memo: Mapping[Any, Any] | None = None,
             max_program_len: int | None = None, memo_gc: bool = True,
             print_trace: bool = False, print_node_on_error: bool = True, *,
             values: Mapping[str, Any] | None = None,
             sampler: Callable[[Param], Any] | None = None) -> Any:
    """Evaluate ``expr``.

    A node in ``memo`` evaluates to its memo value. A :class:`Param` takes its value from
    ``values`` (by label), else from ``sampler(param)``, else from its prior node when that has
    an ``rng`` (see :func:`hyperq.pyll.stochastic.recursive_set_rng_kwarg`); it is an error if
    none has it. Only the chosen option of a switch is evaluated. A function that returns a
    node (a :class:`Lambda`) has that node evaluated in turn. ``max_program_len``, ``memo_gc``
    and ``print_trace`` are accepted for hyperopt compatibility and have no effect.
    """
    if deepcopy_inputs not in (0, 1, False, True):
        raise ValueError(
            "rec_eval's second argument is deepcopy_inputs (a bool); pass memo by keyword: "
            "rec_eval(expr, memo=memo)"
        )
    cache: dict[int, Any] = {}
    keep: list[Any] = []  # keeps nodes created during evaluation alive, so ids stay unique
    if memo:
        for node, value in memo.items():
            cache[id(node)] = value
    by_label: dict[str, Any] = {}

    def call(node: Apply, fn: Callable[..., Any]) -> Any:
        args = [ev(a) for a in node.pos_args]
        kwargs = {k: ev(v) for k, v in node.named_args}
        if deepcopy_inputs:
            args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
        try:
            return fn(*args, **kwargs)
        except Exception:
            if print_node_on_error:
                logger.debug("error evaluating the search-space node:\n%s", node)
            raise

    def ev(node: Apply) -> Any:
        key = id(node)
        if key in cache:
            return cache[key]
        name = node.name
        if isinstance(node, Literal):
            out = node._obj
        elif isinstance(node, Param):
            if node.label in by_label:
                out = by_label[node.label]
            elif values is not None and node.label in values:
                out = node.dist.coerce(values[node.label])
            elif sampler is not None:
                out = sampler(node)
            elif any(k == "rng" for k, _ in node.pos_args[1].named_args):
                out = node.dist.coerce(ev(node.pos_args[1]))
            else:
                raise MissingValue(
                    f"no value for hyperparameter {node.label!r}; the assignment must give a "
                    "value for every hyperparameter the chosen branches use"
                )
            by_label[node.label] = out
        elif name == "switch":
            index = ev(node.pos_args[0])
            try:
                if isinstance(index, np.ndarray):
                    index = index.item()
                index = operator.index(index)
                if index < 0:
                    raise IndexError
                option = node.pos_args[1 + index]
            except (IndexError, TypeError, ValueError):
                raise BadSearchSpace(
                    f"choice index {index!r} is out of range for {len(node.pos_args) - 1} "
                    "options"
                ) from None
            out = ev(option)
        elif name == "dict" and not node.pos_args:
            out = {k: ev(v) for k, v in node.named_args}
        elif name == "pos_args":
            items = [ev(a) for a in node.pos_args]
            out = items if getattr(node, "as_list", False) else tuple(items)
        else:
            fn = scope._impls.get(name)
            if fn is None:
                raise BadSearchSpace(
                    f"unknown function {name!r} in a search space; register it with "
                    "@scope.define"
                )
            out = call(node, fn)
            if isinstance(out, Apply):  # a Lambda expands to a graph: evaluate it
                keep.append(out)
                out = ev(out)
        cache[key] = out
        return out

    return ev(as_apply(expr))


# -- functions defined in terms of graphs --------------------------------------------------------

class Lambda:
    """A function whose body is a graph: calling it clones ``expr`` with the parameter
    placeholders (``params``: ``[(name, placeholder literal), ...]``) replaced by arguments."""

    def __init__(self, name: str, params: Sequence[tuple[Any, ...]], expr: Any) -> None:
        self.__name__ = name
        self.params = list(params)
        self.expr = expr

    def __call__(self, *args: Any, **kwargs: Any) -> Apply:
        if len(args) > len(self.params):
            raise TypeError(f"{self.__name__} takes {len(self.params)} arguments")
        if len(args) != len(self.params) or kwargs:
            raise NotImplementedError(
                f"{self.__name__}: give every argument, positionally (named and default "
                "arguments are not supported)"
            )
        return clone(self.expr, {p[1]: as_apply(a) for a, p in zip(args, self.params)})


p0 = Literal(UndefinedValue)
p1 = Literal(UndefinedValue)
p2 = Literal(UndefinedValue)
p3 = Literal(UndefinedValue)
p4 = Literal(UndefinedValue)


def _builtin(name: str, fn: Callable[..., Any], pure: bool = True) -> None:
    scope._impls[name] = fn
    scope._pure[name] = pure


for _name, _fn in {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "truediv": operator.truediv, "div": operator.truediv, "floordiv": operator.floordiv,
    "mod": operator.mod, "neg": operator.neg, "pos": operator.pos,
    "abs": abs, "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
    "eq": operator.eq, "ne": operator.ne, "getitem": operator.getitem,
    "int": int, "float": float, "bool": bool, "str": str, "len": len, "round": round,
    "min": min, "max": max, "list": list, "dict": dict, "range": range, "map": map,
    "getattr": getattr,
}.items():
    _builtin(_name, _fn)


@scope.define_pure
def pos_args(*args: Any) -> tuple[Any, ...]:
    """A tuple of its arguments."""
    return args


@scope.define_pure
def identity(obj: Any) -> Any:
    """Its argument."""
    return obj


@scope.define_pure
def tuple_(*args: Any) -> tuple[Any, ...]:
    """A tuple of its arguments."""
    return tuple(args)


_builtin("tuple", tuple_)


@scope.define_pure
def hyperopt_param(label: str, obj: Any) -> Any:
    """The value of a hyperparameter: its prior's draw (nodes of this name are :class:`Param`)."""
    return obj


@scope.define_pure
def switch(pos: int, *args: Any) -> Any:
    """``args[pos]`` (rec_eval evaluates switch nodes lazily, without calling this)."""
    return args[pos]


@scope.define_pure
def _kwswitch_index(kw: Any, names: Sequence[str]) -> int:
    try:
        return list(names).index(kw)
    except ValueError:
        raise BadSearchSpace(f"kwswitch has no option {kw!r}; options: {list(names)}") from None


@scope.define_pure
def exp(a: Any) -> Any:
    return np.exp(a)


@scope.define_pure
def log(a: Any) -> Any:
    return np.log(a)


@scope.define_pure
def pow(a: Any, b: Any) -> Any:  # noqa: A001 - hyperopt's name
    return a**b


@scope.define_pure
def sin(a: Any) -> Any:
    return np.sin(a)


@scope.define_pure
def cos(a: Any) -> Any:
    return np.cos(a)


@scope.define_pure
def tan(a: Any) -> Any:
    return np.tan(a)


@scope.define_pure
def sqrt(x: Any) -> Any:
    return np.sqrt(x)


@scope.define_pure
def sum(x: Any, axis: int | None = None) -> Any:  # noqa: A001 - hyperopt's name
    """``np.sum`` (a Python sum of a list of numbers gives the same)."""
    return np.sum(x) if axis is None else np.sum(x, axis=axis)


@scope.define_pure
def minimum(x: Any, y: Any) -> Any:
    return np.minimum(x, y)


@scope.define_pure
def maximum(x: Any, y: Any) -> Any:
    return np.maximum(x, y)


@scope.define_pure
def array_union1(args: Sequence[Any]) -> np.ndarray:
    """The sorted union of the arrays in ``args``."""
    out: set[Any] = set()
    for a in args:
        out.update(np.asarray(a).ravel().tolist())
    return np.asarray(sorted(out))


@scope.define_pure
def array_union(*args: Any) -> np.ndarray:
    return array_union1(args)


@scope.define_pure
def asarray(a: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)


@scope.define_pure
def str_join(s: str, seq: Sequence[Any]) -> str:
    return s.join(seq)


@scope.define_pure
def bincount(x: Any, offset: int = 0, weights: Any = None, minlength: int = 0,
             p: Any = None) -> np.ndarray:
    """``np.bincount(x - offset)``, at least ``minlength`` long; empty ``x`` gives zeros."""
    x = np.asarray(x, dtype=int)
    if x.size == 0:
        return np.zeros(minlength, dtype=int)
    return np.bincount(x - offset, weights=weights, minlength=minlength)


@scope.define_pure
def repeat(n_times: int, obj: Any) -> list[Any]:
    return [obj] * n_times


@scope.define
def call_method(obj: Any, methodname: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(obj, methodname)(*args, **kwargs)


@scope.define_pure
def call_method_pure(obj: Any, methodname: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(obj, methodname)(*args, **kwargs)


@scope.define_pure
def copy_call_method_pure(obj: Any, methodname: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(copy.copy(obj), methodname)(*args, **kwargs)


@scope.define_pure
def Raise(etype: type[BaseException], *args: Any, **kwargs: Any) -> None:  # noqa: N802
    """Raise ``etype(*args, **kwargs)`` when evaluated (e.g. an invalid switch branch)."""
    raise etype(*args, **kwargs)


@scope.define_info(o_len=2)
def curtime(obj: Any) -> tuple[float, Any]:
    return time.time(), obj


@scope.define
def call(fn: Callable[..., Any], args: Sequence[Any] = (), kwargs: Mapping[str, Any] = {}
         ) -> Any:  # noqa: B006 - never mutated
    """``fn(*args, **kwargs)``: what calling a node builds."""
    return fn(*args, **kwargs)


@scope.define
def callpipe1(fn_list: Sequence[Callable[[Any], Any]], arg: Any) -> Any:
    """``fn_list[-1](... fn_list[1](fn_list[0](arg)))``."""
    for fn in fn_list:
        arg = fn(arg)
    return arg


_partial_count = [0]


@scope.define
def partial(name: Any, *args: Any, **kwargs: Any) -> SymbolTableEntry:
    """A one-argument function: ``name(*args, x, **kwargs)``, registered under a new name."""
    name = getattr(name, "apply_name", name)
    _partial_count[0] += 1
    temp = f"partial_{name}_id{_partial_count[0]}"
    scope.define(Lambda(temp, [("x", p0)], expr=apply(name, *(args + (p0,)), **kwargs)))
    return getattr(scope, temp)
