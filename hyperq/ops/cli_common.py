"""Options, store opening and error handling shared by the operator commands."""
from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from hyperq.mongo.store import JobStore

from .connection import URI_ENVVARS, open_store, translate_error
from .errors import OpsError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["connect", "echo_json", "fail", "handle_errors", "json_option", "store_options"]


def store_options(fn: F) -> F:
    """Add ``--mongo`` (env ``HYPERQ_MONGO_URI`` or ``HYPERQ_MONGO``) and ``--timeout``."""
    fn = click.option(
        "--timeout", type=float, default=5.0, show_default=True,
        help="Seconds to wait for the server before giving up (exit code 3).")(fn)
    fn = click.option(
        "--mongo", "mongo", envvar=list(URI_ENVVARS), metavar="URI",
        help="Job store, e.g. mongodb://USER:PASS@HOST:27017/DB?authSource=admin (same forms "
             f"as hyperq-worker). [env {URI_ENVVARS[0]} or {URI_ENVVARS[1]}]")(fn)
    return fn


def json_option(fn: F) -> F:
    """Add ``--json`` (machine-readable output)."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of a table (for scripts).")(fn)


def connect(mongo: str | None, timeout: float) -> JobStore:
    """Open the job store, turning every failure into an :class:`OpsError`."""
    return open_store(mongo, timeout=timeout)


def fail(err: OpsError) -> None:
    """Print ``err`` on stderr and exit with its code."""
    click.echo(f"hyperq: error: {err}", err=True)
    raise click.exceptions.Exit(err.exit_code)


def handle_errors(fn: F) -> F:
    """Report errors as one clear line on stderr and the documented exit code, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # output piped into `head` and friends: stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:
            log.debug("command failed", exc_info=True)
            fail(translate_error(exc))

    return wrapper  # type: ignore[return-value]


def echo_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout."""
    from .output import dumps

    click.echo(dumps(obj))
