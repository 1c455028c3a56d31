"""Probes and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from docjobs.backends.dependencies import DependencyMonitor

from ..deps import BackendDep
from ..errors import error_response
from ..schemas import ErrorBody, Liveness, Readiness
from ..views import json_response
from .capabilities import current_capabilities

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="The process is alive",
    response_model=Liveness,
    responses={
        503: {
            "model": ErrorBody,
            "description": "`process_stalled`: the process can no longer serve (a dependency's"
            " calls all stuck, or the event loop lagging, for longer than"
            " `DOCJOBS_SERVER__STALL_SECONDS`); restart it.",
        }
    },
)
async def healthz(backend: BackendDep) -> Liveness | JSONResponse:
    # A dependency that is down is /readyz's business; a restart would not bring it back.
    # Threads that stay stuck whatever the checks say, or a loop that cannot keep up, would.
    monitor = getattr(backend, "monitor", None)
    stalls = monitor.stalls() if isinstance(monitor, DependencyMonitor) else {}
    if not stalls:
        return Liveness(status="ok")
    what = "; ".join(f"{name}: {why}" for name, why in stalls.items())
    return error_response(503, "process_stalled", f"The process can no longer serve ({what}).")


@router.get(
    "/readyz",
    summary="The service can take jobs",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "A dependency is down: keep traffic away."}
    },
)
async def readyz(request: Request, backend: BackendDep) -> Readiness | JSONResponse:
    dependencies = backend.dependencies()
    # Information only: a tier that cannot run leaves the service ready for the others.
    tiers = {n: t.summary() for n, t in (await current_capabilities(request)).tiers.items()}
    if all(state == "ok" for state in dependencies.values()):
        return Readiness(status="ready", dependencies=dependencies, tiers=tiers)
    unavailable = Readiness(status="unavailable", dependencies=dependencies, tiers=tiers)
    return json_response(unavailable, 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text format.",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics() -> Response:
    # Collecting reads the job gauges, a database query in embedded mode: not on the loop.
    return Response(await run_in_threadpool(generate_latest), media_type=CONTENT_TYPE_LATEST)
