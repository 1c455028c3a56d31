"""Direct uploads: a document put straight into the object store, under its tenant, for a
job submitted later by its ``upload_id``.

An upload's id says when it expires, so any store can tell an expired one from its key
alone. Where the store is a local directory (embedded mode) the API itself takes the PUT,
on a URL signed here; on S3 the client puts to a presigned URL and the API never sees the
bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from docjobs.storage.base import ObjectStore

UPLOADS_FOLDER = ".uploads"
"""The folder of a tenant's uploads, beside its jobs' folders (no job id has a dot)."""

UPLOAD_ID = re.compile(r"up_(?P<expires>[0-9]{10})_[0-9a-f]{24}")


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def upload_folder(tenant: str, upload_id: str) -> str:
    return f"{tenant}/{UPLOADS_FOLDER}/{upload_id}"


def upload_key(tenant: str, upload_id: str, file_name: str) -> str:
    """The upload's one object, named after the document (its type is told by its name
    among other things)."""
    name = _UNSAFE_NAME.sub("_", Path(file_name).name)[-200:].lstrip(".")
    return f"{upload_folder(tenant, upload_id)}/{name or 'document'}"


def new_upload_id(expires_at: datetime) -> str:
    return f"up_{int(expires_at.timestamp()):010d}_{secrets.token_hex(12)}"


def expiry_of(upload_id: str) -> datetime | None:
    """When the upload expires; None if ``upload_id`` is not an upload's id."""
    found = UPLOAD_ID.fullmatch(upload_id)
    if found is None:
        return None
    return datetime.fromtimestamp(int(found["expires"]), UTC)


def sweep_expired(store: ObjectStore, tenant: str, now: datetime) -> int:
    """Deletes the tenant's uploads whose time is up; returns how many."""
    swept = 0
    for key in list(store.keys(f"{tenant}/{UPLOADS_FOLDER}")):
        expires = expiry_of(key.split("/")[2])
        if expires is None or expires <= now:
            store.delete(key)
            swept += 1
    return swept


@dataclass(frozen=True)
class UploadGrant:
    """What a signed local upload URL allows: one PUT of at most ``max_bytes`` to the
    tenant's upload, until ``expires`` (a Unix time)."""

    tenant: str
    upload_id: str
    file_name: str
    max_bytes: int
    expires: int

    def message(self) -> bytes:
        fields = (self.tenant, self.upload_id, self.file_name, self.max_bytes, self.expires)
        return "\n".join(map(str, fields)).encode()


class UploadSigner:
    """Signs and checks the local upload URLs of embedded mode (HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def from_key_or_file(cls, configured: str, key_file: Path) -> UploadSigner:
        """The configured key, else the one kept in ``key_file`` (made on first use)."""
        if configured:
            return cls(configured.encode())
        try:
            return cls(key_file.read_bytes())
        except FileNotFoundError:
            pass
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use that one
            return cls(key_file.read_bytes())
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return cls(key)

    def sign(self, grant: UploadGrant) -> str:
        return hmac.new(self.key, grant.message(), hashlib.sha256).hexdigest()

    def valid(self, grant: UploadGrant, signature: str, now: datetime) -> bool:
        if grant.expires <= now.timestamp():
            return False
        return hmac.compare_digest(self.sign(grant).encode(), signature.encode())


def object_size(store: ObjectStore, key: str) -> int:
    """The size of the object ``key``; raises ``ObjectNotFound``. Stores that cannot tell
    without reading are read through."""
    size_of = getattr(store, "size", None)
    if callable(size_of):
        size: int = size_of(key)
        return size
    return sum(len(chunk) for chunk in store.iter_chunks(key))
