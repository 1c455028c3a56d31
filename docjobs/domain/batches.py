"""Batches: many documents submitted together for one operation, each a job of its own.

A batch is a record (id, tenant, operation, when it was created) plus the jobs that carry
its id (``JobSpec.batch_id``); its counts are always read from those jobs, never kept apart.
Its ``total`` is set once every document of the request has been submitted (the batch is
*sealed*): before that, jobs ending cannot complete it. The batch completes when it is sealed
and every one of its ``total`` jobs has ended; the writer that sees that first (the end of
the last job, or the seal if every job had already ended) records ``completed_at`` and the
one ``batch.completed`` event, in the same write. A completed batch's record is deleted
``ttl_seconds_after_finished`` after it completed, as its jobs are after they ended.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docjobs.domain.clock import iso
from docjobs.domain.models import Phase

BATCH_COMPLETED = "batch.completed"
"""The event type sent once per batch, when its last job ends."""

BatchStatus = Literal["submitting", "processing", "completed"]
COUNTED_WORDS: dict[Phase, str] = {
    Phase.PENDING: "pending",
    Phase.RETRYING: "pending",
    Phase.PROCESSING: "processing",
    Phase.COMPLETE: "complete",
    Phase.FAILED: "failed",
    Phase.CANCELLED: "cancelled",
}
"""A job's phase as a batch counts it: a job waiting for its retry counts as pending."""


class Batch(BaseModel):
    """A batch's record; its jobs say the rest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: str
    tenant: str
    operation: str
    """The route it runs, as the request named it (``convert/markdown-to-pdf``...)."""
    created_at: datetime
    total: int | None = None
    """The number of its jobs, set once they have all been submitted; None until then."""
    completed_at: datetime | None = None
    """When its last job ended (its ``batch.completed`` event's time)."""
    ttl_seconds_after_finished: int = Field(default=86400, ge=0)
    """Its jobs' TTL: the record is deleted that long after the batch completed."""
    traceparent: str | None = None
    """The trace of the request that submitted it, which its jobs join: each delivery of
    its ``batch.completed`` is a span of it."""


@dataclass(frozen=True)
class BatchState:
    """A batch with its jobs counted by phase."""

    batch: Batch
    phases: Mapping[Phase, int]

    @property
    def counts(self) -> dict[str, int]:
        counted = dict.fromkeys(("pending", "processing", "complete", "failed", "cancelled"), 0)
        for phase, count in self.phases.items():
            counted[COUNTED_WORDS[phase]] += count
        return counted

    @property
    def finished(self) -> int:
        return sum(count for phase, count in self.phases.items() if phase.terminal)

    @property
    def status(self) -> BatchStatus:
        if self.batch.completed_at is not None:
            return "completed"
        return "submitting" if self.batch.total is None else "processing"


def new_batch_id(tenant: str, idempotency_key: str | None) -> str:
    """A fresh id, or with an ``Idempotency-Key`` the one the tenant's key always names, so a
    repeated request finds its batch (and, document by document, its jobs)."""
    if idempotency_key is None:
        return f"bat_{secrets.token_hex(12)}"
    digest = hashlib.sha256(f"{tenant}\0{idempotency_key}".encode()).hexdigest()
    return f"bat_{digest[:24]}"


def document_key(batch_id: str, index: int) -> str:
    """The idempotency key of a batch's ``index``-th document: a repeated batch request
    returns each document's job rather than running it again."""
    return f"{batch_id}/{index}"


def expires_at(batch: Batch) -> datetime | None:
    """When a completed batch's record is to be deleted; None before it completed."""
    if batch.completed_at is None:
        return None
    return batch.completed_at + timedelta(seconds=batch.ttl_seconds_after_finished)


def ended(state: BatchState) -> bool:
    """Whether the batch is sealed and every one of its jobs has ended."""
    total = state.batch.total
    return total is not None and state.finished >= total


def completed_event_data(state: BatchState) -> dict[str, Any]:
    """The body of ``batch.completed``: the batch and its final counts."""
    batch = state.batch
    return {
        "batchId": batch.batch_id,
        "operation": batch.operation,
        "total": batch.total,
        "counts": state.counts,
        "createdAt": iso(batch.created_at),
        "completedAt": iso(batch.completed_at) if batch.completed_at else None,
    }
