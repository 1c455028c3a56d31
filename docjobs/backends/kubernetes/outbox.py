"""Durable delivery of a DocumentJob's end event, from the outbox in its status.

Whoever ends a job (the operator, or the API for a sync job it claimed) writes
``status.webhooks`` (the event, ``Pending``) with the terminal phase, in one status write
(:func:`docjobs.kube.status.bookkeep`). The operator delivers it from there: each try is
written back as it ends (its answer, when the next is due), a settled target (``Delivered``
or ``Failed``) is never sent to again, and ``Done`` closes the outbox once all are settled.

An operator killed mid-delivery finds the outbox ``Pending`` after its restart and resumes
the unsettled targets: the same ``webhook-id`` (derived from job, target and event), the
same payload (the job's view as it ended, stamped with its end), the tries made counted
against the policy's ``max_attempts``, and not before the backoff the last try asked for.
A 2xx the crash kept from being recorded is sent again (receivers drop it by its id); a
recorded one never is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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
from docjobs.webhooks.delivery import DeliveryAttempt, message_id
from docjobs.webhooks.fanout import Target, in_parallel, send, targets_of
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.records import WebhookStore

log = logging.getLogger(__name__)

WRITE_TRIES = 8
"""Outbox writes tried on conflicts (the operator or kopf wrote the DocumentJob between)."""
MAX_ERROR = 300
"""Characters of a try's error kept in the status (an exception's text can be long)."""

FAILED = {"state": "Failed"}
Change = Callable[[WebhookOutbox | None], WebhookOutbox | None]


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


class Outbox:
    """Delivers the pending end events of one namespace's DocumentJobs; blocking (run it on
    the operator's bounded delivery pool)."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        store: WebhookStore,
        settings: WebhookSettings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.store = store
        self.settings = settings
        self.sleep = sleep

    def deliver(self, name: str) -> None:
        """Deliver the DocumentJob's pending event to every target not settled, then close
        the outbox. Read afresh: a watch event may be older than the outbox's last write."""
        resource = self.client.find(documentjobs_path(self.namespace, name))
        if resource is None:
            return
        outbox = status_of(resource).webhooks
        if outbox is None or outbox.state != "Pending":
            return
        job = job_of(resource)
        event = outbox.event
        data = job_view(job)
        ended = job.status.completed_at or datetime.now(UTC)
        targets = targets_of(self.store, job.spec.tenant, event, job.spec.webhook_url)
        known = {d.target: d for d in outbox.deliveries}
        todo = [t for t in targets if t.name not in known or known[t.name].state == "Pending"]
        # One write at a time to this job: its targets' tries end together.
        writing = threading.Lock()

        def update(change: Change) -> None:
            with writing:
                update_outbox(self.client, self.namespace, name, change)

        def one(target: Target) -> None:
            prior = known.get(target.name)
            self._one(update, name, job.spec.job_id, target, event, data, ended, prior)

        in_parallel(one, todo)
        wanted = {t.name for t in targets}

        def close(current: WebhookOutbox | None) -> WebhookOutbox | None:
            if current is None:
                return None
            # A target dropped meanwhile (its endpoint deleted) is not tried again.
            settled = [
                d if d.state != "Pending" or d.target in wanted else d.model_copy(update=FAILED)
                for d in current.deliveries
            ]
            return current.model_copy(update={"state": "Done", "deliveries": settled})

        update(close)

    def _one(
        self,
        update: Callable[[Change], None],
        name: str,
        job_id: str,
        target: Target,
        event: str,
        data: dict[str, object],
        ended: datetime,
        prior: WebhookDelivery | None,
    ) -> None:
        history = list(prior.attempts) if prior else []
        tried = len(history)
        noted: list[DeliveryAttempt] = []

        def write(state: DeliveryState, next_try_at: datetime | None) -> None:
            delivery = WebhookDelivery(
                target=target.name,
                webhook_id=message_id(job_id, target.name, event),
                state=state,
                attempts=history,
                next_try_at=next_try_at,
                updated_at=datetime.now(UTC),
            )
            update(lambda o: with_delivery(o, delivery) if o else None)

        def note(attempt: DeliveryAttempt, wait: float | None) -> None:
            noted.append(attempt)
            history.append(stored_attempt(attempt))
            if wait is None:
                return  # the last: written below, with its outcome
            try:
                write("Pending", datetime.now(UTC) + timedelta(seconds=wait))
            except Exception as exc:  # the delivery goes on; only a restart would repeat a try
                log.warning("cannot record a webhook try of %s/%s: %s", self.namespace, name, exc)

        if tried < self.settings.max_attempts:
            due = prior.next_try_at if prior else None
            if due is not None and (wait := (due - datetime.now(UTC)).total_seconds()) > 0:
                self.sleep(wait)  # the backoff the last try before the restart asked for
            attempts = send(
                self.settings, job_id, target, event, data, ended, tried=tried, on_attempt=note
            )
            if attempts and (not noted or attempts[-1] is not noted[-1]):
                history.append(stored_attempt(attempts[-1]))  # an internal error
        delivered = bool(history) and delivery_attempt(history[-1]).ok
        if not delivered:
            log.warning("%s of %s/%s to %s not delivered", event, self.namespace, name, target.name)
        write("Delivered" if delivered else "Failed", None)
