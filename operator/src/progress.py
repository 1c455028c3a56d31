"""Which running single-pod attempts have their progress read, and what was last shown.

A runner pod stores its pages read (``progress_key``) because it cannot write the
DocumentJob; the controller's tick reads that object for each attempt followed here every
``progress_seconds`` and writes the status only when the count changed. Sharded attempts
are not followed: their Job's ``completedIndexes`` tell their progress.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from docjobs.domain.models import Progress

from .agenda import Ref


@dataclass(frozen=True)
class Followed:
    attempt: int
    job: str
    """The runner Job of the attempt: only its own progress goes into the status."""
    key: str
    """Where its runner stores the progress."""
    shown: Progress | None = None
    """The progress last written into the status (or found there)."""


class ProgressWatch:
    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._followed: dict[Ref, Followed] = {}
        self._next: dict[Ref, float] = {}
        self._lock = threading.Lock()

    def follow(self, ref: Ref, attempt: int, job: str, key: str) -> None:
        """Read the progress of ``ref``'s attempt from ``key`` from now on (again: a no-op)."""
        with self._lock:
            before = self._followed.get(ref)
            if before is not None and (before.attempt, before.job) == (attempt, job):
                return
            self._followed[ref] = Followed(attempt, job, key)
            self._next[ref] = self.clock()

    def shown(self, ref: Ref, followed: Followed, progress: Progress) -> None:
        """``progress`` of ``followed`` is in the status now."""
        with self._lock:
            if self._followed.get(ref) == followed:
                self._followed[ref] = replace(followed, shown=progress)

    def running(self, ref: Ref, attempt: int | None) -> None:
        """``ref`` runs ``attempt`` now (``None``: none): a different one is no longer followed."""
        with self._lock:
            followed = self._followed.get(ref)
            if followed is not None and followed.attempt != attempt:
                self._drop(ref)

    def forget(self, ref: Ref) -> None:
        with self._lock:
            self._drop(ref)

    def _drop(self, ref: Ref) -> None:
        self._followed.pop(ref, None)
        self._next.pop(ref, None)

    def due(self) -> list[tuple[Ref, Followed]]:
        """Attempts whose progress is due to be read; next due an interval from now."""
        now = self.clock()
        with self._lock:
            due = [(ref, f) for ref, f in self._followed.items() if self._next[ref] <= now]
            for ref, _ in due:
                self._next[ref] = now + self.interval
        return sorted(due, key=lambda item: item[0])

    def __len__(self) -> int:
        return len(self._followed)
