"""One profile per operation and one placement per engine, read by the API, the operator
and the runner alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from pydantic import TypeAdapter

from docjobs.config import LimitSettings, OperatorSettings
from docjobs.domain.engines import (
    OPERATIONS,
    PLACEMENTS,
    PagedOperation,
    SyncLimit,
    placement_of,
    profile_of,
    splittable,
)
from docjobs.domain.models import Engine, InputRef, JobSpec, Operation
from docjobs.domain.sharding import plan_parts

OPERATION = TypeAdapter(Operation)
EXAMPLES: list[dict[str, Any]] = [
    {"kind": "convert", "source_format": "markdown"},
    {"kind": "ocr.simple"},
    {"kind": "ocr.advanced"},
    {"kind": "ocr.vision"},
    {"kind": "extract", "template_id": "invoice", "template_version": "0" * 16},
    {"kind": "extract", "template_id": "invoice", "template_version": "0" * 16, "ocr": "advanced"},
]


def spec(operation: dict[str, Any], page_count: int) -> JobSpec:
    scan = {"file_name": "scan.pdf", "content_type": "application/pdf", "size": 1}
    return JobSpec(
        job_id="job_" + "a" * 24,
        tenant="acme",
        operation=operation,
        input=InputRef(key="acme/in", sha256="0", page_count=page_count, **scan),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_every_operation_and_engine_has_a_profile() -> None:
    kinds = {model.model_fields["kind"].default for model in get_args(get_args(Operation)[0])}
    assert kinds == set(OPERATIONS)
    assert set(Engine) == set(PLACEMENTS)


def test_each_sync_limit_names_a_setting_and_reads_its_number() -> None:
    limits = LimitSettings(sync_convert_bytes=1234, sync_vision_pages=7)
    assert SyncLimit.CONVERT_BYTES.of(limits) == 1234
    assert SyncLimit.VISION_PAGES.of(limits) == 7
    for bound in SyncLimit:
        assert bound.of(LimitSettings()) == LimitSettings.model_fields[bound.value].default
    assert [b for b in SyncLimit if not b.counts_pages] == [SyncLimit.CONVERT_BYTES]


@pytest.mark.parametrize("operation", EXAMPLES, ids=lambda o: f"{o['kind']}-{o.get('ocr', '')}")
def test_splittable_is_the_paged_type(operation: dict[str, Any]) -> None:
    parsed = OPERATION.validate_python(operation)
    assert splittable(parsed) == isinstance(parsed, PagedOperation)
    # What the schedulers do with it: a long document of a splittable operation runs in
    # parts, any other one whole.
    parts = plan_parts(spec(operation, 10), 4, 4)
    assert parts == (["1-4", "5-8", "9-10"] if splittable(parsed) else [])


def test_an_extraction_reading_with_doctr_goes_where_doctr_goes() -> None:
    extract = OPERATION.validate_python(EXAMPLES[-1])
    assert placement_of(extract) == PLACEMENTS[Engine.DOCTR]
    assert placement_of(extract).pool == "gpu"
    assert profile_of(extract) == OPERATIONS["extract"]


def test_the_operator_starts_from_the_engines_placements() -> None:
    engines = OperatorSettings().engines
    for engine, placement in PLACEMENTS.items():
        assert engines[engine].pool == placement.pool
        assert engines[engine].active_deadline_seconds == placement.attempt_seconds


def test_a_bad_selection_is_left_to_the_runner_to_report() -> None:
    assert plan_parts(spec({"kind": "ocr.simple", "pages": "8-20"}, 10), 2, 2) == []
    assert plan_parts(spec({"kind": "ocr.simple", "pages": "2-9"}, 10), 4, 4) == ["2-5", "6-9"]
