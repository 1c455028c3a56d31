"""``/v1/templates``: extraction templates, per tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from docjobs.domain.clock import iso
from docjobs.templates.schema import TemplateSpec
from docjobs.templates.store import Template

from ..deps import BackendDep, PrincipalDep
from ..errors import ApiError

router = APIRouter(prefix="/v1/templates", tags=["templates"])

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


def template_view(template: Template) -> dict[str, Any]:
    return {
        "templateId": template.template_id,
        **template.spec.model_dump(mode="json", exclude_none=True),
        "createdAt": iso(template.created_at),
        "updatedAt": iso(template.updated_at),
    }


def not_found(template_id: str) -> ApiError:
    return ApiError(404, "template_not_found", f"No template {template_id!r}.")


@router.post("", status_code=201, summary="Create a template")
async def create_template(
    backend: BackendDep, principal: PrincipalDep, spec: TemplateBody
) -> dict[str, Any]:
    return template_view(backend.templates.create(principal.tenant, spec))


@router.get("", summary="List templates")
async def list_templates(backend: BackendDep, principal: PrincipalDep) -> dict[str, Any]:
    templates = backend.templates.list_templates(principal.tenant)
    return {"templates": [template_view(t) for t in templates], "total": len(templates)}


@router.get("/{template_id}", summary="Get a template")
async def get_template(
    backend: BackendDep, principal: PrincipalDep, template_id: str
) -> dict[str, Any]:
    template = backend.templates.get(principal.tenant, template_id)
    if template is None:
        raise not_found(template_id)
    return template_view(template)


@router.put("/{template_id}", summary="Replace a template")
async def replace_template(
    backend: BackendDep, principal: PrincipalDep, template_id: str, spec: TemplateBody
) -> dict[str, Any]:
    template = backend.templates.replace(principal.tenant, template_id, spec)
    if template is None:
        raise not_found(template_id)
    return template_view(template)


@router.delete("/{template_id}", status_code=204, summary="Delete a template")
async def delete_template(
    backend: BackendDep, principal: PrincipalDep, template_id: str
) -> Response:
    if not backend.templates.delete(principal.tenant, template_id):
        raise not_found(template_id)
    return Response(status_code=204)
