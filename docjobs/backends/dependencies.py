"""The services a backend relies on beyond its own process, and how their outages read.

An outage is neither the caller's fault nor a bug: the API answers it with 503 and
``Retry-After``, and ``/readyz`` names the dependency. A ``DependencyMonitor`` checks each
dependency in a thread of its own, because a stopped process (or a dropped network path)
accepts connections and never answers: a client would wait out its timeout on every
request. Every blocking call the API makes goes through ``DependencyMonitor.call``, which
runs it in a worker thread, so the event loop keeps serving.

What a hung dependency may cost is bounded three ways. A call for a dependency known to be
down is refused before it takes a thread. Each dependency has a pool of threads of its own,
so calls stuck on the object store never hold up key checks or API-server writes; a call
still queued when its pool has been stuck (every thread busy, none finishing) for
``STUCK_PATIENCE`` seconds is refused too. And the clients' connect and read timeouts (S3
and Kubernetes settings) end each stuck call in the end. ``stalls`` tells ``/healthz`` when
the process can no longer serve: a pool stuck, or the event loop lagging, for longer than
the server's ``stall_seconds``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import urllib3.exceptions
from minio.error import InvalidResponseError, S3Error, ServerError

from docjobs.kube.client import KubeError

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("docjobs.dependencies")

KUBERNETES = "kubernetes"
OBJECT_STORE = "objectStore"
DATABASE = "database"
WORKERS = "workers"
DESCRIPTIONS = {
    KUBERNETES: "The Kubernetes API server",
    OBJECT_STORE: "The object store",
    DATABASE: "The database",
    WORKERS: "The job workers",
}

CHECK_INTERVAL = 1.0
"""Seconds between two checks of one dependency; also how soon a recovery is noticed."""
PATIENCE = 2.0
"""Seconds a check may go unanswered before its dependency counts as down. Checks are tiny
requests (a bucket's existence, the API server's /readyz): a healthy service answers them
in milliseconds even while it serves large uploads."""
RETRY_AFTER_SECONDS = 5
"""What a 503 for an outage tells clients to wait: a few checks' worth."""
_WATCH_STEP = 0.1
"""Seconds between two looks at the monitor while a call waits on its dependency."""
OFFLOAD_THREADS = 40
"""Threads per dependency for blocking calls (anyio's default number); further calls wait
for one."""
STUCK_PATIENCE = 10.0
"""Seconds a dependency's threads may all be busy with none finishing before a call waiting
for one is refused: the dependency does not answer these calls, whatever its check says."""
STALL_SECONDS = 120.0
"""Seconds a pool may stay stuck, or the event loop lag, before ``stalls`` reports it: more
than the clients' timeouts let one call take (``ServerSettings.stall_seconds``)."""
LOOP_LAG_TOLERANCE = 1.0
"""Seconds the event loop may take to run a callback before it counts as lagging."""
_LOOP_PROBE_INTERVAL = 0.5
"""Seconds between two probes of the event loop."""

_S3_OUTAGE_CODES = {"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"}


