"""Open the job store for an operator command: short timeouts, and errors that say what to fix."""
from __future__ import annotations

import logging
import re

from pymongo.errors import ConfigurationError, ConnectionFailure, InvalidURI, OperationFailure

from hyperq.mongo.store import AuthenticationFailed, JobStore, StoreUnavailable, connect_store
from hyperq.mongo.uri import InvalidMongoURI, parse_mongo_uri, redact_uri

from .errors import EXIT_AUTH, EXIT_ERROR, EXIT_UNREACHABLE, EXIT_USAGE, OpsError

log = logging.getLogger(__name__)

URI_ENVVARS = ("HYPERQ_MONGO_URI", "HYPERQ_MONGO")
"""Environment variables read for ``--mongo``, first found wins (the worker reads the second)."""

__all__ = ["URI_ENVVARS", "open_store", "translate_error"]

_AUTH_CODES = {13, 18}  # Unauthorized, AuthenticationFailed


def open_store(address: str | None, timeout: float = 5.0) -> JobStore:
    """Connect to the job store at ``address`` and ping it, within ``timeout`` seconds.

    Raises :class:`~hyperq.ops.errors.OpsError` with exit code 2 (no or bad URI),
    3 (unreachable) or 4 (credentials refused).
    """
    if not address:
        raise OpsError(
            "no MongoDB address: pass --mongo mongodb://USER:PASSWORD@HOST:27017/DB or set "
            f"{URI_ENVVARS[0]}",
            EXIT_USAGE,
        )
    try:
        target = parse_mongo_uri(address)
    except InvalidMongoURI as exc:
        raise OpsError(f"bad MongoDB URI: {exc}", EXIT_USAGE) from None
    try:
        return connect_store(
            target,
            reconnect_timeout=timeout,
            server_selection_timeout_ms=max(1, int(timeout * 1000)),
        )
    except ValueError as exc:  # pymongo's URI parser: bad port, unescaped password, ...
        raise OpsError(f"bad MongoDB URI {target.display}: {exc}", EXIT_USAGE) from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes an OpsError with a code
        raise translate_error(exc, redact_uri(target.uri)) from None


def _short(exc: BaseException) -> str:
    """pymongo's message without the timeout settings and topology description."""
    text = re.sub(r" \(configured timeouts:[^)]*\)", "", str(exc))
    return re.sub(r", Timeout: .*?>\]>", "", text, flags=re.DOTALL)


def translate_error(exc: BaseException, where: str = "the MongoDB server") -> OpsError:
    """Turn a pymongo or store exception into an :class:`OpsError` with a fitting exit code."""
    if isinstance(exc, OpsError):
        return exc
    if isinstance(exc, (InvalidURI, ConfigurationError)):
        return OpsError(
            f"bad MongoDB URI or options ({exc}); check the host names, the options after '?' "
            "and, for mongodb+srv://, that the DNS SRV record exists",
            EXIT_USAGE,
        )
    if isinstance(exc, AuthenticationFailed):
        return OpsError(str(exc), EXIT_AUTH)
    if isinstance(exc, OperationFailure) and (
        exc.code in _AUTH_CODES or "auth" in str(exc).lower()
    ):
        return OpsError(
            f"{where} refused the request: {exc}. Check the user and password in the URI, "
            "authSource (often ?authSource=admin) and that the user has the readWrite role on "
            "the database",
            EXIT_AUTH,
        )
    if isinstance(exc, StoreUnavailable):
        return OpsError(f"{_short(exc)} (--timeout sets how long to try)", EXIT_UNREACHABLE)
    if isinstance(exc, ConnectionFailure):
        text = _short(exc)
        return OpsError(
            f"cannot reach {where}: {text}. Is the server running, and are the host, port and "
            "TLS options right? (--timeout sets how long to try)",
            EXIT_UNREACHABLE,
        )
    return OpsError(f"{type(exc).__name__}: {exc}", EXIT_ERROR)
