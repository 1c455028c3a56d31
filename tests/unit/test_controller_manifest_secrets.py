"""A runner Job's manifest URL reaches its pod through the Job's own Secret, never its spec:
the Secret is written right after the Job, owned by it, before the attempt records the Job;
an operator that fails in between writes it on its next look.

The controller runs against the fake API server (:mod:`tests.unit.operated`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from docjobs.kube.paths import core_path, documentjobs_path, jobs_path
from docjobs.storage.base import manifest_key
from tests.unit.operated import NS, TENANT, Operated, operated, success

OCR = {"kind": "ocr.simple"}


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def _owners(op: Operated, job: str) -> list[tuple[str, str, str, bool]]:
    """The owners of the Secret runner Job ``job``'s pod mounts."""
    found = op.kube.stored(core_path(NS, "secrets", op.manifest_secret(job)))
    assert found is not None, f"no manifest Secret for {job}"
    return [
        (ref["kind"], ref["name"], ref["uid"], ref["controller"])
        for ref in found["metadata"]["ownerReferences"]
    ]


def _secret_requests(op: Operated) -> set[str]:
    return {call.verb for call in op.kube.calls if "/secrets" in call.path}


def _writes(op: Operated) -> list[str]:
    """What the operator wrote, in order: Job and Secret creations, status writes."""
    kinds = {jobs_path(NS): "create Job", core_path(NS, "secrets"): "create Secret"}
    made = []
    for call in op.kube.calls:
        if call.verb == "POST" and call.path in kinds:
            made.append(kinds[call.path])
        elif call.verb in ("PUT", "PATCH") and call.path.endswith("/status"):
            body = json.dumps(call.body)
            made.append("record currentJob" if "currentJob" in body else "write status")
    return made


def test_the_pod_gets_the_url_from_a_secret_owned_by_its_job(op: Operated) -> None:
    name = op.submit()
    op.start(name)

    job = op.runner_job(f"{name}-a1")
    key = manifest_key(TENANT, op.job_id(name), 1)
    assert op.manifest_url(f"{name}-a1").startswith(op.store.path(key).as_uri())
    assert key not in json.dumps(job), "neither the URL nor the manifest's key is in the Job"
    assert op.manifest_secret(f"{name}-a1").startswith(f"{name}-a1-manifest-")
    assert _owners(op, f"{name}-a1") == [("Job", f"{name}-a1", job["metadata"]["uid"], False)]
    # Crash-safe order: the Job (its uid owns the Secret), the Secret, then the record.
    writes = _writes(op)
    assert writes.index("create Job") < writes.index("create Secret")
    assert writes.index("create Secret") < writes.index("record currentJob")

    op.finish(f"{name}-a1", 0, success(TENANT, op.job_id(name)))
    assert op.status(name)["phase"] == "Complete"


def test_an_operator_failing_before_the_secret_writes_it_on_its_next_look(
    op: Operated,
) -> None:
    name = op.submit()
    op.kube.fail("POST", core_path(NS, "secrets"), 500)
    with pytest.raises(Exception, match="500"):
        op.controller.reconcile(op.ref(name))
    # The Job exists, its pod waits for its Secret, and the attempt has not recorded it.
    assert op.runner_jobs() == [f"{name}-a1"]
    assert op.kube.stored(core_path(NS, "secrets", op.manifest_secret(f"{name}-a1"))) is None
    assert "currentJob" not in op.status(name)

    op.start(name)

    status = op.status(name)
    assert status["attempts"] == 1 and status["currentJob"] == f"{name}-a1", status
    assert op.runner_jobs() == [f"{name}-a1"], "the Job is adopted, not made twice"
    uid = op.runner_job(f"{name}-a1")["metadata"]["uid"]
    assert _owners(op, f"{name}-a1") == [("Job", f"{name}-a1", uid, False)]
    assert op.manifest_url(f"{name}-a1")


