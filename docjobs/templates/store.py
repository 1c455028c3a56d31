"""Templates per tenant: SQLite in embedded mode (DocumentTemplate resources on Kubernetes)."""

from __future__ import annotations

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


class TemplateStore(Protocol):
    def create(self, tenant: str, spec: TemplateSpec) -> Template: ...

    def get(self, tenant: str, template_id: str) -> Template | None: ...

    def list_templates(self, tenant: str) -> list[Template]: ...

    def replace(self, tenant: str, template_id: str, spec: TemplateSpec) -> Template | None: ...

    def delete(self, tenant: str, template_id: str) -> bool: ...
