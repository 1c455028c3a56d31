"""Tenants' webhook endpoints with their signing secrets, and what was delivered per job.

Secrets are stored in clear, unlike API keys: they are HMAC signing keys we must use on every
delivery, not passwords we only compare. Protect the database file like the keys it holds.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import TypeAdapter

from docjobs.auth.keys import check_tenant
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.messages import EVENT_TYPES, new_secret

MAX_ENDPOINTS_PER_TENANT = 20
"""Each ending job is sent to every endpoint: this bounds the fan-out one tenant can cause."""
MAX_DESCRIPTION = 500

ATTEMPTS = TypeAdapter(tuple[DeliveryAttempt, ...])
"""JSON of a delivery's tries, as both stores keep it."""


@dataclass(frozen=True)
class WebhookEndpoint:
    """A registered endpoint as the API shows it: the secret is not part of it."""

    id: str
    tenant: str
    url: str
    events: tuple[str, ...]
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeliveryRecord:
    job_id: str
    target: str
    """The endpoint id (``wh_...``), or the URL for a job's own webhook URL."""
    event_type: str
    delivered: bool
    attempts: tuple[DeliveryAttempt, ...]
    recorded_at: datetime


class WebhookStore(Protocol):
    """What the API and the delivery code need of a webhook store, in either backend."""

    def create(
        self, tenant: str, url: str, events: Sequence[str], description: str = ""
    ) -> tuple[WebhookEndpoint, str]: ...

    def list(self, tenant: str) -> builtins.list[WebhookEndpoint]: ...

    def get(self, tenant: str, endpoint_id: str) -> WebhookEndpoint | None: ...

    def update(
        self,
        tenant: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint | None: ...

    def delete(self, tenant: str, endpoint_id: str) -> bool: ...

    def subscribed(
        self, tenant: str, event_type: str
    ) -> builtins.list[tuple[WebhookEndpoint, str]]: ...

    def tenant_secret(self, tenant: str) -> str: ...

    def deliveries(self, job_id: str) -> builtins.list[DeliveryRecord]:
        """The job's settled deliveries (a pending one is not listed until it settles)."""
        ...

    def endpoint_secret(self, tenant: str, endpoint_id: str) -> str | None:
        """The signing secret of the tenant's endpoint; None when it has no such endpoint."""
        ...

    def record_replay(
        self, tenant: str, job_id: str, target: str, event_type: str, attempt: DeliveryAttempt
    ) -> DeliveryRecord | None:
        """Add a replay's try to a settled delivery's record (delivered once a try is); the
        record as it now stands, None when it is gone (the job erased or expired)."""
        ...


def new_endpoint(
    tenant: str, url: str, events: Sequence[str], description: str
) -> tuple[WebhookEndpoint, str]:
    """A checked new endpoint and its signing secret (URLs are checked by the API)."""
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id=f"wh_{secrets.token_hex(12)}",
        tenant=check_tenant(tenant),
        url=url,
        events=check_events(events),
        description=check_description(description),
        created_at=now,
        updated_at=now,
    )
    return endpoint, new_secret()


@dataclass(frozen=True)
class PendingEvent:
    """A job's end, to be announced to its webhooks."""

    job_id: str
    event_type: str
    tenant: str
    data: dict[str, Any]
    webhook_url: str | None
    occurred_at: datetime
    traceparent: str | None = None
    """The job's trace context: each delivery is a span of the job's trace."""


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(events))
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if not wanted or unknown:
        raise ValueError(f"events must be a non-empty subset of {', '.join(EVENT_TYPES)}")
    return wanted


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise ValueError(f"description longer than {MAX_DESCRIPTION} characters")
    return description
