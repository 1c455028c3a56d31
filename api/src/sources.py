"""Documents by reference: a ``source_url``, an ``s3://bucket/key`` the tenant may read, or
a direct upload's ``upload_id``, each saved to a scratch file as an upload would be, so that
a job on it is inspected, counted and deduplicated the same way.

All of it runs in one worker thread (fetch, copy, hash, then the inspection).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Annotated, TypeVar
from urllib.parse import urlsplit

from fastapi import Form
from starlette.datastructures import State

from docjobs.config import Settings
from docjobs.domain.clock import utcnow
from docjobs.net.fetch import FetchError, FetchLimits, fetch
from docjobs.storage.base import ObjectNotFound, ObjectStore
from docjobs.storage.factory import store_from_settings
from docjobs.storage.uploads import expiry_of, object_size, upload_folder

from .errors import ApiError
from .uploads import SavedUpload

T = TypeVar("T")

SourceUrlField = Annotated[
    str | None,
    Form(
        max_length=2048,
        description="Instead of a file: the document's URL, fetched by the server (https; "
        "public addresses only, redirects checked alike; DOCJOBS_INPUTS__MAX_SOURCE_BYTES and "
        "_SOURCE_TIMEOUT_SECONDS bound it), or s3://bucket/key of a bucket this installation "
        "lets your tenant read.",
    ),
]
UploadIdField = Annotated[
    str | None,
    Form(
        max_length=64,
        description="Instead of a file: the id of a direct upload (POST /api/v1/uploads) "
        "whose document was put to its URL. An upload serves one submission.",
    ),
]


def input_store(state: State, settings: Settings) -> ObjectStore:
    """The installation's object store, as direct uploads use it (made once per app)."""
    store: ObjectStore | None = getattr(state, "input_store", None)
    if store is None:
        store = state.input_store = store_from_settings(settings)
    return store


class ReferenceReader:
    """Saves the document a reference names; one per request."""

    def __init__(self, settings: Settings, store: ObjectStore, tenant: str, plan: str) -> None:
        self.settings = settings
        self.store = store
        self.tenant = tenant
        self.plan = plan

    def save(
        self,
        source_url: str | None,
        upload_id: str | None,
        scratch: Path,
        then: Callable[[SavedUpload], T],
    ) -> tuple[SavedUpload, T]:
        """The document in a scratch file, and ``then(saved)``; blocking throughout."""
        scratch.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(dir=scratch, prefix="upload-", delete=False)  # noqa: SIM115
        saved = SavedUpload(Path(handle.name), "document", None, 0, "")
        try:
            with handle:
                if upload_id is not None:
                    self._copy_upload(upload_id, handle, saved)
                elif source_url is not None and source_url.startswith("s3://"):
                    self._copy_object(source_url, handle, saved)
                elif source_url is not None:
                    self._fetch(source_url, handle, saved)
            if saved.size == 0:
                raise ApiError(400, "empty_file", "The document is empty.")
            return saved, then(saved)
        except BaseException:
            saved.discard()
            raise

    def _fetch(self, url: str, sink: IO[bytes], saved: SavedUpload) -> None:
        inputs = self.settings.inputs
        limits = FetchLimits(inputs.max_source_bytes, inputs.source_timeout_seconds)
        try:
            fetched = fetch(url, self.settings.webhooks, limits, sink)
        except FetchError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        saved.file_name, saved.declared_type = fetched.file_name, fetched.content_type
        saved.size, saved.sha256 = fetched.size, fetched.sha256

    def _copy_object(self, url: str, sink: IO[bytes], saved: SavedUpload) -> None:
        parts = urlsplit(url)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        inputs = self.settings.inputs
        allowed = [
            *inputs.tenant_buckets.get(self.tenant, ()),
            *inputs.plan_buckets.get(self.plan, ()),
        ]
        if bucket not in allowed or not self.settings.s3.endpoint:
            raise ApiError(
                422,
                "source_bucket_not_allowed",
                f"This installation does not let your tenant read bucket {bucket!r}"
                " (DOCJOBS_INPUTS__TENANT_BUCKETS or _PLAN_BUCKETS name those it may).",
            )
        from docjobs.storage.s3 import S3Store  # minio only where S3 is used

        installation = S3Store.from_settings(self.settings.s3)
        store = S3Store(installation.client, bucket)
        try:
            self._copy(store, key, sink, saved, inputs.max_source_bytes)
        except (ObjectNotFound, ValueError):
            raise ApiError(
                404, "source_not_found", f"No object {key!r} in bucket {bucket!r}."
            ) from None
        saved.file_name = Path(key).name or "document"

    def _copy_upload(self, upload_id: str, sink: IO[bytes], saved: SavedUpload) -> None:
        missing = ApiError(404, "upload_not_found", f"No upload {upload_id!r} for this tenant.")
        expires = expiry_of(upload_id)
        if expires is None:
            raise missing
        if expires <= utcnow():
            raise ApiError(
                422, "upload_expired", f"Upload {upload_id!r} has expired; upload again."
            )
        keys = list(self.store.keys(upload_folder(self.tenant, upload_id)))
        if not keys:
            raise missing
        self._copy(self.store, keys[0], sink, saved, self.settings.inputs.max_direct_upload_bytes)
        saved.file_name = keys[0].rsplit("/", 1)[-1]

    @staticmethod
    def _copy(
        store: ObjectStore, key: str, sink: IO[bytes], saved: SavedUpload, max_bytes: int
    ) -> None:
        """Copies the object ``key`` to ``sink``, refusing one larger than ``max_bytes``
        before reading it."""
        size = object_size(store, key)
        if size > max_bytes:
            raise ApiError(
                413,
                "payload_too_large",
                f"The document exceeds the {max_bytes / (1024 * 1024):g} MB limit.",
            )
        digest = hashlib.sha256()
        copied = 0
        for chunk in store.iter_chunks(key, 1 << 20):
            copied += len(chunk)
            if copied > max_bytes:  # grew since it was measured
                raise ApiError(413, "payload_too_large", "The document exceeds its limit.")
            digest.update(chunk)
            sink.write(chunk)
        saved.size, saved.sha256 = copied, digest.hexdigest()


def consume_upload(store: ObjectStore, tenant: str, upload_id: str) -> None:
    """An upload serves one submission: the job has its own copy now."""
    with contextlib.suppress(ValueError):
        store.delete_prefix(upload_folder(tenant, upload_id))
