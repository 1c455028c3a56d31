"""Objects as files in a local directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from docjobs.storage.base import ObjectNotFound, safe_key


class LocalStore:
    """Objects as files under one directory; writes are atomic (temp file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prepare()

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / safe_key(key)

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

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix.rstrip("/")), ignore_errors=True)

    def folders(self, prefix: str) -> Iterator[str]:
        where = self.path(prefix.rstrip("/")) if prefix else self.root
        if where.is_dir():
            yield from (entry.name for entry in where.iterdir() if entry.is_dir())

    def keys(self, folder: str, start_after: str = "") -> Iterator[str]:
        where = self.path(folder.rstrip("/"))
        # os.walk, not rglob: a folder another thread deletes meanwhile (a sweep) is skipped
        # where rglob would raise.
        found = sorted(
            (Path(parent) / name).relative_to(self.root).as_posix()
            for parent, _, names in os.walk(where)
            for name in names
            if not name.startswith(".tmp-")
        )
        yield from (key for key in found if key > start_after)


class _Filler(Protocol):
    def __call__(self, out: BinaryIO) -> None: ...
