"""Operator commands for a hyperq MongoDB cluster: ``hyperq status``, ``workers``, ``best``,
``trials``, ``requeue``, ``cancel``, ``delete``, ``export`` and ``worker-health``.

Modules: ``errors`` (exit codes and the errors that carry them), ``connection`` (opening the
job store with short timeouts and clear errors), ``queries`` (read-only questions about
experiments, trials and workers), ``actions`` (requeue, cancel, delete), ``params`` (the best
trial's parameters as the objective saw them), ``health`` (the worker container health check),
``output`` (tables, JSON, CSV/JSONL export) and ``commands`` (the click commands).
"""
from __future__ import annotations

from .errors import (
    EXIT_AUTH,
    EXIT_EMPTY,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    OpsError,
)

__all__ = [
    "EXIT_AUTH",
    "EXIT_EMPTY",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "OpsError",
]
