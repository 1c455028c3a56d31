"""The object store the settings choose: S3 when an endpoint is set, else a local directory."""

from __future__ import annotations

from docjobs.config import Settings
from docjobs.storage.base import ObjectStore
from docjobs.storage.local import LocalStore


def store_from_settings(settings: Settings) -> ObjectStore:
    if settings.s3.endpoint:
        from docjobs.storage.s3 import S3Store  # minio only where S3 is used

        return S3Store.from_settings(settings.s3)
    return LocalStore(settings.data_dir / "objects")
