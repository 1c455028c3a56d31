"""The outbox in a DocumentJob's status: the Kubernetes journal of webhook delivery.

Whoever ends a job (the operator, or the API for a sync job it claimed) writes
``status.webhooks`` (the event, ``Pending``) with the terminal phase, in one status write
(:func:`docjobs.kube.status.bookkeep`). The operator delivers it from there with the
delivery driver (:mod:`docjobs.webhooks.driver`), over :class:`StatusJournal`: each try is
written back as it ends (its answer, when the next is due), a settled target (``Delivered``
or ``Failed``) is never sent to again, and ``Done`` closes the outbox once all are settled.

An operator killed mid-delivery finds the outbox ``Pending`` after its restart and resumes
the unsettled targets: the same ``webhook-id`` (derived from job, target and event), the
same payload (the job's view as it ended, stamped with its end), the tries made counted
against the policy's ``max_attempts``, and not before the backoff the last try asked for.
A 2xx the crash kept from being recorded is sent again (receivers drop it by its id); a
recorded one never is. The API reads the settled deliveries from its watch cache
(:func:`docjobs.backends.kubernetes.webhooks.deliveries_of`); only the operator writes here.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from docjobs.domain.events import job_view
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookOutbox,
    job_of,
    status_of,
)
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.driver import PriorTries, deliver_event
from docjobs.webhooks.fanout import targets_of
from docjobs.webhooks.messages import message_id
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue
from docjobs.webhooks.records import PendingEvent, WebhookStore

WRITE_TRIES = 8
"""Outbox writes tried on conflicts (the operator or kopf wrote the DocumentJob between)."""
MAX_ERROR = 300
"""Characters of a try's error kept in the status (an exception's text can be long)."""

FAILED = {"state": "Failed"}
Change = Callable[[WebhookOutbox | None], WebhookOutbox | None]
Ended = Callable[[Exception | None], None]
"""Told once a job's targets are all settled: the error that kept it from being written."""


def stored_attempt(attempt: DeliveryAttempt) -> WebhookAttempt:
    error = attempt.error[:MAX_ERROR] if attempt.error else None
    return WebhookAttempt(
        at=attempt.at,
        status_code=attempt.status_code,
        error=error,
        duration_ms=attempt.duration_ms,
    )


def delivery_attempt(attempt: WebhookAttempt) -> DeliveryAttempt:
    return DeliveryAttempt(attempt.at, attempt.status_code, attempt.error, attempt.duration_ms)


def with_delivery(outbox: WebhookOutbox, delivery: WebhookDelivery) -> WebhookOutbox:
    """``outbox`` with ``delivery`` in place of its target's; a settled one stays settled."""
    known = next((d for d in outbox.deliveries if d.target == delivery.target), None)
    if known is not None and known.state != "Pending":
        return outbox
    others = [d for d in outbox.deliveries if d.target != delivery.target]
    return outbox.model_copy(update={"deliveries": [*others, delivery]})


def update_outbox(client: KubeClient, namespace: str, name: str, change: Change) -> None:
    """Apply ``change`` to the DocumentJob's outbox, on condition that nobody wrote in
    between (a conflict: read again, change again). Nothing when the job is gone."""
    path = documentjobs_path(namespace, name)
    for _ in range(WRITE_TRIES):
        resource = client.find(path)
        if resource is None:
            return
        before = status_of(resource).webhooks
        after = change(before)
        if after is None or after == before:
            return
        body = {
            "metadata": {"resourceVersion": resource["metadata"]["resourceVersion"]},
            "status": {"webhooks": after.model_dump(mode="json", by_alias=True, exclude_none=True)},
        }
        try:
            client.merge_patch(f"{path}/status", body)
            return
        except KubeError as exc:
            if not exc.conflict:
                raise
    raise KubeError(409, "Conflict", f"cannot write the webhook outbox of {path}")


def is_pending(resource: JSON) -> bool:
    """Whether the DocumentJob has ended with its event not yet delivered everywhere."""
    outbox = (resource.get("status") or {}).get("webhooks") or {}
    return outbox.get("state") == "Pending"


