"""The signed message: one event's body and the Standard Webhooks headers that sign it.

The ``webhook-id`` depends only on the job, the target and the event, so every retry (and
re-send after a restart) carries the same one and receivers can drop duplicates. The body is
fixed once per delivery; its signature and timestamp are made afresh for every try, since
receivers reject timestamps more than five minutes off and retries come later.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python
from standardwebhooks.webhooks import Webhook

from docjobs.domain.clock import iso

JOB_EVENT_TYPES = ("job.completed", "job.failed", "job.cancelled")
"""What an endpoint subscribes to when it names no events: batch ends are asked for."""
EVENT_TYPES = (*JOB_EVENT_TYPES, "batch.completed")
"""One per terminal phase of a job (``docjobs.domain.events.EVENT_OF_PHASE`` maps phases to
them), and a batch's end (``docjobs.domain.batches``), whose events carry the batch id where
a job's carry the job id."""
USER_AGENT = "docjobs-webhooks/1"


@dataclass(frozen=True)
class WebhookMessage:
    """One event for one target: what a delivery signs and sends until it lands."""

    url: str
    secret: str
    """The target's signing secret (``whsec_...``)."""
    event_type: str
    data: Mapping[str, Any]
    msg_id: str | None = None
    """The ``webhook-id``, from :func:`message_id`; a random one when absent."""
    occurred_at: datetime | None = None
    """When the event happened (the job ended); now when absent."""
    traceparent: str | None = None
    """The job's trace context (W3C); each try sends it as its parent."""


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def message_id(job_id: str, target: str, event_type: str) -> str:
    """The ``webhook-id``: the same for every retry (and re-send) of one event to one target,
    so receivers can drop duplicates."""
    digest = hashlib.sha256(f"{job_id}\0{target}\0{event_type}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def check_event_type(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type must be one of {', '.join(EVENT_TYPES)}")
    return event_type


def event_body(event_type: str, data: Mapping[str, Any], occurred_at: datetime) -> str:
    payload = {"type": check_event_type(event_type), "timestamp": iso(occurred_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), default=to_jsonable_python)


class SignedMessage:
    """A message's body and id, fixed once; :meth:`headers` signs it for one try."""

    def __init__(self, message: WebhookMessage) -> None:
        self.body = event_body(
            message.event_type, message.data, message.occurred_at or datetime.now(UTC)
        )
        self.msg_id = message.msg_id or f"msg_{secrets.token_hex(16)}"
        self._signer = Webhook(message.secret)

    def headers(self) -> dict[str, str]:
        now = datetime.now(UTC)
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": self.msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(self.msg_id, now, self.body),
        }