class DependencyUnavailable(Exception):
    """A dependency cannot be reached or answers with a server error; retry later."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency}: {detail}")
        self.dependency = dependency
        self.detail = detail

    @property
    def message(self) -> str:
        what = DESCRIPTIONS.get(self.dependency, self.dependency)
        return f"{what} is unavailable ({self.detail}); retry in {RETRY_AFTER_SECONDS} s."


def outage_detail(exc: BaseException) -> str | None:
    """Why ``exc`` means its dependency is down, in a few words; None for any other error
    (a 404, a conflict, a refused permission: the dependency answered)."""
    if isinstance(exc, KubeError):
        # 429: the API server sheds load or is (re)initializing a resource's storage.
        busy = exc.status >= 500 or exc.status == 429
        return f"HTTP {exc.status} {exc.reason}".strip() if busy else None
    if isinstance(exc, S3Error):
        return exc.code if exc.code in _S3_OUTAGE_CODES else None
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc) if "locked" in str(exc) or "busy" in str(exc) else None
    if isinstance(exc, ServerError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return outage_detail(exc.reason) or type(exc.reason).__name__
    # Before the timeouts: urllib3's NewConnectionError (refused) is a ConnectTimeoutError.
    if isinstance(exc, (ConnectionError, urllib3.exceptions.NewConnectionError)):
        return "cannot connect"
    if isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)):
        return "timed out"
    if isinstance(exc, (urllib3.exceptions.HTTPError, InvalidResponseError)):
        return type(exc).__name__
    return None


@dataclass
class _Call:
    """One call handed to a pool: whether a thread has taken it yet."""

    future: Future[Any] | None = None
    started: bool = False

    def abandon(self) -> None:
        """Not to be run if no thread took it yet (at once: not at the loop's next turn, as
        cancelling the loop's future would); a call in progress ends on its own."""
        if self.future is not None:
            self.future.cancel()


class DependencyPool:
    """The threads that make one dependency's blocking calls, and whether they are stuck."""

    def __init__(self, name: str, threads: int) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=f"docjobs-{name}")
        self._lock = threading.Lock()
        self._running = 0
        self._full_since: float | None = None
        """When every thread became busy with none finishing since; None while one is free."""

    def submit(self, work: Callable[[], R]) -> tuple[asyncio.Future[R], _Call]:
        """``work`` queued for a thread of this pool, as a future of the running loop."""
        call = _Call()

        def run() -> R:
            with self._lock:
                call.started = True
                self._running += 1
                if self._running >= self.threads and self._full_since is None:
                    self._full_since = time.monotonic()
            try:
                return work()
            finally:
                with self._lock:
                    self._running -= 1
                    self._full_since = None  # a thread came free: not stuck

        future = self._executor.submit(run)
        call.future = future
        return asyncio.wrap_future(future), call

    def stuck_for(self) -> float:
        """Seconds every thread has been busy without one call finishing; 0 while not."""
        with self._lock:
            since = self._full_since
        return 0.0 if since is None else time.monotonic() - since


