"""Webhook endpoints in a Secret of the namespace; each job's deliveries on its DocumentJob.

The Secret ``docjobs-webhooks`` holds one entry per endpoint (``endpoint.<id>``: JSON with
its tenant, URL, events and signing secret) and one per tenant for the secret that signs
events sent to jobs' own URLs (``jobs.<tenant>``). The API writes it; the operator reads it
when a job ends. Deliveries are kept in the status of the DocumentJob they belong to
(``status.webhooks``, written by the operator: see :mod:`docjobs.kube.outbox`), so they go
when the job goes, and the API reads them from its watch cache at no cost.

A replay (:mod:`docjobs.webhooks.replay`) is sent by the API, and its try added by the API
to the delivery where it lives: a conditional merge patch of ``status.webhooks`` while the
DocumentJob is in the cluster (the delivery is settled, so the operator no longer writes
it), else the job's archived record, rewritten in place (withdrawn again should the job
have been erased meanwhile, as the operator does when it archives).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from docjobs.auth.keys import check_tenant
from docjobs.kube.archive import Archive, record_key
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.outbox import delivery_attempt, stored_attempt, update_outbox
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import WebhookOutbox, job_of, resource_name, status_of
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.messages import new_secret
from docjobs.webhooks.records import (
    MAX_ENDPOINTS_PER_TENANT,
    DeliveryRecord,
    WebhookEndpoint,
    check_description,
    check_events,
    new_endpoint,
)

_ENDPOINT = "endpoint."
_JOBS_SECRET = "jobs."  # noqa: S105 - a key prefix, not a secret


def _dumped(outboxes: builtins.list[WebhookOutbox]) -> JSON | None:
    if not outboxes:
        return None
    dumped: JSON = outboxes[0].model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def _dump(endpoint: WebhookEndpoint, secret: str) -> str:
    return json.dumps(
        {
            "tenant": endpoint.tenant,
            "url": endpoint.url,
            "events": list(endpoint.events),
            "description": endpoint.description,
            "secret": secret,
            "created_at": endpoint.created_at.isoformat(),
            "updated_at": endpoint.updated_at.isoformat(),
        }
    )


def _load(endpoint_id: str, text: str) -> tuple[WebhookEndpoint, str]:
    raw = json.loads(text)
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        tenant=raw["tenant"],
        url=raw["url"],
        events=tuple(raw["events"]),
        description=raw["description"],
        created_at=datetime.fromisoformat(raw["created_at"]),
        updated_at=datetime.fromisoformat(raw["updated_at"]),
    )
    return endpoint, str(raw["secret"])


def with_replay(
    outbox: WebhookOutbox | None, target: str, attempt: DeliveryAttempt
) -> WebhookOutbox | None:
    """``outbox`` with a replay's try added to the settled delivery to ``target``; None
    when there is none (nothing to write)."""
    if outbox is None:
        return None
    changed = []
    for delivery in outbox.deliveries:
        if delivery.target == target and delivery.state != "Pending":
            update: dict[str, Any] = {"attempts": [*delivery.attempts, stored_attempt(attempt)]}
            if attempt.ok:
                update["state"] = "Delivered"
            delivery = delivery.model_copy(update=update)
        changed.append(delivery)
    if changed == outbox.deliveries:
        return None
    return outbox.model_copy(update={"deliveries": changed})


def deliveries_of(job_id: str, resource: JSON | None) -> builtins.list[DeliveryRecord]:
    """The settled deliveries kept in a DocumentJob's status (``status.webhooks``)."""
    outbox = status_of(resource).webhooks if resource is not None else None
    if outbox is None:
        return []
    return [
        DeliveryRecord(
            job_id,
            d.target,
            outbox.event,
            d.state == "Delivered",
            tuple(delivery_attempt(a) for a in d.attempts),
            d.updated_at,
        )
        for d in outbox.deliveries
        if d.state != "Pending"
    ]


