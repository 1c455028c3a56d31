"""Which DocumentJobs a warm worker pod may claim, and since when such a job has waited.

Read by the worker pods, which claim these jobs, and by the operator, which leaves them to
the workers for a short grace before it starts a runner Job itself. Pure functions.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from docjobs.domain.engines import CPU_ENGINES
from docjobs.domain.models import Engine, Job, Phase, engine_of
from docjobs.domain.sharding import plan_parts
from docjobs.kube.status import parse_time


def claimable(
    job: Job,
    shard_threshold_pages: int,
    part_pages: int,
    engines: Collection[Engine] = CPU_ENGINES,
) -> bool:
    """Whether a worker pod that claims jobs of ``engines`` may run ``job``: one of those
    engines, not sharded (more selected pages than ``shard_threshold_pages``, read by an
    Indexed Job's pods at once), and not asked to cancel. Whether it may run *now* is
    :func:`~docjobs.domain.lifecycle.is_runnable`'s."""
    if job.cancel_requested or engine_of(job.spec.operation) not in engines:
        return False
    if shard_threshold_pages < 1:
        return True
    return not plan_parts(job.spec, part_pages, shard_threshold_pages)


def waiting_since(resource: dict[str, Any], job: Job) -> datetime:
    """Since when a runnable job has waited for its attempt: a retry since its backoff
    ended, any other job since the DocumentJob was created."""
    status = job.status
    if status.phase is Phase.RETRYING and status.next_attempt_at is not None:
        return status.next_attempt_at
    created = parse_time(resource["metadata"].get("creationTimestamp"))
    return created if created is not None else job.spec.created_at
