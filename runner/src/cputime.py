"""The CPU time an attempt uses, for its usage record: user and system time of the runner
process (every thread) and of the children it waited for (Tesseract, LibreOffice), measured
from ``getrusage`` before and after the attempt. A warm worker runs one attempt at a time,
so the difference is the attempt's."""

from __future__ import annotations

import resource
import sys

from docjobs.domain.models import RunnerSummary
from docjobs.usage.records import CPU_SECONDS


def cpu_time() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    # The worker's LibreOffice runs across attempts: not a child waited for, so counted
    # apart, only where this process has loaded the Office engine.
    office = sys.modules.get("docjobs.runner.engines.office_process")
    return used + (float(office.cpu_seconds()) if office is not None else 0.0)


def with_cpu_seconds(summary: RunnerSummary, since: float) -> RunnerSummary:
    """``summary`` with the CPU time used since ``since`` (a :func:`cpu_time`) in its details."""
    used = round(max(cpu_time() - since, 0.0), 3)
    return summary.model_copy(update={"details": {**summary.details, CPU_SECONDS: used}})
