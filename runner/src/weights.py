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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from docjobs.capabilities import WEIGHTS_SUFFIX
from docjobs.capabilities import find_weights as find
from docjobs.storage.base import ObjectStore, weights_key

__all__ = ["PUBLISHED", "PublishedWeights", "WeightsError", "copy_from_store", "fetch", "find"]

FETCH_TIMEOUT_SECONDS = 60.0
"""Seconds without a byte from the server before a fetch gives up (not the whole download)."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class WeightsError(Exception):
    """A fetch that must not leave a file behind: bad checksum, bad name, HTTP failure."""


@dataclass(frozen=True)
class PublishedWeights:
    """A docTR release file: its name carries the first hex digits of its SHA-256, which is
    what docTR itself verifies (``doctr.utils.data.download_from_url``); the full checksum
    is published nowhere docTR's sources can vouch for."""

    arch: str
    url: str

    @property
    def file_name(self) -> str:
        """The release file's name, e.g. ``db_resnet50-79bd7d70.pt``."""
        return unquote(urlsplit(self.url).query).split("id=", 1)[1].split("&")[0].rsplit("/")[-1]

    @property
    def sha256_prefix(self) -> str:
        return self.file_name.removesuffix(WEIGHTS_SUFFIX).rsplit("-", 1)[1]

    @property
    def local_name(self) -> str:
        """``<arch>-<hash>.pt``, a name :func:`find` takes for ``arch``."""
        return f"{self.arch}-{self.sha256_prefix}{WEIGHTS_SUFFIX}"


_RELEASES = "https://doctr-static.mindee.com/models?id="
PUBLISHED: dict[str, PublishedWeights] = {
    weights.arch: weights
    for weights in (
        # DoctrSettings' default pair.
        PublishedWeights("db_resnet50", f"{_RELEASES}v0.7.0/db_resnet50-79bd7d70.pt&src=0"),
        PublishedWeights("crnn_vgg16_bn", f"{_RELEASES}v0.12.0/crnn_vgg16_bn-0417f351.pt&src=0"),
        # The pair that costs least on a CPU.
        PublishedWeights(
            "db_mobilenet_v3_large",
            f"{_RELEASES}v0.8.1/db_mobilenet_v3_large-21748dd0.pt&src=0",
        ),
        PublishedWeights(
            "crnn_mobilenet_v3_small",
            f"{_RELEASES}v0.3.1/crnn_mobilenet_v3_small_pt-3b919a02.pt&src=0",
        ),
    )
}
"""docTR's published weights (python-doctr 1.1's ``default_cfgs``), by architecture."""


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
    return _fetch_verified(url, expected, directory, file_name)


def fetch_published(weights: PublishedWeights, directory: Path, base_url: str = "") -> Path:
    """``weights`` from docTR's release URL, or from ``base_url`` (a mirror holding the
    release files under their own names), kept only if its SHA-256 starts with the digits
    its release name carries."""
    url = f"{base_url.rstrip('/')}/{weights.file_name}" if base_url else weights.url
    return _fetch_verified(url, weights.sha256_prefix, directory, weights.local_name)


def _fetch_verified(url: str, expected: str, directory: Path, file_name: str) -> Path:
    """``url`` saved as ``directory/file_name`` if its SHA-256 starts with ``expected``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / file_name
    if target.is_file() and _sha256_of(target).startswith(expected):
        return target
    handle, partial_name = tempfile.mkstemp(dir=directory, prefix=f".{file_name}.")
    partial = Path(partial_name)
    try:
        digest = _download(url, handle)
        if not digest.startswith(expected):
            wanted = expected if len(expected) == len(digest) else f"{expected}..."
            raise WeightsError(f"checksum mismatch for {url}: expected {wanted}, got {digest}")
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
