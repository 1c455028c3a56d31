"""``/v1/webhooks``: endpoints that hear about finished jobs, signed per Standard Webhooks."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from docjobs.webhooks.messages import EVENT_TYPES
from docjobs.webhooks.targets import UnsafeTarget, check_url

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..jsonbody import OffLoopJsonRoute
from ..ratelimit import management_rate_limited
from ..schemas import (
    SigningSecret,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointView,
    error_responses,
)
from ..views import endpoint_view

router = APIRouter(
    prefix="/v1/webhooks",
    route_class=OffLoopJsonRoute,
    tags=["webhooks"],
    responses=error_responses(401, 422, 429, 503),
    dependencies=[Depends(management_rate_limited)],
)


class EndpointIn(BaseModel):
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=lambda: list(EVENT_TYPES))
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