class SecretWebhookStore:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        secret: str = "docjobs-webhooks",  # noqa: S107 - the Secret's name
        read_job: Callable[[str], JSON | None] | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.secret = secret
        self._read_job = read_job or self._get_job
        """How ``deliveries`` reads a DocumentJob: the API passes its watch cache."""
        self.archive = archive
        """Where finished jobs are archived: a replay of an archived job's delivery is
        recorded there (the API's store has it; the operator never replays)."""

    def _entries(self) -> dict[str, str]:
        return self.client.read_data(self.namespace, "secrets", self.secret)

    def _endpoints(self, tenant: str) -> builtins.list[tuple[WebhookEndpoint, str]]:
        found = [
            _load(key.removeprefix(_ENDPOINT), value)
            for key, value in self._entries().items()
            if key.startswith(_ENDPOINT)
        ]
        mine = [(e, s) for e, s in found if e.tenant == tenant]
        return sorted(mine, key=lambda pair: pair[0].created_at)

    # --- endpoints --------------------------------------------------------------------------

    def create(
        self, tenant: str, url: str, events: Sequence[str], description: str = ""
    ) -> tuple[WebhookEndpoint, str]:
        endpoint, secret = new_endpoint(tenant, url, events, description)

        def add(data: dict[str, str]) -> None:
            count = sum(
                1
                for key, value in data.items()
                if key.startswith(_ENDPOINT) and json.loads(value)["tenant"] == tenant
            )
            if count >= MAX_ENDPOINTS_PER_TENANT:
                raise ValueError(f"at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints per tenant")
            data[_ENDPOINT + endpoint.id] = _dump(endpoint, secret)

        self.client.update_data(self.namespace, "secrets", self.secret, add)
        return endpoint, secret

    def list(self, tenant: str) -> builtins.list[WebhookEndpoint]:
        return [endpoint for endpoint, _ in self._endpoints(tenant)]

    def get(self, tenant: str, endpoint_id: str) -> WebhookEndpoint | None:
        return next((e for e in self.list(tenant) if e.id == endpoint_id), None)

    def update(
        self,
        tenant: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint | None:
        changes: dict[str, Any] = {"updated_at": datetime.now(UTC)}
        if url is not None:
            changes["url"] = url
        if events is not None:
            changes["events"] = check_events(events)
        if description is not None:
            changes["description"] = check_description(description)

        def change(data: dict[str, str]) -> WebhookEndpoint | None:
            raw = data.get(_ENDPOINT + endpoint_id)
            if raw is None:
                return None
            endpoint, secret = _load(endpoint_id, raw)
            if endpoint.tenant != tenant:
                return None
            endpoint = WebhookEndpoint(**{**endpoint.__dict__, **changes})
            data[_ENDPOINT + endpoint_id] = _dump(endpoint, secret)
            return endpoint

        return self.client.update_data(self.namespace, "secrets", self.secret, change)

    def delete(self, tenant: str, endpoint_id: str) -> bool:
        def remove(data: dict[str, str]) -> bool:
            raw = data.get(_ENDPOINT + endpoint_id)
            if raw is None or _load(endpoint_id, raw)[0].tenant != tenant:
                return False
            del data[_ENDPOINT + endpoint_id]
            return True

        return self.client.update_data(self.namespace, "secrets", self.secret, remove)

    def subscribed(
        self, tenant: str, event_type: str
    ) -> builtins.list[tuple[WebhookEndpoint, str]]:
        return [(e, s) for e, s in self._endpoints(tenant) if event_type in e.events]

    def endpoint_secret(self, tenant: str, endpoint_id: str) -> str | None:
        return next((s for e, s in self._endpoints(tenant) if e.id == endpoint_id), None)

    def tenant_secret(self, tenant: str) -> str:
        key = _JOBS_SECRET + check_tenant(tenant)
        if (known := self._entries().get(key)) is not None:
            return known

        def ensure(data: dict[str, str]) -> str:
            return data.setdefault(key, new_secret())

        return self.client.update_data(self.namespace, "secrets", self.secret, ensure)

    # --- deliveries -------------------------------------------------------------------------

    def deliveries(self, job_id: str) -> builtins.list[DeliveryRecord]:
        return deliveries_of(job_id, self._read_job(job_id))

    def record_replay(
        self, tenant: str, job_id: str, target: str, event_type: str, attempt: DeliveryAttempt
    ) -> DeliveryRecord | None:
        name = resource_name(job_id)
        path = documentjobs_path(self.namespace, name)
        written: list[WebhookOutbox] = []

        def change(outbox: WebhookOutbox | None) -> WebhookOutbox | None:
            written[:] = [after] if (after := with_replay(outbox, target, attempt)) else []
            return after

        resource: JSON | None = None
        if self.client.find(path) is not None:
            update_outbox(self.client, self.namespace, name, change)
            resource = {"status": {"webhooks": _dumped(written)}}
        if not written and self.client.find(path) is None:  # archived, maybe meanwhile
            resource = self._archived_replay(tenant, job_id, change)
        found = [r for r in deliveries_of(job_id, resource) if r.target == target]
        return found[0] if found and found[0].event_type == event_type else None

    def _archived_replay(
        self, tenant: str, job_id: str, change: Callable[[WebhookOutbox | None], Any]
    ) -> JSON | None:
        """The try added to the job's archived record, which is written again whole."""
        if self.archive is None:
            return None
        store, key = self.archive.store, record_key(tenant, job_id)
        try:
            body = json.loads(b"".join(store.iter_chunks(key)))
        except KeyError:  # no record: erased, or expired and swept
            return None
        resource: JSON = body["resource"]
        after = change(status_of(resource).webhooks)
        if after is None:
            return None
        webhooks = after.model_dump(mode="json", by_alias=True, exclude_none=True)
        resource.setdefault("status", {})["webhooks"] = webhooks
        store.put_bytes(key, json.dumps(body, separators=(",", ":")).encode(), "application/json")
        job = job_of(resource)
        if not store.exists(job.spec.input.key):  # erased while we wrote: take it back
            self.archive.withdraw(self.namespace, job)
            return None
        return resource

    def _get_job(self, job_id: str) -> JSON | None:
        try:
            return self.client.get(documentjobs_path(self.namespace, resource_name(job_id)))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
