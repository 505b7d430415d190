"""``fmin(fn, space="annotated")``: the search space written as annotations of ``fn``.

::

    def objective(x: hp.uniform("x", -10, 10), y: hp.choice("y", [1, 2])):
        return x * y

    fmin(objective, space="annotated", algo=tpe.suggest, max_evals=50)
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from hyperq.exceptions import InvalidAnnotatedParameter
from hyperq.pyll.base import Apply


def space_from_annotations(fn: Callable[..., Any]) -> tuple[Callable[[dict[str, Any]], Any],
                                                             dict[str, Apply]]:
    """``(objective taking a dict, space dict)`` built from the ``hp.*`` annotations of ``fn``.

    Raises :class:`InvalidAnnotatedParameter` naming each parameter that is not annotated with
    a search-space expression.
    """
    space: dict[str, Apply] = {}
    bad = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if isinstance(param.annotation, Apply):
            space[name] = param.annotation
        else:
            bad.append(name)
    if bad or not space:
        raise InvalidAnnotatedParameter(
            f"fmin(space='annotated') needs every parameter of {getattr(fn, '__name__', fn)!r} "
            f"annotated with an hp.* expression, e.g. `x: hp.uniform('x', 0, 1)`; "
            f"not annotated so: {bad or 'all (the function has no parameters)'}"
        )

    @functools.wraps(fn)
    def objective(point: dict[str, Any]) -> Any:
        return fn(**point)

    return objective, space
