"""What an attempt's manifest grants, without the rig: its own job's objects and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from docjobs.config import OperatorSettings
from docjobs.domain.models import Extract, InputRef, JobSpec
from docjobs.operator.manifests import grants


def _spec(operation: dict[str, Any]) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "job_0123456789abcdef01234567",
            "tenant": "acme",
            "operation": operation,
            "input": InputRef(
                key="acme/job_0123456789abcdef01234567/input",
                file_name="f",
                content_type="image/png",
                sha256="0",
                size=1,
            ),
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


JOB = "acme/job_0123456789abcdef01234567"


def test_a_one_pod_attempt_reads_its_input_and_writes_its_own_objects_only() -> None:
    gets, puts = grants(_spec({"kind": "ocr.simple"}), 2, 0, OperatorSettings())
    assert gets == [f"{JOB}/input"]
    assert sorted(puts) == [
        f"{JOB}/attempts/2.json",
        f"{JOB}/attempts/2/progress.json",
        f"{JOB}/result.hocr",
        f"{JOB}/result.json",
        f"{JOB}/result.md",
        f"{JOB}/result.pdf",
        f"{JOB}/result.xml",
    ]


def test_shards_write_and_the_merge_reads_the_parts_of_that_attempt() -> None:
    gets, puts = grants(_spec({"kind": "ocr.simple"}), 1, 3, OperatorSettings())
    parts = [f"{JOB}/attempts/1/part-{index}.json" for index in range(3)]
    assert gets == [f"{JOB}/input", *parts]
    assert set(parts) <= set(puts)


def test_extraction_reads_its_template_version_and_docTR_its_weights() -> None:
    template = {"name": "invoice", "fields": [{"name": "invoice.number"}]}
    extract = {"kind": "extract", "template_id": "tpl-1", "template": template, "ocr": "advanced"}
    spec = _spec(extract)
    assert isinstance(spec.operation, Extract)
    version = spec.operation.template_version
    runner_env = {"DOCJOBS_DOCTR__WEIGHTS_PREFIX": "/models/doctr/"}
    settings = OperatorSettings(runner_env=runner_env)

    gets, puts = grants(spec, 1, 0, settings)

    assert gets == [
        f"{JOB}/input",
        f"acme/.templates/tpl-1/{version}.json",
        "models/doctr/db_resnet50.pt",
        "models/doctr/crnn_vgg16_bn.pt",
    ]
    assert not [key for key in puts if not key.startswith(f"{JOB}/")]
    plain, _ = grants(_spec({"kind": "ocr.simple"}), 1, 0, settings)
    assert plain == [f"{JOB}/input"], "weights only where docTR runs"
