"""Work a test needs before it can run that may outlast the per-test pytest-timeout (a
cold build, a first download): run with the timeout's alarm paused."""

from __future__ import annotations

import signal
import subprocess

import pytest


def run_outside_test_timeout(command: list[str], timeout: float, what: str) -> None:
    """Run ``command`` with pytest-timeout's (signal-method) alarm paused, re-armed with
    what was left after; a failure fails the test with the command's output."""
    remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        done = subprocess.run(
            command, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout
        )
        if done.returncode != 0:
            pytest.fail(f"{what} failed:\n{done.stdout[-5000:]}", pytrace=False)
    finally:
        if remaining:
            signal.setitimer(signal.ITIMER_REAL, remaining)
