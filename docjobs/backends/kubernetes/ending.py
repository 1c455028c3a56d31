"""Ends of claimed jobs, known to this process before the status write that records them.

A claimed job's warm worker stores its attempt's result, then its outcome, and only then
reports; the status write that completes the job is one more round trip to the API server.
The stored outcome already decides that end: were this process to die before the write
lands, the operator would take the job over once the claim lapses and complete it from the
outcome it finds stored (the same result, ended once). So the sync request waiting on the
job is answered from the end as this process decided it, while the write is on its way.

Every other read of the job in this process waits for that write to land (or to fail)
before it reads the watch cache, so no read here shows the job still Processing after its
sync request was answered, and none shows it Complete where the write found it cancelled
meanwhile. Only an attempt that succeeded qualifies: an outcome the worker reported is one
it stored, whereas a worker that died or hung stored nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from docjobs.domain import lifecycle
from docjobs.domain.models import EXIT_OK, Job, Phase

SETTLE_SECONDS = 10.0
"""The longest a read waits for an end write on its way; past it, it reads the cache."""


@dataclass
class _Ending:
    job: Job
    """The job as its end write will record it, unless someone else wrote in between."""
    landed: asyncio.Event = field(default_factory=asyncio.Event)


class PendingEnds:
    """The claimed jobs whose end this process knows and whose status write is on its way,
    by DocumentJob name; call on the event loop."""

    def __init__(self, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._ending: dict[str, _Ending] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}

    def __len__(self) -> int:
        return len(self._ending)

    def announce(self, name: str, job: Job) -> None:
        """``job`` (Complete) is how the job ``name`` ends; its status write is being sent."""
        assert job.status.phase is Phase.COMPLETE, job.status.phase
        self._ending[name] = _Ending(job)
        for event in self._watchers.get(name, ()):
            event.set()

    def landed(self, name: str) -> None:
        """The end write of ``name`` is over: written (and in the watch cache), or failed."""
        ending = self._ending.pop(name, None)
        if ending is not None:
            ending.landed.set()

    def decided(self, name: str) -> Job | None:
        """How the job ``name`` ends, while its end write is on its way."""
        ending = self._ending.get(name)
        return ending.job if ending is not None else None

    def of_tenant(self, tenant: str) -> list[str]:
        """The names of ``tenant``'s jobs whose end write is on its way."""
        return [name for name, e in self._ending.items() if e.job.spec.tenant == tenant]

    @contextlib.contextmanager
    def watch(self, name: str, changed: asyncio.Event) -> Iterator[None]:
        """Sets ``changed`` when the end of ``name`` is announced."""
        self._watchers.setdefault(name, set()).add(changed)
        try:
            yield
        finally:
            watchers = self._watchers.get(name, set())
            watchers.discard(changed)
            if not watchers:
                self._watchers.pop(name, None)

    async def settled(self, names: Iterable[str] | None = None) -> bool:
        """Once the end writes on their way for ``names`` (None: all of them) have landed
        or failed, or after ``settle_seconds``; whether any was on its way."""
        wanted = list(self._ending) if names is None else names
        pending = [e.landed.wait() for n in wanted if (e := self._ending.get(n)) is not None]
        if not pending:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*pending), self.settle_seconds)
        return True


def completed_by(job: Job, ended: lifecycle.Observation) -> Job | None:
    """``job`` as ``ended`` completes it from an outcome the worker reported, and so stored;
    None when ``ended`` is no such end, or the job was asked to cancel."""
    if not isinstance(ended, lifecycle.RunnerExited) or job.cancel_requested:
        return None
    if ended.exit_code != EXIT_OK or ended.summary.result is None:
        return None
    decided = lifecycle.decide(job.spec, job.status, ended).status
    if decided.phase is not Phase.COMPLETE:
        return None
    return job.model_copy(update={"status": decided})
