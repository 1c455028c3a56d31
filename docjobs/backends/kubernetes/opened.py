"""Results of claimed jobs opened ahead of their reader.

A sync request on a claimed job waits for the status write that completes the job, then
opens the result in the object store: two round trips one after the other. The result is
stored before the worker reports its attempt, so this process opens it while that status
write is on its way, and the request that then asks for it takes it already opened. Only
reads are moved: what is stored, and when the job reads as complete, stay as they were.

A result is taken once, by the first reader asking for that very result (key, size and
type, as the status names it); one nobody takes within ``KEEP_SECONDS`` (the request gave
up waiting, the job ended otherwise) is closed, and its connection goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from docjobs.backends.dependencies import OBJECT_STORE, DependencyMonitor
from docjobs.domain.models import ResultRef
from docjobs.storage.base import ObjectStore

log = logging.getLogger("docjobs.claimed")

KEEP_SECONDS = 10.0
"""How long an opened result waits for its reader before it is closed."""


@dataclass
class OpenedResult:
    """A result whose first chunk is read and whose rest is still on its way."""

    first: bytes | None
    rest: Iterator[bytes]

    def chunks(self) -> Iterator[bytes]:
        """The whole result, for one reader; the object store's answer is closed once read
        (or once the reader lets go of it)."""
        try:
            if self.first is not None:
                yield self.first
            yield from self.rest
        finally:
            self.close()

    def close(self) -> None:
        """Lets go of the object store's answer (a generator's ``finally`` does it)."""
        if isinstance(self.rest, Generator):
            self.rest.close()


def open_result(objects: ObjectStore, key: str) -> OpenedResult:
    """Blocking: the object ``key`` opened and its first chunk read."""
    opened = OpenedResult(None, objects.iter_chunks(key))
    try:
        opened.first = next(opened.rest, None)
    except BaseException:
        opened.close()
        raise
    return opened


class OpenedResults:
    """The results this process opened ahead; call on the event loop."""

    def __init__(
        self, objects: ObjectStore, monitor: DependencyMonitor, keep_seconds: float = KEEP_SECONDS
    ) -> None:
        self.objects = objects
        self.monitor = monitor
        self.keep_seconds = keep_seconds
        self._opened: dict[ResultRef, asyncio.Task[OpenedResult]] = {}

    def __len__(self) -> int:
        return len(self._opened)

    def open(self, result: ResultRef) -> None:
        """Opens ``result`` in the background, for :meth:`take`."""
        if result in self._opened:
            return
        call = self.monitor.call(OBJECT_STORE, open_result, self.objects, result.key)
        task = asyncio.create_task(call, name=f"open-{result.key}")
        self._opened[result] = task
        asyncio.get_running_loop().call_later(self.keep_seconds, self._expire, result, task)

    async def take(self, result: ResultRef) -> Iterator[bytes] | None:
        """``result``'s chunks if it was opened ahead (and opened well); None if not."""
        task = self._opened.pop(result, None)
        if task is None:
            return None
        try:
            return (await task).chunks()
        except Exception as exc:  # the reader opens it again, and meets the error itself
            log.info("result %s opened ahead failed: %s", result.key, exc)
            return None

    def _expire(self, result: ResultRef, task: asyncio.Task[OpenedResult]) -> None:
        if self._opened.get(result) is task:
            del self._opened[result]
            _close_when_open(task)

    def close(self) -> None:
        """Closes every result not taken."""
        for task in self._opened.values():
            _close_when_open(task)
        self._opened.clear()


def _close_when_open(task: asyncio.Task[OpenedResult]) -> None:
    def close(done: asyncio.Task[OpenedResult]) -> None:
        if not done.cancelled() and done.exception() is None:
            # Closing lets go of a connection: off the loop, as any object store call.
            with contextlib.suppress(RuntimeError):  # the loop is closing
                asyncio.get_running_loop().run_in_executor(None, done.result().close)

    task.add_done_callback(close)
