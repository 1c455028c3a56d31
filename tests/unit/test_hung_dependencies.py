"""A dependency that hangs costs a bounded share of the process.

A "hung" service here is a real listening socket that accepts connections and never
answers, as a process stopped with SIGSTOP does: the clients' timeouts must end each call,
and the monitor must keep calls for one dependency from holding up another's.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import httpx
import pytest
import urllib3
from fastapi import FastAPI
from kubernetes.client.configuration import Configuration

from docjobs.api.routes import health
from docjobs.backends.dependencies import (
    KUBERNETES,
    OBJECT_STORE,
    DependencyMonitor,
    DependencyUnavailable,
    outage_detail,
)
from docjobs.config import S3Settings
from docjobs.kube.client import KubeClient
from docjobs.storage.s3 import S3Store

QUICK = 1.0
"""Seconds that separate "at once" from "waited" (on calls stuck for 30 s here): generous
for a loaded machine."""


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections open (the kernel's backlog) and never get an answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def took(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


# --- the clients' timeouts ---------------------------------------------------------------------


def test_a_hung_object_store_holds_a_call_for_its_read_timeout(silent_port: int) -> None:
    settings = S3Settings(
        endpoint=f"127.0.0.1:{silent_port}",
        access_key="docjobs",
        secret_key="docjobs-secret",
        secure=False,
        region="us-east-1",
        connect_timeout_seconds=1,
        read_timeout_seconds=1,
    )
    store = S3Store.from_settings(settings)
    for call in (lambda: store.exists("acme/job/input"), lambda: list(store.iter_chunks("x"))):
        error, seconds = took(call)
        # One read timeout, not a retry per read: the SDK's own would wait 5 minutes.
        assert error is not None and 0.9 < seconds < 1.9, (error, seconds)
        assert outage_detail(error) is not None, error


def test_a_hung_api_server_holds_a_call_for_its_read_timeout(silent_port: int) -> None:
    configuration = Configuration()
    configuration.host = f"http://127.0.0.1:{silent_port}"
    client = KubeClient(configuration, request_timeout=1, connect_timeout=1)
    try:
        # A write whose answer is lost is not sent again; a read is, once.
        error, seconds = took(lambda: client.create("/api/v1/namespaces", {"kind": "Namespace"}))
        assert isinstance(error, urllib3.exceptions.HTTPError) and seconds < 1.9, (error, seconds)
        error, seconds = took(lambda: client.get("/api/v1/namespaces"))
        assert isinstance(error, urllib3.exceptions.HTTPError) and seconds < 2.9, (error, seconds)
        assert outage_detail(error) is not None
    finally:
        client.close()


# --- the monitor's pools -----------------------------------------------------------------------


class Dependency:
    """A check whose answer the test sets: up, or refusing connections."""

    def __init__(self) -> None:
        self.up = True

    def check(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("refused")


def monitor_of(
    *names: str, threads: int = 4, stuck_patience: float = 10.0, stall_seconds: float = 60.0
) -> tuple[DependencyMonitor, dict[str, Dependency]]:
    dependencies = {name: Dependency() for name in names}
    checks = {name: dependency.check for name, dependency in dependencies.items()}
    monitor = DependencyMonitor(
        checks,
        interval=0.05,
        patience=1.0,
        threads=threads,
        stall_seconds=stall_seconds,
        stuck_patience=stuck_patience,
    )
    return monitor, dependencies


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def test_a_call_for_a_dependency_known_down_is_refused_before_it_runs() -> None:
    async def scenario() -> None:
        monitor, dependencies = monitor_of(OBJECT_STORE)
        monitor.start()
        ran: list[str] = []
        try:
            dependencies[OBJECT_STORE].up = False
            await until(lambda: monitor.problem(OBJECT_STORE) is not None)
            started = time.monotonic()
            with pytest.raises(DependencyUnavailable) as refused:
                await monitor.call(OBJECT_STORE, ran.append, "called")
            assert time.monotonic() - started < QUICK
            assert refused.value.dependency == OBJECT_STORE
            await asyncio.sleep(0.3)
            assert ran == []  # no thread was taken to find out
            # A call answered from a cache runs all the same.
            assert await monitor.consult(OBJECT_STORE, lambda: "cached") == "cached"
        finally:
            monitor.stop()

    asyncio.run(scenario())


def test_calls_stuck_on_one_dependency_hold_up_no_other() -> None:
    async def scenario() -> None:
        monitor, _ = monitor_of(OBJECT_STORE, KUBERNETES, threads=2, stuck_patience=0.5)
        monitor.start()
        release = threading.Event()
        late: list[str] = []
        try:
            # Its checks pass, its calls hang: the store answers a bucket check, not a GET.
            stuck_since = time.monotonic()
            stuck = [
                asyncio.ensure_future(monitor.call(OBJECT_STORE, release.wait, 30))
                for _ in range(2)
            ]
            await asyncio.sleep(0.2)
            started = time.monotonic()
            assert await monitor.call(KUBERNETES, lambda: "answered") == "answered"
            assert time.monotonic() - started < QUICK

            # A call waiting for a thread of the stuck pool is refused, and never runs.
            started = time.monotonic()
            with pytest.raises(DependencyUnavailable, match="none done"):
                await monitor.call(OBJECT_STORE, late.append, "late")
            # Refused once its pool has done nothing for the patience (counted from when its
            # calls got stuck, however long this loop took to get here), not much later.
            assert time.monotonic() - stuck_since >= 0.5
            assert time.monotonic() - started < 5.0
            release.set()
            assert await asyncio.gather(*stuck) == [True, True]
            await asyncio.sleep(0.2)
            assert late == []
            # Threads free again: the pool serves.
            assert await monitor.call(OBJECT_STORE, lambda: "served") == "served"
        finally:
            release.set()
            monitor.stop()

    asyncio.run(scenario())


def test_a_busy_pool_whose_calls_finish_is_not_stuck() -> None:
    async def scenario() -> None:
        monitor, _ = monitor_of(OBJECT_STORE, threads=2, stuck_patience=0.3, stall_seconds=0.3)
        monitor.start()
        try:
            # Twenty calls of 0.1 s each through two threads: a queue, never a stall.
            calls = [monitor.call(OBJECT_STORE, time.sleep, 0.1) for _ in range(20)]
            await asyncio.gather(*calls)
            assert monitor.stalls() == {}
        finally:
            monitor.stop()

    asyncio.run(scenario())


# --- liveness ------------------------------------------------------------------------------------


def test_healthz_answers_503_while_a_pool_stays_stuck_and_200_once_it_serves() -> None:
    async def scenario() -> None:
        monitor, _ = monitor_of(OBJECT_STORE, KUBERNETES, threads=1, stall_seconds=0.5)
        monitor.start()
        app = FastAPI()
        app.include_router(health.router)
        app.state.backend = SimpleNamespace(monitor=monitor)
        release = threading.Event()
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                assert (await client.get("/healthz")).json() == {"status": "ok"}
                stuck = asyncio.ensure_future(monitor.call(OBJECT_STORE, release.wait, 30))
                await asyncio.sleep(0.2)
                assert (await client.get("/healthz")).status_code == 200  # not for long yet
                await asyncio.sleep(0.5)
                answer = await client.get("/healthz")
                assert answer.status_code == 503
                error = answer.json()["error"]
                assert error["code"] == "process_stalled"
                assert OBJECT_STORE in error["message"] and KUBERNETES not in error["message"]
                release.set()
                await stuck
                assert (await client.get("/healthz")).status_code == 200
        finally:
            release.set()
            monitor.stop()

    asyncio.run(scenario())


def test_a_lagging_event_loop_is_reported_as_a_stall() -> None:
    async def scenario() -> None:
        monitor, _ = monitor_of(OBJECT_STORE, stall_seconds=1.0)
        monitor.start()
        try:
            await asyncio.sleep(0.6)
            assert monitor.stalls() == {}
            time.sleep(3.0)  # the loop held, as a blocking call in a handler would hold it
            lagging = monitor.stalls()
            assert list(lagging) == ["eventLoop"], lagging
            await asyncio.sleep(1.5)  # the loop answers in time again
            assert monitor.stalls() == {}
        finally:
            monitor.stop()

    asyncio.run(scenario())
