"""Parts of a document read apart (in any order) merge into what one reading gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from docjobs.domain.models import EXIT_OK, EXIT_PERMANENT, InputRef, JobSpec, PagePart
from docjobs.domain.sharding import plan_parts
from docjobs.runner.execute import execute, execute_part, merge_parts
from docjobs.storage.base import outcome_key
from docjobs.storage.local import LocalStore
from docjobs.usage.records import CPU_SECONDS
from tests.docs import pdf_with_pages


def _spec(job_id: str, output: str) -> JobSpec:
    scan = {"file_name": "scan.pdf", "content_type": "application/pdf", "page_count": 3}
    return JobSpec(
        job_id=job_id,
        tenant="acme",
        operation={"kind": "ocr.simple", "output": output},
        input=InputRef(key="acme/scan.pdf", sha256="0", size=1, **scan),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _result(store: LocalStore, key: str) -> bytes:
    return b"".join(store.iter_chunks(key))


def test_parts_read_out_of_order_merge_into_the_whole_reading(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    document, _ = pdf_with_pages(3, seed=11)
    store.put_bytes("acme/scan.pdf", document, "application/pdf")
    whole = execute(_spec("job_" + "a" * 24, "detailed"), 1, store)
    assert whole.summary.result is not None

    spec = _spec("job_" + "b" * 24, "detailed")
    parts = plan_parts(spec, 2, 2)
    assert parts == ["1-2", "3"]
    for index in reversed(range(len(parts))):  # shards finish in any order
        part = PagePart(index=index, pages=parts[index])
        read = execute_part(spec, 1, part, store, record_failure=False)
        assert read.exit_code == EXIT_OK
        assert not store.exists(outcome_key("acme", spec.job_id, 1)), "only the merge records"
    merged = merge_parts(spec, 1, len(parts), store)

    assert merged.exit_code == EXIT_OK and merged.summary.result is not None
    # The same details, but for the CPU time each took.
    unmetered = {CPU_SECONDS: 0}
    assert merged.summary.details | unmetered == whole.summary.details | unmetered
    assert json.loads(_result(store, merged.summary.result.key)) == json.loads(
        _result(store, whole.summary.result.key)
    )
    assert store.exists(outcome_key("acme", spec.job_id, 1))


def test_a_failed_shard_leaves_the_attempt_open_a_failed_part_ends_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    document, _ = pdf_with_pages(1, seed=3)
    store.put_bytes("acme/scan.pdf", document, "application/pdf")
    spec = _spec("job_" + "c" * 24, "simple")
    past_the_end = PagePart(index=0, pages="9")

    shard = execute_part(spec, 1, past_the_end, store, record_failure=False)
    assert shard.exit_code == EXIT_PERMANENT
    assert shard.summary.error is not None
    assert shard.summary.error.reason == "PageRangeOutOfBounds"
    assert not store.exists(outcome_key("acme", spec.job_id, 1))

    part = execute_part(spec, 1, past_the_end, store, record_failure=True)
    assert part.exit_code == EXIT_PERMANENT
    assert store.exists(outcome_key("acme", spec.job_id, 1))
