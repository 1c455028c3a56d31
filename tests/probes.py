"""Timing ``/healthz`` while the server waits on something slow: proof that the wait happens
off the event loop, where it holds up only the request that needs it."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

HEALTH_BUDGET = 0.1
"""Seconds /healthz takes, at the median, while another request waits on a slow dependency."""
HEALTH_CEILING = 1.0
"""Seconds no /healthz may take meanwhile. A wait on the event loop would hold every answer
for the whole wait (seconds); the margin above the median is for a loaded machine."""


def held_up(latencies: list[float]) -> bool:
    """Whether ``/healthz`` was held up by the slow request (see the budgets above)."""
    ordered = sorted(latencies)
    return ordered[len(ordered) // 2] >= HEALTH_BUDGET or ordered[-1] >= HEALTH_CEILING


def health_latencies(base: str, busy: Callable[[], bool], at_most: float = 30.0) -> list[float]:
    """Seconds each ``/healthz`` took, asked every 50 ms for as long as ``busy()`` holds."""
    latencies = []
    deadline = time.monotonic() + at_most
    with requests.Session() as session:
        while busy() and time.monotonic() < deadline:
            started = time.perf_counter()
            answer = session.get(f"{base}/healthz", timeout=10)
            latencies.append(time.perf_counter() - started)
            assert answer.status_code == 200
            time.sleep(0.05)
    return latencies
