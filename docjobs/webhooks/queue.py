"""A process's webhook deliveries on a fixed number of threads, with a queue in front.

Every try of every delivery is one task on :class:`DeliveryQueue`: a burst of finished jobs
waits in the queue instead of starting a thread each, and a retry is scheduled for when its
backoff ends instead of slept through, so a receiver that is down holds no thread while its
deliveries wait. What must survive a restart is kept by the caller (an outbox): the queue
itself is memory only, and a closed queue drops what it holds.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

from docjobs.webhooks.delivery import DeliveryAttempt, DeliveryTries, WebhookMessage
from docjobs.webhooks.fanout import Target, internal_failure, message_to, undelivered_targets
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.records import PendingEvent, WebhookStore

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


class _TargetDelivery:
    """One event to one target on the queue: one try per turn, the next one queued for when
    its backoff ends; once settled, its record is written and ``settled`` called."""

    def __init__(
        self,
        queue: DeliveryQueue,
        store: WebhookStore,
        settings: WebhookSettings,
        job_id: str,
        target: Target,
        message: WebhookMessage,
        settled: Task,
    ) -> None:
        self.queue, self.store, self.settings = queue, store, settings
        self.job_id, self.target, self.message = job_id, target, message
        self.settled = settled
        self.tries: DeliveryTries | None = None
        self.attempts: list[DeliveryAttempt] = []

    def __call__(self) -> None:
        try:
            if self.tries is None:
                self.tries = DeliveryTries(self.message, self.settings)
            attempt, wait = self.tries.next()
        except Exception as exc:
            attempt, wait = internal_failure(self.target, self.job_id, exc), None
        self.attempts.append(attempt)
        if wait is not None:
            self.queue.submit(self, wait)
            return
        event_type = self.message.event_type
        if not attempt.ok:
            log.warning(
                "%s of job %s to %s not delivered after %d tries; the last: %s",
                event_type,
                self.job_id,
                self.target.name,
                len(self.attempts),
                attempt.outcome,
            )
        self.store.record(self.job_id, self.target.name, event_type, self.attempts, attempt.ok)
        self.settled()


def queue_job_event(
    queue: DeliveryQueue,
    store: WebhookStore,
    settings: WebhookSettings,
    event: PendingEvent,
    on_settled: Task,
) -> None:
    """Queue ``event`` for every target not delivered to before; returns at once.
    ``on_settled`` runs on a worker once every target is settled (delivered, or given up on
    and recorded as failed), at once when there is none; never when the queue is closed
    first, so an outbox entry it would remove stays for the next start."""
    job_id, event_type = event.job_id, event.event_type
    targets = undelivered_targets(store, event.tenant, job_id, event_type, event.webhook_url)
    if not targets:
        on_settled()
        return
    remaining, guard = len(targets), threading.Lock()

    def settled() -> None:
        nonlocal remaining
        with guard:
            remaining -= 1
            last = remaining == 0
        if last:
            on_settled()

    for target in targets:
        message = message_to(target, job_id, event_type, event.data, event.occurred_at)
        queue.submit(_TargetDelivery(queue, store, settings, job_id, target, message, settled))
