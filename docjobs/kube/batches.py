"""Batches in Kubernetes mode: a few objects in the object store, beside the tenant's jobs.

``<tenant>/.batches/<namespace>/<batch_id>/``:

- ``batch.json``: the record (:class:`~docjobs.domain.batches.Batch`), written by the API at
  the batch's creation and again when it seals it (``total``);
- ``ended/<job_id>,<Phase>``: one empty object per job of the batch that ended, written by
  the operator alone, whoever ended the job; its name is all it says and it depends only on
  the terminal status, so an operator that restarts and sees the same ends writes the same
  objects;
- ``completed.json``: the batch as it completed, with its final counts, written once by the
  operator when a sealed batch has an ``ended`` object for each of its jobs;
- ``deliveries.json``: the ``batch.completed`` deliveries so far (the delivery journal).

Beside them, two indexes:

- ``.batch-seals/<namespace>/<tenant>/<batch_id>``: written by the API's seal before the
  record says ``total``, deleted by the operator once the batch's end was delivered, so an
  operator that never sees one of the batch's jobs again (all archived before the seal,
  or a restart between the batch's end and its delivery) still finds it by a sweep;
- ``<tenant>/.batch-listing/<namespace>/<entry>``: one empty object per completed batch,
  named to sort newest first (as the archive's job listing), which the delivery log reads.

The operator also writes an expiry marker in the archive's expiry index
(:func:`docjobs.kube.archive.expiry_key_at`) when the batch completes, naming its folder
and listing entry: the archive's sweep deletes them when the batch's TTL ends.

The DocumentJobs carry the label ``docjobs.io/batch``; a batch's unfinished jobs are those
the API's watch cache holds, and its finished ones are counted from ``ended``, since a
finished job leaves the cluster when it is archived.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from pydantic import TypeAdapter

from docjobs.domain.batches import BATCH_COMPLETED, Batch, BatchState, expires_at
from docjobs.domain.models import Job, Phase
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.driver import PriorTries
from docjobs.webhooks.records import DeliveryRecord

from .archive import expiry_key_at, flip_id, inverted_time, unflip_id

BATCHES_FOLDER = ".batches"
SEALS_FOLDER = ".batch-seals"
"""At the top, beside the tenants' folders (no tenant name has a dot)."""
LISTING_FOLDER = ".batch-listing"
_PHASES = TypeAdapter(dict[Phase, int])
_JOURNAL = TypeAdapter(dict[str, tuple[tuple[DeliveryAttempt, ...], datetime | None, bool]])
_JOURNAL_LOCK = threading.Lock()


class BatchObjectStore(Protocol):
    """What batches need of an object store (:class:`docjobs.storage.base.ObjectStore`)."""

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int: ...

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...

    def keys(self, folder: str, start_after: str = "") -> Iterator[str]: ...

    def delete(self, key: str) -> None: ...


def seal_key(namespace: str, tenant: str, batch_id: str) -> str:
    return f"{SEALS_FOLDER}/{namespace}/{tenant}/{batch_id}"


def open_seals(objects: BatchObjectStore, namespace: str | None) -> Iterator[tuple[str, str, str]]:
    """(namespace, tenant, batch id) of each sealed batch whose end was not yet delivered,
    in ``namespace`` or every one."""
    folder = SEALS_FOLDER if namespace is None else f"{SEALS_FOLDER}/{namespace}"
    for key in objects.keys(folder):
        found_namespace, tenant, batch_id = key.split("/")[-3:]
        yield found_namespace, tenant, batch_id


def listing_folder(tenant: str, namespace: str) -> str:
    return f"{tenant}/{LISTING_FOLDER}/{namespace}"


def listing_key(batch: Batch, namespace: str) -> str:
    entry = f"{inverted_time(batch.created_at)},{flip_id(batch.batch_id)}"
    return f"{listing_folder(batch.tenant, namespace)}/{entry}"


def listing_after(tenant: str, namespace: str, position: tuple[float, str]) -> str:
    """A ``start_after`` for the entries older than ``position`` (creation time, id)."""
    created, batch_id = position
    return f"{listing_folder(tenant, namespace)}/{inverted_time(created)},{flip_id(batch_id)}"


