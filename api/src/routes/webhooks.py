"""``/v1/webhooks``: endpoints that hear about finished jobs, signed per Standard Webhooks;
their delivery log and replays, and those of a job (``/v1/jobs/{job_id}/deliveries``).

A replay answers with its outcome when the receiver answers within
:data:`REPLAY_WAIT_SECONDS`, else 202 while its try goes on (its answer is then added to
the log), so a receiver that is down never holds the request longer than that.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from docjobs.backends.base import encode_cursor
from docjobs.backends.deliveries import DeliveryLog
from docjobs.domain.batches import BATCH_COMPLETED
from docjobs.domain.clock import iso
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.messages import JOB_EVENT_TYPES, message_id
from docjobs.webhooks.records import DeliveryRecord
from docjobs.webhooks.replay import ReplayRefused, delivery_id
from docjobs.webhooks.targets import UnsafeTarget, check_url

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..jsonbody import OffLoopJsonRoute
from ..ratelimit import management_rate_limited
from ..schemas import (
    DeliveryAttemptView,
    DeliveryList,
    DeliveryLogEntry,
    DeliveryLogPage,
    ReplayAnswer,
    SigningSecret,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointView,
    error_responses,
)
from ..views import endpoint_view
from .jobs import listing_after

router = APIRouter(
    prefix="/v1/webhooks",
    route_class=OffLoopJsonRoute,
    tags=["webhooks"],
    responses=error_responses(401, 422, 429, 503),
    dependencies=[Depends(management_rate_limited)],
)
job_router = APIRouter(
    prefix="/v1/jobs/{job_id}/deliveries",
    tags=["webhooks"],
    responses=error_responses(401, 404, 422, 429, 503),
    dependencies=[Depends(management_rate_limited)],
)

REPLAY_WAIT_SECONDS = 5.0
"""Seconds a replay request waits for the receiver's answer before it answers 202."""


class EndpointIn(BaseModel):
    url: str = Field(max_length=2000)
    events: list[str] = Field(
        default_factory=lambda: list(JOB_EVENT_TYPES),
        description="Any of job.completed, job.failed, job.cancelled, batch.completed; "
        "the three job events when absent.",
    )
    description: str = ""


class EndpointPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = None
    description: str | None = None


def checked(url: str, settings: SettingsDep) -> str:
    try:
        check_url(url, settings.webhooks)
    except UnsafeTarget as exc:
        raise ApiError(400, "unsafe_webhook_url", str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, "invalid_webhook_url", str(exc)) from None
    return url


def _not_found(endpoint_id: str) -> ApiError:
    return ApiError(404, "webhook_not_found", f"No webhook endpoint {endpoint_id!r}.")


