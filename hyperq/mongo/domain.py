"""Publishing the domain (objective + space) to workers and loading it back, safely.

The driver cloudpickles the :class:`~hyperq.base.Domain` once per experiment and stores it in
GridFS under its SHA-256 (so an unchanged domain is stored once, and a worker caches it by that
hash). The metadata records the Python and cloudpickle versions and, when a secret is
configured, an HMAC signature. Before unpickling, a worker checks the hash, then the signature.
"""
from __future__ import annotations

import logging
import platform
from collections import OrderedDict
from typing import Any

import cloudpickle

from .signing import SignatureError, content_hash, sign, verify
from .store import JobStore

log = logging.getLogger(__name__)

__all__ = ["DomainLoadError", "publish_domain", "DomainCache", "runtime_versions"]


class DomainLoadError(RuntimeError):
    """The stored domain could not be loaded by this worker (missing, corrupt, or versions)."""


def runtime_versions() -> dict[str, str]:
    """The versions that must match between driver and workers for cloudpickle to work."""
    from hyperq.version import __version__

    return {
        "python": platform.python_version(),
        "cloudpickle": cloudpickle.__version__,
        "hyperq": __version__,
    }


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def publish_domain(store: JobStore, domain: Any, secret: bytes | None, exp_key: Any) -> str:
    """Cloudpickle ``domain`` into GridFS (once per content hash); return the hash."""
    payload = cloudpickle.dumps(domain)
    key = content_hash(payload)
    metadata: dict[str, Any] = {"kind": "domain", "exp_key": exp_key, **runtime_versions()}
    metadata["signature"] = sign(payload, secret) if secret else None
    store.put_domain(key, payload, metadata)
    store.set_experiment_domain(exp_key, key, runtime_versions())
    return key


class DomainCache:
    """A worker's cache of the ``max_size`` most recently used domains, by content hash."""

    def __init__(self, store: JobStore, secret: bytes | None, max_size: int = 8) -> None:
        self._store = store
        self._secret = secret
        self._max_size = max_size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, key: str) -> Any:
        """The domain stored under ``key``.

        Raises :class:`~hyperq.mongo.signing.SignatureError` when a secret is set and the
        domain is unsigned or altered, and :class:`DomainLoadError` for every other failure.
        """
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            payload, meta = self._store.get_domain(key)
        except KeyError:
            raise DomainLoadError(
                f"the domain {key[:12]}... this trial needs is not in GridFS "
                f"({self._store.target.display}); was it deleted?"
            ) from None
        if content_hash(payload) != key:
            if self._secret:
                raise SignatureError(
                    f"refusing to run the domain {key[:12]}...: its content does not match its "
                    "hash, so it was altered in the database"
                )
            raise DomainLoadError(f"the stored domain {key[:12]}... is corrupt (hash mismatch)")
        if self._secret:
            verify(payload, meta.get("signature"), self._secret, what="domain")
        elif meta.get("signature") and "nosecret" not in self._warned:
            self._warned.add("nosecret")
            log.warning(
                "the domain is signed but this worker has no secret, so it cannot check the "
                "signature; pass --secret or set HYPERQ_SECRET"
            )
        mine = runtime_versions()
        mismatch = [
            f"{name} {meta.get(name)} (driver) vs {mine[name]} (worker)"
            for name in ("python", "cloudpickle")
            if meta.get(name) and _minor(str(meta.get(name))) != _minor(mine[name])
        ]
        try:
            domain = cloudpickle.loads(payload)
        except Exception as exc:
            hint = (
                "; versions differ: " + ", ".join(mismatch) + ". Run workers with the same "
                "Python and cloudpickle versions as the driver"
                if mismatch
                else "; make sure the worker can import every module the objective uses"
            )
            raise DomainLoadError(
                f"cannot unpickle the domain: {type(exc).__name__}: {exc}{hint}"
            ) from exc
        if mismatch and key not in self._warned:
            self._warned.add(key)
            log.warning("domain loaded, but versions differ: %s", ", ".join(mismatch))
        self._cache[key] = domain
        while len(self._cache) > self._max_size:
            self._cache.popitem(last=False)
        return domain
