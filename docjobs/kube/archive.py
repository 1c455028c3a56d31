"""Finished DocumentJobs kept in the object store instead of the cluster: the record, its
keys, and the two indexes that let a reader list them and the operator expire them.

The operator archives a finished DocumentJob whose webhook deliveries are settled, a few
minutes after its end, then deletes the resource: etcd and every watch cache hold only
active and recently finished jobs. What is archived is the resource itself (spec, status
with attempts, deliveries, progress, error and result), so a reader parses it with the same
functions as a watched one and answers exactly as before. Three kinds of objects:

- ``<tenant>/<job_id>/record.json``: the record, in the job's own folder, so erasing or
  expiring the job's objects takes it too; one GET finds it, since a job's id is known
  from its submission.
- ``<tenant>/.archived/<namespace>/<entry>``: one empty object per archived job, the
  tenant's listing in one namespace (two installations may share a bucket).
  The entry's name sorts newest first (the inverted creation time, then the complemented
  job id) and carries the phase and operation kind, so a page is one ``keys`` read from the
  cursor on and the common filters need no record.
- ``.archive-expiry/<yyyymmddHHMM>/<tenant>/<job_id>``: when the job's TTL ends, holding
  its listing entry's key (a completed batch's marker, under its batch id, holds the keys
  and folders of its record, :mod:`docjobs.kube.batches`, one a line); the operator sweeps
  the minutes that have passed, so it needs no memory per archived job.

Every write is idempotent: a record written twice (a crash between the write and the
delete) is the same record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from docjobs.domain.models import Job

from .client import JSON
from .resources import job_of

RECORD = "record.json"
LISTING_FOLDER = ".archived"
"""Beside the tenant's job folders (no job id has a dot), as its template versions are."""
EXPIRY_FOLDER = ".archive-expiry"
"""At the top, beside the tenants' folders (no tenant name has a dot)."""
FORMAT = 1
_TIME_SPAN = 10**16
"""Microseconds past the epoch stay below this until the year 2286."""
_ID_FLIP = 159
"""``chr(_ID_FLIP - ord(c))`` reverses the order of a job id's characters, into printable
ASCII without ``/`` or ``.``."""
_ID_END = "~"
"""After a flipped id, above every flipped character: ``job_x-2`` lists before ``job_x``."""
_MINUTE = "%Y%m%d%H%M"


class RecordStore(Protocol):
    """What the archive needs of an object store (:class:`docjobs.storage.base.ObjectStore`
    has it all)."""

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def keys(self, folder: str, start_after: str = "") -> Iterator[str]: ...


# --- keys ------------------------------------------------------------------------------------


def record_key(tenant: str, job_id: str) -> str:
    return f"{tenant}/{job_id}/{RECORD}"


def flip_id(job_id: str) -> str:
    return "".join(chr(_ID_FLIP - ord(c)) for c in job_id) + _ID_END


def unflip_id(flipped: str) -> str:
    return "".join(chr(_ID_FLIP - ord(c)) for c in flipped.removesuffix(_ID_END))


def micros(moment: datetime | float) -> int:
    """Microseconds past the epoch: how listing entries order and compare times."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else moment
    return round(seconds * 1_000_000)


def inverted_time(created: datetime | float) -> str:
    return f"{_TIME_SPAN - micros(created):016d}"


def listing_folder(tenant: str, namespace: str) -> str:
    return f"{tenant}/{LISTING_FOLDER}/{namespace}"


def listing_key(job: Job, namespace: str) -> str:
    """The job's entry in its tenant's listing: what orders it, what the common filters
    and the TTL read."""
    spec = job.spec
    expires = int(expires_at(job).timestamp())
    created, flipped = inverted_time(spec.created_at), flip_id(spec.job_id)
    entry = f"{created},{flipped},{job.status.phase.value},{expires}"
    return f"{listing_folder(spec.tenant, namespace)}/{entry},{spec.operation.kind}"


def listing_after(tenant: str, namespace: str, position: tuple[float, str]) -> str:
    """A ``start_after`` for the entries older than ``position`` (creation time, job id):
    every entry of that job starts with the same text up to ``,`` and sorts below this."""
    created, job_id = position
    return f"{listing_folder(tenant, namespace)}/{inverted_time(created)},{flip_id(job_id)}-"


@dataclass(frozen=True)
class Listed:
    """An archived job as its listing entry names it."""

    key: str
    created: int
    """Microseconds past the epoch."""
    job_id: str
    phase: str
    expires: int
    """When its TTL ends, in seconds past the epoch."""
    kind: str


def listed_of(key: str) -> Listed:
    inverted, flipped, phase, expires, kind = key.rsplit("/", 1)[1].split(",", 4)
    return Listed(key, _TIME_SPAN - int(inverted), unflip_id(flipped), phase, int(expires), kind)


def expires_at(job: Job) -> datetime:
    """When a finished job's TTL ends."""
    ended = job.status.completed_at or job.spec.created_at
    return ended + timedelta(seconds=job.spec.ttl_seconds_after_finished)