class LoopWatch:
    """How long the event loop has been lagging: probed from a thread of its own, which asks
    the loop to run a callback every ``_LOOP_PROBE_INTERVAL`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stopping: threading.Event) -> None:
        self._loop = loop
        self._stopping = stopping
        self._lagging_since: float | None = None

    def start(self) -> None:
        threading.Thread(target=self._probe, name="loop-watch", daemon=True).start()

    def lagging_for(self) -> float:
        """Seconds since the loop last ran a callback within ``LOOP_LAG_TOLERANCE``; 0 while
        it does."""
        since = self._lagging_since
        return 0.0 if since is None else time.monotonic() - since

    def _probe(self) -> None:
        while not self._stopping.wait(_LOOP_PROBE_INTERVAL):
            answered = threading.Event()
            asked = time.monotonic()
            try:
                self._loop.call_soon_threadsafe(answered.set)
            except RuntimeError:  # the loop is closed: nothing left to watch
                return
            if answered.wait(LOOP_LAG_TOLERANCE):
                self._lagging_since = None
                continue
            if self._lagging_since is None:
                self._lagging_since = asked
            # Only an answer in time ends the lag: a loop that keeps answering late lags on.
            while not answered.wait(_LOOP_PROBE_INTERVAL):
                if self._stopping.is_set() or self._loop.is_closed():
                    return


class DependencyMonitor:
    """Whether each dependency answers, from a check run every ``interval`` seconds.

    A dependency is down while its last check failed with an outage error, or while the
    check in progress has waited ``patience`` seconds or more. Calls for one dependency run
    on its own pool of ``threads`` threads.
    """

    def __init__(
        self,
        checks: Mapping[str, Callable[[], object]],
        interval: float = CHECK_INTERVAL,
        patience: float = PATIENCE,
        threads: int = OFFLOAD_THREADS,
        stall_seconds: float = STALL_SECONDS,
        stuck_patience: float = STUCK_PATIENCE,
    ) -> None:
        self._checks = dict(checks)
        self._interval = interval
        self._patience = patience
        self._threads = threads
        self._stall_seconds = stall_seconds
        self._stuck_patience = stuck_patience
        self._lock = threading.Lock()
        self._failures: dict[str, str] = {}
        self._asking_since: dict[str, float] = {}
        self._stopping = threading.Event()
        self._pools = {name: DependencyPool(name, threads) for name in self._checks}
        self._loop_watch: LoopWatch | None = None

    def start(self) -> None:
        """Starts the checks and, when called on an event loop, the watch of that loop."""
        for name in self._checks:
            thread = threading.Thread(
                target=self._watch, args=(name,), name=f"check-{name}", daemon=True
            )
            thread.start()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._loop_watch = LoopWatch(loop, self._stopping)
        self._loop_watch.start()

    def stop(self) -> None:
        """Ends the checks; a check stuck on a silent dependency ends with its timeout."""
        self._stopping.set()

    def _pool(self, dependency: str) -> DependencyPool:
        with self._lock:
            pool = self._pools.get(dependency)
            if pool is None:
                pool = self._pools[dependency] = DependencyPool(dependency, self._threads)
            return pool

    def stalls(self) -> dict[str, str]:
        """What keeps this process from serving, for longer than ``stall_seconds``: each
        dependency whose threads are all stuck, and ``eventLoop`` when it lags; empty while
        it serves."""
        found: dict[str, str] = {}
        with self._lock:
            pools = dict(self._pools)
        for name, pool in pools.items():
            if (stuck := pool.stuck_for()) >= self._stall_seconds:
                found[name] = f"all {pool.threads} threads busy, none done for {stuck:.0f} s"
        watch = self._loop_watch
        if watch is not None and (lag := watch.lagging_for()) >= self._stall_seconds:
            found["eventLoop"] = f"lagging for {lag:.0f} s"
        return found

    def problem(self, dependency: str) -> str | None:
        """Why ``dependency`` is down, or None while it answers."""
        with self._lock:
            since = self._asking_since.get(dependency)
            failure = self._failures.get(dependency)
        if since is not None and (waited := time.monotonic() - since) >= self._patience:
            return f"no answer for {waited:.0f} s"
        return failure

    def report(self) -> dict[str, str]:
        """Each dependency checked, with ``ok`` or why it is down."""
        return {name: self.problem(name) or "ok" for name in self._checks}

    def require(self, *dependencies: str) -> None:
        """DependencyUnavailable for the first of ``dependencies`` known to be down."""
        for dependency in dependencies:
            if (why := self.problem(dependency)) is not None:
                raise DependencyUnavailable(dependency, why)

    async def call(
        self, dependency: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``fn(*args, **kwargs)`` in a thread of ``dependency``'s pool, as a call that needs
        ``dependency``: refused at once while it is known to be down, before it takes a
        thread it would only hold; its outage errors become DependencyUnavailable, and so
        does the dependency going down while the call waits, or its pool staying stuck while
        the call waits for a thread."""
        self.require(dependency)
        return await self._run(dependency, functools.partial(fn, *args, **kwargs))

    async def consult(
        self, dependency: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """As ``call``, for a call mostly answered from memory (a cache) that needs
        ``dependency`` only on a miss: it runs while ``dependency`` is down, and a hit
        returns before anyone looks; a miss is given up on as ``call`` gives up."""
        return await self._run(dependency, functools.partial(fn, *args, **kwargs))

    async def _run(self, dependency: str, work: Callable[[], R]) -> R:
        pool = self._pool(dependency)
        # A future of a pool of its own rather than anyio's to_thread in a task: far cheaper
        # under load, and every poll of a job is such a call (bench/reads.py).
        future, queued = pool.submit(work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=_WATCH_STEP)
                if future.done():
                    break
                if (why := self.problem(dependency)) is not None:
                    raise DependencyUnavailable(dependency, why)
                if not queued.started and (stuck := pool.stuck_for()) >= self._stuck_patience:
                    why = f"all {pool.threads} calls in progress, none done for {stuck:.0f} s"
                    raise DependencyUnavailable(dependency, why)
        finally:
            queued.abandon()  # a no-op once done; unstarted, it never runs; else it ends alone
            future.cancel()
        try:
            return future.result()
        except Exception as exc:
            if (detail := outage_detail(exc)) is None:
                raise
            raise DependencyUnavailable(dependency, detail) from exc

    def _watch(self, name: str) -> None:
        check = self._checks[name]
        down = False
        while not self._stopping.is_set():
            started = time.monotonic()
            with self._lock:
                self._asking_since[name] = started
            failure: str | None = None
            try:
                check()
            except Exception as exc:
                failure = outage_detail(exc)
                if failure is None:  # it answered, if not as hoped: not an outage
                    log.warning("checking %s: %s", name, exc)
            with self._lock:
                del self._asking_since[name]
                if failure is None:
                    self._failures.pop(name, None)
                else:
                    self._failures[name] = failure
            if (waited := time.monotonic() - started) >= self._patience and failure is None:
                log.warning("%s answered again after %.0f s", name, waited)
            if (failure is not None) != down:
                down = failure is not None
                log.warning("%s is %s", name, f"down: {failure}" if down else "back")
            self._stopping.wait(self._interval)
