"""A process's webhook deliveries on a fixed number of threads, with a queue in front.

Every try of every delivery is one task on :class:`DeliveryQueue`: a burst of finished jobs
waits in the queue instead of starting a thread each, and a retry is scheduled for when its
backoff ends instead of slept through, so a receiver that is down holds no thread while its
deliveries wait. What must survive a restart is kept in a journal by the driver
(:mod:`docjobs.webhooks.driver`): the queue itself is memory only, and a closed queue drops
what it holds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Task = Callable[[], None]


class DeliveryQueue:
    """``workers`` threads (started with the first task) running tasks once they are due."""

    def __init__(self, workers: int, name: str = "docjobs-webhook") -> None:
        self.workers = workers
        self.name = name
        self._due: list[tuple[float, int, Task]] = []
        """(monotonic time due, order of submission, task): a heap."""
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, task: Task, delay: float = 0.0) -> None:
        """Run ``task`` on a worker, not before ``delay`` seconds; nothing once closed."""
        with self._changed:
            if self._closed:
                return
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), task))
            while len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
            self._changed.notify()

    def backlog(self) -> int:
        """Tasks waiting: due, or scheduled for later."""
        with self._changed:
            return len(self._due)

    def close(self) -> None:
        """Drop the tasks waiting; workers end after the task each is running."""
        with self._changed:
            self._closed = True
            self._due.clear()
            self._changed.notify_all()

    def _next(self) -> Task | None:
        with self._changed:
            while not self._closed:
                if not self._due:
                    self._changed.wait()
                elif (wait := self._due[0][0] - time.monotonic()) > 0:
                    self._changed.wait(wait)
                else:
                    return heapq.heappop(self._due)[2]
            return None

    def _work(self) -> None:
        while (task := self._next()) is not None:
            try:
                task()
            except Exception:  # one delivery's failure must not stop the others
                log.exception("webhook delivery task failed")
