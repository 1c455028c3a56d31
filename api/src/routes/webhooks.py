"""``/v1/webhooks``: endpoints that hear about finished jobs, signed per Standard Webhooks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from docjobs.domain.clock import iso
from docjobs.webhooks.delivery import EVENT_TYPES, UnsafeTarget, check_url
from docjobs.webhooks.records import WebhookEndpoint

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class EndpointIn(BaseModel):
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=lambda: list(EVENT_TYPES))
    description: str = ""


class EndpointPatch(BaseModel):
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = None
    description: str | None = None


def endpoint_view(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "createdAt": iso(endpoint.created_at),
        "updatedAt": iso(endpoint.updated_at),
    }


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


@router.post("", status_code=201, summary="Register an endpoint (the secret is shown once)")
async def create_endpoint(
    backend: BackendDep, settings: SettingsDep, principal: PrincipalDep, body: EndpointIn
) -> dict[str, Any]:
    try:
        endpoint, secret = backend.webhooks.create(
            principal.tenant, checked(body.url, settings), body.events, body.description
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_webhook", str(exc)) from None
    return {**endpoint_view(endpoint), "secret": secret}


@router.get("", summary="List endpoints")
async def list_endpoints(backend: BackendDep, principal: PrincipalDep) -> dict[str, Any]:
    endpoints = backend.webhooks.list(principal.tenant)
    return {"webhooks": [endpoint_view(e) for e in endpoints], "total": len(endpoints)}


@router.get("/{endpoint_id}", summary="Get an endpoint")
async def get_endpoint(
    backend: BackendDep, principal: PrincipalDep, endpoint_id: str
) -> dict[str, Any]:
    endpoint = backend.webhooks.get(principal.tenant, endpoint_id)
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint_view(endpoint)


@router.patch("/{endpoint_id}", summary="Change an endpoint")
async def update_endpoint(
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    endpoint_id: str,
    body: EndpointPatch,
) -> dict[str, Any]:
    url = checked(body.url, settings) if body.url is not None else None
    try:
        endpoint = backend.webhooks.update(
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


@router.delete("/{endpoint_id}", status_code=204, summary="Remove an endpoint")
async def delete_endpoint(
    backend: BackendDep, principal: PrincipalDep, endpoint_id: str
) -> Response:
    if not backend.webhooks.delete(principal.tenant, endpoint_id):
        raise _not_found(endpoint_id)
    return Response(status_code=204)


@router.get("/secret/jobs", summary="The secret that signs events sent to per-job URLs")
async def job_url_secret(backend: BackendDep, principal: PrincipalDep) -> dict[str, str]:
    return {"secret": backend.webhooks.tenant_secret(principal.tenant)}
