"""Blobs in GridFS: published domains (content-addressed) and attachment files.

A domain is stored once under ``domain:<sha256>``; an upload that a lost connection cut short
leaves chunks without a files document, which the next upload clears instead of tripping
over them. Attachment files get a fresh id each time and are tagged with their experiment in
their metadata; which file an attachment name means is recorded on the owning document (see
:mod:`hyperq.mongo.attachments`), never decided by upload dates.
"""
from __future__ import annotations

import logging
from typing import Any

import gridfs
from bson import ObjectId

from .connection import Connection

log = logging.getLogger(__name__)

DOMAIN_PREFIX = "domain:"

__all__ = ["Blobs", "DOMAIN_PREFIX", "escape_exp_key"]


def escape_exp_key(exp_key: Any) -> str:
    """``exp_key`` as one path segment of a file name (``/`` and ``%`` escaped)."""
    return str(exp_key).replace("%", "%25").replace("/", "%2F")


class Blobs:
    """GridFS operations of one :class:`Connection`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.fs = conn.fs

    # -- domains -----------------------------------------------------------------------------
    def put_domain(self, key: str, payload: bytes, metadata: dict[str, Any]) -> None:
        """Store a domain under its content hash ``key`` (no-op if already complete)."""
        file_id = DOMAIN_PREFIX + key

        def do() -> None:
            for _ in range(3):
                if self.fs.exists(file_id):
                    return
                # chunks without a files document: an earlier upload was cut off; clear them
                self.conn.fs_chunks.delete_many({"files_id": file_id})
                try:
                    self.fs.put(payload, _id=file_id, filename=file_id, metadata=metadata)
                    return
                except gridfs.errors.FileExists:
                    continue  # someone else uploaded it meanwhile, or chunks reappeared
            if not self.fs.exists(file_id):
                raise RuntimeError(f"could not store the domain {key[:12]}... in GridFS")

        self.conn.retry(do, "store the domain")

    def get_domain(self, key: str) -> tuple[bytes, dict[str, Any]]:
        """A domain's bytes and metadata; ``KeyError`` if absent."""

        def do() -> tuple[bytes, dict[str, Any]]:
            try:
                grid_out = self.fs.get(DOMAIN_PREFIX + key)
            except gridfs.errors.NoFile:
                raise KeyError(key) from None
            return grid_out.read(), dict(grid_out.metadata or {})

        return self.conn.retry(do, "read the domain")

    def set_experiment_domain(self, exp_key: Any, key: str, metadata: dict[str, Any]) -> None:
        """Record ``key`` as the current domain of ``exp_key``."""
        self.conn.retry(lambda: self.conn.experiments.update_one(
            {"_id": f"exp:{exp_key}"},
            {"$set": {"exp_key": exp_key, "domain": key, **metadata},
             "$currentDate": {"updated": True}}, upsert=True), "record the experiment's domain")

    def experiment_domain(self, exp_key: Any) -> str | None:
        """The domain key last published for ``exp_key``, or ``None``."""
        doc = self.conn.retry(lambda: self.conn.experiments.find_one(
            {"_id": f"exp:{exp_key}"}, {"domain": 1}), "read the experiment")
        return doc.get("domain") if doc else None

    def domain_in_use(self, key: str) -> bool:
        """Does any trial or experiment still name domain ``key``?"""
        return bool(self.conn.retry(lambda: self.conn.jobs.find_one(
            {"misc.cmd": key}, {"_id": 1}) or self.conn.experiments.find_one(
            {"domain": key}, {"_id": 1}), "check a domain's users"))

    def delete_domain(self, key: str) -> bool:
        """Delete domain ``key`` (files document and chunks); ``True`` if it existed."""
        file_id = DOMAIN_PREFIX + key
        existed = self.conn.retry(lambda: self.fs.exists(file_id), "check a domain")
        self.conn.retry(lambda: self.fs.delete(file_id), "delete a domain")
        return bool(existed)

    # -- attachment files --------------------------------------------------------------------
    def put_file(self, data: bytes, filename: str, metadata: dict[str, Any]) -> Any:
        """Upload ``data`` as a new file; returns its id (retried without duplicates)."""
        file_id = ObjectId()

        def do() -> None:
            try:
                self.fs.put(data, _id=file_id, filename=filename, metadata=metadata)
            except gridfs.errors.FileExists:
                if not self.fs.exists(file_id):  # our cut-off upload: clear and redo
                    self.fs.delete(file_id)
                    self.fs.put(data, _id=file_id, filename=filename, metadata=metadata)

        self.conn.retry(do, "upload an attachment")
        return file_id

    def read_file(self, file_id: Any) -> bytes:
        """The bytes of file ``file_id``; ``KeyError`` if absent."""

        def do() -> bytes:
            try:
                return self.fs.get(file_id).read()
            except gridfs.errors.NoFile:
                raise KeyError(file_id) from None

        return self.conn.retry(do, "read an attachment")

    def delete_file(self, file_id: Any) -> None:
        """Delete file ``file_id`` (no error if absent)."""
        self.conn.retry(lambda: self.fs.delete(file_id), "delete an attachment")

    def delete_experiment_files(self, exp_key: Any) -> int:
        """Delete every attachment file of ``exp_key`` (exactly that key); returns how many."""
        ids = self.conn.retry(lambda: [f._id for f in self.fs.find(
            {"metadata.exp_key": exp_key, "metadata.kind": "attachment"})], "list attachments")
        for file_id in ids:
            self.delete_file(file_id)
        return len(ids)
