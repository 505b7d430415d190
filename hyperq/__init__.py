"""hyperq: distributed hyperparameter optimization with the hyperopt API.

Change ``hyperopt`` to ``hyperq`` in your imports::

    from hyperq import fmin, tpe, hp, Trials, STATUS_OK, space_eval
"""
from __future__ import annotations

from typing import Any

from hyperq import (
    anneal, atpe, early_stop, exceptions, grid, hp, pruners, pyll, pyll_utils, rand, tpe,
)
from hyperq.base import (
    JOB_STATE_CANCEL, JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_NEW, JOB_STATE_RUNNING,
    JOB_STATES, STATUS_FAIL, STATUS_NEW, STATUS_OK, STATUS_RUNNING, STATUS_STRINGS,
    STATUS_PRUNED, STATUS_SUSPENDED, Ctrl, Domain, Trials, trials_from_docs,
)
from hyperq.exceptions import (
    AllTrialsFailed, BadSearchSpace, DuplicateLabel, InvalidAnnotatedParameter, InvalidLoss,
    InvalidResultStatus, InvalidTrial,
)
from hyperq.asktell import AskedTrial, AskTell
from hyperq.fmin import (
    fmin, fmin_pass_expr_memo_ctrl, generate_trials_to_calculate, partial, space_eval,
)
from hyperq.intermediate import TrialHandle, TrialPruned, get_trial
from hyperq.process import ProcessTrials
from hyperq.version import __version__
from hyperq._hyperopt_alias import install_as_hyperopt, install_from_environment

__all__ = [
    "fmin", "space_eval", "hp", "tpe", "rand", "anneal", "atpe", "grid", "pyll", "pyll_utils",
    "early_stop",
    "exceptions", "Trials", "Domain", "Ctrl", "trials_from_docs",
    "generate_trials_to_calculate", "fmin_pass_expr_memo_ctrl", "partial", "FMinIter",
    "MongoTrials", "SparkTrials", "report", "ProcessTrials",
    "STATUS_NEW", "STATUS_RUNNING", "STATUS_SUSPENDED", "STATUS_OK", "STATUS_FAIL",
    "STATUS_STRINGS", "JOB_STATE_NEW", "JOB_STATE_RUNNING", "JOB_STATE_DONE",
    "JOB_STATE_ERROR", "JOB_STATE_CANCEL", "JOB_STATES", "AllTrialsFailed", "BadSearchSpace",
    "DuplicateLabel", "InvalidAnnotatedParameter", "InvalidLoss", "InvalidResultStatus", "InvalidTrial", "__version__",
    "install_as_hyperopt",
    "pruners", "AskTell", "AskedTrial", "get_trial", "TrialHandle", "TrialPruned", "STATUS_PRUNED",
]


def __getattr__(name: str) -> Any:
    # Backends with heavy or optional dependencies load on first use.
    if name == "MongoTrials":
        from hyperq.mongo.trials import MongoTrials

        return MongoTrials
    if name == "report":  # issue 7: hyperq.report(trials, path)
        from hyperq.reporting import report

        return report
    if name == "FMinIter":
        from hyperq.fmin_iter import FMinIter

        return FMinIter
    if name == "SparkTrials":
        from hyperq.spark import SparkTrials

        return SparkTrials
    if not name.startswith("_"):  # submodules load on first use: hyperq.utils, hyperq.spark, ...
        import importlib
        import importlib.util

        if importlib.util.find_spec(f"hyperq.{name}") is not None:
            return importlib.import_module(f"hyperq.{name}")
    raise AttributeError(f"module 'hyperq' has no attribute {name!r}")


install_from_environment()  # HYPERQ_AS_HYPEROPT=1: a worker of a driver that called it
