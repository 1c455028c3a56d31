"""One attempt whose pages several warm workers read at once, in parts, then merge.

The supervisor hands parts out: the attempt's own worker reads one part after another,
and a worker no waiting job needs reads one more part and goes back, so a large document
uses every idle worker without keeping a job that arrives later from starting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable

from docjobs.backends.workers.pool import Worker, WorkerPool, run_attempt
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import AttemptTimedOut, Observation, RunnerExited
from docjobs.domain.models import EXIT_OK, JobSpec, PagePart, Progress, WorkerRequest
from docjobs.domain.sharding import selection_size


class PagedAttempt:
    def __init__(
        self,
        spec: JobSpec,
        attempt: int,
        parts: list[str],
        pool: WorkerPool,
        on_progress: Callable[[Progress], None] = lambda progress: None,
    ) -> None:
        self.spec = spec
        self.attempt = attempt
        self.parts = len(parts)
        self.pool = pool
        self.queue = deque(PagePart(index=i, pages=pages) for i, pages in enumerate(parts))
        self.deadline = time.monotonic() + spec.timeout_seconds
        self.workers: set[Worker] = set()
        self.failure: Observation | None = None
        self.parts_cpu = 0.0
        """CPU seconds of the parts read: a failed attempt reports them with its failure (a
        merge adds them itself, from the store)."""
        self._reading = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_progress = on_progress
        """Told after each part read, with the pages read so far and the pages to read."""
        self.progress = Progress(pages_done=0, pages_total=sum(map(selection_size, parts)))

    def take(self) -> PagePart | None:
        """The next part to read, counted as being read from now on; ``None`` when none."""
        if self.failure is not None or not self.queue:
            return None
        self._reading += 1
        self._idle.clear()
        return self.queue.popleft()

    async def read(self, part: PagePart) -> None:
        """Reads ``part`` (from :meth:`take`) on a worker of the pool."""
        try:
            request = WorkerRequest(spec=self.spec, attempt=self.attempt, part=part)
            ended = await self._run(request)
            if not (isinstance(ended, RunnerExited) and ended.exit_code == EXIT_OK):
                self.fail(ended)
                return
            self.parts_cpu += ended.summary.cpu_seconds
            if self.failure is None:
                done = self.progress.pages_done + (ended.summary.page_count or 0)
                self.progress = self.progress.model_copy(update={"pages_done": done})
                self.on_progress(self.progress)
        finally:
            self._reading -= 1
            if self._reading == 0:
                self._idle.set()

    def fail(self, ended: Observation) -> None:
        """The attempt ends as ``ended`` says: no other part starts, those running stop."""
        if self.failure is None:
            self.failure = ended
        self.stop()

    def stop(self) -> None:
        self.queue.clear()
        for worker in list(self.workers):
            worker.kill()

    async def finish(self) -> Observation:
        """Reads parts on this attempt's own worker, then merges them: how the attempt ended."""
        while (part := self.take()) is not None:
            await self.read(part)
        await self._idle.wait()
        if isinstance(self.failure, RunnerExited):
            summary = self.failure.summary.charged(self.parts_cpu)
            return dataclasses.replace(self.failure, summary=summary)
        if self.failure is not None:
            return self.failure
        merge = WorkerRequest(spec=self.spec, attempt=self.attempt, merge_parts=self.parts)
        return await self._run(merge)

    async def _run(self, request: WorkerRequest) -> Observation:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return AttemptTimedOut(utcnow())
        worker = await self.pool.acquire()
        self.workers.add(worker)
        try:
            return await run_attempt(self.pool, worker, request, remaining)
        finally:
            self.workers.discard(worker)
