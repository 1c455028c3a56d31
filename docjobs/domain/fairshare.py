"""Which waiting jobs start next: tenants take turns, whoever has fewest running goes first.

A pure function, so that one tenant's burst of jobs cannot starve another tenant's single
job: that job starts on the next free worker, however many the burst queued before it, and
whether the burst's callers wait for their answers (sync requests) or not.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping

from docjobs.domain.models import Job


def next_jobs(
    waiting: Iterable[Job],
    running: Mapping[str, int],
    slots: int,
    cap: int = 0,
    waited: Collection[str] = (),
    turns: Mapping[str, int] | None = None,
) -> list[Job]:
    """Up to ``slots`` of ``waiting``, in the order they should start.

    ``waiting`` is each tenant's queue in its own order; ``running`` counts the jobs each
    tenant has running; ``cap`` (0: none) is the most one tenant may run at once. A job in
    ``waited`` has a caller waiting for its answer: it goes first within its tenant's queue,
    never before another tenant's job (a tenant calling synchronously from many threads
    would otherwise take every worker). ``turns`` numbers the tenants' last starts (higher:
    later): between tenants running as many jobs, the one served longest ago goes first, so
    tenants take turns however old their queues are.
    """
    queues: dict[str, list[Job]] = {}
    for job in waiting:
        queues.setdefault(job.spec.tenant, []).append(job)
    # sorted() is stable: a waited job first, then the tenant's own order.
    ordered = {
        tenant: deque(sorted(queue, key=lambda job: job.spec.job_id not in waited))
        for tenant, queue in queues.items()
    }
    busy = Counter(running)
    last = dict(turns or {})
    turn_number = max(last.values(), default=0)
    chosen: list[Job] = []
    while len(chosen) < slots:
        open_tenants = [t for t, q in ordered.items() if q and (cap <= 0 or busy[t] < cap)]
        if not open_tenants:
            break

        def rank(tenant: str) -> tuple[int, int, float]:
            head = ordered[tenant][0]
            return (busy[tenant], last.get(tenant, -1), head.spec.created_at.timestamp())

        tenant = min(open_tenants, key=rank)
        chosen.append(ordered[tenant].popleft())
        busy[tenant] += 1
        turn_number += 1
        last[tenant] = turn_number
    return chosen
