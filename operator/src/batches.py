"""The operator decides when a batch ended, in Kubernetes mode, whoever ended its jobs.

Like usage, a job's end is noted by the operator alone (one writer, however many API and
worker pods end jobs): for every watched DocumentJob of a batch that ended it writes the
job's ``ended`` object (:mod:`docjobs.kube.batches`), then counts them; once a sealed
batch has one for each of its jobs it writes ``completed.json`` and hands the batch to the
webhook hook, which sends ``batch.completed`` with a delivery journal in the object store.

Every step is idempotent, so a restarted operator, which sees every DocumentJob again,
redoes at most the same writes: an ``ended`` object is the same object; ``completed.json``
is read back, never written twice; and the journal keeps a target that settled from being
sent the event again. The API seals a batch after its last job was created; a batch whose
jobs had all ended by then is noticed through the annotation the seal puts on one of them,
or, when none of them is in the cluster any more (archived before the seal), by the sweep of
the seals index every :data:`SWEEP_SECONDS`. A batch stays in that index until its end was
delivered, so an operator restarted meanwhile delivers it even if its jobs are gone.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from docjobs.domain.batches import Batch
from docjobs.domain.clock import utcnow
from docjobs.domain.models import TERMINAL_PHASE_NAMES, Phase
from docjobs.kube.batches import BatchObjectStore, StoredBatches, open_seals
from docjobs.kube.client import JSON
from docjobs.kube.resources import ANNOTATION_BATCH_SEALED, LABEL_BATCH, job_of

log = logging.getLogger(__name__)
BatchEnded = Callable[[StoredBatches, Batch, Mapping[Phase, int], Callable[[], None]], None]
"""Told once per process of each batch that completed (its end event to deliver); calls its
last argument once the event is delivered to every target."""
SWEEP_SECONDS = 60.0
"""How often the sealed batches whose end was not delivered are looked at."""


class BatchEnds:
    def __init__(
        self,
        store: BatchObjectStore | None,
        on_end: BatchEnded | None,
        namespace: str | None = None,
    ) -> None:
        """``namespace``: the one the operator watches (None: all)."""
        self.store = store
        self.on_end = on_end
        self.namespace = namespace
        self._next_sweep: datetime | None = None
        self._noted: set[str] = set()
        """DocumentJobs (namespace/name, and whether sealed) this process noted the end of."""
        self._announced: set[str] = set()
        """Batches (namespace/id) handed to ``on_end`` by this process."""
        self._guard = threading.Lock()
        self._checking = threading.Lock()
        """One batch check at a time in this process: two last ends must not both complete
        a batch."""

    def due(self, resource: JSON) -> bool:
        """Whether ``resource`` is an ended job of a batch whose end this process has not
        noted yet (nor since the batch was sealed, if the seal marked it)."""
        status = resource.get("status") or {}
        metadata = resource.get("metadata") or {}
        if self.store is None or LABEL_BATCH not in (metadata.get("labels") or {}):
            return False
        if status.get("phase") not in TERMINAL_PHASE_NAMES:
            return False
        with self._guard:
            return _note_of(resource) not in self._noted

    def record(self, resource: JSON) -> None:
        """Note the job's end, and the batch's if it was the last (blocking)."""
        if self.store is None:
            return
        job = job_of(resource)
        batch_id = job.spec.batch_id
        if batch_id is None:
            return
        namespace = resource["metadata"]["namespace"]
        batches = StoredBatches(self.store, namespace)
        batches.mark_ended(job)
        with self._guard:
            self._noted.add(_note_of(resource))
        self._check(batches, job.spec.tenant, batch_id)

    def forget(self, resource: JSON) -> None:
        """The DocumentJob was deleted (archived, expired or erased)."""
        with self._guard:
            self._noted.difference_update({_note_of(resource, sealed) for sealed in (0, 1)})

    def sweep_due(self, now: datetime) -> bool:
        """Whether a sweep is due; taken, it is not due again for :data:`SWEEP_SECONDS`."""
        if self.store is None:
            return False
        if self._next_sweep is not None and now < self._next_sweep:
            return False
        self._next_sweep = now + timedelta(seconds=SWEEP_SECONDS)
        return True

    def sweep(self) -> None:
        """Check every sealed batch whose end was not delivered (blocking): one whose jobs
        all ended, wherever they are now, completes here."""
        assert self.store is not None
        try:
            for namespace, tenant, batch_id in open_seals(self.store, self.namespace):
                batches = StoredBatches(self.store, namespace)
                if not self._check(batches, tenant, batch_id):
                    batches.unseal_index(tenant, batch_id)  # erased or expired
        except Exception as exc:  # the next sweep looks again; nothing is lost
            log.warning("batch sweep failed: %s", exc)

    def _check(self, batches: StoredBatches, tenant: str, batch_id: str) -> bool:
        """Complete the batch if it is sealed and each of its jobs ended, and hand it over
        once per process; False when the batch has no record (erased, or expired)."""
        key = f"{batches.namespace}/{batch_id}"
        with self._checking:
            if key in self._announced:
                return True
            batch = batches.record(tenant, batch_id)
            if batch is None or batch.total is None:
                return batch is not None
            phases = batches.final_phases(batch)
            if phases is None:
                ended = batches.ended(tenant, batch_id)
                if len(ended) < batch.total:
                    return True
                counted: dict[Phase, int] = {}
                for phase in ended.values():
                    counted[phase] = counted.get(phase, 0) + 1
                batch = batch.model_copy(update={"completed_at": utcnow()})
                batches.complete(batch, counted)
                phases = counted
            self._announced.add(key)
        delivered = functools.partial(batches.unseal_index, tenant, batch_id)
        if self.on_end is not None:
            self.on_end(batches, batch, phases, delivered)
        else:
            delivered()
        return True


def _note_of(resource: JSON, sealed: int | None = None) -> str:
    metadata = resource["metadata"]
    if sealed is None:
        sealed = int(ANNOTATION_BATCH_SEALED in (metadata.get("annotations") or {}))
    return f"{metadata['namespace']}/{metadata['name']}/{sealed}"
