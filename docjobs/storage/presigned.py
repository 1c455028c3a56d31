"""A runner's object store in Kubernetes mode: the presigned URLs of one attempt, nothing more.

The operator writes an :class:`AttemptManifest` per attempt (the job spec and one presigned
URL per object and method the attempt may use) and gives the runner pod only a presigned
GET URL of that manifest. :class:`PresignedStore` reads and writes through those URLs with
plain HTTP: the pod holds no bucket credential, and a key the manifest does not grant is
refused before any request is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from docjobs.config import S3Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import JobSpec
from docjobs.storage.base import ObjectNotFound, ObjectStore

Method = Literal["GET", "PUT"]
_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")


class UrlSigner(Protocol):
    def presign(self, method: Method, key: str, expires_at: datetime) -> str:
        """A URL that lets its holder ``method`` the object ``key`` until ``expires_at``."""
        ...


class SigningStore(ObjectStore, UrlSigner, Protocol):
    """A store that can also hand out presigned URLs of its objects (S3)."""


class AttemptManifest(BaseModel):
    """What one attempt's runner may do in the object store, and the job it runs."""

    model_config = ConfigDict(frozen=True)

    spec: JobSpec
    attempt: int = Field(ge=1)
    expires_at: datetime
    """When the URLs stop working: the attempt's deadline plus a margin."""
    get: dict[str, str] = {}
    """Object key -> presigned GET URL."""
    put: dict[str, str] = {}
    """Object key -> presigned PUT URL."""


def sign_manifest(
    signer: UrlSigner,
    spec: JobSpec,
    attempt: int,
    expires_at: datetime,
    gets: list[str],
    puts: list[str],
) -> AttemptManifest:
    """The manifest granting exactly ``gets`` and ``puts`` (object keys) until ``expires_at``."""
    return AttemptManifest(
        spec=spec,
        attempt=attempt,
        expires_at=expires_at,
        get={key: signer.presign("GET", key, expires_at) for key in dict.fromkeys(gets)},
        put={key: signer.presign("PUT", key, expires_at) for key in dict.fromkeys(puts)},
    )


class KeyNotGranted(PermissionError):
    """The attempt's manifest grants no such access (another job's object, a wrong method,
    or URLs past their expiry): refused before anything is sent."""


class PresignedRequestFailed(OSError):
    """The object store answered a presigned request with an error."""


def request_timeout(settings: S3Settings) -> httpx.Timeout:
    """The object store's connect timeout, and its read timeout for every other wait
    (between bytes sent or received, and for a connection of the pool)."""
    return httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds)


class PresignedStore:
    """An ``ObjectStore`` over one attempt's presigned URLs (plain HTTP, no credentials)."""

    def __init__(self, manifest: AttemptManifest, client: httpx.Client | None = None) -> None:
        self.manifest = manifest
        self.client = client or httpx.Client(timeout=request_timeout(S3Settings()))

    @classmethod
    def fetch(cls, manifest_url: str, settings: S3Settings | None = None) -> PresignedStore:
        """The store of the attempt whose manifest ``manifest_url`` (a presigned GET) names;
        its requests time out as ``settings`` say (the defaults when not given)."""
        client = httpx.Client(timeout=request_timeout(settings or S3Settings()))
        answer = client.get(manifest_url)
        _check(answer, "the attempt's manifest")
        return cls(AttemptManifest.model_validate_json(answer.content), client)

    def url(self, method: Method, key: str) -> str:
        granted = self.manifest.get if method == "GET" else self.manifest.put
        url = granted.get(key)
        if url is None:
            raise KeyNotGranted(
                f"attempt {self.manifest.attempt} of {self.manifest.spec.job_id} may not "
                f"{method} {key!r}: a runner reaches only the objects its manifest grants"
            )
        if utcnow() >= self.manifest.expires_at:
            raise KeyNotGranted(
                f"the URLs of attempt {self.manifest.attempt} of {self.manifest.spec.job_id} "
                f"expired at {self.manifest.expires_at.isoformat()}"
            )
        return url

    def prepare(self) -> None:
        """Nothing to create: the operator's store made the bucket."""

    def put_file(self, key: str, source: Path, content_type: str) -> int:
        size = source.stat().st_size
        with source.open("rb") as stream:
            self._put(key, stream, size, content_type)
        return size

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        self._put(key, data, len(data), content_type)
        return len(data)

    def _put(self, key: str, body: bytes | IO[bytes], size: int, content_type: str) -> None:
        # S3 refuses chunked uploads to a presigned URL: the length goes first.
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        answer = self.client.put(self.url("PUT", key), content=body, headers=headers)
        _check(answer, key)

    def download(self, key: str, target: Path) -> None:
        with self._get(key) as answer:
            _check(answer, key)
            with target.open("wb") as out:
                for chunk in answer.iter_bytes(1 << 20):
                    out.write(chunk)

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        with self._get(key) as answer:
            _check(answer, key)
            yield from answer.iter_bytes(chunk_size)

    def exists(self, key: str) -> bool:
        # A URL signed for GET does not allow HEAD: ask for the first byte only.
        with self._get(key, {"Range": "bytes=0-0"}) as answer:
            if answer.status_code == 416:  # an empty object has no first byte
                return True
            try:
                _check(answer, key)
            except ObjectNotFound:
                return False
            return True

    @contextmanager
    def _get(self, key: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """The streamed answer to a GET of ``key`` (an error's body already read)."""
        with self.client.stream("GET", self.url("GET", key), headers=headers) as answer:
            if answer.status_code >= 300:
                answer.read()
            yield answer

    def delete(self, key: str) -> None:
        raise KeyNotGranted(f"a runner may not delete objects ({key!r})")

    def delete_prefix(self, prefix: str) -> None:
        raise KeyNotGranted(f"a runner may not delete objects ({prefix!r})")

    def folders(self, prefix: str) -> Iterator[str]:
        raise KeyNotGranted(f"a runner may not list objects ({prefix!r})")

    def keys(self, folder: str, start_after: str = "") -> Iterator[str]:
        raise KeyNotGranted(f"a runner may not list objects ({folder!r})")


def _check(answer: httpx.Response, what: str) -> None:
    if answer.status_code < 300:
        return
    found = _S3_CODE.search(answer.text)
    code = found.group(1) if found else f"HTTP {answer.status_code}"
    if answer.status_code == 404 or code in ("NoSuchKey", "NoSuchObject", "NoSuchBucket"):
        raise ObjectNotFound(what)
    raise PresignedRequestFailed(f"object store refused {what}: {code} (HTTP {answer.status_code})")
