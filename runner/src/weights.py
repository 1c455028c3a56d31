"""Model weight files: fetched once with a checksum, found by architecture name at run time.

Runners never download from a model hub: images and air-gapped mirrors put the files in
place beforehand (``docjobs models fetch``), or the operator keeps them under an
object-store prefix that a runner copies from once per process.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from docjobs.storage.base import ObjectStore, weights_key

WEIGHTS_SUFFIX = ".pt"
FETCH_TIMEOUT_SECONDS = 60.0
"""Seconds without a byte from the server before a fetch gives up (not the whole download)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class WeightsError(Exception):
    """A fetch that must not leave a file behind: bad checksum, bad name, HTTP failure."""


def find(directory: Path, arch: str) -> Path | None:
    """``<arch>.pt``, else the newest of docTR's release names ``<arch>-<hash>.pt``."""
    exact = directory / f"{arch}{WEIGHTS_SUFFIX}"
    if exact.is_file():
        return exact
    released = sorted(directory.glob(f"{arch}-*{WEIGHTS_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    return released[-1] if released else None


def copy_from_store(store: ObjectStore, prefix: str, arch: str, directory: Path) -> Path | None:
    """``<prefix>/<arch>.pt`` copied into ``directory``; ``None`` when the store lacks it."""
    key = weights_key(prefix, arch)
    if not store.exists(key):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{arch}{WEIGHTS_SUFFIX}"
    partial = directory / f".{arch}.partial"
    store.download(key, partial)
    partial.replace(target)
    return target


def fetch(url: str, sha256: str, directory: Path, name: str | None = None) -> Path:
    """Download ``url`` into ``directory`` as ``name`` (default: the URL's last segment),
    keeping it only if its SHA-256 is ``sha256``. A file already there with that checksum
    is kept as it is, so image builds and mirrors can run this again."""
    expected = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise WeightsError("--sha256 must be 64 hexadecimal digits")
    file_name = name or unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    if not _SAFE_NAME.match(file_name) or not file_name.endswith(WEIGHTS_SUFFIX):
        raise WeightsError(
            f"cannot name the file {file_name!r}: give --name ARCH{WEIGHTS_SUFFIX} "
            f"(letters, digits, '.', '_', '-'), e.g. --name db_resnet50{WEIGHTS_SUFFIX}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name
    if target.is_file() and _sha256_of(target) == expected:
        return target
    handle, partial_name = tempfile.mkstemp(dir=directory, prefix=f".{file_name}.")
    partial = Path(partial_name)
    try:
        digest = _download(url, handle)
        if digest != expected:
            raise WeightsError(f"checksum mismatch for {url}: expected {expected}, got {digest}")
        partial.chmod(0o644)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _download(url: str, handle: int) -> str:
    """Stream ``url`` into the open file ``handle``; the SHA-256 of what was written."""
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(handle, "wb") as out,
            httpx.stream(
                "GET", url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True
            ) as answer,
        ):
            if answer.status_code != 200:
                raise WeightsError(f"cannot fetch {url}: HTTP {answer.status_code}")
            for chunk in answer.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise WeightsError(f"cannot fetch {url}: {exc}") from None
    return digest.hexdigest()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
