"""The operator's view of a DocumentJob status: which attempt is current, how old it is,
and the messages it shows while a runner waits (the bookkeeping is
:mod:`docjobs.kube.status`, shared with the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from docjobs.domain.models import JobStatus, Phase
from docjobs.kube.status import parse_time

WAITING = "Waiting for a node: "
TENANT_CAP = "Waiting for a slot: "
"""A runnable job whose tenant runs as many jobs as ``max_running_per_tenant`` allows."""
PROCESSING = "Job is being processed"
"""The lifecycle's message while an attempt runs, restored once a waiting pod has a node."""


def is_current(status: JobStatus, attempt: int) -> bool:
    """Whether an outcome of ``attempt`` still matters: older attempts' Jobs are history."""
    return status.phase is Phase.PROCESSING and status.attempts == attempt


def age(resource: dict[str, Any], now: datetime) -> float:
    created = parse_time(resource["metadata"].get("creationTimestamp"))
    return max((now - created).total_seconds(), 0.0) if created else 0.0
