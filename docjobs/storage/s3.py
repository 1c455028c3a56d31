"""Objects in an S3 bucket (MinIO or any S3 API), through the minio SDK."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from docjobs.config import S3Settings
from docjobs.domain.clock import utcnow
from docjobs.storage.base import ObjectNotFound, safe_key

_MISSING = ("NoSuchKey", "NoSuchObject", "NoSuchBucket")
_MAX_PRESIGNED = timedelta(days=7)
"""The longest life S3 (SigV4) allows a presigned URL."""


class S3Store:
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: S3Settings) -> S3Store:
        client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
        )
        return cls(client, settings.bucket)

    def prepare(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def put_file(self, key: str, source: Path, content_type: str) -> int:
        self.client.fput_object(self.bucket, safe_key(key), str(source), content_type)
        return source.stat().st_size

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        self.client.put_object(
            self.bucket, safe_key(key), io.BytesIO(data), len(data), content_type
        )
        return len(data)

    def download(self, key: str, target: Path) -> None:
        try:
            self.client.fget_object(self.bucket, safe_key(key), str(target))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(key) from None
            raise

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        try:
            response = self.client.get_object(self.bucket, safe_key(key))
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
            self.client.stat_object(self.bucket, safe_key(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise
        return True

    def delete_prefix(self, prefix: str) -> None:
        folder = safe_key(prefix.rstrip("/")) + "/"
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
        return self.client.get_presigned_url(method, self.bucket, safe_key(key), expires=life)

    def folders(self, prefix: str) -> Iterator[str]:
        folder = safe_key(prefix.rstrip("/")) + "/" if prefix else ""
        for item in self.client.list_objects(self.bucket, prefix=folder, recursive=False):
            if item.is_dir and item.object_name:
                yield item.object_name[len(folder) :].rstrip("/")
