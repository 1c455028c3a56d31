"""The CPU time an attempt uses, for its usage record: user and system time of the runner
process (every thread) and of the children it waited for (Tesseract, LibreOffice), measured
from ``getrusage`` before and after the attempt. A warm worker runs one attempt at a time,
so the difference is the attempt's; documents read together in one batch share it out
(:class:`CpuMeter`)."""

from __future__ import annotations

import resource
import sys

from docjobs.domain.models import RunnerSummary


def cpu_time() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    # The worker's LibreOffice runs across attempts: not a child waited for, so counted
    # apart, only where this process has loaded the Office engine.
    office = sys.modules.get("docjobs.runner.engines.office_process")
    return used + (float(office.cpu_seconds()) if office is not None else 0.0)


def with_cpu_seconds(summary: RunnerSummary, since: float) -> RunnerSummary:
    """``summary`` with the CPU time used since ``since`` (a :func:`cpu_time`) added to what
    it reports already (a merge: its parts')."""
    return summary.charged(cpu_time() - since)


class CpuMeter:
    """The CPU time used since the last :meth:`take`, for work that several documents share
    (a docTR batch's forward passes) and pay for in parts."""

    def __init__(self) -> None:
        self._mark = cpu_time()

    def take(self) -> float:
        now = cpu_time()
        used, self._mark = max(now - self._mark, 0.0), now
        return used


def shares(seconds: float, weights: dict[int, int]) -> dict[int, float]:
    """``seconds`` split between the keys of ``weights`` in proportion to their weights
    (pages); nothing where they weigh nothing."""
    total = sum(weights.values())
    if total <= 0:
        return {}
    return {key: seconds * weight / total for key, weight in weights.items()}
