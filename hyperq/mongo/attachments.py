"""Dict-like views of attachments stored in GridFS.

Values that are ``bytes`` are stored as they are and read back as ``bytes`` (as in hyperopt);
``str`` values come back as ``str``; anything else is pickled and unpickled transparently.
"""
from __future__ import annotations

import pickle
from collections.abc import MutableMapping
from typing import Any, Iterator

from .store import JobStore

__all__ = ["GridFSAttachments", "encode_value", "decode_value"]

_RAW, _TEXT, _PICKLE = b"R", b"T", b"P"


def encode_value(value: Any) -> bytes:
    """Serialize an attachment value with a one-byte type tag."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _RAW + bytes(value)
    if isinstance(value, str):
        return _TEXT + value.encode("utf-8")
    return _PICKLE + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def decode_value(data: bytes) -> Any:
    """Inverse of :func:`encode_value`."""
    tag, body = data[:1], data[1:]
    if tag == _RAW:
        return body
    if tag == _TEXT:
        return body.decode("utf-8")
    if tag == _PICKLE:
        return pickle.loads(body)
    return data  # written by something else: hand back the raw bytes


class GridFSAttachments(MutableMapping):
    """Attachments whose GridFS filenames start with ``prefix``; keys are the rest."""

    def __init__(self, store: JobStore, prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    def __getitem__(self, name: str) -> Any:
        try:
            return decode_value(self._store.get_attachment(self._prefix + name))
        except KeyError:
            raise KeyError(name) from None

    def __setitem__(self, name: str, value: Any) -> None:
        self._store.put_attachment(self._prefix + name, encode_value(value))

    def __delitem__(self, name: str) -> None:
        try:
            self._store.delete_attachment(self._prefix + name)
        except KeyError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        return iter([f[n:] for f in self._store.attachment_names(self._prefix)])

    def __len__(self) -> int:
        return len(self._store.attachment_names(self._prefix))

    def __repr__(self) -> str:
        return f"GridFSAttachments({self._prefix!r}, {sorted(self)!r})"
