"""Exit codes of the operator commands and the errors that carry them.

=====  ==================================================================================
code   meaning
=====  ==================================================================================
0      success
1      failed or aborted (a refused confirmation, an unexpected server error)
2      usage error: bad option or a MongoDB URI that cannot be parsed
3      the MongoDB server cannot be reached (down, wrong host or port, firewall, TLS)
4      the server refused the credentials, or the user lacks a role the command needs
5      not found: unknown exp_key or trial id
6      nothing to show: the experiment has no trial that matches (e.g. no successful trial
       for ``hyperq best``)
=====  ==================================================================================

``hyperq worker-health`` uses Docker's convention instead: 0 healthy, 1 unhealthy.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_NOT_FOUND = 5
EXIT_EMPTY = 6

__all__ = [
    "EXIT_AUTH",
    "EXIT_EMPTY",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "NotFound",
    "NothingToShow",
    "OpsError",
]


class OpsError(Exception):
    """An operator command failed; ``exit_code`` is the process exit status to use."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class NotFound(OpsError):
    """An experiment or trial named on the command line does not exist."""

    exit_code = EXIT_NOT_FOUND


class NothingToShow(OpsError):
    """The experiment exists but has nothing that matches the request."""

    exit_code = EXIT_EMPTY
