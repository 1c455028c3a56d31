"""Probes and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..deps import BackendDep
from ..schemas import Liveness, Readiness
from ..views import json_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/readyz",
    summary="The service can take jobs",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "A dependency is down: keep traffic away."}
    },
)
async def readyz(backend: BackendDep) -> Readiness | JSONResponse:
    dependencies = backend.dependencies()
    if all(state == "ok" for state in dependencies.values()):
        return Readiness(status="ready", dependencies=dependencies)
    return json_response(Readiness(status="unavailable", dependencies=dependencies), 503)


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
