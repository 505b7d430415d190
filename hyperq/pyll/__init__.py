"""The search-space expression graph (hyperopt's ``pyll``): ``scope``, ``as_apply``, ``rec_eval``."""
from hyperq.pyll import base, stochastic
from hyperq.pyll.base import (
    Apply, Expr, Lambda, Literal, Param, Switch, as_apply, clone, clone_merge, dfs, rec_eval,
    scope, toposort,
)

__all__ = ["Apply", "Expr", "Lambda", "Literal", "Param", "Switch", "as_apply", "base", "clone",
           "clone_merge", "dfs", "rec_eval", "scope", "stochastic", "toposort"]
