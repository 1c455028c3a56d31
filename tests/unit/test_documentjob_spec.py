"""A DocumentJob as the operator reads it: the same refusals as the CRD's rules, so a job
written by hand under a CRD without them still fails (InvalidSpec) instead of running."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from docjobs.backends.base import new_job_id
from docjobs.backends.kubernetes.backend import job_id_of_fingerprint
from docjobs.domain.models import InputRef, JobSpec, OcrSimple
from docjobs.kube.resources import resource_name, spec_of, to_resource


def documentjob_resource(
    job_id: str, tenant: str = "acme", namespace: str = "docjobs"
) -> dict[str, Any]:
    """A DocumentJob as the API writes it: simple OCR of a one-byte PNG."""
    spec = JobSpec(
        job_id=job_id,
        tenant=tenant,
        operation=OcrSimple(),
        input=InputRef(
            key=f"{tenant}/{job_id}/input-1a2b",
            file_name="a.png",
            content_type="image/png",
            sha256="0",
            size=1,
        ),
        created_at=datetime.now(UTC),
    )
    return to_resource(spec, namespace)


@pytest.mark.parametrize(
    "job_id", [new_job_id(), job_id_of_fingerprint("ab" * 32), job_id_of_fingerprint("0" * 64, 3)]
)
def test_the_ids_the_api_writes_are_read_back(job_id: str) -> None:
    assert spec_of(documentjob_resource(job_id)).job_id == job_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"spec": {"jobId": "job_abc"}}, "jobId"),
        ({"spec": {"jobId": ""}}, "jobId"),
        ({"spec": {"tenant": "acme/.."}}, "tenant"),
        ({"spec": {"tenant": "other"}}, "input.key must lie under other/"),
        ({"metadata": {"name": resource_name(new_job_id())}}, "does not match jobId"),
    ],
)
def test_a_forged_documentjob_is_refused_with_the_reason(
    change: dict[str, dict[str, str]], reason: str
) -> None:
    resource = documentjob_resource(new_job_id())
    for part, fields in change.items():
        resource[part].update(fields)
    with pytest.raises(ValidationError) as refused:
        spec_of(resource)
    assert reason in str(refused.value)
