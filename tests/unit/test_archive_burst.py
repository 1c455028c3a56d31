"""A burst of DocumentJobs ending, archived or deleted in the same second: the operator holds
kopf's processing state for at most ``event_workers`` of them at once, the others wait as
their raw watch events, and every one is still handled.

kopf's own per-object queueing runs here with the settings ``docjobs operator`` gives it;
only the watch stream (a burst of events, one per object) and the processing of an event
(which counts the objects in hand) stand in for the API server and the handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import watching
from kopf._cogs.structs.references import NamespaceName, Resource
from kopf._core.reactor import queueing

from docjobs.config import OperatorSettings
from docjobs.kube.resources import GROUP, PLURAL, VERSION
from docjobs.operator.main import kopf_settings

BURST = 60
"""Objects whose events arrive at once (each one event, as a burst of deletions)."""
BOUND = 12
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Handling:
    """Stands in for kopf's processing of one event: the objects in hand, at most and now."""

    def __init__(self) -> None:
        self.in_hand = 0
        self.most = 0
        self.handled: set[str] = set()
        self.all_handled = asyncio.Event()

    async def __call__(self, *, raw_event: dict[str, Any], **_: Any) -> None:
        self.in_hand += 1
        self.most = max(self.most, self.in_hand)
        await asyncio.sleep(0.01)  # a handler's API call: the others arrive meanwhile
        self.in_hand -= 1
        self.handled.add(raw_event["object"]["metadata"]["uid"])
        if len(self.handled) == BURST:
            self.all_handled.set()


async def burst(**_: Any) -> AsyncIterator[dict[str, Any]]:
    for i in range(BURST):
        meta = {"uid": f"uid-{i}", "name": f"dj-{i}", "namespace": "docjobs"}
        yield {"type": "DELETED", "object": {"metadata": {**meta, "resourceVersion": str(i)}}}
    await asyncio.Event().wait()  # the stream stays open


async def most_in_hand(monkeypatch: pytest.MonkeyPatch, event_workers: int) -> int:
    """Feed a burst through kopf's queueing as configured; the most objects in hand."""
    monkeypatch.setattr(watching, "infinite_watch", burst)
    settings = kopf_settings(OperatorSettings(runner_image="x", event_workers=event_workers))
    handling = Handling()
    watcher = asyncio.create_task(
        queueing.watcher(
            namespace=NamespaceName("docjobs"),
            settings=settings,
            resource=Resource(GROUP, VERSION, PLURAL),
            processor=handling,  # type: ignore[arg-type]
        )
    )
    try:
        await asyncio.wait_for(handling.all_handled.wait(), 15)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return handling.most


async def test_a_burst_is_handled_a_bounded_number_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await most_in_hand(monkeypatch, BOUND) == BOUND


async def test_without_the_bound_the_whole_burst_is_in_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await most_in_hand(monkeypatch, 0) > BURST // 2
