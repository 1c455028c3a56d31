"""docTR documents gathered into batches for warm workers, so that the pages of several
documents share the model's forward passes.

A request waits at most ``linger`` seconds from its arrival for others to join it (a lone
one starts then), and a batch is sent as soon as it holds ``max_documents``. Each batch goes
to a worker of its own: as many batches run at once as the pool has workers, and requests
that arrive while every worker is busy gather into the next batch meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from docjobs.domain.lifecycle import Observation
from docjobs.domain.models import WorkerBatch, WorkerRequest

from .pool import WorkerPool, run_batch

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    request: WorkerRequest
    timeout: float
    arrived: float
    answer: asyncio.Future[Observation] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DocumentBatcher:
    def __init__(self, pool: WorkerPool, max_documents: int, linger: float) -> None:
        self.pool = pool
        self.max_documents = max_documents
        self.linger = linger
        """Seconds a request waits for others to share its batch, at most."""
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._workers = asyncio.Semaphore(pool.size)
        self._gathering: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    async def run(self, request: WorkerRequest, timeout: float) -> Observation:
        """How ``request``'s attempt ended, read in a batch with whichever docTR documents
        arrived around the same time; ``timeout`` bounds the attempt as in
        :func:`~docjobs.backends.workers.pool.run_attempt`. A request that is not a whole
        docTR document is refused at once (``ValueError``)."""
        WorkerBatch(requests=[request])
        if self._gathering is None or self._gathering.done():
            self._gathering = asyncio.create_task(self._gather(), name="document-batcher")
        waiting = _Waiting(request, timeout, asyncio.get_running_loop().time())
        self._queue.put_nowait(waiting)
        # Shielded: a caller that gives up leaves the attempt to end in its batch.
        return await asyncio.shield(waiting.answer)

    async def close(self) -> None:
        """Stops gathering and waits for the batches already sent."""
        if self._gathering is not None:
            self._gathering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gathering
        await asyncio.gather(*self._batches, return_exceptions=True)

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            await self._workers.acquire()
            try:
                close_at = first.arrived + self.linger
                while len(batch) < self.max_documents:
                    if not self._queue.empty():
                        # Those that gathered while every worker was busy go first.
                        batch.append(self._queue.get_nowait())
                        continue
                    remaining = close_at - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                    except TimeoutError:
                        break
            except BaseException:
                self._workers.release()
                for waiting in batch:
                    waiting.answer.cancel()
                raise
            task = asyncio.create_task(self._send(batch), name="document-batch")
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _send(self, batch: list[_Waiting]) -> None:
        try:
            worker = await self.pool.acquire()
            observations = await run_batch(
                self.pool,
                worker,
                [waiting.request for waiting in batch],
                max(waiting.timeout for waiting in batch),
            )
        except Exception as exc:
            log.exception("a batch of %d docTR documents failed", len(batch))
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
        else:
            for waiting, observation in zip(batch, observations, strict=True):
                if not waiting.answer.done():
                    waiting.answer.set_result(observation)
        finally:
            self._workers.release()