class StoredBatches:
    """One namespace's batches (blocking calls)."""

    def __init__(self, objects: BatchObjectStore, namespace: str) -> None:
        self.objects = objects
        self.namespace = namespace

    def folder(self, tenant: str, batch_id: str) -> str:
        return f"{tenant}/{BATCHES_FOLDER}/{self.namespace}/{batch_id}"

    def create(self, batch: Batch) -> Batch:
        """The batch as stored: ``batch``, or the one already stored under its id."""
        found = self.record(batch.tenant, batch.batch_id)
        if found is not None:
            return found
        self.put_json(self._key(batch, "batch.json"), batch.model_dump(mode="json"))
        return batch

    def seal(self, tenant: str, batch_id: str, total: int) -> None:
        found = self.record(tenant, batch_id)
        if found is None or found.total is not None:
            return
        # The index first: a seal it does not name might never be looked at again.
        key = seal_key(self.namespace, tenant, batch_id)
        self.objects.put_bytes(key, b"", "application/octet-stream")
        sealed = found.model_copy(update={"total": total})
        self.put_json(self._key(sealed, "batch.json"), sealed.model_dump(mode="json"))

    def unseal_index(self, tenant: str, batch_id: str) -> None:
        """The batch's end was delivered (or the batch is gone): no sweep needs it again."""
        self.objects.delete(seal_key(self.namespace, tenant, batch_id))

    def record(self, tenant: str, batch_id: str) -> Batch | None:
        """The batch as it completed if it did, else its record; None if there is none."""
        folder = self.folder(tenant, batch_id)
        completed = self.read(f"{folder}/completed.json")
        if completed is not None:
            return Batch.model_validate(json.loads(completed)["batch"])
        data = self.read(f"{folder}/batch.json")
        return None if data is None else Batch.model_validate_json(data)

    def final_phases(self, batch: Batch) -> dict[Phase, int] | None:
        """The counts the batch completed with; None before it did."""
        data = self.read(self._key(batch, "completed.json"))
        return None if data is None else _PHASES.validate_python(json.loads(data)["phases"])

    def mark_ended(self, job: Job) -> None:
        """The job's end, as one empty object (the same one however often it is written)."""
        batch_id = job.spec.batch_id
        assert batch_id is not None
        key = f"{self.folder(job.spec.tenant, batch_id)}/ended/{job.spec.job_id},"
        self.objects.put_bytes(key + job.status.phase.value, b"", "application/octet-stream")

    def ended(self, tenant: str, batch_id: str) -> dict[str, Phase]:
        """Each ended job of the batch with its final phase."""
        folder = f"{self.folder(tenant, batch_id)}/ended"
        found: dict[str, Phase] = {}
        for key in self.objects.keys(folder):
            job_id, _, phase = key.rsplit("/", 1)[-1].partition(",")
            found[job_id] = Phase(phase)
        return found

    def complete(self, batch: Batch, phases: Mapping[Phase, int]) -> None:
        """Record the batch's end: its expiry marker and listing entry first, then
        ``completed.json``, which says it completed (a crash in between writes the same
        marker and entry again)."""
        expires = expires_at(batch)
        assert expires is not None
        listing = listing_key(batch, self.namespace)
        doomed = f"{self.folder(batch.tenant, batch.batch_id)}/\n{listing}\n"
        marker = expiry_key_at(batch.tenant, batch.batch_id, expires)
        self.objects.put_bytes(marker, doomed.encode(), "text/plain")
        self.objects.put_bytes(listing, b"", "application/octet-stream")
        body = {
            "batch": batch.model_dump(mode="json"),
            "phases": _PHASES.dump_python(dict(phases), mode="json"),
        }
        self.put_json(self._key(batch, "completed.json"), body)

    def completed_ids(self, tenant: str, after: tuple[float, str] | None) -> Iterator[str]:
        """The tenant's completed batches, newest created first, after ``after``."""
        start = "" if after is None else listing_after(tenant, self.namespace, after)
        for key in self.objects.keys(listing_folder(tenant, self.namespace), start):
            yield unflip_id(key.rsplit(",", 1)[-1])

    def completed(self, tenant: str, limit: int, after: tuple[float, str] | None) -> list[Batch]:
        """Up to ``limit`` of the tenant's completed batches, newest created first, after
        ``after``; an entry whose record went (being swept) is passed over."""
        found: list[Batch] = []
        for batch_id in self.completed_ids(tenant, after):
            if len(found) >= limit:
                break
            batch = self.record(tenant, batch_id)
            if batch is not None and batch.completed_at is not None:
                found.append(batch)
        return found

    def deliveries(self, batch: Batch) -> list[DeliveryRecord]:
        """The batch's settled ``batch.completed`` deliveries, as the delivery log shows
        them (the journal keeps no time of its own: a record's is its first try's)."""
        found = []
        for target, tries in self.journal(batch).prior().items():
            if tries.settled and tries.attempts:
                found.append(_record(batch.batch_id, target, tries.attempts))
        return found

    def record_replay(
        self, batch: Batch, target: str, attempt: DeliveryAttempt
    ) -> DeliveryRecord | None:
        """Add a replay's try to a settled delivery (the operator never writes a settled
        one again); None when there is no such delivery."""
        journal = self.journal(batch)
        tries = journal.prior().get(target)
        if tries is None or not tries.settled:
            return None
        attempts = (*tries.attempts, attempt)
        journal.settle(target, attempts, True)
        return _record(batch.batch_id, target, attempts)

    def journal(self, batch: Batch) -> ObjectJournal:
        return ObjectJournal(self, self._key(batch, "deliveries.json"))

    def _key(self, batch: Batch, name: str) -> str:
        return f"{self.folder(batch.tenant, batch.batch_id)}/{name}"

    def read(self, key: str) -> bytes | None:
        if not self.objects.exists(key):
            return None
        return b"".join(self.objects.iter_chunks(key))

    def put_json(self, key: str, body: object) -> None:
        self.objects.put_bytes(key, json.dumps(body).encode(), "application/json")


