"""The runner reads an extract job's template version from the object store it is given."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from docjobs.domain.models import EXIT_OK, EXIT_PERMANENT, Extract, InputRef, JobSpec
from docjobs.runner.execute import execute
from docjobs.storage.base import template_key
from docjobs.storage.local import LocalStore
from docjobs.storage.templates import save_template_version
from docjobs.templates.schema import TemplateSpec
from docjobs.templates.store import content_version
from tests.docs import INVOICE, INVOICE_TEMPLATE, invoice_pdf

TEMPLATE = TemplateSpec.model_validate(INVOICE_TEMPLATE)
VERSION = content_version(TEMPLATE)


def _spec(store: LocalStore, job_id: str) -> JobSpec:
    """A parse job as a runner receives it: the template named, not carried."""
    store.put_bytes(f"acme/{job_id}/input", invoice_pdf(), "application/pdf")
    spec = JobSpec(
        job_id=job_id,
        tenant="acme",
        operation=Extract(template_id="tpl-1", template_version=VERSION),
        input=InputRef(
            key=f"acme/{job_id}/input",
            file_name="invoice.pdf",
            content_type="application/pdf",
            sha256="0",
            size=1,
        ),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return JobSpec.model_validate_json(spec.model_dump_json())


def test_the_runner_extracts_with_the_stored_template_version(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    submitted = Extract(template_id="tpl-1", template_version=VERSION, template=TEMPLATE)
    save_template_version(store, "acme", submitted)
    assert store.exists(template_key("acme", "tpl-1", VERSION))

    outcome = execute(_spec(store, "job_" + "a" * 24), 1, store)

    assert outcome.exit_code == EXIT_OK, outcome.summary.error
    assert outcome.summary.result is not None
    result = json.loads(b"".join(store.iter_chunks(outcome.summary.result.key)))
    assert result["invoice"]["number"] == INVOICE["number"]


def test_a_missing_template_version_fails_the_job_with_a_reason(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")

    outcome = execute(_spec(store, "job_" + "b" * 24), 1, store)

    assert outcome.exit_code == EXIT_PERMANENT
    assert outcome.summary.error is not None
    assert outcome.summary.error.reason == "TemplateNotFound"
    assert VERSION in outcome.summary.error.message
