"""Templates as ``DocumentTemplate`` custom resources, so teams can keep them in Git.

The resource's name is the template id; ``spec.tenant`` (and a label) says whose it is. A
template applied with ``kubectl apply`` is as usable as one created through the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import templates_path
from docjobs.kube.resources import LABEL_TENANT, DocumentTemplateSpec, template_resource
from docjobs.templates.schema import TemplateSpec
from docjobs.templates.store import Template, TemplateBounds, check_room, check_size

UPDATED_ANNOTATION = "docjobs.io/updated-at"


def _template(resource: JSON) -> Template | None:
    """The resource as a template, or None when its spec does not validate (hand-edited)."""
    try:
        spec = DocumentTemplateSpec.model_validate(resource["spec"])
    except ValueError:
        return None
    metadata = resource["metadata"]
    created = datetime.fromisoformat(metadata["creationTimestamp"].replace("Z", "+00:00"))
    updated = (metadata.get("annotations") or {}).get(UPDATED_ANNOTATION)
    return Template(
        template_id=metadata["name"],
        tenant=spec.tenant,
        spec=TemplateSpec.model_validate(spec.model_dump(exclude={"tenant"})),
        created_at=created,
        updated_at=datetime.fromisoformat(updated) if updated else created,
    )


class ResourceTemplateStore:
    def __init__(
        self, client: KubeClient, namespace: str, bounds: TemplateBounds | None = None
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.bounds = bounds or TemplateBounds()

    def _read(self, template_id: str) -> JSON | None:
        try:
            return self.client.get(templates_path(self.namespace, template_id))
        except KubeError as exc:
            if exc.not_found or exc.status == 422:  # 422: not a valid resource name
                return None
            raise

    def create(self, tenant: str, spec: TemplateSpec) -> Template:
        check_size(spec, self.bounds)
        # Two creates at the same moment may both pass: the cap is a bound, not an exact count.
        check_room(tenant, len(self.list_templates(tenant)), self.bounds)
        body = template_resource(str(uuid.uuid4()), tenant, spec, self.namespace)
        created = _template(self.client.create(templates_path(self.namespace), body))
        assert created is not None
        return created

    def get(self, tenant: str, template_id: str) -> Template | None:
        resource = self._read(template_id)
        template = _template(resource) if resource else None
        return template if template and template.tenant == tenant else None

    def list_templates(self, tenant: str) -> list[Template]:
        items = self.client.get(
            templates_path(self.namespace), labelSelector=f"{LABEL_TENANT}={tenant}"
        )["items"]
        found = [t for t in map(_template, items) if t is not None and t.tenant == tenant]
        return sorted(found, key=lambda t: t.created_at)

    def replace(self, tenant: str, template_id: str, spec: TemplateSpec) -> Template | None:
        check_size(spec, self.bounds)
        if self.get(tenant, template_id) is None:
            return None
        patch: dict[str, Any] = template_resource(template_id, tenant, spec, self.namespace)
        patch["metadata"]["annotations"] = {UPDATED_ANNOTATION: datetime.now(UTC).isoformat()}
        # A merge patch would keep list entries and keys the new spec no longer has.
        patch["spec"] = {**{k: None for k in ("description", "engine")}, **patch["spec"]}
        return _template(
            self.client.merge_patch(templates_path(self.namespace, template_id), patch)
        )

    def delete(self, tenant: str, template_id: str) -> bool:
        if self.get(tenant, template_id) is None:
            return False
        try:
            self.client.delete(templates_path(self.namespace, template_id))
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True
