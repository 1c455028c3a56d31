"""The DocumentJob custom resource: names, labels and the mapping to and from the models.

``spec`` is a :class:`JobSpec` in camelCase plus ``cancel``; ``status`` is a
:class:`JobStatus` in camelCase plus the operator's bookkeeping (``currentJob``,
``conditions``, ``observedGeneration``). The API and the operator both read and write
resources through these functions only.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from docjobs.domain.models import DOMAIN, Job, JobSpec, JobStatus, _Model
from docjobs.templates.schema import TemplateSpec

GROUP = DOMAIN
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DocumentJob"
PLURAL = "documentjobs"
SINGULAR = "documentjob"
SHORT_NAMES = ("dj", "docjob")

LABEL_TENANT = f"{DOMAIN}/tenant"
LABEL_OPERATION = f"{DOMAIN}/operation"
LABEL_JOB = f"{DOMAIN}/job"
"""On runner Jobs and pods: the DocumentJob they belong to."""
LABEL_ATTEMPT = f"{DOMAIN}/attempt"
"""On nodes: ``cpu`` or ``gpu``; runner pods select on it."""


class DocumentJobSpec(JobSpec):
    cancel: bool = False
    """Set to true to cancel: the running Job is deleted and the phase becomes Cancelled."""


class Condition(_Model):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class DocumentJobStatus(JobStatus):
    current_job: str | None = None
    """Name of the batch/v1 Job of the current attempt."""
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    duration: str | None = None
    """Submission to terminal phase, e.g. ``1m12s``; set by the operator when the job ends
    (a printer column cannot compute a difference of two timestamps)."""


OPERATOR_STATUS_FIELDS = frozenset({"current_job", "observed_generation", "conditions", "duration"})
"""Status fields the operator keeps for itself; not part of :class:`JobStatus`."""


def resource_name(job_id: str) -> str:
    """``job_<hex>`` (API) to ``job-<hex>`` (DNS-1123, Kubernetes)."""
    return job_id.replace("_", "-")


def to_resource(spec: JobSpec, namespace: str) -> dict[str, Any]:
    body = DocumentJobSpec.model_validate(spec.model_dump()).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": resource_name(spec.job_id),
            "namespace": namespace,
            "labels": {LABEL_TENANT: spec.tenant, LABEL_OPERATION: spec.operation.kind},
        },
        "spec": body,
    }


def spec_of(resource: dict[str, Any]) -> DocumentJobSpec:
    return DocumentJobSpec.model_validate(resource["spec"])


def status_of(resource: dict[str, Any]) -> DocumentJobStatus:
    return DocumentJobStatus.model_validate(resource.get("status") or {})


def job_of(resource: dict[str, Any]) -> Job:
    spec = spec_of(resource)
    status = status_of(resource)
    return Job(
        spec=JobSpec.model_validate(spec.model_dump(exclude={"cancel"})),
        status=JobStatus.model_validate(status.model_dump(exclude=set(OPERATOR_STATUS_FIELDS))),
        cancel_requested=spec.cancel,
    )


TEMPLATE_KIND = "DocumentTemplate"
TEMPLATE_PLURAL = "documenttemplates"
TEMPLATE_SINGULAR = "documenttemplate"
TEMPLATE_SHORT_NAMES = ("dt", "doctemplate")


class DocumentTemplateSpec(TemplateSpec):
    """A template as a resource: its fields, and the tenant it belongs to. The resource's
    name is the template id, so a template applied from Git can be named ``invoice``."""

    tenant: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def template_resource(
    template_id: str, tenant: str, spec: TemplateSpec, namespace: str
) -> dict[str, Any]:
    body = DocumentTemplateSpec(tenant=tenant, **spec.model_dump())
    return {
        "apiVersion": API_VERSION,
        "kind": TEMPLATE_KIND,
        "metadata": {"name": template_id, "namespace": namespace, "labels": {LABEL_TENANT: tenant}},
        "spec": body.model_dump(mode="json", exclude_none=True),
    }
