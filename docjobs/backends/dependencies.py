"""The services a backend relies on beyond its own process, and how their outages read.

An outage is neither the caller's fault nor a bug: the API answers it with 503 and
``Retry-After``, and ``/readyz`` names the dependency. A ``DependencyMonitor`` checks each
dependency in a thread of its own, because a stopped process (or a dropped network path)
accepts connections and never answers: a client would wait out its timeout, with retries,
on every request. Every blocking call the API makes goes through ``DependencyMonitor.call``,
which runs it in a worker thread, so the event loop keeps serving, and gives up on it (the
thread finishes on its own) as soon as the dependency it needs is known to be down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

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
"""Threads for blocking calls (anyio's default number); further calls wait for one."""

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


class DependencyMonitor:
    """Whether each dependency answers, from a check run every ``interval`` seconds.

    A dependency is down while its last check failed with an outage error, or while the
    check in progress has waited ``patience`` seconds or more.
    """

    def __init__(
        self,
        checks: Mapping[str, Callable[[], object]],
        interval: float = CHECK_INTERVAL,
        patience: float = PATIENCE,
    ) -> None:
        self._checks = dict(checks)
        self._interval = interval
        self._patience = patience
        self._lock = threading.Lock()
        self._failures: dict[str, str] = {}
        self._asking_since: dict[str, float] = {}
        self._stopping = threading.Event()
        self._threads = ThreadPoolExecutor(OFFLOAD_THREADS, thread_name_prefix="docjobs-call")

    def start(self) -> None:
        for name in self._checks:
            thread = threading.Thread(
                target=self._watch, args=(name,), name=f"check-{name}", daemon=True
            )
            thread.start()

    def stop(self) -> None:
        """Ends the checks; a check stuck on a silent dependency ends with its timeout."""
        self._stopping.set()

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
        """``fn(*args, **kwargs)`` in a worker thread, as a call that may need
        ``dependency``: its outage errors become DependencyUnavailable, and so does the
        dependency going down while the call waits (a call that needs nothing from it,
        such as a cache hit, returns before anyone looks)."""
        # A future of a pool of its own rather than anyio's to_thread in a task: far cheaper
        # under load, and every poll of a job is such a call (bench/reads.py).
        work = functools.partial(fn, *args, **kwargs)
        future = asyncio.get_running_loop().run_in_executor(self._threads, work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=_WATCH_STEP)
                if not future.done() and (why := self.problem(dependency)) is not None:
                    raise DependencyUnavailable(dependency, why)
        finally:
            future.cancel()  # a no-op once done; unstarted, it never runs; else it ends alone
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
