"""Templates in a ConfigMap of the namespace, one data entry per template id holding JSON
``{tenant, spec, created_at, updated_at}``.

A stopgap until templates become ``DocumentTemplate`` custom resources: a ConfigMap holds at
most 1 MiB, a few hundred templates. Every call reads the ConfigMap (templates are read once
per extraction request, not polled), and writes go through ``KubeClient.update_data``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from docjobs.templates import TemplateSpec
from docjobs.templatestore import Template

from .client import KubeClient


def _dump(template: Template) -> str:
    return json.dumps(
        {
            "tenant": template.tenant,
            "spec": template.spec.model_dump(mode="json"),
            "created_at": template.created_at.isoformat(),
            "updated_at": template.updated_at.isoformat(),
        }
    )


def _load(template_id: str, text: str) -> Template:
    raw = json.loads(text)
    return Template(
        template_id=template_id,
        tenant=raw["tenant"],
        spec=TemplateSpec.model_validate(raw["spec"]),
        created_at=datetime.fromisoformat(raw["created_at"]),
        updated_at=datetime.fromisoformat(raw["updated_at"]),
    )


class ConfigMapTemplateStore:
    def __init__(self, client: KubeClient, namespace: str, name: str = "docjobs-templates") -> None:
        self.client = client
        self.namespace = namespace
        self.name = name

    def _all(self) -> dict[str, str]:
        return self.client.read_data(self.namespace, "configmaps", self.name)

    def create(self, tenant: str, spec: TemplateSpec) -> Template:
        now = datetime.now(UTC)
        template = Template(str(uuid.uuid4()), tenant, spec, now, now)

        def add(data: dict[str, str]) -> None:
            data[template.template_id] = _dump(template)

        self.client.update_data(self.namespace, "configmaps", self.name, add)
        return template

    def get(self, tenant: str, template_id: str) -> Template | None:
        text = self._all().get(template_id)
        template = _load(template_id, text) if text is not None else None
        return template if template is not None and template.tenant == tenant else None

    def list_templates(self, tenant: str) -> list[Template]:
        templates = [_load(i, text) for i, text in self._all().items()]
        return sorted((t for t in templates if t.tenant == tenant), key=lambda t: t.created_at)

    def replace(self, tenant: str, template_id: str, spec: TemplateSpec) -> Template | None:
        def change(data: dict[str, str]) -> Template | None:
            old = _load(template_id, data[template_id]) if template_id in data else None
            if old is None or old.tenant != tenant:
                return None
            new = Template(template_id, tenant, spec, old.created_at, datetime.now(UTC))
            data[template_id] = _dump(new)
            return new

        return self.client.update_data(self.namespace, "configmaps", self.name, change)

    def delete(self, tenant: str, template_id: str) -> bool:
        def remove(data: dict[str, str]) -> bool:
            text = data.get(template_id)
            if text is None or _load(template_id, text).tenant != tenant:
                return False
            del data[template_id]
            return True

        return self.client.update_data(self.namespace, "configmaps", self.name, remove)
