"""Where a job's end event goes, and the message each target is sent (by the driver).

Targets are the tenant's endpoints subscribed to the event, plus the URL given with the job.
A job's own URL is signed with the tenant's job-URL secret (``WebhookStore.tenant_secret``):
one secret per tenant, like an endpoint's, so a receiver of many jobs holds a single secret
and can verify before it parses anything. A per-job secret would have the receiver look up
which secret to use from the unverified body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.messages import WebhookMessage, message_id
from docjobs.webhooks.records import WebhookStore

log = logging.getLogger(__name__)


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
    target: Target,
    job_id: str,
    event_type: str,
    data: dict[str, Any],
    occurred_at: datetime,
    traceparent: str | None = None,
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
        traceparent=traceparent,
    )


def internal_failure(target: Target, job_id: str, exc: Exception) -> DeliveryAttempt:
    """A bug or a store error while delivering, as one failed attempt: it must not lose the
    record of the other targets."""
    log.error("webhook delivery to %s for job %s failed", target.name, job_id, exc_info=exc)
    return DeliveryAttempt(datetime.now(UTC), None, f"internal error: {exc}", 0)
