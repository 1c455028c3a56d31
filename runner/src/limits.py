"""What one attempt may cost its runner process: memory and CPU time.

Memory is bounded by the data limit (``RLIMIT_DATA``) for the life of the process. CPU time
is bounded per attempt: a warm worker serves many attempts, so before each one the soft
``RLIMIT_CPU`` moves to the CPU time used so far plus the ceiling. Past it the kernel sends
``SIGXCPU``, once a second, and the handler raises :class:`CpuCeilingExceeded` in the
attempt's code; an engine that swallows the exception gets it again a second later, and
:func:`within_ceilings` fails an attempt that passed the ceiling even if its engine finished.
The hard limit is left where it is: a process cannot raise it again for the next attempt.

Native libraries (PDFium, GLib, Tesseract) abort the process when an allocation is refused
at the data limit, instead of raising: :data:`ABORTED_AT_MEMORY_CEILING` is how a worker or
a Tesseract child that died that way is reported.
"""

from __future__ import annotations

import resource
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from docjobs.config import get_settings
from docjobs.runner.engines import PermanentError

T = TypeVar("T")

MEMORY_SETTING = "DOCJOBS_RUNNER__MEMORY_LIMIT_MB"
CPU_SETTING = "DOCJOBS_CEILINGS__ATTEMPT_CPU_SECONDS"
ABORTED_AT_MEMORY_CEILING = signal.SIGABRT
"""The signal a native library's refused allocation ends the process with (``abort()``)."""


class CpuCeilingExceeded(PermanentError):
    def __init__(self, seconds: int) -> None:
        super().__init__(
            "CpuCeilingExceeded",
            f"The attempt used more CPU time than the ceiling of {seconds} s ({CPU_SETTING}).",
        )


def memory_exceeded(megabytes: int | None = None) -> PermanentError:
    limit = get_settings().runner.memory_limit_mb if megabytes is None else megabytes
    return PermanentError(
        "MemoryCeilingExceeded",
        f"The document needs more memory than the ceiling of {limit} MiB ({MEMORY_SETTING}).",
    )


def limit_memory(megabytes: int) -> None:
    # The data limit counts what a process allocates (heap, anonymous mappings), not the
    # address space its libraries map: PyTorch's alone maps ~4 GiB it never touches.
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


class CpuBudget:
    """The CPU ceiling of the attempts one process runs, one after the other."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.exceeded = False
        self.running = False
        signal.signal(signal.SIGXCPU, self._on_sigxcpu)

    def start_attempt(self, attempts: int = 1) -> None:
        """The ceiling of ``attempts`` attempts, from now: a batch of documents read together
        may use what they would have used one after the other."""
        self.exceeded = False
        self.running = True
        used = time.process_time()
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(used) + 1 + self.seconds * attempts
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    def end_attempt(self) -> None:
        self.running = False
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))

    def _on_sigxcpu(self, signum: int, frame: FrameType | None) -> None:
        if not self.running:
            return  # a signal still on its way after the attempt ended
        self.exceeded = True
        raise CpuCeilingExceeded(self.seconds)


_budget: CpuBudget | None = None


def enforce_ceilings() -> CpuBudget:
    """Sets this process's memory limit and CPU budget from the settings (once)."""
    global _budget
    settings = get_settings()
    if _budget is None:
        limit_memory(settings.runner.memory_limit_mb)
        _budget = CpuBudget(settings.ceilings.attempt_cpu_seconds)
    return _budget


def within_ceilings(work: Callable[[], T], attempts: int = 1) -> T:
    """``work()``, one attempt (or ``attempts`` run together), under the process's ceilings
    (when enforced): running out of memory or CPU time is a permanent failure that names the
    ceiling."""
    budget = _budget
    if budget is not None:
        budget.start_attempt(attempts)
    try:
        result = work()
    except MemoryError:
        raise memory_exceeded() from None
    finally:
        if budget is not None:
            budget.end_attempt()
    if budget is not None and budget.exceeded:
        raise CpuCeilingExceeded(budget.seconds)
    return result
