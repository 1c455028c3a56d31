"""Object storage for inputs and results: a local directory or an S3 bucket."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from docjobs.settings import Settings


class ObjectNotFound(KeyError):
    pass


class ObjectStore(Protocol):
    def put_file(self, key: str, source: Path, content_type: str) -> int: ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int: ...

    def download(self, key: str, target: Path) -> None: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> None: ...


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalStore:
    """Objects as files under one directory; writes are atomic (temp file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def _write(self, key: str, fill: _Filler) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.stat().st_size

    def put_file(self, key: str, source: Path, content_type: str) -> int:
        def fill(out: BinaryIO) -> None:
            with source.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        return self._write(key, fill)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        def fill(out: BinaryIO) -> None:
            out.write(data)

        return self._write(key, fill)

    def download(self, key: str, target: Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise ObjectNotFound(key)
        shutil.copyfile(source, target)

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        source = self.path(key)
        if not source.is_file():
            raise ObjectNotFound(key)
        with source.open("rb") as src:
            while chunk := src.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix.rstrip("/")), ignore_errors=True)


class _Filler(Protocol):
    def __call__(self, out: BinaryIO) -> None: ...


def object_keys(tenant: str, job_id: str) -> tuple[str, str]:
    """The job's folder and its input's key."""
    prefix = f"{tenant}/{job_id}"
    return prefix, f"{prefix}/input"


def result_key(tenant: str, job_id: str, extension: str) -> str:
    return f"{tenant}/{job_id}/result{extension}"


def outcome_key(tenant: str, job_id: str, attempt: int) -> str:
    """Where a runner records how an attempt ended, so a restarted supervisor can tell."""
    return f"{tenant}/{job_id}/attempts/{attempt}.json"


def store_from_settings(settings: Settings) -> ObjectStore:
    if settings.s3.endpoint:
        from docjobs.s3store import S3Store

        return S3Store.from_settings(settings.s3)
    return LocalStore(settings.data_dir / "objects")
