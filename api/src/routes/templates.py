"""``/v1/templates``: extraction templates, per tenant."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from docjobs.bounded import Bounds
from docjobs.config import Settings
from docjobs.templates.patterns import PatternTooComplex, check_compiles
from docjobs.templates.schema import TemplateField, TemplateSpec
from docjobs.templates.store import TemplateQuotaExceeded, TemplateTooLarge

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..jsonbody import OffLoopJsonRoute
from ..ratelimit import management_rate_limited
from ..schemas import TemplateList, TemplateView, error_responses
from ..views import template_view

router = APIRouter(
    prefix="/v1/templates",
    route_class=OffLoopJsonRoute,
    tags=["templates"],
    responses=error_responses(401, 422, 429, 503),
    dependencies=[Depends(management_rate_limited)],
)

TemplateBody = Annotated[
    TemplateSpec,
    Body(
        examples=[
            {
                "name": "invoice",
                "engine": "rules",
                "fields": [
                    {"name": "invoice.number", "type": "string", "description": "Invoice number"},
                    {"name": "invoice.total", "type": "currency"},
                ],
            }
        ]
    ),
]


def not_found(template_id: str) -> ApiError:
    return ApiError(404, "template_not_found", f"No template {template_id!r}.")


@contextmanager
def bounds_answered() -> Iterator[None]:
    """The store's bounds as answers: 413 for a template too large, 429 past the count."""
    try:
        yield
    except TemplateTooLarge as exc:
        raise ApiError(413, "template_too_large", str(exc)) from None
    except TemplateQuotaExceeded as exc:
        raise ApiError(429, "template_quota_exceeded", str(exc)) from None


def patterns_of(fields: list[TemplateField]) -> list[str]:
    found = []
    for field in fields:
        if field.regex is not None:
            found.append(field.regex)
        found.extend(patterns_of(field.items))
    return found


async def check_patterns(spec: TemplateSpec, settings: Settings) -> None:
    """Compile the template's patterns in a child process under the pattern ceilings
    (422 ``pattern_too_complex`` past them), so that no pattern costs the API more: the
    body's validation bounded what they compile to already, this bounds what it missed."""
    patterns = patterns_of(spec.fields)
    if not patterns:
        return
    ceilings = settings.ceilings
    bounds = Bounds(ceilings.pattern_seconds, ceilings.pattern_memory_mb)
    try:
        errors = await asyncio.to_thread(check_compiles, patterns, bounds)
    except PatternTooComplex as exc:
        raise ApiError(422, "pattern_too_complex", str(exc)) from None
    if errors:
        raise ApiError(422, "invalid_parameters", "; ".join(errors))


@router.post(
    "",
    status_code=201,
    summary="Create a template",
    response_model_exclude_none=True,
    responses=error_responses(400, 413, 429),
)
async def create_template(
    backend: BackendDep, principal: PrincipalDep, settings: SettingsDep, spec: TemplateBody
) -> TemplateView:
    await check_patterns(spec, settings)
    with bounds_answered():
        template = await backend.offload(backend.templates.create, principal.tenant, spec)
    return template_view(template)


@router.get("", summary="List templates", response_model_exclude_none=True)
async def list_templates(backend: BackendDep, principal: PrincipalDep) -> TemplateList:
    templates = await backend.offload(backend.templates.list_templates, principal.tenant)
    return TemplateList(templates=[template_view(t) for t in templates], total=len(templates))


@router.get(
    "/{template_id}",
    summary="Get a template",
    response_model_exclude_none=True,
    responses=error_responses(404),
)
async def get_template(
    backend: BackendDep, principal: PrincipalDep, template_id: str
) -> TemplateView:
    template = await backend.offload(backend.templates.get, principal.tenant, template_id)
    if template is None:
        raise not_found(template_id)
    return template_view(template)


@router.put(
    "/{template_id}",
    summary="Replace a template",
    response_model_exclude_none=True,
    responses=error_responses(400, 404, 413),
)
async def replace_template(
    backend: BackendDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    template_id: str,
    spec: TemplateBody,
) -> TemplateView:
    await check_patterns(spec, settings)
    with bounds_answered():
        template = await backend.offload(
            backend.templates.replace, principal.tenant, template_id, spec
        )
    if template is None:
        raise not_found(template_id)
    return template_view(template)


@router.delete(
    "/{template_id}",
    status_code=204,
    summary="Delete a template",
    response_class=Response,
    responses={204: {"description": "Deleted."}, **error_responses(404)},
)
async def delete_template(
    backend: BackendDep, principal: PrincipalDep, template_id: str
) -> Response:
    if not await backend.offload(backend.templates.delete, principal.tenant, template_id):
        raise not_found(template_id)
    return Response(status_code=204)
