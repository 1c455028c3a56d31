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
from docjobs.webhooks.delivery import (
    DeliveryAttempt,
    DeliveryTries,
    WebhookMessage,
    message_id,
)
from docjobs.webhooks.fanout import Target, internal_failure, message_to, targets_of
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue
from docjobs.webhooks.records import WebhookStore

log = logging.getLogger(__name__)

WRITE_TRIES = 8
"""Outbox writes tried on conflicts (the operator or kopf wrote the DocumentJob between)."""
RECORD_RETRY_SECONDS = 5.0
"""Wait before writing a settled delivery's record again (the API server failed us)."""
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


class Outbox:
    """Delivers the pending end events of one namespace's DocumentJobs on the operator's
    :class:`DeliveryQueue`: every try is one task, and its record is written to the job's
    status before the next one is queued for when its backoff ends."""

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
        close the outbox and call ``ended`` (with the error that kept a record or the close
        from being written, if any). Read afresh: a watch event may be older than the
        outbox's last write. Blocking (one read); raises when the read fails."""
        resource = self.client.find(documentjobs_path(self.namespace, name))
        if resource is None:
            ended(None)
            return
        outbox = status_of(resource).webhooks
        if outbox is None or outbox.state != "Pending":
            ended(None)
            return
        job = job_of(resource)
        event = outbox.event
        data = job_view(job)
        occurred = job.status.completed_at or datetime.now(UTC)
        targets = targets_of(self.store, job.spec.tenant, event, job.spec.webhook_url)
        known = {d.target: d for d in outbox.deliveries}
        todo = [t for t in targets if t.name not in known or known[t.name].state == "Pending"]
        wanted = {t.name for t in targets}
        # One write at a time to this job: its targets' tries may end together.
        writing = threading.Lock()
        remaining = len(todo)

        def update(change: Change) -> None:
            with writing:
                update_outbox(self.client, self.namespace, name, change)

        def close(current: WebhookOutbox | None) -> WebhookOutbox | None:
            if current is None:
                return None
            # A target dropped meanwhile (its endpoint deleted) is not tried again.
            settled = [
                d if d.state != "Pending" or d.target in wanted else d.model_copy(update=FAILED)
                for d in current.deliveries
            ]
            return current.model_copy(update={"state": "Done", "deliveries": settled})

        def finish() -> None:
            try:
                update(close)
            except Exception as exc:
                ended(exc)
                return
            ended(None)

        def settled() -> None:
            # A target settles only once its record is written (it writes again until then).
            nonlocal remaining
            with writing:
                remaining -= 1
                last = remaining == 0
            if last:
                finish()

        if not todo:
            finish()
            return
        job_id = job.spec.job_id
        for target in todo:
            message = message_to(target, job_id, event, data, occurred)
            delivery = _TargetOutbox(self, name, job_id, message, target, update, settled)
            delivery.resume(known.get(target.name))
            self.queue.submit(delivery)


class _TargetOutbox:
    """One job's event to one target: one try per turn on the queue, written to the outbox
    as it ends, the next queued for when its backoff ends; ``settled`` once it is settled."""

    def __init__(
        self,
        outbox: Outbox,
        name: str,
        job_id: str,
        message: WebhookMessage,
        target: Target,
        update: Callable[[Change], None],
        settled: Callable[[], None],
    ) -> None:
        self.outbox, self.name, self.job_id = outbox, name, job_id
        self.message, self.target = message, target
        self.update, self.settled = update, settled
        self.history: list[WebhookAttempt] = []
        self.due: datetime | None = None
        """When the last try before a restart asked the next one to be made."""
        self.tries: DeliveryTries | None = None
        self.outcome: DeliveryState | None = None
        """Set once settled: only its record is left to write (never another try)."""

    def resume(self, prior: WebhookDelivery | None) -> None:
        """Go on from the tries an earlier operator recorded: counted against
        ``max_attempts``, and the next not before the backoff the last one asked for."""
        if prior is not None:
            self.history = list(prior.attempts)
            self.due = prior.next_try_at

    def __call__(self) -> None:
        if self.outcome is None:
            self.outcome = self._try()
            if self.outcome == "Pending":
                self.outcome = None
                return
        try:
            self.write(self.outcome, None)
        except Exception as exc:
            # The answer is known: write it again later rather than deliver it again.
            log.warning(
                "cannot record the webhook delivery of %s/%s: %s; again in %g s",
                self.outbox.namespace,
                self.name,
                exc,
                RECORD_RETRY_SECONDS,
            )
            self.outbox.queue.submit(self, RECORD_RETRY_SECONDS)
            return
        self.settled()

    def _try(self) -> DeliveryState:
        """One try (or a wait for the one that is due): ``Pending`` while more are to come,
        else how the delivery settled."""
        settings = self.outbox.settings
        if len(self.history) < settings.max_attempts:
            if self.due is not None:
                due, self.due = self.due, None
                if (delay := (due - datetime.now(UTC)).total_seconds()) > 0:
                    self.outbox.queue.submit(self, delay)  # waits holding no worker
                    return "Pending"
            try:
                if self.tries is None:
                    self.tries = DeliveryTries(self.message, settings, tried=len(self.history))
                attempt, wait = self.tries.next()
            except Exception as exc:
                attempt, wait = internal_failure(self.target, self.job_id, exc), None
            self.history.append(stored_attempt(attempt))
            if wait is not None:
                self.pending(wait)
                return "Pending"
        delivered = bool(self.history) and delivery_attempt(self.history[-1]).ok
        if not delivered:
            log.warning(
                "%s of %s/%s to %s not delivered after %d tries; the last: %s",
                self.message.event_type,
                self.outbox.namespace,
                self.name,
                self.target.name,
                len(self.history),
                delivery_attempt(self.history[-1]).outcome if self.history else "none made",
            )
        return "Delivered" if delivered else "Failed"

    def pending(self, wait: float) -> None:
        """Record the try and when the next is due, then queue the next for then."""
        try:
            self.write("Pending", datetime.now(UTC) + timedelta(seconds=wait))
        except Exception as exc:  # the delivery goes on; only a restart would repeat a try
            log.warning(
                "cannot record a webhook try of %s/%s: %s", self.outbox.namespace, self.name, exc
            )
        self.outbox.queue.submit(self, wait)

    def write(self, state: DeliveryState, next_try_at: datetime | None) -> None:
        delivery = WebhookDelivery(
            target=self.target.name,
            webhook_id=message_id(self.job_id, self.target.name, self.message.event_type),
            state=state,
            attempts=self.history,
            next_try_at=next_try_at,
            updated_at=datetime.now(UTC),
        )
        self.update(lambda o: with_delivery(o, delivery) if o else None)
