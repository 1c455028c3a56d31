"""When the operator looks at a DocumentJob without an event: its tick thread, the pool
that runs the looks, and the backoff of a look that failed.

Every ``tick_seconds`` the tick thread calls the controller's ``tick``, which submits the
looks that are due (see :class:`.agenda.Agenda`) to a pool of ``workers`` threads. A
DocumentJob is looked at by at most one pool task at a time (a due look while one runs is
dropped: the running one sees the same state), and every step of it runs under its own
lock, whichever thread (pool, kopf handler) runs it. A look that fails (the API server or
the object store unreachable) is retried after a doubling backoff, never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from docjobs.config import OperatorSettings
from docjobs.domain.clock import utcnow

from .agenda import Agenda, Ref

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self, settings: OperatorSettings, agenda: Agenda, tick: Callable[[datetime], None]
    ) -> None:
        self.settings = settings
        self.agenda = agenda
        self._tick = tick
        self._locks: dict[Ref, threading.RLock] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(settings.workers, "docjobs-due")
        self._inflight: set[Ref] = set()
        self._reading: set[Ref] = set()
        """DocumentJobs whose stored progress is being read (apart from ``_inflight``, so a
        read never takes the place of a due look)."""
        self._failures: dict[Ref, int] = {}
        """Steps failed in a row, per DocumentJob: the backoff of the next look."""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_tick = time.monotonic()

    def lock(self, ref: Ref) -> threading.RLock:
        """Held across a whole step of ``ref``: its status write and the Job create or
        delete that follows never interleave with another step of the same job."""
        with self._guard:
            return self._locks.setdefault(ref, threading.RLock())

    def forget(self, ref: Ref) -> None:
        """``ref`` was deleted."""
        with self._guard:
            self._locks.pop(ref, None)
            self._failures.pop(ref, None)

    # --- looks on the pool -----------------------------------------------------------------

    def submit(self, ref: Ref, look: Callable[..., None], *args: Any) -> None:
        """Run ``look(*args)`` on the pool, unless a look at ``ref`` runs already; a failed
        one is tried again after a backoff."""
        with self._guard:
            if ref in self._inflight:
                return
            self._inflight.add(ref)
        future = self._pool.submit(look, *args)

        def done(f: Future[None]) -> None:
            with self._guard:
                self._inflight.discard(ref)
            error = None if f.cancelled() else f.exception()
            if error is not None:
                self.look_again(ref, error)
            elif not f.cancelled():
                self.succeeded(ref)

        future.add_done_callback(done)

    def read(self, ref: Ref, read: Callable[..., None], *args: Any) -> None:
        """Run ``read(*args)`` on the pool, one read of ``ref`` at a time; a failed read is
        not retried (the next one is due soon)."""
        with self._guard:
            if ref in self._reading:
                return
            self._reading.add(ref)

        def done(_: Future[None]) -> None:
            with self._guard:
                self._reading.discard(ref)

        self._pool.submit(read, *args).add_done_callback(done)

    def look_again(self, ref: Ref, error: BaseException) -> None:
        """A step failed (a dependency unreachable): look again after a doubling backoff."""
        with self._guard:
            failures = self._failures.get(ref, 0)
            self._failures[ref] = failures + 1
        delay = min(2.0**failures, self.settings.recheck_max_seconds)
        log.warning("%s: %s; looking again in %g s", ref, error, delay)
        self.agenda.retry(ref, utcnow() + timedelta(seconds=delay))

    def succeeded(self, ref: Ref) -> None:
        """A step of ``ref`` went through: the next failure backs off from the start."""
        with self._guard:
            self._failures.pop(ref, None)

    # --- the tick thread -------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._ticker = threading.Thread(target=self._loop, name="docjobs-tick", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.tick_seconds):
            self._last_tick = time.monotonic()
            try:
                self._tick(utcnow())
            except Exception:
                log.exception("tick failed")

    def tick_age(self) -> float:
        """Seconds since the tick thread last ran (for the liveness probe)."""
        return time.monotonic() - self._last_tick
