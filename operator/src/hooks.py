"""The terminal-phase hook: where webhook delivery plugs into the operator.

Delivery may retry for minutes, so it runs on a bounded thread pool (one thread per
delivery ``max_parallel_deliveries`` allows), never on a handler's thread. Endpoints and
signing secrets live per namespace (a DocumentJob's tenant is served from its namespace),
hence a store *per namespace*: ``stores(namespace)``, the same ``SecretWebhookStore`` the
API writes endpoints to. Without one the hook only logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from docjobs.domain.events import EVENT_OF_PHASE
from docjobs.domain.models import Job
from docjobs.webhooks.fanout import deliver_job_end
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.records import WebhookStore

log = logging.getLogger(__name__)
StoreFor = Callable[[str], WebhookStore]


class TerminalHook:
    def __init__(self, stores: StoreFor | None, settings: WebhookSettings):
        self.stores = stores
        self.settings = settings
        workers = settings.max_parallel_deliveries
        self._pool = ThreadPoolExecutor(workers, "docjobs-webhook") if stores else None

    def on_terminal(self, job: Job, namespace: str) -> None:
        phase = job.status.phase
        log.info("job %s ended %s: %s", job.spec.job_id, phase.value, job.status.message)
        if self.stores is None or self._pool is None or phase not in EVENT_OF_PHASE:
            return
        self._pool.submit(deliver_job_end, self.stores(namespace), self.settings, job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