def expiry_key(job: Job) -> str:
    """The job's expiry marker, in the folder of the minute after its TTL ends (so a sweep
    of the minutes passed never takes it early)."""
    return expiry_key_at(job.spec.tenant, job.spec.job_id, expires_at(job))


def expiry_key_at(tenant: str, name: str, expires: datetime) -> str:
    """The expiry marker of the tenant's ``name`` (a job, or a batch's record) whose TTL
    ends at ``expires``."""
    minute = (expires + timedelta(minutes=1)).astimezone(UTC).strftime(_MINUTE)
    return f"{EXPIRY_FOLDER}/{minute}/{tenant}/{name}"


def expiry_until(now: datetime) -> str:
    """A ``start_after`` bound: markers of the minutes up to ``now``'s sort below it."""
    return f"{EXPIRY_FOLDER}/{now.astimezone(UTC).strftime(_MINUTE)}/~"


# --- the record ------------------------------------------------------------------------------


def record_of(resource: JSON, archived_at: datetime) -> bytes:
    """The record of a DocumentJob: the resource as the API parses it, without what only
    the cluster uses (managed fields, kopf's annotations, the resourceVersion)."""
    metadata = resource.get("metadata") or {}
    kept = {
        k: metadata[k]
        for k in ("name", "namespace", "labels", "creationTimestamp")
        if k in metadata
    }
    body = {
        "format": FORMAT,
        "archivedAt": archived_at.astimezone(UTC).isoformat(),
        "resource": {
            "apiVersion": resource.get("apiVersion"),
            "kind": resource.get("kind"),
            "metadata": kept,
            "spec": resource.get("spec"),
            "status": resource.get("status") or {},
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def resource_of(record: bytes) -> JSON:
    body: dict[str, Any] = json.loads(record)
    if body.get("format") != FORMAT:
        raise ValueError(f"archived record of an unknown format {body.get('format')!r}")
    resource: JSON = body["resource"]
    return resource


# --- the store -------------------------------------------------------------------------------


class Archive:
    """The archive in one object store; every method blocks (call it from a thread)."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    def put(self, resource: JSON, now: datetime) -> Job:
        """Archive a finished DocumentJob: the record first, then its two index entries; the
        caller deletes the resource only after this returns."""
        job = job_of(resource)
        if not job.status.phase.terminal:
            raise ValueError(f"{job.spec.job_id} has not ended: only finished jobs archive")
        listing = listing_key(job, resource["metadata"]["namespace"])
        self.store.put_bytes(
            record_key(job.spec.tenant, job.spec.job_id),
            record_of(resource, now),
            "application/json",
        )
        self.store.put_bytes(listing, b"", "application/octet-stream")
        self.store.put_bytes(expiry_key(job), listing.encode(), "text/plain")
        return job

    def read(self, namespace: str, tenant: str, job_id: str) -> JSON | None:
        """The archived resource of the tenant's job in ``namespace``, or None (never
        archived, erased, or expired and swept)."""
        try:
            record = b"".join(self.store.iter_chunks(record_key(tenant, job_id)))
        except KeyError:  # ObjectNotFound
            return None
        resource = resource_of(record)
        return resource if resource["metadata"].get("namespace") == namespace else None

    def listed(self, namespace: str, tenant: str, start_after: str = "") -> Iterator[Listed]:
        """The tenant's archived jobs in ``namespace``, newest first, from the first entry
        after ``start_after`` (see :func:`listing_after`)."""
        for key in self.store.keys(listing_folder(tenant, namespace), start_after):
            yield listed_of(key)

    def forget(self, namespace: str, job: Job) -> None:
        """Drop the job's record and listing entry (the job was erased; its expiry marker
        stays, for a sweep that finds nothing left to delete)."""
        self.store.delete(record_key(job.spec.tenant, job.spec.job_id))
        self.store.delete(listing_key(job, namespace))

    def withdraw(self, namespace: str, job: Job) -> None:
        """Undo :meth:`put` for a job whose resource someone else deleted meanwhile (erased):
        its record must not bring it back."""
        self.store.delete(listing_key(job, namespace))
        self.store.delete(record_key(job.spec.tenant, job.spec.job_id))
        self.store.delete(expiry_key(job))

    def sweep(self, now: datetime) -> int:
        """Delete the archived jobs whose TTL has ended, with their objects: what the marker
        names (a job's listing entry; a batch's folder and entries, a folder ending in
        ``/``), the job's folder, then the marker (a crash in between sweeps it again)."""
        swept = 0
        bound = expiry_until(now)
        for marker in self.store.keys(EXPIRY_FOLDER):
            if marker >= bound:
                break
            tenant, job_id = marker.split("/")[-2:]
            for named in b"".join(self.store.iter_chunks(marker)).decode().splitlines():
                if named.endswith("/"):
                    self.store.delete_prefix(named)
                elif named:
                    self.store.delete(named)
            self.store.delete_prefix(f"{tenant}/{job_id}")
            self.store.delete(marker)
            swept += 1
        return swept