class StatusJournal:
    """One DocumentJob's event deliveries in its ``status.webhooks``: one write at a time
    (its targets' tries may end together), each on condition that nobody wrote in between."""

    def __init__(
        self, client: KubeClient, namespace: str, name: str, job_id: str, outbox: WebhookOutbox
    ) -> None:
        self.client, self.namespace, self.name = client, namespace, name
        self.job_id, self.outbox = job_id, outbox
        """The outbox as read when the delivery started (what ``prior`` answers from)."""
        self._writing = threading.Lock()

    def prior(self) -> dict[str, PriorTries]:
        return {
            d.target: PriorTries(
                tuple(delivery_attempt(a) for a in d.attempts),
                d.next_try_at,
                settled=d.state != "Pending",
            )
            for d in self.outbox.deliveries
        }

    def record_try(
        self, target: str, attempts: Sequence[DeliveryAttempt], next_try_at: datetime
    ) -> None:
        self._write(target, "Pending", attempts, next_try_at)

    def settle(self, target: str, attempts: Sequence[DeliveryAttempt], delivered: bool) -> None:
        self._write(target, "Delivered" if delivered else "Failed", attempts, None)

    def update(self, change: Change) -> None:
        with self._writing:
            update_outbox(self.client, self.namespace, self.name, change)

    def _write(
        self,
        target: str,
        state: DeliveryState,
        attempts: Sequence[DeliveryAttempt],
        next_try_at: datetime | None,
    ) -> None:
        delivery = WebhookDelivery(
            target=target,
            webhook_id=message_id(self.job_id, target, self.outbox.event),
            state=state,
            attempts=[stored_attempt(a) for a in attempts],
            next_try_at=next_try_at,
            updated_at=datetime.now(UTC),
        )
        self.update(lambda o: with_delivery(o, delivery) if o else None)


class Outbox:
    """Delivers the pending end events of one namespace's DocumentJobs on the operator's
    :class:`DeliveryQueue`, through the delivery driver over each job's
    :class:`StatusJournal`."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        store: WebhookStore,
        settings: WebhookSettings,
        queue: DeliveryQueue,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.store = store
        self.settings = settings
        self.queue = queue

    def deliver(self, name: str, ended: Ended) -> None:
        """Queue the DocumentJob's pending event for every target not settled; once all are,
        close the outbox and call ``ended`` (with the error that kept the close from being
        written, if any). Read afresh: a watch event may be older than the outbox's last
        write. Blocking (one read); raises when the read fails."""
        resource = self.client.find(documentjobs_path(self.namespace, name))
        if resource is None:
            ended(None)
            return
        outbox = status_of(resource).webhooks
        if outbox is None or outbox.state != "Pending":
            ended(None)
            return
        job = job_of(resource)
        event = PendingEvent(
            job.spec.job_id,
            outbox.event,
            job.spec.tenant,
            job_view(job),
            job.spec.webhook_url,
            job.status.completed_at or datetime.now(UTC),
            job.spec.traceparent,
        )
        targets = targets_of(self.store, job.spec.tenant, outbox.event, job.spec.webhook_url)
        journal = StatusJournal(self.client, self.namespace, name, job.spec.job_id, outbox)
        close = functools.partial(closed, wanted=frozenset(t.name for t in targets))
        finish = functools.partial(_finish, journal, close, ended)
        deliver_event(self.queue, self.settings, journal, event, targets, finish)


def closed(outbox: WebhookOutbox | None, wanted: frozenset[str]) -> WebhookOutbox | None:
    """``outbox`` once every target in ``wanted`` has settled: ``Done``, and a target dropped
    meanwhile (its endpoint deleted) failed rather than tried again."""
    if outbox is None:
        return None
    settled = [
        d if d.state != "Pending" or d.target in wanted else d.model_copy(update=FAILED)
        for d in outbox.deliveries
    ]
    return outbox.model_copy(update={"state": "Done", "deliveries": settled})


def _finish(journal: StatusJournal, close: Change, ended: Ended) -> None:
    try:
        journal.update(close)
    except Exception as exc:
        ended(exc)
        return
    ended(None)
