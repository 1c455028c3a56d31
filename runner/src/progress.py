"""An attempt's page progress, written to the object store for the operator to read.

A runner pod has no Kubernetes API access, so it cannot set the DocumentJob's status
itself: it writes ``{"pagesDone": n, "pagesTotal": m}`` next to its outcome, and the
operator copies it into the status while the attempt runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from docjobs.domain.models import Progress
from docjobs.storage.base import ObjectStore

log = logging.getLogger(__name__)
WRITE_INTERVAL_SECONDS = 1.0
"""Seconds; 1. A page can take well under a second: one write per page would cost more
object-store requests than the progress is worth."""


class StoredProgress:
    """A :data:`docjobs.runner.engines.PageProgress` that writes to ``key`` in ``store``:
    the first count and the last (every page read) at once, the others at most once per
    ``interval`` seconds."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        interval: float = WRITE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.key = key
        self.interval = interval
        self.clock = clock
        self._written_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        due = self._written_at is None or now - self._written_at >= self.interval
        if not (due or done >= total):
            return
        self._written_at = now
        body = Progress(pages_done=done, pages_total=total).model_dump_json(by_alias=True)
        try:
            self.store.put_bytes(self.key, body.encode(), "application/json")
        except Exception as exc:  # progress is a courtesy: the pages are what count
            log.warning("cannot store progress %d/%d at %s: %s", done, total, self.key, exc)
