"""Templates per tenant: SQLite in embedded mode (DocumentTemplate resources on Kubernetes)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from docjobs.templates.schema import TemplateSpec


@dataclass(frozen=True)
class Template:
    template_id: str
    tenant: str
    spec: TemplateSpec
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TemplateBounds:
    """How large one template, and how many per tenant: every version a job ran with is kept
    in the object store, and an extract runner reads its template whole."""

    max_bytes: int = 64 * 1024
    """Bytes of the template serialized as JSON."""
    max_per_tenant: int = 100


def canonical_json(spec: TemplateSpec) -> bytes:
    """The template as JSON with sorted keys: equal templates give equal bytes."""
    return json.dumps(
        spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def content_version(spec: TemplateSpec) -> str:
    """A short hash of the template's content: a job names the version it runs with, so a
    later change of the template is another version and leaves queued jobs alone."""
    return hashlib.sha256(canonical_json(spec)).hexdigest()[:16]


class TemplateTooLarge(Exception):
    pass


class TemplateQuotaExceeded(Exception):
    pass


def check_size(spec: TemplateSpec, bounds: TemplateBounds) -> None:
    size = len(spec.model_dump_json(exclude_none=True).encode())
    if size > bounds.max_bytes:
        raise TemplateTooLarge(
            f"The template is {size / 1024:.0f} KB as JSON; the limit is "
            f"{bounds.max_bytes / 1024:g} KB. Use fewer fields, labels or shorter descriptions."
        )


def check_room(tenant: str, existing: int, bounds: TemplateBounds) -> None:
    """Raises when ``tenant``, holding ``existing`` templates, may not create another."""
    if existing >= bounds.max_per_tenant:
        raise TemplateQuotaExceeded(
            f"Tenant {tenant!r} has {existing} templates, the limit is "
            f"{bounds.max_per_tenant}; delete one before creating another."
        )


class TemplateStore(Protocol):
    def create(self, tenant: str, spec: TemplateSpec) -> Template: ...

    def get(self, tenant: str, template_id: str) -> Template | None: ...

    def list_templates(self, tenant: str) -> list[Template]: ...

    def replace(self, tenant: str, template_id: str, spec: TemplateSpec) -> Template | None: ...

    def delete(self, tenant: str, template_id: str) -> bool: ...