@router.post(
    "",
    status_code=201,
    summary="Register an endpoint (the secret is shown once)",
    responses=error_responses(400, 413),
)
async def create_endpoint(
    backend: BackendDep, settings: SettingsDep, principal: PrincipalDep, body: EndpointIn
) -> WebhookEndpointCreated:
    try:
        endpoint, secret = await backend.offload(
            backend.webhooks.create,
            principal.tenant,
            checked(body.url, settings),
            body.events,
            body.description,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_webhook", str(exc)) from None
    return WebhookEndpointCreated(**dict(endpoint_view(endpoint)), secret=secret)


@router.get("", summary="List endpoints")
async def list_endpoints(backend: BackendDep, principal: PrincipalDep) -> WebhookEndpointList:
    endpoints = await backend.offload(backend.webhooks.list, principal.tenant)
    return WebhookEndpointList(webhooks=[endpoint_view(e) for e in endpoints], total=len(endpoints))


@router.get("/{endpoint_id}", summary="Get an endpoint", responses=error_responses(404))
async def get_endpoint(
    backend: BackendDep, principal: PrincipalDep, endpoint_id: str
) -> WebhookEndpointView:
    endpoint = await backend.offload(backend.webhooks.get, principal.tenant, endpoint_id)
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint_view(endpoint)


@router.patch(
    "/{endpoint_id}", summary="Change an endpoint", responses=error_responses(400, 404, 413)
)
async def update_endpoint(
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    endpoint_id: str,
    body: EndpointPatch,
) -> WebhookEndpointView:
    url = checked(body.url, settings) if body.url is not None else None
    try:
        endpoint = await backend.offload(
            backend.webhooks.update,
            principal.tenant,
            endpoint_id,
            url=url,
            events=body.events,
            description=body.description,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_webhook", str(exc)) from None
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint_view(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    summary="Remove an endpoint",
    response_class=Response,
    responses={204: {"description": "Removed."}, **error_responses(404)},
)
async def delete_endpoint(
    backend: BackendDep, principal: PrincipalDep, endpoint_id: str
) -> Response:
    if not await backend.offload(backend.webhooks.delete, principal.tenant, endpoint_id):
        raise _not_found(endpoint_id)
    return Response(status_code=204)


@router.get("/secret/jobs", summary="The secret that signs events sent to per-job URLs")
async def job_url_secret(backend: BackendDep, principal: PrincipalDep) -> SigningSecret:
    secret = await backend.offload(backend.webhooks.tenant_secret, principal.tenant)
    return SigningSecret(secret=secret)


# --- the delivery log and replays ----------------------------------------------------------


async def get_delivery_log(request: Request) -> DeliveryLog:
    log: DeliveryLog = request.app.state.delivery_log
    return log


DeliveryLogDep = Annotated[DeliveryLog, Depends(get_delivery_log)]
_REPLAYED = {
    200: {"model": ReplayAnswer, "description": "Replayed: the receiver's answer is in `replay`."},
    202: {
        "model": ReplayAnswer,
        "description": "The receiver has not answered yet; the answer will be in the log.",
    },
    **error_responses(404, 409, 429),
}


def attempt_view(attempt: DeliveryAttempt) -> DeliveryAttemptView:
    return DeliveryAttemptView(
        at=iso(attempt.at), status_code=attempt.status_code, error=attempt.error
    )


def log_entry(record: DeliveryRecord) -> DeliveryLogEntry:
    last = record.attempts[-1] if record.attempts else None
    # A batch's event is recorded under its batch id, where a job's is under its job id.
    of_batch = record.event_type == BATCH_COMPLETED
    return DeliveryLogEntry(
        id=delivery_id(record.job_id, record.target, record.event_type),
        webhook_id=message_id(record.job_id, record.target, record.event_type),
        event=record.event_type,
        job_id=None if of_batch else record.job_id,
        batch_id=record.job_id if of_batch else None,
        target=record.target,
        timestamp=iso(record.recorded_at),
        tries=len(record.attempts),
        last_answer=attempt_view(last) if last is not None else None,
        delivered=record.delivered,
    )


def _no_delivery(delivery_id: str) -> ApiError:
    return ApiError(404, "delivery_not_found", f"No webhook delivery {delivery_id!r}.")


async def _replay(
    log: DeliveryLog,
    tenant: str,
    delivery: str,
    *,
    endpoint_id: str | None = None,
    job_id: str | None = None,
) -> JSONResponse:
    try:
        outcome = await log.replay(
            tenant, delivery, REPLAY_WAIT_SECONDS, endpoint_id=endpoint_id, job_id=job_id
        )
    except ReplayRefused as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        raise ApiError(exc.status, exc.code, exc.message, headers=headers) from None
    if outcome is None:
        raise _no_delivery(delivery)
    attempt = outcome.attempt
    answer = ReplayAnswer(
        delivery=log_entry(outcome.record),
        replay=attempt_view(attempt) if attempt is not None else None,
    )
    return JSONResponse(answer.model_dump(mode="json"), 200 if attempt is not None else 202)


@router.get(
    "/{endpoint_id}/deliveries",
    summary="The endpoint's deliveries (jobs' and batches' events), newest first",
    responses=error_responses(404),
)
async def endpoint_deliveries(
    log: DeliveryLogDep,
    principal: PrincipalDep,
    endpoint_id: str,
    limit: Annotated[int, Query(ge=1, le=100, description="Deliveries per page.")] = 20,
    cursor: Annotated[
        str | None, Query(description="A previous page's `nextCursor`: the page after it.")
    ] = None,
) -> DeliveryLogPage:
    after = listing_after(cursor, "nextCursor")
    page = await log.of_endpoint(principal.tenant, endpoint_id, limit, after)
    if page is None:
        raise _not_found(endpoint_id)
    return DeliveryLogPage(
        deliveries=[log_entry(r) for r in page.deliveries],
        next_cursor=encode_cursor(page.after) if page.after is not None else None,
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/replay",
    summary="Send a delivery again: same webhook-id and body, signed afresh",
    response_model=ReplayAnswer,
    responses=_REPLAYED,
)
async def replay_endpoint_delivery(
    log: DeliveryLogDep, principal: PrincipalDep, endpoint_id: str, delivery_id: str
) -> JSONResponse:
    return await _replay(log, principal.tenant, delivery_id, endpoint_id=endpoint_id)


@job_router.get("", summary="The deliveries of a job's end event, to every target")
async def job_deliveries(log: DeliveryLogDep, principal: PrincipalDep, job_id: str) -> DeliveryList:
    records = await log.of_job(principal.tenant, job_id)
    if records is None:
        raise ApiError(404, "job_not_found", f"No job {job_id!r}.")
    return DeliveryList(deliveries=[log_entry(r) for r in records])


@job_router.post(
    "/{delivery_id}/replay",
    summary="Send a job's delivery again (to an endpoint or its own webhookUrl)",
    response_model=ReplayAnswer,
    responses=_REPLAYED,
)
async def replay_job_delivery(
    log: DeliveryLogDep, principal: PrincipalDep, job_id: str, delivery_id: str
) -> JSONResponse:
    return await _replay(log, principal.tenant, delivery_id, job_id=job_id)
