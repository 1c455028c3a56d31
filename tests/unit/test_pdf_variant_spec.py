"""In Kubernetes mode a conversion's ``pdf_variant`` travels in the DocumentJob: written by
the API, allowed by the CRD for conversions only, and read back as the runner gets it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import yaml

from docjobs.backends.base import new_job_id
from docjobs.domain.models import ConvertToPdf, InputRef, JobSpec, PdfVariant
from docjobs.kube.resources import job_of, spec_of, to_resource

CRD = Path(__file__).resolve().parents[2] / "crds" / "documentjob.yaml"


def conversion(variant: PdfVariant | None) -> JobSpec:
    job_id = new_job_id()
    return JobSpec(
        job_id=job_id,
        tenant="acme",
        operation=ConvertToPdf(source_format="markdown", pdf_variant=variant),
        input=InputRef(
            key=f"acme/{job_id}/input-1a2b",
            file_name="notes.md",
            content_type="text/markdown",
            sha256="0",
            size=1,
        ),
        created_at=datetime.now(UTC),
    )


def operation_schema() -> dict[str, Any]:
    version = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return dict(schema["properties"]["operation"])


def test_the_variant_is_written_to_the_documentjob_and_read_back() -> None:
    spec = conversion("pdf/a-3b")
    resource = to_resource(spec, "docjobs")
    assert resource["spec"]["operation"]["pdfVariant"] == "pdf/a-3b"
    assert spec_of(resource).operation == spec.operation
    # What the operator hands the runner: the job's spec, as JSON in the attempt's manifest.
    handed = job_of(resource).spec.model_dump_json()
    assert JobSpec.model_validate_json(handed).operation == spec.operation


def test_a_plain_conversion_writes_no_variant() -> None:
    resource = to_resource(conversion(None), "docjobs")
    assert "pdfVariant" not in resource["spec"]["operation"]


def test_the_crd_takes_the_variants_on_conversions_only() -> None:
    schema = operation_schema()
    assert schema["properties"]["pdfVariant"]["enum"] == list(get_args(PdfVariant))
    rules = {rule["rule"] for rule in schema["x-kubernetes-validations"]}
    others = [rule for rule in rules if "self.kind != 'ocr." in rule or "'extract'" in rule]
    assert others and all("!has(self.pdfVariant)" in rule for rule in others)
    (convert,) = [rule for rule in rules if "self.kind != 'convert'" in rule]
    assert "self.pdfVariant" not in convert
