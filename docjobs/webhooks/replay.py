"""Sending a settled delivery's message again, on demand, with bounds on how much.

A replay is the delivery's message rebuilt as it was first sent: the same ``webhook-id``
(:func:`~docjobs.webhooks.messages.message_id` of job, target and event) and the same body
(the event's payload is the job's view as it ended, stamped with its end, so it is rebuilt
rather than stored), signed afresh with the target's secret and a new timestamp. It is one
try through :class:`~docjobs.webhooks.delivery.DeliveryTries`, the path every delivery takes
(SSRF checks, pinned address, no redirects, the policy's timeout), on a queue of its own
with the policy's ``max_parallel_deliveries`` threads; its answer is added to the
delivery's record as a further try.

A tenant cannot turn replays into a flood: one replay per delivery at a time, a few per
tenant at a time, and a delivery's record takes at most :data:`MAX_REPLAYS` tries past the
policy's ``max_attempts``, which also bounds the record's size.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from docjobs.webhooks.delivery import DeliveryAttempt, DeliveryTries, Network
from docjobs.webhooks.fanout import Target, internal_failure, message_to
from docjobs.webhooks.messages import WebhookMessage, message_id
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue
from docjobs.webhooks.records import DeliveryRecord

log = logging.getLogger(__name__)

MAX_REPLAYS = 10
"""Tries a delivery's record takes past the policy's ``max_attempts``."""
MAX_REPLAYS_PER_TENANT = 4
"""Replays of one tenant in flight at once in one process."""
BUSY_RETRY_SECONDS = 2
"""``Retry-After`` of a replay refused while the tenant's others are in flight."""


EVENT_OWNERS = ("job_", "bat_")
"""What a delivery's event is of, by its id's prefix: a job, or a batch (``batch.completed``
is recorded under the batch's id where a job's event is under its job's)."""


def delivery_id(job_id: str, target: str, event_type: str) -> str:
    """A delivery's id in the log: its job (or batch), then its ``webhook-id``; it names
    the job, so either route finds the record from the id alone."""
    return f"{job_id}.{message_id(job_id, target, event_type)}"


def parse_delivery_id(value: str) -> tuple[str, str] | None:
    """The job (or batch) id and ``webhook-id`` of a delivery id; None for anything else."""
    owner, dot, webhook_id = value.rpartition(".")
    if not dot or not owner.startswith(EVENT_OWNERS) or not webhook_id.startswith("msg_"):
        return None
    return owner, webhook_id


def find_delivery(
    records: list[DeliveryRecord], webhook_id: str, target: str | None = None
) -> DeliveryRecord | None:
    """The record whose ``webhook-id`` is ``webhook_id`` (and whose target is ``target``)."""
    for record in records:
        if message_id(record.job_id, record.target, record.event_type) == webhook_id and (
            target is None or record.target == target
        ):
            return record
    return None


class ReplayRefused(Exception):
    """A replay not started: ``code`` and ``status`` say why, as the API answers it."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


@dataclass(frozen=True)
class ReplayRequest:
    tenant: str
    record: DeliveryRecord
    target: Target
    data: dict[str, Any]
    """The event's payload, rebuilt from the job (``Backend.event_data``) or the batch."""
    occurred_at: datetime
    """The job's (or batch's) end, as the event was stamped."""
    record_try: Callable[[DeliveryAttempt], DeliveryRecord | None]
    """Adds the try to the delivery's record (blocking); the record as it now stands."""

    def message(self) -> WebhookMessage:
        record = self.record
        return message_to(
            self.target, record.job_id, record.event_type, self.data, self.occurred_at
        )


class Replays:
    """The replays of one process: one try each on a queue of their own."""

    def __init__(self, settings: WebhookSettings, network: Network | None = None) -> None:
        self.settings, self.network = settings, network
        self.queue = DeliveryQueue(settings.max_parallel_deliveries, name="docjobs-replay")
        self._guard = threading.Lock()
        self._running: set[tuple[str, str]] = set()
        self._per_tenant: Counter[str] = Counter()

    def start(self, request: ReplayRequest) -> Future[tuple[DeliveryAttempt, DeliveryRecord]]:
        """Queue the replay; its future holds the try and the record with it added.

        Raises :class:`ReplayRefused` when the delivery is being replayed already, the
        tenant has too many replays in flight, or the record has taken all it may."""
        record = request.record
        if len(record.attempts) >= self.settings.max_attempts + MAX_REPLAYS:
            raise ReplayRefused(
                429,
                "replay_limit_reached",
                f"This delivery was tried {len(record.attempts)} times, the most a delivery"
                " may be: it cannot be replayed again.",
            )
        key = (record.job_id, record.target)
        with self._guard:
            if key in self._running:
                raise ReplayRefused(
                    409, "replay_in_progress", "This delivery is being replayed; wait for it."
                )
            if self._per_tenant[request.tenant] >= MAX_REPLAYS_PER_TENANT:
                raise ReplayRefused(
                    429,
                    "too_many_replays",
                    f"At most {MAX_REPLAYS_PER_TENANT} replays at a time; retry once one ends.",
                    BUSY_RETRY_SECONDS,
                )
            self._running.add(key)
            self._per_tenant[request.tenant] += 1
        future: Future[tuple[DeliveryAttempt, DeliveryRecord]] = Future()

        def run() -> None:
            try:
                attempt = self._try(request)
                future.set_result((attempt, self._record(request, attempt)))
            except BaseException as exc:
                future.set_exception(exc)
            finally:
                self._done(request.tenant, key)

        self.queue.submit(run)
        return future

    def close(self) -> None:
        self.queue.close()

    def _try(self, request: ReplayRequest) -> DeliveryAttempt:
        try:
            tries = DeliveryTries(request.message(), self.settings, network=self.network)
            attempt, _ = tries.next()
        except Exception as exc:
            attempt = internal_failure(request.target, request.record.job_id, exc)
        return attempt

    @staticmethod
    def _record(request: ReplayRequest, attempt: DeliveryAttempt) -> DeliveryRecord:
        """The record with the try added; when the store fails, the answer is still told
        (the receiver had the message) and the log misses this try."""
        record = request.record
        try:
            updated = request.record_try(attempt)
        except Exception as exc:
            log.warning(
                "cannot record the replay of %s to %s: %s", record.job_id, record.target, exc
            )
            updated = None
        return updated or _with_try(record, attempt)

    def _done(self, tenant: str, key: tuple[str, str]) -> None:
        with self._guard:
            self._running.discard(key)
            self._per_tenant[tenant] -= 1
            if self._per_tenant[tenant] <= 0:
                del self._per_tenant[tenant]


def _with_try(record: DeliveryRecord, attempt: DeliveryAttempt) -> DeliveryRecord:
    """``record`` with ``attempt`` added, as the stores write it: delivered once a try is."""
    return DeliveryRecord(
        record.job_id,
        record.target,
        record.event_type,
        record.delivered or attempt.ok,
        (*record.attempts, attempt),
        record.recorded_at,
    )
