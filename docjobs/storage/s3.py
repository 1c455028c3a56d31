"""Objects in an S3 bucket (MinIO or any S3 API), through the minio SDK."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from docjobs.config import S3Settings
from docjobs.domain.clock import utcnow
from docjobs.storage.base import ObjectNotFound, safe_key

_MISSING = ("NoSuchKey", "NoSuchObject", "NoSuchBucket")
_MAX_PRESIGNED = timedelta(days=7)
"""The longest life S3 (SigV4) allows a presigned URL."""
CONNECTIONS = 40
"""Connections kept open to the object store: one per thread that may call it at once."""


def http_client(settings: S3Settings) -> urllib3.PoolManager:
    """The minio client's connection pool, with the settings' connect and read timeouts
    (the SDK's own wait 5 minutes each, retries included). A request goes out again when no
    connection opened, or when the store answered a server error; never after a read
    timed out: a hung store would hold the thread a read timeout per retry."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(
            connect=settings.connect_timeout_seconds, read=settings.read_timeout_seconds
        ),
        maxsize=CONNECTIONS,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(
            total=3,
            connect=2,
            read=0,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
        ),
    )


class S3Store:
    """The bucket's objects under ``prefix`` (the installation's, or none): every key the
    protocol takes or gives is relative to it, so nothing else in the service knows it."""

    def __init__(self, client: Minio, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    def object_name(self, key: str) -> str:
        """The name in the bucket of the object ``key``."""
        return self.prefix + safe_key(key)

    @classmethod
    def from_settings(cls, settings: S3Settings) -> S3Store:
        client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=http_client(settings),
        )
        return cls(client, settings.bucket, settings.key_prefix)

    def prepare(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def put_file(self, key: str, source: Path, content_type: str) -> int:
        self.client.fput_object(self.bucket, self.object_name(key), str(source), content_type)
        return source.stat().st_size

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        self.client.put_object(
            self.bucket, self.object_name(key), io.BytesIO(data), len(data), content_type
        )
        return len(data)

    def download(self, key: str, target: Path) -> None:
        try:
            self.client.fget_object(self.bucket, self.object_name(key), str(target))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(key) from None
            raise

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        try:
            response = self.client.get_object(self.bucket, self.object_name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(key) from None
            raise
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, self.object_name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise
        return True

    def size(self, key: str) -> int:
        try:
            found = self.client.stat_object(self.bucket, self.object_name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(key) from None
            raise
        return int(found.size or 0)

    def delete(self, key: str) -> None:
        # S3 answers a delete of a missing key with success, as the protocol asks.
        self.client.remove_object(self.bucket, self.object_name(key))

    def delete_prefix(self, prefix: str) -> None:
        folder = self.object_name(prefix.rstrip("/")) + "/"
        names = (
            DeleteObject(o.object_name)
            for o in self.client.list_objects(self.bucket, prefix=folder, recursive=True)
            if o.object_name
        )
        for error in self.client.remove_objects(self.bucket, names):
            raise RuntimeError(f"cannot delete {error.name}: {error.message}")

    def presign(self, method: Literal["GET", "PUT"], key: str, expires_at: datetime) -> str:
        """A URL for ``method`` on ``key`` alone, valid until ``expires_at`` (at most 7 days
        on). Signed locally; only a client without a configured region asks the bucket's
        region once (then cached), so settings name it where that matters."""
        life = min(max(expires_at - utcnow(), timedelta(seconds=1)), _MAX_PRESIGNED)
        return self.client.get_presigned_url(
            method, self.bucket, self.object_name(key), expires=life
        )

    def folders(self, prefix: str) -> Iterator[str]:
        folder = self.object_name(prefix.rstrip("/")) + "/" if prefix else self.prefix
        for item in self.client.list_objects(self.bucket, prefix=folder, recursive=False):
            if item.is_dir and item.object_name:
                yield item.object_name[len(folder) :].rstrip("/")

    def keys(self, folder: str, start_after: str = "") -> Iterator[str]:
        listed = self.client.list_objects(
            self.bucket,
            prefix=self.object_name(folder.rstrip("/")) + "/",
            recursive=True,
            start_after=self.prefix + start_after if start_after else None,
        )
        start = len(self.prefix)
        yield from (item.object_name[start:] for item in listed if item.object_name)