def test_a_secret_written_before_a_failure_is_kept_and_only_ever_created(
    op: Operated,
) -> None:
    """The operator may create Secrets, nothing more: one an earlier look wrote (the record
    of the attempt failed after it) is this attempt's, and its pod may have read it."""
    name = op.submit()
    op.kube.before(
        "POST",
        core_path(NS, "secrets"),
        lambda: op.kube.fail("PUT", documentjobs_path(NS, name, "status"), 500),
    )
    with pytest.raises(Exception, match="500"):
        op.controller.reconcile(op.ref(name))
    assert "currentJob" not in op.status(name)
    written = op.manifest_url(f"{name}-a1")

    op.start(name)

    assert op.status(name)["currentJob"] == f"{name}-a1"
    assert op.manifest_url(f"{name}-a1") == written
    assert _secret_requests(op) == {"POST"}, "no Secret is read, changed or deleted"


def test_a_namesake_documentjobs_leftover_secret_is_never_mounted(op: Operated) -> None:
    """A DocumentJob deleted and created again under the same name: the Secret of its first
    Job, not yet garbage-collected, would go under the second one's pod; that pod mounts a
    Secret of its own, owned by its own Job."""
    resource = op.prepare()
    name = resource["metadata"]["name"]
    op.kube.create(documentjobs_path(NS), resource)
    op.deliver()
    op.start(name)
    first = op.manifest_secret(f"{name}-a1")
    op.kube.delete(documentjobs_path(NS, name))
    op.kube.delete(jobs_path(NS, f"{name}-a1"))  # the garbage collector's first step
    op.deliver()

    resource = {**resource, "metadata": {**resource["metadata"], "uid": None}}
    op.kube.create(documentjobs_path(NS), resource)
    op.deliver()
    op.start(name)

    assert op.status(name)["currentJob"] == f"{name}-a1"
    assert op.manifest_secret(f"{name}-a1") != first
    assert op.kube.stored(core_path(NS, "secrets", first)) is not None
    uid = op.runner_job(f"{name}-a1")["metadata"]["uid"]
    assert _owners(op, f"{name}-a1") == [("Job", f"{name}-a1", uid, False)]


def _merging(tmp_path: Path) -> tuple[Operated, str]:
    """An operator and a sharded DocumentJob whose shards all succeeded: it is merging."""
    op = operated(tmp_path, part_pages=2, shard_threshold_pages=4, shard_parallelism=3)
    name = op.submit(OCR, page_count=6)
    op.start(name)
    op.finish(f"{name}-a1", 0, success(TENANT, op.job_id(name)))
    assert op.status(name)["currentJob"] == f"{name}-a1-merge"
    return op, name


def test_a_merge_job_made_again_mounts_a_new_secret_not_the_one_going(tmp_path: Path) -> None:
    """A merge Job deleted while the operator was down is made again under its name; the
    old Job's Secret is the garbage collector's to delete, maybe right after: mounting it, the
    new Job's pod could wait for it forever."""
    op, name = _merging(tmp_path)
    try:
        merge = f"{name}-a1-merge"
        first = op.manifest_secret(merge)
        op.controller.stop()
        op.kube.delete(jobs_path(NS, merge))  # its Secret still there: the GC is slow
        op.controller = op.new_controller()
        op.delivered = len(op.kube.history)  # the restarted operator lists what is there
        op.start(name)

        assert op.status(name)["currentJob"] == merge
        again = op.runner_job(merge)
        assert op.manifest_secret(merge) != first
        assert op.kube.stored(core_path(NS, "secrets", first)) is not None
        assert _owners(op, merge) == [("Job", merge, again["metadata"]["uid"], False)]
        assert op.manifest_url(merge)
        op.finish(merge, 0, success(TENANT, op.job_id(name)))
        assert op.status(name)["phase"] == "Complete"
    finally:
        op.controller.stop()


def test_shards_and_their_merge_each_get_their_own_secret(tmp_path: Path) -> None:
    op = operated(tmp_path, part_pages=2, shard_threshold_pages=4, shard_parallelism=3)
    try:
        name = op.submit(OCR, page_count=6)
        op.start(name)
        shards = f"{name}-a1"
        assert op.manifest_url(shards)

        op.finish(shards, 0, success(TENANT, op.job_id(name)))

        merge = f"{name}-a1-merge"
        assert op.status(name)["currentJob"] == merge
        uid = op.runner_job(merge)["metadata"]["uid"]
        assert _owners(op, merge) == [("Job", merge, uid, False)]
        assert op.manifest_url(merge).startswith(
            op.store.path(manifest_key(TENANT, op.job_id(name), 1)).as_uri()
        )
    finally:
        op.controller.stop()
