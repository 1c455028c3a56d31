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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from docjobs.webhooks.delivery import (
    EVENT_TYPES,
    AttemptHook,
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


@dataclass(frozen=True)
class Target:
    """Where one event goes: an endpoint, or the job's own URL (named by the URL)."""

    name: str
    url: str
    secret: str


def targets_of(
    store: WebhookStore,
    tenant: str,
    event_type: str,
    job_webhook_url: str | None = None,
    job_webhook_secret: str | None = None,
) -> list[Target]:
    """The tenant's endpoints subscribed to ``event_type``, then the job's own URL.

    ``job_webhook_secret`` overrides the tenant's job-URL secret."""
    targets = [Target(ep.id, ep.url, secret) for ep, secret in store.subscribed(tenant, event_type)]
    if job_webhook_url:
        secret = job_webhook_secret or store.tenant_secret(tenant)
        targets.append(Target(job_webhook_url, job_webhook_url, secret))
    return targets


def message_to(
    target: Target, job_id: str, event_type: str, data: dict[str, Any], occurred_at: datetime
) -> WebhookMessage:
    """The event for ``target``; its ``webhook-id`` depends only on the job, the target and
    the event, so every retry and re-send carries the same one."""
    return WebhookMessage(
        target.url,
        target.secret,
        event_type,
        data,
        msg_id=message_id(job_id, target.name, event_type),
        occurred_at=occurred_at,
    )


def internal_failure(target: Target, job_id: str, exc: Exception) -> DeliveryAttempt:
    """A bug or a store error while delivering, as one failed attempt: it must not lose the
    record of the other targets."""
    log.error("webhook delivery to %s for job %s failed", target.name, job_id, exc_info=exc)
    return DeliveryAttempt(datetime.now(UTC), None, f"internal error: {exc}", 0)


def send(
    settings: WebhookSettings,
    job_id: str,
    target: Target,
    event_type: str,
    data: dict[str, Any],
    occurred_at: datetime,
    *,
    tried: int = 0,
    on_attempt: AttemptHook | None = None,
) -> list[DeliveryAttempt]:
    """One event to one target (see :func:`deliver`) in one of the process's delivery slots.
    An internal error ends it as one failed attempt, returned but not told to
    ``on_attempt``."""
    try:
        message = message_to(target, job_id, event_type, data, occurred_at)
        with delivery_slots(settings.max_parallel_deliveries):
            return deliver(message, settings, tried=tried, on_attempt=on_attempt)
    except Exception as exc:
        return [internal_failure(target, job_id, exc)]


def undelivered_targets(
    store: WebhookStore,
    tenant: str,
    job_id: str,
    event_type: str,
    job_webhook_url: str | None = None,
    job_webhook_secret: str | None = None,
) -> list[Target]:
    """:func:`targets_of`, less those the event was delivered to before (a delivery resumed
    after a restart): they are not sent it again."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type must be one of {', '.join(EVENT_TYPES)}")
    targets = targets_of(store, tenant, event_type, job_webhook_url, job_webhook_secret)
    done = {
        d.target for d in store.deliveries(job_id) if d.delivered and d.event_type == event_type
    }
    return [t for t in targets if t.name not in done]


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
    targets = undelivered_targets(
        store, tenant, job_id, event_type, job_webhook_url, job_webhook_secret
    )
    if not targets:
        return
    when = occurred_at or datetime.now(UTC)

    def one(target: Target) -> None:
        attempts = send(settings, job_id, target, event_type, data, when)
        delivered = bool(attempts) and attempts[-1].ok
        if not delivered:
            log.warning("%s of job %s to %s not delivered", event_type, job_id, target.name)
        store.record(job_id, target.name, event_type, attempts, delivered)

    in_parallel(one, targets)


def in_parallel(one: Callable[[Target], None], targets: list[Target]) -> None:
    """``one`` for every target, at most :data:`MAX_PARALLEL` at once; blocks until done."""
    if targets:
        with ThreadPoolExecutor(min(len(targets), MAX_PARALLEL), "webhook") as pool:
            list(pool.map(one, targets))
