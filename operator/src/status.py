"""The DocumentJob status around the lifecycle's: pure bookkeeping the operator adds
(``observedGeneration``, ``conditions``, ``duration``) and the wire form it writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from docjobs.domain.models import JobSpec, JobStatus, Phase
from docjobs.kube.resources import Condition, DocumentJobStatus

from .builders import format_duration, parse_time

WAITING = "Waiting for a node: "
PROCESSING = "Job is being processed"
"""The lifecycle's message while an attempt runs, restored once a waiting pod has a node."""


def dump(status: DocumentJobStatus) -> dict[str, Any]:
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def is_current(status: JobStatus, attempt: int) -> bool:
    """Whether an outcome of ``attempt`` still matters: older attempts' Jobs are history."""
    return status.phase is Phase.PROCESSING and status.attempts == attempt


def bookkeep(
    resource: dict[str, Any], spec: JobSpec, before: DocumentJobStatus, after: JobStatus
) -> DocumentJobStatus:
    generation = resource["metadata"].get("generation")
    status = before.model_copy(
        update={
            **{name: getattr(after, name) for name in JobStatus.model_fields},
            "observed_generation": generation,
        }
    )
    duration = None
    if after.phase.terminal and after.completed_at is not None:
        elapsed = (after.completed_at - spec.created_at).total_seconds()
        duration = format_duration(elapsed)
    conditions = conditions_of(before.conditions, after, generation)
    return status.model_copy(update={"duration": duration, "conditions": conditions})


def conditions_of(
    before: list[Condition], status: JobStatus, generation: int | None
) -> list[Condition]:
    """``Running`` and ``Finished``, by the usual Kubernetes conventions."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = {c.type: c for c in before}
    failed = status.phase is Phase.FAILED and status.error is not None
    reason = status.error.reason if failed and status.error else status.phase.value
    out = []
    for kind, true in (
        ("Running", status.phase is Phase.PROCESSING),
        ("Finished", status.phase.terminal),
    ):
        value = "True" if true else "False"
        previous = old.get(kind)
        unchanged = previous is not None and previous.status == value
        out.append(
            Condition(
                type=kind,
                status=value,
                reason=reason,
                message=status.message,
                last_transition_time=(
                    previous.last_transition_time if unchanged and previous else now
                ),
                observed_generation=generation,
            )
        )
    return out


def age(resource: dict[str, Any], now: datetime) -> float:
    created = parse_time(resource["metadata"].get("creationTimestamp"))
    return max((now - created).total_seconds(), 0.0) if created else 0.0
