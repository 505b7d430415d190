"""A trial's parameters as the objective saw them: ``space_eval`` with the stored domain.

Loading the domain unpickles code from the database, exactly as a worker does, so the database
is a trust boundary: the domain is loaded only with a secret (``--secret`` or
``$HYPERQ_SECRET``), which checks its HMAC signature first and refuses an unsigned or altered
domain, or when the operator says they trust whoever can write the database
(``--trust-domain``). Otherwise, and always with ``--raw``, only the raw values are shown.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hyperq.base import values_from_misc_vals
from hyperq.mongo.domain import DomainCache
from hyperq.mongo.store import JobStore

log = logging.getLogger(__name__)

__all__ = ["TrialParams", "UNTRUSTED_DOMAIN", "raw_values", "trial_parameters"]

#: why a domain is not loaded without a secret or --trust-domain
UNTRUSTED_DOMAIN = ("not loading the stored domain: it is pickled code from the database and no "
                    "secret was given to verify its signature; pass --secret (or set "
                    "$HYPERQ_SECRET), or --trust-domain if you trust everyone who can write "
                    "this database")


@dataclass
class TrialParams:
    """The raw values of a trial and, when the domain could be loaded, what the objective got."""

    values: dict[str, Any]
    evaluated: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Were the values turned into the objective's arguments?"""
        return self.error is None


def raw_values(doc: dict[str, Any]) -> dict[str, Any]:
    """``{label: value}`` for the labels active in the trial (``misc.vals``)."""
    return values_from_misc_vals((doc.get("misc") or {}).get("vals") or {})


def _domain_key(store: JobStore, doc: dict[str, Any]) -> str | None:
    cmd = (doc.get("misc") or {}).get("cmd") or []
    if isinstance(cmd, (list, tuple)) and len(cmd) == 2 and cmd[0] == "domain_attachment":
        key = str(cmd[1])
        if len(key) == 64:
            return key
    return store.experiment_domain(doc.get("exp_key"))


def trial_parameters(store: JobStore, doc: dict[str, Any], secret: bytes | None = None,
                     load_domain: bool = True, trust_domain: bool = False) -> TrialParams:
    """The parameters of trial ``doc``, evaluated through the domain the driver stored.

    The domain is unpickled only when ``secret`` is given (its signature is checked first) or
    ``trust_domain`` is true. Never raises for a domain problem: ``error`` then says why only
    raw values are shown.
    """
    from hyperq.fmin import space_eval

    params = TrialParams(values=raw_values(doc))
    if not load_domain:
        params.error = "not loading the domain (--raw)"
        return params
    if not secret and not trust_domain:
        params.error = UNTRUSTED_DOMAIN
        return params
    key = _domain_key(store, doc)
    if not key:
        params.error = ("the driver stored no domain for this experiment (it was not queued by "
                        "fmin with MongoTrials)")
        return params
    try:
        domain = DomainCache(store, secret).get(key)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, raw values still shown
        params.error = f"cannot load the stored domain: {exc}"
        return params
    try:
        params.evaluated = space_eval(domain.expr, params.values)
    except Exception as exc:  # noqa: BLE001
        params.error = f"space_eval failed on the stored domain: {type(exc).__name__}: {exc}"
    return params
