"""``/api/v1/jobs/{id}/events``: a job's status and progress as Server-Sent Events.

Each event is the job as ``GET /api/v1/jobs/{id}`` shows it, sent when it changed. Its id
is the job's revision (``attempts.stage.pagesDone``), which only grows over a job's life: a
client that reconnects with ``Last-Event-ID`` gets the job as it stands if it moved on
since, then every later change, so it misses no state the job is in. The stream ends with
the terminal event (``end``), whose ``result_url`` is where the result is; a stream of a
finished job sends it unless ``Last-Event-ID`` is that event's own id, so a client that
resumes with an id beyond the job's last event still learns the end.

A tenant has at most ``server.max_event_streams_per_tenant`` streams open at once in one
API process; one more is refused with 429 before it starts.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from docjobs.backends.base import Backend
from docjobs.domain.models import Job, Phase

from ..deps import BackendDep, PrincipalDep
from ..errors import ApiError
from ..schemas import error_responses
from ..views import job_detail
from .jobs import _job

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=error_responses(401, 422, 503))

KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies from closing a stream that waits on a long job."""
REVISION_PATTERN = r"^\d{1,9}\.\d\.\d{1,9}$"
_STAGES = {Phase.PENDING: 0, Phase.PROCESSING: 1, Phase.RETRYING: 2}
_TERMINAL_STAGE = 3

Revision = tuple[int, int, int]

EVENT_SCHEMA = {
    "type": "object",
    "description": "One event of the stream.",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": REVISION_PATTERN},
        "event": {"type": "string", "enum": ["status", "progress", "end"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/JobDetail"},
        },
    },
}
"""OpenAPI 3.1 describes one event of a ``text/event-stream`` with the media type's schema."""


def revision(job: Job) -> Revision:
    """Where ``job`` is in its life: attempt, stage within it, pages read in it."""
    status = job.status
    stage = _TERMINAL_STAGE if status.phase.terminal else _STAGES[status.phase]
    pages = status.progress.pages_done if status.progress is not None else 0
    return status.attempts, stage, pages


def _event(job: Job, name: str, base_url: str) -> str:
    data = job_detail(job, base_url).model_dump_json(exclude_unset=True)
    event_id = ".".join(map(str, revision(job)))
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n"


async def _stream(
    backend: Backend, tenant: str, job_id: str, seen: Revision | None, base_url: str
) -> AsyncIterator[str]:
    # Watched before each read, so that no change falls between a read and the wait.
    with backend.watch(job_id) as changed:
        while True:
            changed.clear()
            job = await backend.get(tenant, job_id)
            if job is None or job.expired:
                return
            now = revision(job)
            # A finished job's end goes to every client but the one that saw that very end,
            # one that claims to have seen past it included.
            ended = job.status.phase.terminal and now != seen
            if seen is None or now > seen or ended:
                moved = seen is None or now[:2] != seen[:2]  # another attempt or stage
                name = "end" if job.status.phase.terminal else "status" if moved else "progress"
                yield _event(job, name, base_url)
                seen = now
            if job.status.phase.terminal:
                return
            try:
                await asyncio.wait_for(changed.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"


class OpenStreams:
    """How many event streams each tenant has open in this process, up to ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def acquire(self, tenant: str) -> None:
        """Counts one more stream of ``tenant`` in; 429 when it has ``limit`` open."""
        if self.open[tenant] >= self.limit:
            raise ApiError(
                429,
                "too_many_event_streams",
                f"Tenant {tenant!r} has {self.open[tenant]} event streams open, the ceiling of"
                f" {self.limit} per tenant (DOCJOBS_SERVER__MAX_EVENT_STREAMS_PER_TENANT); close"
                " one, or poll the job instead.",
                headers={"Retry-After": str(int(KEEPALIVE_SECONDS))},
            )
        self.open[tenant] += 1

    def release(self, tenant: str) -> None:
        self.open[tenant] -= 1
        if self.open[tenant] <= 0:
            del self.open[tenant]


class EventStreamResponse(StreamingResponse):
    """A stream that calls ``on_close`` once it ends, however it ends (the client gone
    before its first event included)."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


@router.get(
    "/{job_id}/events",
    summary="Follow a job's status and progress",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `status` and `progress` events with the job "
            "as `GET /api/v1/jobs/{job_id}` shows it, ending with the `end` event.",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        },
        **error_responses(404, 429),
    },
)
async def job_events(
    request: Request,
    backend: BackendDep,
    principal: PrincipalDep,
    job_id: str,
    last_event_id: Annotated[
        str | None,
        Header(pattern=REVISION_PATTERN, description="Resume after this event."),
    ] = None,
) -> StreamingResponse:
    await _job(backend, principal, job_id)  # another tenant's job is not found, as any
    seen: Revision | None = None
    if last_event_id is not None:
        attempts, stage, pages = map(int, last_event_id.split("."))
        seen = (attempts, stage, pages)
    streams: OpenStreams = request.app.state.event_streams
    streams.acquire(principal.tenant)
    stream = _stream(backend, principal.tenant, job_id, seen, str(request.base_url))
    return EventStreamResponse(stream, lambda: streams.release(principal.tenant))
