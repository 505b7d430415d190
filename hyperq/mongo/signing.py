"""HMAC signing of the payloads that workers execute (the cloudpickled domain).

Workers run code read from the database. With a shared secret (``secret=`` on
:class:`~hyperq.mongo.trials.MongoTrials`, ``--secret`` on the worker, or the ``HYPERQ_SECRET``
environment variable on both sides), the driver signs the domain and a worker refuses any domain
whose signature is missing or does not match, before unpickling anything.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any, Mapping

SECRET_ENV = "HYPERQ_SECRET"

__all__ = ["SECRET_ENV", "SignatureError", "resolve_secret", "sign", "verify", "content_hash",
           "sign_trial", "verify_trial"]


class SignatureError(RuntimeError):
    """A payload's signature is missing or wrong: it was not written by a holder of the secret."""


def resolve_secret(secret: str | bytes | None = None) -> bytes | None:
    """Return the secret to use: ``secret`` if given, else ``$HYPERQ_SECRET``, else ``None``."""
    if secret is None:
        secret = os.environ.get(SECRET_ENV) or None
    if secret is None:
        return None
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        return None
    return secret


def content_hash(payload: bytes) -> str:
    """The SHA-256 hex digest that addresses ``payload`` in GridFS."""
    return hashlib.sha256(payload).hexdigest()


def sign(payload: bytes, secret: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``payload`` under ``secret``."""
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def verify(payload: bytes, signature: str | None, secret: bytes, what: str = "payload") -> None:
    """Raise :class:`SignatureError` unless ``signature`` is the HMAC of ``payload``."""
    if not signature:
        raise SignatureError(
            f"refusing to run an unsigned {what}: this worker has a secret (--secret or "
            f"${SECRET_ENV}) but the driver stored the {what} without a signature. Give the "
            "driver the same secret (MongoTrials(..., secret=...) or $HYPERQ_SECRET)."
        )
    expected = sign(payload, secret).encode("ascii")
    given = signature.encode("utf-8", "replace") if isinstance(signature, str) else b""
    if not hmac.compare_digest(expected, given):
        raise SignatureError(
            f"refusing to run the {what}: its HMAC signature does not match. Either it was "
            "altered in the database or the driver and this worker use different secrets."
        )


def _canonical(value: Any) -> Any:
    """Plain JSON-able values, equal before and after a trip through BSON."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            return _canonical(value.item())
        except (TypeError, ValueError):
            pass
    return value


def trial_payload(doc: Mapping[str, Any]) -> bytes:
    """What a trial's signature covers: its experiment, tid, domain and parameter values."""
    misc = doc.get("misc") or {}
    body = {"exp_key": doc.get("exp_key"), "tid": doc.get("tid"),
            "cmd": _canonical(misc.get("cmd")), "vals": _canonical(misc.get("vals") or {})}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=repr).encode("utf-8")


def sign_trial(doc: Mapping[str, Any], secret: bytes) -> str:
    """The HMAC that lets a worker check a trial's experiment, tid, domain and parameters."""
    return sign(trial_payload(doc), secret)


def verify_trial(doc: Mapping[str, Any], secret: bytes) -> None:
    """Raise :class:`SignatureError` unless the trial's ``misc.sig`` matches its content."""
    signature = (doc.get("misc") or {}).get("sig")
    verify(trial_payload(doc), signature, secret,
           what=f"trial {doc.get('tid')} (experiment, tid, domain and parameters)")
