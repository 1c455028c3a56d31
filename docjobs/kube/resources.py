"""The DocumentJob custom resource: names, labels and the mapping to and from the models.

``spec`` is a :class:`JobSpec` in camelCase plus ``cancel``; ``status`` is a
:class:`JobStatus` in camelCase plus the operator's bookkeeping (``currentJob``,
``conditions``, ``observedGeneration``). The API and the operator both read and write
resources through these functions only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, ValidationInfo, model_validator

from docjobs.domain.models import (
    DOMAIN,
    JOB_ID_PATTERN,
    TENANT_PATTERN,
    Job,
    JobSpec,
    JobStatus,
    _Model,
)
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
LABEL_BATCH = f"{DOMAIN}/batch"
"""On DocumentJobs of a batch: its id."""
ANNOTATION_BATCH_SEALED = f"{DOMAIN}/batch-sealed"
"""Put by the API on one DocumentJob of a batch once the batch is sealed, so that the
operator looks at the batch again even if every job of it had ended already."""
LABEL_ATTEMPT = f"{DOMAIN}/attempt"
"""On nodes: ``cpu`` or ``gpu``; runner pods select on it."""


class DocumentJobSpec(JobSpec):
    # A DocumentJob may be written by hand: its tenant and id name the object-store folder
    # the operator reads and, on expiry, deletes, so both must be what the API would write.
    job_id: str = Field(pattern=JOB_ID_PATTERN, max_length=40)
    """``job_<24 hex>`` (``-2``, ``-3``... for a resubmission); the resource's name is the
    same with ``-`` for ``_``."""
    tenant: str = Field(pattern=TENANT_PATTERN, max_length=63)
    """The tenant that owns the job and its objects (``<tenant>/<jobId>/`` in the store)."""
    cancel: bool = False
    """Set to true to cancel: the running Job is deleted and the phase becomes Cancelled."""

    @model_validator(mode="after")
    def _own_objects_only(self, info: ValidationInfo) -> Self:
        """The input lies in the job's own folder; read from a resource, its name is the
        job id's (``info.context["name"]``), as the CRD's rules also check."""
        if not self.input.key.startswith(f"{self.tenant}/{self.job_id}/"):
            raise ValueError(f"input.key must lie under {self.tenant}/{self.job_id}/")
        name = (info.context or {}).get("name")
        if name is not None and name != resource_name(self.job_id):
            raise ValueError(f"name {name} does not match jobId {self.job_id}")
        return self


class Condition(_Model):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class WebhookAttempt(_Model):
    """One try of a webhook delivery."""

    at: datetime
    status_code: int | None = None
    """The receiver's answer; none when there was none (network error, unsafe target)."""
    error: str | None = None
    duration_ms: int = 0


DeliveryState = Literal["Pending", "Delivered", "Failed"]


class WebhookDelivery(_Model):
    """The end event to one target: its tries so far, resumed after a restart until settled."""

    target: str
    """The endpoint id (``wh_...``), or the job's own webhook URL."""
    webhook_id: str
    """The ``webhook-id`` header of every try."""
    state: DeliveryState
    """``Delivered`` (a 2xx) and ``Failed`` (a final refusal, or tries used up) are settled."""
    attempts: list[WebhookAttempt] = Field(default_factory=list)
    next_try_at: datetime | None = None
    """When a ``Pending`` delivery tries next: backoff survives a restart."""
    updated_at: datetime


class WebhookOutbox(_Model):
    """The job's end event and where its delivery stands."""

    event: str
    """``job.completed``, ``job.failed`` or ``job.cancelled``."""
    state: Literal["Pending", "Done"] = "Pending"
    """``Done`` once every target's delivery is settled; nothing is sent after that."""
    deliveries: list[WebhookDelivery] = Field(default_factory=list)


class DocumentJobStatus(JobStatus):
    current_job: str | None = None
    """Name of the batch/v1 Job of the current attempt."""
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    duration: str | None = None
    """Submission to terminal phase, e.g. ``1m12s``; set by the operator when the job ends
    (a printer column cannot compute a difference of two timestamps)."""
    progress_text: str | None = None
    """``progress`` as ``6/10`` (pages), for ``kubectl get dj``'s PROGRESS column."""
    webhooks: WebhookOutbox | None = None
    """Delivery of the job's end event to its webhooks (set when the job ends)."""


OPERATOR_STATUS_FIELDS = frozenset(
    {"current_job", "observed_generation", "conditions", "duration", "progress_text", "webhooks"}
)
"""Status fields the operator keeps for itself; not part of :class:`JobStatus`."""


def resource_name(job_id: str) -> str:
    """``job_<hex>`` (API) to ``job-<hex>`` (DNS-1123, Kubernetes)."""
    return job_id.replace("_", "-")


def to_resource(spec: JobSpec, namespace: str) -> dict[str, Any]:
    body = DocumentJobSpec.model_validate(spec.model_dump()).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    labels = {LABEL_TENANT: spec.tenant, LABEL_OPERATION: spec.operation.kind}
    if spec.batch_id is not None:
        labels[LABEL_BATCH] = spec.batch_id
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": resource_name(spec.job_id),
            "namespace": namespace,
            "labels": labels,
        },
        "spec": body,
    }


def spec_of(resource: dict[str, Any]) -> DocumentJobSpec:
    name = resource.get("metadata", {}).get("name")
    return DocumentJobSpec.model_validate(resource["spec"], context={"name": name})


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

    tenant: str = Field(pattern=TENANT_PATTERN)


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
