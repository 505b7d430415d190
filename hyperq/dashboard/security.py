"""Who may see the dashboard and who may act on the trials.

- Without a token the dashboard is read-only, and it only listens on the loopback interface:
  anyone who can reach a port on this machine can read it, nobody can change anything.
- With a token (``--token`` or ``$HYPERQ_DASHBOARD_TOKEN``) every page and every API call needs
  it, and the actions (re-queue, cancel) are enabled. A browser signs in once on ``/login``;
  that sets an HttpOnly, SameSite=Strict cookie. Scripts send ``Authorization: Bearer TOKEN``.
- Listening on anything but 127.0.0.1 / ::1 / localhost needs a token.
- Actions are POSTs with a JSON body and an ``X-Hyperq-Action`` header, which a page on another
  site cannot send without a CORS preflight that this server never grants (no CSRF).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

__all__ = ["COOKIE", "TOKEN_ENV", "InsecureBind", "check_bind", "is_loopback", "token_matches",
           "cookie_value"]

TOKEN_ENV = "HYPERQ_DASHBOARD_TOKEN"
COOKIE = "hyperq_dashboard"
MIN_TOKEN_LENGTH = 12


class InsecureBind(ValueError):
    """The dashboard was asked to listen on a network address without a token."""


def is_loopback(host: str) -> bool:
    """Is ``host`` only reachable from this machine?"""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a network-facing address without a token, and tokens too short to be one."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise InsecureBind(
            f"the token is {len(token)} characters long; use at least {MIN_TOKEN_LENGTH}, e.g. "
            f"{secrets.token_urlsafe(24)}")
    if not is_loopback(host) and not token:
        raise InsecureBind(
            f"listening on {host} would show the trials to the network without a password: "
            f"pass --token (or set ${TOKEN_ENV}), e.g. --token {secrets.token_urlsafe(24)}, "
            "or listen on 127.0.0.1 and use an SSH tunnel")


def cookie_value(token: str) -> str:
    """What the sign-in cookie holds: a hash of the token, so the token itself is not stored
    in the browser."""
    return hashlib.sha256(b"hyperq-dashboard:" + token.encode()).hexdigest()


def token_matches(token: str, given: str | None) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return given is not None and hmac.compare_digest(token.encode(), given.encode())
