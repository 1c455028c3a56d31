"""Object storage for inputs and results: the protocol and the key layout of a job."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol


class ObjectNotFound(KeyError):
    pass


class ObjectStore(Protocol):
    def prepare(self) -> None:
        """Creates the directory or bucket objects go into, if missing."""
        ...

    def put_file(self, key: str, source: Path, content_type: str) -> int: ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int: ...

    def download(self, key: str, target: Path) -> None: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Removes the object ``key``; one already gone is no error."""
        ...

    def delete_prefix(self, prefix: str) -> None: ...

    def folders(self, prefix: str) -> Iterator[str]:
        """Names of the folders right under ``prefix`` (``""``: the top): tenants at the top,
        then each tenant's jobs."""
        ...

    def keys(self, folder: str, start_after: str = "") -> Iterator[str]:
        """Keys of every object under ``folder`` (at any depth), in ascending order, from
        the first one after ``start_after`` (a whole key or any string) on."""
        ...


def safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


def object_keys(tenant: str, job_id: str) -> tuple[str, str]:
    """The job's folder and its input's key."""
    prefix = f"{tenant}/{job_id}"
    return prefix, f"{prefix}/input"


def result_key(tenant: str, job_id: str, extension: str) -> str:
    return f"{tenant}/{job_id}/result{extension}"


RESULT_EXTENSIONS = (".pdf", ".json", ".hocr", ".xml", ".md")
"""Every extension an engine's result has: a runner may write any of them."""


def outcome_key(tenant: str, job_id: str, attempt: int) -> str:
    """Where a runner records how an attempt ended, so a restarted supervisor can tell."""
    return f"{tenant}/{job_id}/attempts/{attempt}.json"


def part_key(tenant: str, job_id: str, attempt: int, index: int) -> str:
    """Where one part of an attempt's pages is kept until the parts are merged."""
    return f"{tenant}/{job_id}/attempts/{attempt}/part-{index}.json"


def part_cpu_key(tenant: str, job_id: str, attempt: int, index: int) -> str:
    """Where a part's runner CPU seconds are kept (a decimal number) for the merge to add."""
    return f"{tenant}/{job_id}/attempts/{attempt}/part-{index}.cpu"


def kept_parts_cpu(
    store: ObjectStore, tenant: str, job_id: str, attempt: int, indexes: Iterable[int]
) -> float:
    """The CPU seconds the attempt's parts ``indexes`` kept (:func:`part_cpu_key`); a part
    that kept none counts none."""
    total = 0.0
    for index in indexes:
        try:
            kept = b"".join(store.iter_chunks(part_cpu_key(tenant, job_id, attempt, index)))
            total += max(float(kept), 0.0)
        except (ObjectNotFound, ValueError, PermissionError):
            # A runner under a presigned manifest is granted no such key: that part's CPU
            # time goes unbilled, the merge goes on.
            continue
    return round(total, 3)


def progress_key(tenant: str, job_id: str, attempt: int) -> str:
    """Where a runner reports the pages it has read so far in an attempt (JSON)."""
    return f"{tenant}/{job_id}/attempts/{attempt}/progress.json"


TEMPLATES_FOLDER = ".templates"
"""The folder of a tenant's template versions, beside its jobs' folders (no job id has a dot)."""


def template_key(tenant: str, template_id: str, version: str) -> str:
    """One immutable version of a tenant's template, as the runners read it (JSON)."""
    return f"{tenant}/{TEMPLATES_FOLDER}/{template_id}/{version}.json"


def manifest_key(tenant: str, job_id: str, attempt: int) -> str:
    """What the runner of an attempt may touch in the store, and its job spec (JSON)."""
    return f"{tenant}/{job_id}/attempts/{attempt}/manifest.json"


def weights_key(prefix: str, arch: str) -> str:
    """The PyTorch weights of a docTR architecture under an object-store prefix."""
    return f"{prefix.strip('/')}/{arch}.pt"
