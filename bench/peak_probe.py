"""Run ``docjobs`` with a probe that says what its process holds at its peak of RSS.

    python bench/peak_probe.py REPORT.json operator --namespace ...

A thread samples the RSS and glibc's heap (``mallinfo2``: in use, free) every half second
into a timeline. At each new peak of RSS it counts the live objects by type and the asyncio
tasks by coroutine, and writes to ``REPORT.json`` how they grew since the baseline (taken
when the process receives SIGUSR1; the bench sends it before the burst). Cheap enough to
leave the process's pace as it is, unlike tracemalloc.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

TOP = 25
GROWTH = 1.03
"""A count is taken when the RSS passes the last peak by this factor."""


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap() -> dict[str, float]:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    mib = 2**20
    return {
        "arena_mib": round(info.arena / mib, 1),
        "in_use_mib": round(info.uordblks / mib, 1),
        "free_mib": round(info.fordblks / mib, 1),
        "mmapped_mib": round(info.hblkhd / mib, 1),
    }


def census() -> dict[str, Counter[str]]:
    objects = Counter(type(o).__name__ for o in gc.get_objects())
    tasks: Counter[str] = Counter()
    for task in running_tasks():
        coro = task.get_coro()
        tasks[getattr(coro, "__qualname__", type(coro).__name__)] += 1
    threads = Counter(t.name.rstrip("0123456789_-") for t in threading.enumerate())
    return {"objects": objects, "tasks": tasks, "threads": threads}


def running_tasks() -> list[asyncio.Task[Any]]:
    """The event loop's tasks, read from another thread (the set may change meanwhile)."""
    for _ in range(10):
        try:
            return list(asyncio.tasks._all_tasks)  # type: ignore[attr-defined]
        except RuntimeError:
            continue
    return []


class PeakProbe:
    def __init__(self, report: Path) -> None:
        self.report = report
        self.baseline: dict[str, Counter[str]] | None = None
        self.want_baseline = threading.Event()
        self.timeline: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.peak_rss = 0
        self.peak: dict[str, Any] | None = None
        self.process = psutil.Process()

    def sample(self) -> None:
        while True:
            time.sleep(0.5)
            try:
                self.take()
            except Exception as exc:  # a probe must not end: the next sample tries again
                print(f"peak probe: {exc!r}", file=sys.stderr)

    def take(self) -> None:
        rss = self.process.memory_info().rss
        at = round(time.monotonic() - self.started, 1)
        tasks = len(running_tasks())
        self.timeline.append({"at": at, "rss_mib": round(rss / 2**20, 1), "tasks": tasks})
        if self.want_baseline.is_set():
            self.want_baseline.clear()
            self.baseline = census()
            self.peak_rss = rss
        elif self.baseline is not None and rss > self.peak_rss * GROWTH:
            self.peak_rss = rss
            now = census()
            self.peak = {
                "at": self.timeline[-1],
                **{part: (now[part] - self.baseline[part]).most_common(TOP) for part in now},
                "tasks_now": sum(now["tasks"].values()),
                "heap": heap(),
            }
        if len(self.timeline) % 10 == 0 or self.peak_rss == rss:
            body = {"timeline": self.timeline, "peak": self.peak}
            self.report.write_text(json.dumps(body, indent=1))


def main() -> None:
    report = Path(sys.argv[1])
    sys.argv = ["docjobs", *sys.argv[2:]]
    probe = PeakProbe(report)
    signal.signal(signal.SIGUSR1, lambda *_: probe.want_baseline.set())
    threading.Thread(target=probe.sample, name="peak-probe", daemon=True).start()
    from docjobs.cli import app

    app()


if __name__ == "__main__":
    main()
