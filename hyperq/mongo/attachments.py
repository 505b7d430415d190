"""Dict-like views of attachments: files in GridFS, named on the document that owns them.

A trial's attachments are named in the trial document's ``att`` map (escaped name -> file id),
an experiment's in its record in ``<collection>.experiments``. Writing one uploads a new file,
then points the name at it with one atomic update of the owner; for the trial a worker holds,
that update is fenced by the lease (:class:`~hyperq.mongo.job.LeasedJob`), so a worker that
lost its lease can never replace what the re-run wrote. The file the name pointed to before is
deleted afterwards.

Values: ``bytes`` are stored as they are and read back as ``bytes`` (as in hyperopt), ``str``
comes back as ``str``, anything else is pickled. With a secret, pickles are signed (HMAC) when
written and an unsigned or altered pickle is refused, never unpickled.
"""
from __future__ import annotations

import hmac
import pickle
from collections.abc import MutableMapping
from typing import Any, Iterator

from pymongo.collection import Collection

from .blobs import Blobs, escape_exp_key
from .job import LeasedJob, escape_key, unescape_key
from .signing import SignatureError, sign

__all__ = ["AttachmentMap", "encode_value", "decode_value"]

_RAW, _TEXT, _PICKLE, _SIGNED = b"R", b"T", b"P", b"S"


def encode_value(value: Any, secret: bytes | None = None) -> bytes:
    """Serialize an attachment value with a one-byte type tag (pickles signed if ``secret``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _RAW + bytes(value)
    if isinstance(value, str):
        return _TEXT + value.encode("utf-8")
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if secret:
        return _SIGNED + sign(body, secret).encode("ascii") + body
    return _PICKLE + body


def decode_value(data: bytes, secret: bytes | None = None) -> Any:
    """Inverse of :func:`encode_value`; with ``secret``, only signed pickles are unpickled."""
    tag, body = data[:1], data[1:]
    if tag == _RAW:
        return body
    if tag == _TEXT:
        return body.decode("utf-8")
    if tag == _SIGNED:
        signature, body = body[:64], body[64:]
        if secret is None:
            raise SignatureError("refusing to unpickle a signed attachment without the secret "
                                 "to check it: pass secret= or set HYPERQ_SECRET")
        if not hmac.compare_digest(signature, sign(body, secret).encode("ascii")):
            raise SignatureError("refusing to unpickle an attachment whose signature does not "
                                 "match: it was altered, or written with another secret")
        return pickle.loads(body)
    if tag == _PICKLE:
        if secret is not None:
            raise SignatureError("refusing to unpickle an unsigned attachment: a secret is set, "
                                 "so pickled attachments must be signed by a holder of it")
        return pickle.loads(body)
    return data  # written by something else: hand back the raw bytes


class AttachmentMap(MutableMapping):
    """The attachments named on one owner document (a trial or an experiment record)."""

    def __init__(self, blobs: Blobs, owner: Collection, owner_filter: dict[str, Any],
                 exp_key: Any, tid: Any = None, *, job: LeasedJob | None = None,
                 secret: bytes | None = None, create_owner: bool = False) -> None:
        self._blobs, self._owner, self._filter = blobs, owner, owner_filter
        self._exp_key, self._tid, self._job = exp_key, tid, job
        self._secret, self._create_owner = secret, create_owner

    def _pointers(self) -> dict[str, Any]:
        conn = self._blobs.conn
        doc = conn.retry(lambda: self._owner.find_one(self._filter, {"att": 1}),
                         "read attachment names")
        return {unescape_key(k): v for k, v in ((doc or {}).get("att") or {}).items()}

    def __getitem__(self, name: str) -> Any:
        file_id = self._pointers().get(name)
        if file_id is None:
            raise KeyError(name)
        try:
            return decode_value(self._blobs.read_file(file_id), self._secret)
        except KeyError:
            raise KeyError(name) from None

    def __setitem__(self, name: str, value: Any) -> None:
        where = f"att/{escape_exp_key(self._exp_key)}/{'exp' if self._tid is None else self._tid}"
        meta = {"kind": "attachment", "exp_key": self._exp_key, "tid": self._tid, "name": name}
        file_id = self._blobs.put_file(encode_value(value, self._secret), f"{where}/{name}", meta)
        try:
            old = self._link(name, file_id)
        except BaseException:
            self._blobs.delete_file(file_id)
            raise
        if old is not None and old != file_id:
            self._blobs.delete_file(old)

    def _link(self, name: str, file_id: Any) -> Any:
        if self._job is not None:
            return self._job.link_attachment(name, file_id)
        field = f"att.{escape_key(name)}"
        conn = self._blobs.conn
        old = conn.retry(lambda: self._owner.find_one_and_update(
            self._filter, {"$set": {field: file_id}}, projection={"att": 1},
            upsert=self._create_owner), "link an attachment")
        if old is None and not self._create_owner:
            raise KeyError(f"the document owning attachment {name!r} does not exist")
        return ((old or {}).get("att") or {}).get(escape_key(name))

    def __delitem__(self, name: str) -> None:
        if name not in self._pointers():
            raise KeyError(name)
        if self._job is not None:
            old = self._job.unlink_attachment(name)
        else:
            conn = self._blobs.conn
            doc = conn.retry(lambda: self._owner.find_one_and_update(
                self._filter, {"$unset": {f"att.{escape_key(name)}": ""}},
                projection={"att": 1}), "unlink an attachment")
            old = ((doc or {}).get("att") or {}).get(escape_key(name))
        if old is None:
            raise KeyError(name)
        self._blobs.delete_file(old)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._pointers()))

    def __len__(self) -> int:
        return len(self._pointers())

    def __repr__(self) -> str:
        return f"AttachmentMap({sorted(self)!r})"
