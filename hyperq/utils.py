"""Small helpers with hyperopt's names (``hyperopt.utils``): working directories, array
membership, dotted-name imports."""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
from typing import Any, Iterator

import numpy as np

from hyperq.base import coarse_utcnow  # noqa: F401 - re-exported under hyperopt's name


def import_tokens(tokens: list[str]) -> Any:
    """Import the longest module prefix of ``tokens`` and return the attribute path after it."""
    for i in range(len(tokens), 0, -1):
        try:
            obj = importlib.import_module(".".join(tokens[:i]))
        except ImportError:
            continue
        for t in tokens[i:]:
            obj = getattr(obj, t)
        return obj
    raise ImportError(f"cannot import {'.'.join(tokens)}")


def json_lookup(json: str) -> Any:
    """The object named by a dotted path, e.g. ``"numpy.random.default_rng"``."""
    return import_tokens(json.split("."))


def json_call(json: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
              ) -> Any:
    """Call the object named by ``json`` (a dotted path, or a dict with ``fn``, ``args``,
    ``kwargs``) with ``args`` and ``kwargs``."""
    kwargs = dict(kwargs or {})
    if isinstance(json, str):
        return json_lookup(json)(*args, **kwargs)
    if isinstance(json, dict):
        fn = json_lookup(json["fn"])
        return fn(*(tuple(json.get("args", ())) + tuple(args)),
                  **{**json.get("kwargs", {}), **kwargs})
    raise TypeError(f"json_call needs a dotted name or a dict with 'fn', got {json!r}")


def get_obj(f: Any, argfile: str | None = None, argstr: str | None = None,
            args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
    """Call ``f`` (a dotted name) with ``args``/``kwargs``, or with the pickled ``(args,
    kwargs)`` in ``argfile`` (a path) or ``argstr`` (bytes)."""
    import pickle

    if argfile is not None:
        with open(argfile, "rb") as fh:
            args, kwargs = pickle.load(fh)
    elif argstr is not None:
        args, kwargs = pickle.loads(argstr)
    return json_call(f, args, kwargs)


def fast_isin(X: Any, Y: Any) -> np.ndarray:  # noqa: N803 - hyperopt's names
    """Boolean mask: which elements of ``X`` occur in ``Y``."""
    return np.isin(np.asarray(X), np.asarray(Y))


def get_most_recent_inds(obj: list[dict[str, Any]]) -> np.ndarray:
    """Indices of the documents with the highest ``version`` per ``_id`` (the last such one on
    ties), in ``_id`` order."""
    best: dict[Any, int] = {}
    for i, doc in enumerate(obj):
        j = best.get(doc["_id"])
        if j is None or doc["version"] >= obj[j]["version"]:
            best[doc["_id"]] = i
    return np.asarray([best[k] for k in sorted(best)], dtype=int)


def use_obj_for_literal_in_memo(expr: Any, obj: Any, lit: Any, memo: dict[Any, Any]
                                ) -> dict[Any, Any]:
    """Set ``memo[node] = obj`` for every literal node of ``expr`` whose value is ``lit``."""
    from hyperq.pyll.base import Literal, dfs

    for node in dfs(expr):
        if isinstance(node, Literal) and node.obj is lit:
            memo[node] = obj
    return memo


@contextlib.contextmanager
def working_dir(dir: str) -> Iterator[None]:  # noqa: A002 - hyperopt's name
    """Run the block with ``dir`` as the current directory."""
    cwd = os.getcwd()
    os.chdir(dir)
    try:
        yield
    finally:
        os.chdir(cwd)


def path_split_all(path: str) -> list[str]:
    """Every component of ``path``: ``"a/b/c"`` -> ``["a", "b", "c"]``."""
    parts: list[str] = []
    while True:
        head, tail = os.path.split(path)
        if tail:
            parts.append(tail)
        if not head or head == path:
            if head:
                parts.append(head)
            break
        path = head
    return parts[::-1]


def get_closest_dir(workdir: str) -> tuple[str, str]:
    """``(closest existing ancestor of workdir, the first missing component below it)``."""
    closest, below = os.curdir, ""
    for part in path_split_all(workdir):
        candidate = os.path.join(closest, part) if closest != os.curdir else part
        if not os.path.isdir(candidate):
            below = part
            break
        closest = candidate
    return closest, below


@contextlib.contextmanager
def temp_dir(dir: str, erase_after: bool = False,  # noqa: A002 - hyperopt's name
             with_sentinel: bool = True) -> Iterator[None]:
    """Create ``dir`` (and parents) for the block; with ``erase_after`` remove what was
    created. ``with_sentinel`` marks the topmost created directory with a ``.inuse`` file
    while the block runs. Paths with ``..`` are refused (``RuntimeError``)."""
    if ".." in path_split_all(dir):
        raise RuntimeError(f"temp_dir refuses paths containing '..': {dir}")
    created_root = None
    sentinel = None
    if not os.path.isdir(dir):
        closest, below = get_closest_dir(dir)
        created_root = os.path.join(closest, below) if closest != os.curdir else below
        if with_sentinel:
            sentinel = created_root + ".inuse"
            open(sentinel, "w").close()
        os.makedirs(dir)
    try:
        yield
    finally:
        if erase_after and created_root is not None:
            shutil.rmtree(created_root, ignore_errors=True)
        if sentinel is not None and os.path.exists(sentinel):
            os.remove(sentinel)