class ObjectJournal:
    """The ``batch.completed`` deliveries of one batch, as one object rewritten after each
    try. Written by the operator alone, and each target's tries by one queue task at a time,
    so a plain rewrite under the process's lock loses nothing."""

    def __init__(self, batches: StoredBatches, key: str) -> None:
        self.batches, self.key = batches, key

    def _load(self) -> dict[str, tuple[tuple[DeliveryAttempt, ...], datetime | None, bool]]:
        data = self.batches.read(self.key)
        return {} if data is None else _JOURNAL.validate_json(data)

    def prior(self) -> Mapping[str, PriorTries]:
        return {t: PriorTries(a, n, s) for t, (a, n, s) in self._load().items()}

    def _write(
        self,
        target: str,
        attempts: Sequence[DeliveryAttempt],
        due: datetime | None,
        settled: bool,
    ) -> None:
        with _JOURNAL_LOCK:
            entries = self._load()
            entries[target] = (tuple(attempts), due, settled)
            self.batches.put_json(self.key, _JOURNAL.dump_python(entries, mode="json"))

    def record_try(
        self, target: str, attempts: Sequence[DeliveryAttempt], next_try_at: datetime
    ) -> None:
        self._write(target, attempts, next_try_at, False)

    def settle(self, target: str, attempts: Sequence[DeliveryAttempt], delivered: bool) -> None:
        self._write(target, attempts, None, True)


def _record(batch_id: str, target: str, attempts: Sequence[DeliveryAttempt]) -> DeliveryRecord:
    delivered = any(a.ok for a in attempts)
    return DeliveryRecord(
        batch_id, target, BATCH_COMPLETED, delivered, tuple(attempts), attempts[0].at
    )


def batch_state(
    batches: StoredBatches, tenant: str, batch_id: str, watched: Callable[[], Iterable[Job]]
) -> BatchState | None:
    """The batch with its jobs counted: as it completed, else its ended jobs and, fresher,
    the jobs the watch cache holds (``watched``). Blocking."""
    batch = batches.record(tenant, batch_id)
    if batch is None:
        return None
    final = batches.final_phases(batch)
    if final is not None:
        return BatchState(batch, final)
    phases = batches.ended(tenant, batch_id)
    for job in watched():
        if job.spec.batch_id == batch_id and job.spec.tenant == tenant:
            phases[job.spec.job_id] = job.status.phase
    counted: dict[Phase, int] = {}
    for phase in phases.values():
        counted[phase] = counted.get(phase, 0) + 1
    return BatchState(batch, counted)
