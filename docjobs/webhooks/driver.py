"""The one webhook delivery driver, for both backends: tries on the queue, kept in a journal.

A job's end event goes to each of its targets (:func:`~docjobs.webhooks.fanout.targets_of`)
one try per queue task. Every try is written to the event's :class:`DeliveryJournal` as it
ends, with when the next one is due, so a delivery resumed after a restart goes on with the
same count against ``max_attempts`` and not before the backoff the last try asked for. A
target settles on a 2xx, a final refusal or its last try, and a settled target is never sent
to again. When the journal fails to record a settled target the answer is kept and only the
record is written again later: the receiver is not sent the event a second time.

The journal is the backend's: SQLite rows in embedded mode
(:meth:`docjobs.backends.embedded.webhooks.SQLiteWebhookStore.journal`), ``status.webhooks``
of the DocumentJob in Kubernetes mode (:class:`docjobs.kube.outbox.StatusJournal`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from docjobs.webhooks.delivery import DeliveryAttempt, DeliveryTries, Network
from docjobs.webhooks.fanout import Target, internal_failure, message_to
from docjobs.webhooks.messages import WebhookMessage, check_event_type
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue, Task
from docjobs.webhooks.records import PendingEvent

log = logging.getLogger(__name__)

RECORD_RETRY_SECONDS = 5.0
"""Wait before writing a settled delivery's record again (its store failed us)."""


@dataclass(frozen=True)
class PriorTries:
    """What a journal holds of one target's delivery of an event."""

    attempts: tuple[DeliveryAttempt, ...] = ()
    next_try_at: datetime | None = None
    """When the next try is due, as the last one asked (None: at once)."""
    settled: bool = False
    """Delivered, or given up on: never tried again."""


class DeliveryJournal(Protocol):
    """One event's deliveries, target by target (named by :attr:`Target.name`), kept across
    restarts. Called from the queue's threads: blocking calls are fine."""

    def prior(self) -> Mapping[str, PriorTries]:
        """The targets tried before, and how far each went."""
        ...

    def record_try(
        self, target: str, attempts: Sequence[DeliveryAttempt], next_try_at: datetime
    ) -> None:
        """A try that leaves the target pending: every try so far, and when the next is due."""
        ...

    def settle(self, target: str, attempts: Sequence[DeliveryAttempt], delivered: bool) -> None:
        """The target's last word: delivered (its last try had a 2xx) or failed."""
        ...


def deliver_event(
    queue: DeliveryQueue,
    settings: WebhookSettings,
    journal: DeliveryJournal,
    event: PendingEvent,
    targets: Sequence[Target],
    on_settled: Task,
    network: Network | None = None,
) -> None:
    """Queue ``event`` for every target the journal has not settled; returns at once.

    ``on_settled`` runs on a worker once every target is settled, at once when none is left;
    never when the queue is closed first, so what it would close stays for the next start.
    Blocking (the journal's ``prior``): call it off the event loop.
    """
    check_event_type(event.event_type)
    prior = journal.prior()
    todo = [t for t in targets if not prior.get(t.name, PriorTries()).settled]
    if not todo:
        on_settled()
        return
    settled = Countdown(len(todo), on_settled)
    for target in todo:
        message = message_to(
            target,
            event.job_id,
            event.event_type,
            event.data,
            event.occurred_at,
            event.traceparent,
        )
        delivery = TargetDelivery(
            queue,
            settings,
            journal,
            event.job_id,
            target,
            message,
            prior.get(target.name, PriorTries()),
            settled,
            network,
        )
        queue.submit(delivery)


class Countdown:
    """Runs ``then`` once called ``count`` times, on the thread that makes the last call."""

    def __init__(self, count: int, then: Task) -> None:
        self.remaining, self.then = count, then
        self._guard = threading.Lock()

    def __call__(self) -> None:
        with self._guard:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self.then()


class TargetDelivery:
    """One event to one target: one try per turn on the queue, written to the journal as it
    ends, the next queued for when its backoff ends; ``settled`` once its record is written."""

    def __init__(
        self,
        queue: DeliveryQueue,
        settings: WebhookSettings,
        journal: DeliveryJournal,
        job_id: str,
        target: Target,
        message: WebhookMessage,
        prior: PriorTries,
        settled: Task,
        network: Network | None = None,
    ) -> None:
        self.queue, self.settings, self.journal = queue, settings, journal
        self.job_id, self.target, self.message = job_id, target, message
        self.settled, self.network = settled, network
        self.attempts: list[DeliveryAttempt] = list(prior.attempts)
        self.due = prior.next_try_at
        self.tries: DeliveryTries | None = None
        self.delivered: bool | None = None
        """Set once settled: only its record is left to write (never another try)."""

    def __call__(self) -> None:
        if self.delivered is None:
            self.delivered = self._try()
            if self.delivered is None:
                return
        try:
            self.journal.settle(self.target.name, self.attempts, self.delivered)
        except Exception as exc:
            # The answer is known: write it again later rather than deliver it again.
            log.warning(
                "cannot record the webhook delivery of job %s to %s: %s; again in %g s",
                self.job_id,
                self.target.name,
                exc,
                RECORD_RETRY_SECONDS,
            )
            self.queue.submit(self, RECORD_RETRY_SECONDS)
            return
        self.settled()

    def _try(self) -> bool | None:
        """One try (or a wait for the one that is due): None while more are to come, else
        whether it was delivered."""
        if len(self.attempts) < self.settings.max_attempts:
            if self.due is not None:
                due, self.due = self.due, None
                if (delay := (due - datetime.now(UTC)).total_seconds()) > 0:
                    self.queue.submit(self, delay)  # waits holding no worker
                    return None
            try:
                if self.tries is None:
                    self.tries = DeliveryTries(
                        self.message, self.settings, network=self.network, tried=len(self.attempts)
                    )
                attempt, wait = self.tries.next()
            except Exception as exc:
                attempt, wait = internal_failure(self.target, self.job_id, exc), None
            self.attempts.append(attempt)
            if wait is not None:
                self._pending(wait)
                return None
        delivered = bool(self.attempts) and self.attempts[-1].ok
        if not delivered:
            log.warning(
                "%s of job %s to %s not delivered after %d tries; the last: %s",
                self.message.event_type,
                self.job_id,
                self.target.name,
                len(self.attempts),
                self.attempts[-1].outcome if self.attempts else "none made",
            )
        return delivered

    def _pending(self, wait: float) -> None:
        """Record the try and when the next is due, then queue the next for then."""
        try:
            next_try_at = datetime.now(UTC) + timedelta(seconds=wait)
            self.journal.record_try(self.target.name, self.attempts, next_try_at)
        except Exception as exc:  # the delivery goes on; only a restart would repeat a try
            name = self.target.name
            log.warning("cannot record a webhook try of job %s to %s: %s", self.job_id, name, exc)
        self.queue.submit(self, wait)
