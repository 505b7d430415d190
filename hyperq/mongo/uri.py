"""Parse the MongoDB addresses that hyperq accepts into a pymongo URI, a database and a collection.

Accepted forms:

- ``mongodb://[user:pass@]host[:port][,host...]/db[?options]`` and ``mongodb+srv://...``:
  every pymongo option in the query string (auth, TLS, replica set, timeouts) is passed through.
  The collection defaults to ``jobs``; ``/db/collection`` or ``?collection=name`` choose another.
- hyperopt's legacy ``mongo://[user:pass@]host:port/db/collection``.
- hyperopt's worker form ``host[:port]/db`` (no scheme); ``host:port/db/collection`` also works.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

DEFAULT_COLLECTION = "jobs"

__all__ = ["MongoTarget", "parse_mongo_uri", "redact_uri", "InvalidMongoURI", "DEFAULT_COLLECTION"]


class InvalidMongoURI(ValueError):
    """The address given for the MongoDB job store cannot be used."""


@dataclass(frozen=True)
class MongoTarget:
    """Where the job store lives: a pymongo connection URI, a database and a collection."""

    uri: str
    database: str
    collection: str = DEFAULT_COLLECTION

    @property
    def display(self) -> str:
        """The address with any password hidden, for logs and error messages."""
        return f"{redact_uri(self.uri)} (collection {self.collection!r})"


_SCHEME_RE = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<rest>.*)$")


def redact_uri(uri: str) -> str:
    """Return ``uri`` with the password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", uri)


def _split_path(rest: str, original: str) -> tuple[str, str, str]:
    """Split ``hosts/path?query`` into (hosts, path, query)."""
    query = ""
    if "?" in rest:
        rest, query = rest.split("?", 1)
    if "/" not in rest:
        raise InvalidMongoURI(
            f"{redact_uri(original)!r} names no database. Add one after the host, "
            "for example mongodb://localhost:27017/hyperq"
        )
    hosts, path = rest.split("/", 1)
    if not hosts:
        raise InvalidMongoURI(f"{redact_uri(original)!r} names no host")
    return hosts, path.strip("/"), query


def _db_and_collection(path: str, query_coll: str | None, original: str) -> tuple[str, str]:
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise InvalidMongoURI(
            f"{redact_uri(original)!r} names no database. Add one after the host, "
            "for example mongodb://localhost:27017/hyperq"
        )
    if len(parts) > 2:
        raise InvalidMongoURI(
            f"{redact_uri(original)!r}: expected /database or /database/collection after the "
            f"host, got /{path}"
        )
    database = parts[0]
    collection = parts[1] if len(parts) == 2 else (query_coll or DEFAULT_COLLECTION)
    if re.search(r"[ .$\"\\]", database):
        raise InvalidMongoURI(f"{redact_uri(original)!r}: {database!r} is not a valid database name")
    return database, collection


def parse_mongo_uri(address: str) -> MongoTarget:
    """Parse any accepted address form (see the module docstring) into a :class:`MongoTarget`.

    Raises :class:`InvalidMongoURI` with the reason and an example of a valid address.
    """
    if not isinstance(address, str) or not address.strip():
        raise InvalidMongoURI(
            "no MongoDB address given; pass one like mongodb://localhost:27017/hyperq"
        )
    address = address.strip()
    match = _SCHEME_RE.match(address)
    if match is None:
        # hyperopt worker form: host[:port]/db[/collection]
        hosts, path, query = _split_path(address, address)
        scheme = "mongodb"
    else:
        scheme = match.group("scheme").lower()
        hosts, path, query = _split_path(match.group("rest"), address)
        if scheme == "mongo":
            scheme = "mongodb"
        elif scheme not in ("mongodb", "mongodb+srv"):
            raise InvalidMongoURI(
                f"{redact_uri(address)!r}: unsupported scheme {scheme!r}; use mongodb://, "
                "mongodb+srv:// or hyperopt's mongo://host:port/db/collection"
            )
    options = parse_qsl(query, keep_blank_values=True)
    query_coll = None
    kept = []
    for key, value in options:
        if key.lower() == "collection":
            query_coll = value
        else:
            kept.append((key, value))
    database, collection = _db_and_collection(path, query_coll, address)
    uri = f"{scheme}://{hosts}/{database}"
    if kept:
        uri += "?" + urlencode(kept, safe=",:/")
    return MongoTarget(uri=uri, database=database, collection=collection)
