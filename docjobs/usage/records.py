"""A finished job's usage record: what it cost, decided once from its terminal status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any, Protocol

from docjobs.domain.models import Job, Phase, engine_of
from docjobs.metrics import count_usage

PAGES_BY_TIER = "pages_by_tier"
"""A runner summary's detail that splits a job's pages between the tiers that read them
(``{"tesseract": n, "doctr": m, "vision": k}``), for operations that use several."""
CPU_SECONDS = "cpu_seconds"
"""A runner summary's detail: the CPU time (user and system, its children's included) the
attempt that ended the job used."""
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
        cpu_seconds=_cpu_seconds(status.details) if complete else 0.0,
    )


def _pages(tier: str, page_count: int | None, details: Mapping[str, Any]) -> dict[str, int]:
    split = details.get(PAGES_BY_TIER)
    if isinstance(split, Mapping) and all(
        isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in split.items()
    ):
        return {k: v for k, v in split.items() if v > 0}
    return {tier: page_count} if page_count else {}


def _cpu_seconds(details: Mapping[str, Any]) -> float:
    value = details.get(CPU_SECONDS)
    return round(float(value), 3) if isinstance(value, int | float) and value > 0 else 0.0


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
