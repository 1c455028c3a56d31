"""Usage records in an object store (Kubernetes mode): one empty object per finished job,
its name the record, so that a tenant's usage over any span of days is one listing.

``<tenant>/.usage/<namespace>/<yyyy-mm-dd>/<job_id>,<status>,<operation>,<tier>,<pages>,
<input bytes>,<CPU milliseconds>``, where ``<pages>`` is ``<tier>-<n>`` per tier that read
pages, joined by ``.`` (``0``: none). Beside the tenant's job folders (no job id has a dot),
as the archive's listing is, and per namespace, since two installations may share a bucket.
A record is decided from the job's terminal status, which never changes: writing it again
(an operator that restarted, the archive's write) writes the same object, and a reader
counts each job id once all the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Protocol

from .records import UsageRecord

USAGE_FOLDER = ".usage"


class UsageObjectStore(Protocol):
    """What usage needs of an object store (:class:`docjobs.storage.base.ObjectStore`)."""

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int: ...

    def folders(self, prefix: str) -> Iterator[str]: ...

    def keys(self, folder: str, start_after: str = "") -> Iterator[str]: ...

    def delete_prefix(self, prefix: str) -> None: ...


def forget_records_before(store: UsageObjectStore, day: date) -> int:
    """Deletes the records of the jobs that ended before ``day``, of every tenant and
    namespace in the store (blocking); how many days' folders went."""
    gone = 0
    for tenant in sorted(name for name in store.folders("") if not name.startswith(".")):
        for namespace in list(store.folders(f"{tenant}/{USAGE_FOLDER}")):
            folder = usage_folder(tenant, namespace)
            for name in sorted(store.folders(folder)):
                if name >= day.isoformat():
                    break  # days sort as their ISO names do
                store.delete_prefix(f"{folder}/{name}")
                gone += 1
    return gone


def usage_folder(tenant: str, namespace: str) -> str:
    return f"{tenant}/{USAGE_FOLDER}/{namespace}"


def usage_key(record: UsageRecord, namespace: str) -> str:
    pages = ".".join(f"{tier}-{n}" for tier, n in sorted(record.pages.items())) or "0"
    entry = ",".join(
        (
            record.job_id,
            record.status,
            record.operation,
            record.tier,
            pages,
            str(record.input_bytes),
            str(round(record.cpu_seconds * 1000)),
        )
    )
    return f"{usage_folder(record.tenant, namespace)}/{record.day.isoformat()}/{entry}"


def record_of_key(key: str) -> UsageRecord:
    tenant, _, _, day, entry = key.split("/")
    job_id, status, operation, tier, pages, size, cpu = entry.split(",")
    split = (part.rsplit("-", 1) for part in pages.split(".") if part != "0")
    return UsageRecord(
        job_id=job_id,
        tenant=tenant,
        day=date.fromisoformat(day),
        operation=operation,
        tier=tier,
        status=status,
        pages={name: int(n) for name, n in split},
        input_bytes=int(size),
        cpu_seconds=int(cpu) / 1000,
    )


class StoredUsage:
    """The usage records of one namespace in an object store; every method blocks."""

    def __init__(self, store: UsageObjectStore, namespace: str) -> None:
        self.store = store
        self.namespace = namespace

    def put(self, record: UsageRecord) -> None:
        self.store.put_bytes(usage_key(record, self.namespace), b"", "application/octet-stream")

    def records(self, tenant: str | None, first: date, last: date) -> Iterator[UsageRecord]:
        tenants = (
            [tenant]
            if tenant is not None
            else sorted(name for name in self.store.folders("") if not name.startswith("."))
        )
        for name in tenants:
            yield from self._of_tenant(name, first, last)

    def _of_tenant(self, tenant: str, first: date, last: date) -> Iterator[UsageRecord]:
        folder = usage_folder(tenant, self.namespace)
        # A day's keys sort after the day's name alone, and before its name and "/~" (an
        # entry starts with a job id, and "~" sorts after every character of one).
        start = f"{folder}/{first.isoformat()}"
        end = f"{folder}/{last.isoformat()}/~"
        seen: set[str] = set()
        for key in self.store.keys(folder, start):
            if key >= end:
                break
            record = record_of_key(key)
            if record.job_id not in seen:
                seen.add(record.job_id)
                yield record
