"""Where webhook delivery plugs into the operator: the outbox of each ended DocumentJob.

A job's end event waits in its status (``status.webhooks``, written with the terminal
phase by whoever ended it: see :mod:`docjobs.kube.outbox`). Every watched
DocumentJob whose outbox is ``Pending`` is delivered from there; the initial listing after
a restart shows the ones a killed operator left. Delivery may retry for minutes, so it runs
on one :class:`DeliveryQueue` (``max_parallel_deliveries`` threads, one try per task, a
retry queued for when its backoff ends), never on a handler's thread, and each job at most
once at a time. Endpoints and signing secrets live per namespace (a DocumentJob's tenant is
served from its namespace), hence a store *per namespace*: ``stores(namespace)``, the same
``SecretWebhookStore`` the API writes endpoints to. Without one the hook only logs.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping

from docjobs.domain.batches import BATCH_COMPLETED, Batch, BatchState, completed_event_data
from docjobs.domain.models import TERMINAL_PHASE_NAMES, Job, Phase
from docjobs.kube.batches import StoredBatches
from docjobs.kube.client import JSON, KubeClient
from docjobs.kube.outbox import Outbox, is_pending
from docjobs.webhooks.driver import deliver_event
from docjobs.webhooks.fanout import targets_of
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue
from docjobs.webhooks.records import PendingEvent, WebhookStore

log = logging.getLogger(__name__)
StoreFor = Callable[[str], WebhookStore]
RETRY_SECONDS = 10.0
"""Wait before delivering an outbox again after the API server or the Secret failed us."""


class TerminalHook:
    def __init__(
        self,
        kube: KubeClient,
        stores: StoreFor | None,
        settings: WebhookSettings,
        retry_seconds: float = RETRY_SECONDS,
    ):
        self.kube = kube
        self.stores = stores
        self.settings = settings
        self.retry_seconds = retry_seconds
        workers = settings.max_parallel_deliveries
        self._queue = DeliveryQueue(workers) if stores else None
        self._busy: set[tuple[str, str]] = set()
        """(namespace, name) of the outboxes being delivered, or waiting to be again."""
        self._guard = threading.Lock()

    def on_terminal(self, job: Job, namespace: str) -> None:
        phase = job.status.phase
        log.info("job %s ended %s: %s", job.spec.job_id, phase.value, job.status.message)

    def seen(self, resource: JSON) -> None:
        """A DocumentJob was watched: deliver its end event if that is pending."""
        status = resource.get("status") or {}
        if self._queue is None or status.get("phase") not in TERMINAL_PHASE_NAMES:
            return
        if not is_pending(resource):
            return
        key = (resource["metadata"]["namespace"], resource["metadata"]["name"])
        with self._guard:
            if key in self._busy:
                return
            self._busy.add(key)
        self._queue.submit(functools.partial(self._deliver, key))

    def _deliver(self, key: tuple[str, str]) -> None:
        """Queue the outbox's tries (see :meth:`Outbox.deliver`); ``_ended`` once settled."""
        namespace, name = key
        assert self.stores is not None and self._queue is not None
        ended = functools.partial(self._ended, key)
        try:
            outbox = Outbox(
                self.kube, namespace, self.stores(namespace), self.settings, self._queue
            )
            outbox.deliver(name, ended)
        except Exception as exc:
            ended(exc)

    def _ended(self, key: tuple[str, str], error: Exception | None) -> None:
        if error is not None and self._queue is not None:
            # Left pending in the status: tried again, never dropped.
            log.warning("webhooks of %s/%s: %s; again in %g s", *key, error, self.retry_seconds)
            self._queue.submit(functools.partial(self._deliver, key), self.retry_seconds)
            return
        with self._guard:
            self._busy.discard(key)

    def batch_ended(
        self,
        batches: StoredBatches,
        batch: Batch,
        phases: Mapping[Phase, int],
        delivered: Callable[[], None],
    ) -> None:
        """Deliver the batch's ``batch.completed``, its tries kept in the batch's journal in
        the object store (the batch has no DocumentJob of its own); ``delivered`` once every
        target settled."""
        if self._queue is None or self.stores is None:
            delivered()
            return
        queue, store = self._queue, self.stores(batches.namespace)
        assert batch.completed_at is not None
        event = PendingEvent(
            batch.batch_id,
            BATCH_COMPLETED,
            batch.tenant,
            completed_event_data(BatchState(batch, phases)),
            None,
            batch.completed_at,
            batch.traceparent,
        )

        def deliver() -> None:
            try:
                targets = targets_of(store, batch.tenant, BATCH_COMPLETED)
                journal = batches.journal(batch)
                deliver_event(queue, self.settings, journal, event, targets, delivered)
            except Exception as exc:
                log.warning(
                    "batch.completed of %s: %s; again in %g s",
                    batch.batch_id,
                    exc,
                    self.retry_seconds,
                )
                queue.submit(deliver, self.retry_seconds)

        queue.submit(deliver)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
