"""Timing ``/healthz`` while the server waits on something slow: proof that the wait happens
off the event loop, where it holds up only the request that needs it."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

HEALTH_BUDGET = 0.1
"""Seconds /healthz may take while another request waits on a slow dependency."""


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
