"""A finished job's usage record: what it cost, decided once from its terminal status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any, Protocol

from docjobs.domain.models import CPU_SECONDS as CPU_SECONDS
from docjobs.domain.models import Job, Phase, engine_of, reported_cpu_seconds
from docjobs.metrics import count_usage

PAGES_BY_TIER = "pages_by_tier"
"""A runner summary's detail that splits a job's pages between the tiers that read them
(``{"tesseract": n, "doctr": m, "vision": k}``), for operations that use several."""
STATUS_OF_PHASE = {
    Phase.COMPLETE: "complete",
    Phase.FAILED: "failed",
    Phase.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class UsageRecord:
    job_id: str
    tenant: str
    day: date
    """The UTC day the job ended."""
    operation: str
    """The operation's kind (``convert``, ``ocr.simple``...)."""
    tier: str
    """The engine the job ran on (``tesseract``, ``doctr``, ``vision``, ``convert``...)."""
    status: str
    """``complete``, ``failed`` or ``cancelled``."""
    pages: Mapping[str, int] = field(default_factory=dict)
    """Pages read (or, for a conversion, made) by tier; only a completed job has any."""
    input_bytes: int = 0
    cpu_seconds: float = 0.0
    """Runner CPU time of every attempt the job had (and every part of each), failed ones
    included."""

    @property
    def page_total(self) -> int:
        return sum(self.pages.values())


def usage_of(job: Job) -> UsageRecord:
    """The usage record of a job in a terminal phase."""
    spec, status = job.spec, job.status
    if not status.phase.terminal:
        raise ValueError(f"{spec.job_id} has not ended ({status.phase.value})")
    ended = status.completed_at or spec.created_at
    tier = engine_of(spec.operation).value
    complete = status.phase is Phase.COMPLETE
    return UsageRecord(
        job_id=spec.job_id,
        tenant=spec.tenant,
        day=ended.astimezone(UTC).date(),
        operation=spec.operation.kind,
        tier=tier,
        status=STATUS_OF_PHASE[status.phase],
        pages=_pages(tier, status.page_count, status.details) if complete else {},
        input_bytes=spec.input.size,
        cpu_seconds=_cpu_seconds(job),
    )


def _pages(tier: str, page_count: int | None, details: Mapping[str, Any]) -> dict[str, int]:
    split = details.get(PAGES_BY_TIER)
    if isinstance(split, Mapping) and all(
        isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in split.items()
    ):
        return {k: v for k, v in split.items() if v > 0}
    return {tier: page_count} if page_count else {}


def _cpu_seconds(job: Job) -> float:
    """The sum the status kept over its attempts; a job that completed before the status
    kept one has its last attempt's only, in its details."""
    status = job.status
    last = reported_cpu_seconds(status.details) if status.phase is Phase.COMPLETE else 0.0
    return max(status.cpu_seconds, last)


class UsageReader(Protocol):
    """Where a backend's usage records are read from (blocking)."""

    def records(self, tenant: str | None, first: date, last: date) -> Iterable[UsageRecord]:
        """The records of ``tenant`` (None: of every tenant) whose day is from ``first`` to
        ``last``, both included; each job's once."""
        ...


def count_in_metrics(record: UsageRecord, per_tenant: bool) -> None:
    """The record in the Prometheus usage counters (per tenant only if ``per_tenant``)."""
    count_usage(
        record.operation,
        record.tier,
        record.status,
        record.pages,
        record.tenant if per_tenant else None,
    )
