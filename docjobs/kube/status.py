"""The DocumentJob status around the lifecycle's: the bookkeeping every writer of a status
adds (``observedGeneration``, ``conditions``, ``duration``, ``progressText``) and the wire
form it writes.

Pure functions, shared by the operator and by the API when it completes a job it claimed,
so a DocumentJob reads the same in ``kubectl get dj`` whoever ran it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from docjobs.domain.events import EVENT_OF_PHASE
from docjobs.domain.models import JobSpec, JobStatus, Phase, Progress
from docjobs.kube.resources import Condition, DocumentJobStatus, WebhookOutbox


def dump(status: DocumentJobStatus) -> dict[str, Any]:
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


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
    webhooks = before.webhooks
    if webhooks is None and not before.phase.terminal and after.phase in EVENT_OF_PHASE:
        # The outbox entry, in the same write as the end: a crash right after the write
        # still leaves the event to deliver.
        webhooks = WebhookOutbox(event=EVENT_OF_PHASE[after.phase])
    return with_progress(
        status.model_copy(
            update={"duration": duration, "conditions": conditions, "webhooks": webhooks}
        ),
        after.progress,
    )


def with_progress(status: DocumentJobStatus, progress: Progress | None) -> DocumentJobStatus:
    """``status`` with ``progress`` and its text for the PROGRESS column (``6/10``)."""
    text = None if progress is None else f"{progress.pages_done}/{progress.pages_total}"
    return status.model_copy(update={"progress": progress, "progress_text": text})


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


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_duration(seconds: float) -> str:
    """Like kubectl's ages: ``850ms``, ``42s``, ``3m12s``, ``2h05m``, ``3d4h``."""
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def status_patch(before: DocumentJobStatus, after: DocumentJobStatus) -> dict[str, Any]:
    """A merge patch from ``before`` to ``after``: the fields ``after`` no longer has are
    set to null, so none of ``before`` lingers (an earlier attempt's error)."""
    new = dump(after)
    return {**{name: None for name in dump(before) if name not in new}, **new}
