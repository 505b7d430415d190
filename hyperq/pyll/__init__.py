"""The search-space expression graph (hyperopt's ``pyll``): ``scope``, ``as_apply``, ``rec_eval``."""
from hyperq.pyll import stochastic
from hyperq.pyll.base import Apply, Expr, Literal, Param, Switch, as_apply, dfs, rec_eval, scope

__all__ = ["Apply", "Expr", "Literal", "Param", "Switch", "as_apply", "dfs", "rec_eval", "scope",
           "stochastic"]
