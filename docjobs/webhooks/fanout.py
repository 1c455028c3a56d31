"""The one call made when a job ends: send the event to its webhooks and record each delivery.

Targets are the tenant's endpoints subscribed to the event, plus the URL given with the job.
A job's own URL is signed with the tenant's job-URL secret (``WebhookStore.tenant_secret``):
one secret per tenant, like an endpoint's, so a receiver of many jobs holds a single secret
and can verify before it parses anything. A per-job secret would have the receiver look up
which secret to use from the unverified body.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from docjobs.domain.events import EVENT_OF_PHASE, job_view
from docjobs.domain.models import Job
from docjobs.webhooks.delivery import (
    EVENT_TYPES,
    DeliveryAttempt,
    WebhookMessage,
    deliver,
    message_id,
)
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.records import WebhookStore

log = logging.getLogger(__name__)

MAX_PARALLEL = 8
"""Targets of one event delivered to at once, so one slow receiver does not hold up the
others."""


@functools.cache
def delivery_slots(limit: int) -> threading.BoundedSemaphore:
    """The process's slots for deliveries in progress (``max_parallel_deliveries``), shared
    by every event of every job, whichever thread delivers it."""
    return threading.BoundedSemaphore(limit)


def deliver_job_event(
    store: WebhookStore,
    settings: WebhookSettings,
    tenant: str,
    job_id: str,
    event_type: str,
    data: dict[str, Any],
    job_webhook_url: str | None = None,
    job_webhook_secret: str | None = None,
    *,
    occurred_at: datetime | None = None,
) -> None:
    """Deliver ``event_type`` for ``job_id`` to every target; blocks until all are done.

    Run it off the supervisor's or operator's loop: retries may take minutes.
    ``job_webhook_secret`` overrides the tenant's job-URL secret; ``occurred_at`` (when the
    job ended) defaults to now. Unsafe targets are recorded as failed and never requested.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type must be one of {', '.join(EVENT_TYPES)}")
    targets = [(ep.id, ep.url, secret) for ep, secret in store.subscribed(tenant, event_type)]
    if job_webhook_url:
        secret = job_webhook_secret or store.tenant_secret(tenant)
        targets.append((job_webhook_url, job_webhook_url, secret))
    # Delivered before (a delivery resumed after a restart): not again.
    done = {
        d.target for d in store.deliveries(job_id) if d.delivered and d.event_type == event_type
    }
    targets = [t for t in targets if t[0] not in done]
    if not targets:
        return
    when = occurred_at or datetime.now(UTC)

    def one(target: tuple[str, str, str]) -> None:
        name, url, secret = target
        try:
            message = WebhookMessage(
                url,
                secret,
                event_type,
                data,
                msg_id=message_id(job_id, name, event_type),
                occurred_at=when,
            )
            with delivery_slots(settings.max_parallel_deliveries):
                attempts = deliver(message, settings)
        except Exception as exc:  # a bug here must not lose the record of the others
            log.exception("webhook delivery to %s for job %s failed", name, job_id)
            attempts = [DeliveryAttempt(datetime.now(UTC), None, f"internal error: {exc}", 0)]
        delivered = bool(attempts) and attempts[-1].ok
        if not delivered:
            log.warning("webhook %s for job %s to %s not delivered", event_type, job_id, name)
        store.record(job_id, name, event_type, attempts, delivered)

    with ThreadPoolExecutor(min(len(targets), MAX_PARALLEL), "webhook") as pool:
        list(pool.map(one, targets))


def deliver_job_end(store: WebhookStore, settings: WebhookSettings, job: Job) -> None:
    """The event of a job that has just ended, in the parse API's job view, to every target;
    nothing for a job that has not ended. Blocks like :func:`deliver_job_event`."""
    event_type = EVENT_OF_PHASE.get(job.status.phase)
    if event_type is None:
        return
    deliver_job_event(
        store,
        settings,
        job.spec.tenant,
        job.spec.job_id,
        event_type,
        job_view(job),
        job.spec.webhook_url,
        occurred_at=job.status.completed_at,
    )
