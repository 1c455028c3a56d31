"""A claimed job's result is opened while the status write that completes the job is on its
way, and the sync request takes it opened (``OpenedResults``): on the fake API server, a
real warm worker and a local object store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docjobs.backends.dependencies import DependencyMonitor
from docjobs.backends.kubernetes.opened import OpenedResults
from docjobs.domain.models import ResultRef
from docjobs.kube.client import JSON
from docjobs.kube.paths import documentjobs_path
from docjobs.storage.local import LocalStore
from tests.fakekube import FakeKube
from tests.unit.operated import NS
from tests.unit.test_claimed_jobs import Claims


class CountingStore(LocalStore):
    """A local store that counts the objects opened for reading, and those let go of."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened: list[str] = []
        self.closed: list[str] = []

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        self.opened.append(key)
        try:
            yield from super().iter_chunks(key, chunk_size)
        finally:
            self.closed.append(key)


def test_the_result_is_opened_before_the_complete_write_is_answered_and_read_once(
    tmp_path: Path,
) -> None:
    claims = Claims(tmp_path, FakeKube())
    store = CountingStore(tmp_path / "objects")
    claims.store = store
    results = OpenedResults(store, claims.monitor)
    claims.claimed.results = results
    opened_before_complete: list[bool] = []

    def opened_ahead() -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if store.opened:
                return True
            time.sleep(0.01)
        return False

    async def scenario() -> tuple[JSON, bytes, Iterator[bytes] | None]:
        await claims.start()
        try:
            created = await claims.create(b"opened as it completes")
            name = created["metadata"]["name"]
            status_path = documentjobs_path(NS, name, "status")
            # The Processing write goes through; the Complete write waits for the opening.
            claims.kube.before(
                "PATCH",
                status_path,
                lambda: claims.kube.before(
                    "PATCH", status_path, lambda: opened_before_complete.append(opened_ahead())
                ),
            )
            claims.claimed.run(created)
            ended = await claims.ended(name)
            result = ResultRef.model_validate(ended["status"]["result"])
            chunks = await results.take(result)
            assert chunks is not None, "the result was not opened ahead"
            body = await asyncio.to_thread(lambda: b"".join(chunks))
            return ended, body, await results.take(result)
        finally:
            await claims.stop()
            results.close()

    ended, body, again = asyncio.run(scenario())

    assert opened_before_complete == [True]
    assert ended["status"]["phase"] == "Complete"
    key = ended["status"]["result"]["key"]
    assert body == store.path(key).read_bytes() and body.startswith(b"%PDF")
    assert store.opened == [key], "read once, by the opening ahead"
    assert store.closed == [key]
    assert again is None, "taken once: a second reader opens it again"


def test_a_result_nobody_takes_is_closed(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "objects")
    store.put_bytes("acme/job_1/result.pdf", b"%PDF-1.7 never read", "application/pdf")
    result = ResultRef(key="acme/job_1/result.pdf", content_type="application/pdf", size=19)

    async def scenario() -> Iterator[bytes] | None:
        results = OpenedResults(store, DependencyMonitor({}), keep_seconds=0.1)
        results.open(result)
        for _ in range(100):
            if store.closed:
                break
            await asyncio.sleep(0.02)
        return await results.take(result)

    assert asyncio.run(scenario()) is None
    assert store.opened == store.closed == ["acme/job_1/result.pdf"]


@pytest.mark.parametrize("size", [18, 20], ids=["smaller", "larger"])
def test_a_result_is_taken_only_as_the_status_names_it(tmp_path: Path, size: int) -> None:
    """Opened for one attempt's result, it is not handed to a reader of another (the same
    key written again, of another size)."""
    store = CountingStore(tmp_path / "objects")
    store.put_bytes("acme/job_1/result.pdf", b"%PDF-1.7 first read", "application/pdf")
    opened = ResultRef(key="acme/job_1/result.pdf", content_type="application/pdf", size=19)

    async def scenario() -> Iterator[bytes] | None:
        results = OpenedResults(store, DependencyMonitor({}))
        results.open(opened)
        try:
            return await results.take(opened.model_copy(update={"size": size}))
        finally:
            results.close()

    assert asyncio.run(scenario()) is None
