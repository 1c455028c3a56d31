"""Where and when the operator's controller runs an attempt, in process: a tenant's running
cap, a runner pod no node can take, and long scans split into shards and merged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from docjobs.domain.clock import iso, utcnow
from docjobs.domain.models import Progress, RetryPolicy
from docjobs.kube.paths import core_path, jobs_path
from tests.unit.operated import NS, TENANT, Operated, failure, operated, success, wait_until

OCR = {"kind": "ocr.simple"}


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def test_jobs_over_a_tenants_cap_wait_pending_with_a_reason(tmp_path: Path) -> None:
    op = operated(tmp_path, cap=1)
    try:
        first, second = op.submit(), op.submit()
        other = op.submit(tenant="other")
        for name in (first, second, other):
            op.start(name)

        assert op.status(first)["phase"] == "Processing"
        waiting = op.status(second)
        assert waiting["phase"] == "Pending", waiting
        assert waiting["message"].startswith("Waiting for a slot: 1 jobs of this tenant")
        assert op.status(other)["phase"] == "Processing"
        assert sorted(op.runner_jobs()) == sorted([f"{first}-a1", f"{other}-a1"])

        op.finish(f"{first}-a1", 0, success(TENANT, op.job_id(first)))
        op.controller.tick(utcnow())  # the freed slot makes the waiting job due at once

        wait_until(lambda: f"{second}-a1" in op.runner_jobs(), what="the slot")
        assert op.status(second)["phase"] == "Processing"
    finally:
        op.controller.stop()


def test_an_unschedulable_runner_fails_the_attempt_with_the_schedulers_words(
    tmp_path: Path,
) -> None:
    op = operated(tmp_path, unschedulable_seconds=3)
    try:
        name = op.submit(retry=RetryPolicy(max_attempts=1))
        op.start(name)
        runner = op.runner_job(f"{name}-a1")
        pod = op.write_pod(runner, 0, None)
        words = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
        since = utcnow()
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": words,
            "lastTransitionTime": iso(since),
        }
        path = core_path(NS, "pods", pod["metadata"]["name"])
        op.kube.write_status(path, {"phase": "Pending", "conditions": [condition]})
        op.deliver()
        assert op.status(name)["message"] == f"Waiting for a node: {words}"

        op.controller.tick(since + timedelta(seconds=2))
        assert op.status(name)["phase"] == "Processing"
        op.controller.tick(since + timedelta(seconds=4))

        wait_until(lambda: op.status(name).get("phase") == "Failed", what="the timeout")
        error = op.status(name)["error"]
        assert error["reason"] == "Unschedulable" and words in error["message"], error
        wait_until(lambda: op.runner_jobs() == [], what="the stuck Job deleted")
    finally:
        op.controller.stop()


def test_a_pod_that_gets_a_node_after_all_clears_the_waiting_message(op: Operated) -> None:
    name = op.submit()
    op.start(name)
    pod = op.write_pod(op.runner_job(f"{name}-a1"), 0, None)
    path = core_path(NS, "pods", pod["metadata"]["name"])
    stuck = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    op.kube.write_status(path, {"conditions": [{**stuck, "message": "no GPU"}]})
    op.deliver()
    assert op.status(name)["message"] == "Waiting for a node: no GPU"

    op.kube.write_status(path, {"conditions": [{"type": "PodScheduled", "status": "True"}]})
    op.deliver()

    assert op.status(name)["message"] == "Job is being processed"


def test_a_long_scan_runs_as_shards_then_one_merge_job(tmp_path: Path) -> None:
    op = operated(tmp_path, part_pages=2, shard_threshold_pages=4, shard_parallelism=3)
    try:
        name = op.submit(OCR, page_count=6)
        op.start(name)

        shards = op.runner_job(f"{name}-a1")["spec"]
        assert (shards["completionMode"], shards["completions"], shards["parallelism"]) == (
            "Indexed",
            3,
            3,
        )
        # The Job controller counts the first shard done.
        op.kube.write_status(jobs_path(NS, f"{name}-a1"), {"succeeded": 1, "completedIndexes": "0"})
        op.deliver()
        status = op.status(name)
        assert "1/3 shards done" in status["message"], status
        assert Progress.model_validate(status["progress"]).pages_done == 2

        op.finish(f"{name}-a1", 0, success(TENANT, op.job_id(name)))

        merge = f"{name}-a1-merge"
        assert sorted(op.runner_jobs()) == [f"{name}-a1", merge]
        assert op.status(name)["currentJob"] == merge
        assert op.status(name)["phase"] == "Processing"
        op.finish(merge, 0, success(TENANT, op.job_id(name)))

        status = op.status(name)
        assert status["phase"] == "Complete" and status["attempts"] == 1, status
    finally:
        op.controller.stop()


def test_a_failed_shard_fails_the_attempt_with_that_shards_words(tmp_path: Path) -> None:
    op = operated(tmp_path, part_pages=2, shard_threshold_pages=4)
    try:
        name = op.submit(OCR, page_count=6, retry=RetryPolicy(max_attempts=1))
        op.start(name)
        runner = op.runner_job(f"{name}-a1")
        op.write_pod(runner, 0, success(TENANT, op.job_id(name)))

        op.finish(f"{name}-a1", 1, failure("PageUnreadable", permanent=False))

        status = op.status(name)
        assert status["phase"] == "Failed" and status["error"]["reason"] == "PageUnreadable"
        assert f"{name}-a1-merge" not in op.runner_jobs()
    finally:
        op.controller.stop()
