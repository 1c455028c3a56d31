"""Faults against a running rig: kill one of its components, and heal it with
``scripts/local-cluster up``, which restarts only what is dead, on the same ports."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .fixtures import _can_build, build_outside_test_timeout, local_cluster


def pids(state_dir: Path) -> dict[str, int]:
    """The rig's component pids, as ``state.json`` records them."""
    recorded: dict[str, int] = json.loads((state_dir / "state.json").read_text())["pids"]
    return recorded


def ports(state_dir: Path) -> dict[str, int]:
    recorded: dict[str, int] = json.loads((state_dir / "state.json").read_text())["ports"]
    return recorded


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill(state_dir: Path, component: str) -> None:
    """SIGKILL a component's process group (as an OOM kill or a crash would) and wait it out."""
    pid = pids(state_dir)[component]
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, f"{component} (pid {pid}) outlived SIGKILL"
        time.sleep(0.05)


@contextmanager
def stopped(state_dir: Path, component: str) -> Iterator[None]:
    """A component's process group stopped with SIGSTOP, as a hung process or a cut network
    path is: its port accepts connections and nothing answers. Resumed whatever happens."""
    pid = pids(state_dir)[component]
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


def heal(state_dir: Path | None = None) -> None:
    """``local-cluster up``: restarts the dead components; fails the test if it cannot."""
    done = local_cluster("up", 300, state_dir)
    if done.returncode != 0:
        pytest.fail(f"scripts/local-cluster up failed:\n{done.stdout[-4000:]}", pytrace=False)


@contextmanager
def own_rig(state_dir: Path) -> Iterator[Path]:
    """A rig of the caller's own in ``state_dir`` (for tests that kill its parts or own its
    CRDs), stopped at the end; the test is skipped where no rig can run."""
    if why := _can_build():
        pytest.skip(f"local cluster rig unavailable: {why}")
    build_outside_test_timeout()  # `local-cluster up` would build under the test's alarm
    try:
        heal(state_dir)
        yield state_dir
    finally:
        local_cluster("down", 120, state_dir)
