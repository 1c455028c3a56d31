"""Runner CPU time in Kubernetes mode, in process: the operator's usage record of a job sums
the CPU time of every attempt (failed ones too) and of every shard, each once, though the
operator reads an attempt's end more than once (its pod, its stored outcome, a restart)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docjobs.domain.clock import utcnow
from docjobs.domain.models import EXIT_OK, PagePart, RetryPolicy, RunnerSummary, RunOutcome
from docjobs.domain.sharding import plan_parts
from docjobs.kube.resources import job_of
from docjobs.runner.execute import execute_part, merge_parts
from docjobs.storage.base import outcome_key
from docjobs.usage.objects import StoredUsage, usage_folder
from docjobs.usage.records import UsageRecord
from tests.docs import pdf_with_pages
from tests.unit.operated import NS, TENANT, Operated, failure, operated, success, wait_until

OCR = {"kind": "ocr.simple"}
BACKOFF = 0.2


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def _record(op: Operated, name: str) -> UsageRecord:
    job_id = op.job_id(name)
    wait_until(lambda: list(op.store.keys(usage_folder(TENANT, NS))), what="a usage record")
    day = utcnow().date()
    (record,) = [
        r for r in StoredUsage(op.store, NS).records(TENANT, day, day) if r.job_id == job_id
    ]
    return record


def _restart(op: Operated) -> None:
    """A new operator process, to which kopf lists every object (and its history) again."""
    op.controller.stop()
    op.controller = op.new_controller()
    op.delivered = 0
    op.deliver()


def test_a_retried_job_counts_its_failed_attempt_once(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=BACKOFF))
    op.start(name)
    op.finish(f"{name}-a1", 1, failure("EngineCrashed", permanent=False).charged(0.5))
    retrying = op.status(name)
    assert retrying["phase"] == "Retrying" and retrying["cpuSeconds"] == 0.5
    time.sleep(BACKOFF + 0.05)
    op.start(name)
    assert op.status(name)["attempts"] == 2
    completed = success(TENANT, op.job_id(name)).charged(0.25)
    # The runner stores its outcome, then its pod ends with the same words.
    outcome = RunOutcome(exit_code=EXIT_OK, summary=completed)
    key = outcome_key(TENANT, op.job_id(name), 2)
    op.store.put_bytes(key, outcome.model_dump_json().encode(), "application/json")
    op.finish(f"{name}-a2", 0, completed)
    assert op.status(name)["phase"] == "Complete" and op.status(name)["attempts"] == 2

    first = _record(op, name)
    _restart(op)
    op.start(name)
    wait_until(lambda: not op.controller.usage.due(op.resource(name)), what="its record again")
    again = _record(op, name)  # one record still: written again, the same

    assert first.cpu_seconds == again.cpu_seconds == 0.75
    assert op.status(name)["cpuSeconds"] == 0.75


def test_a_job_that_failed_for_good_counts_its_cpu_time(op: Operated) -> None:
    name = op.submit()
    op.start(name)
    op.finish(f"{name}-a1", 42, failure("UnreadableDocument", permanent=True).charged(0.4))

    record = _record(op, name)
    assert record.status == "failed" and record.page_total == 0
    assert record.cpu_seconds == 0.4


@pytest.fixture
def sharding(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path, part_pages=1, shard_threshold_pages=2, shard_parallelism=3)
    yield made
    made.controller.stop()


def _read_shards(op: Operated, name: str, indexes: range) -> list[float]:
    """The runners of the shards ``indexes`` of the attempt, as their pods run them."""
    spec = job_of(op.resource(name)).spec
    parts = plan_parts(spec, 1, 2)
    used = []
    for index in indexes:
        part = PagePart(index=index, pages=parts[index])
        read = execute_part(spec, 1, part, op.store, record_failure=False)
        assert read.exit_code == EXIT_OK
        used.append(read.summary.cpu_seconds)
    return used


def test_a_sharded_job_counts_every_shard_and_its_merge(sharding: Operated) -> None:
    op = sharding
    document, _ = pdf_with_pages(3, seed=5)
    name = op.submit(OCR, data=document, page_count=3)
    op.start(name)
    shards = _read_shards(op, name, range(3))
    op.finish(f"{name}-a1", 0, RunnerSummary().charged(shards[-1]))
    merged = merge_parts(job_of(op.resource(name)).spec, 1, 3, op.store)
    op.finish(f"{name}-a1-merge", 0, merged.summary)

    record = _record(op, name)
    assert op.status(name)["phase"] == "Complete" and record.page_total == 3
    assert all(seconds > 0 for seconds in shards)
    # The merge reports its shards' time with its own; nothing else adds them again.
    assert record.cpu_seconds == merged.summary.cpu_seconds > round(sum(shards), 3)


def test_a_failed_sharded_attempt_counts_the_shards_that_succeeded(sharding: Operated) -> None:
    op = sharding
    document, _ = pdf_with_pages(3, seed=6)
    name = op.submit(OCR, data=document, page_count=3, retry=RetryPolicy(max_attempts=1))
    op.start(name)
    shards = _read_shards(op, name, range(2))
    runner = op.runner_job(f"{name}-a1")
    op.write_pod(runner, 0, RunnerSummary().charged(shards[-1]))
    op.finish(f"{name}-a1", 1, failure("PageUnreadable", permanent=False).charged(0.5))

    record = _record(op, name)
    assert record.status == "failed"
    assert record.cpu_seconds == round(round(sum(shards), 3) + 0.5, 3)
