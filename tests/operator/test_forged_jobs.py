"""DocumentJobs written by hand that claim what the API never writes (a forged tenant or job
id, a name that is not the job id's, another job's objects): the API server refuses them
with the reason, and the operator deletes nothing of anyone's."""

from __future__ import annotations

import copy
import time
from typing import Any

from docjobs.backends.base import new_job_id
from docjobs.kube.client import KubeError
from docjobs.kube.resources import resource_name
from docjobs.storage.s3 import S3Store

from .conftest import Jobs, Operator

CONVERT = {"kind": "convert", "sourceFormat": "text"}


def _objects(store: S3Store, prefix: str) -> set[str]:
    listed = store.client.list_objects(store.bucket, prefix=prefix, recursive=True)
    return {o.object_name for o in listed if o.object_name}


def _forge(victim: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """The victim's DocumentJob with ``spec`` changed, expiring at once when finished."""
    forged = copy.deepcopy(victim)
    forged["metadata"] = {"name": victim["metadata"]["name"]}
    forged["spec"].update(spec, ttlSecondsAfterFinished=0)
    forged.pop("status", None)
    return forged


def test_forged_documentjobs_are_refused_and_delete_nothing(
    jobs: Jobs, store: S3Store, operator: Operator
) -> None:
    name = jobs.submit(CONVERT, b"the victim's document", "text/plain", tenant="acme")
    jobs.wait(name, ("Complete",))
    victim = jobs.get(name)
    victim_id = victim["spec"]["jobId"]
    kept = _objects(store, "acme/")
    assert f"acme/{victim_id}/input" in kept and len(kept) >= 2  # input and result

    other_id = new_job_id()
    forged: dict[str, tuple[dict[str, Any], str]] = {
        # Its expiry would empty the whole of acme's folder (``acme/`` + "" + ``/``).
        "empty job id": (_forge(victim, jobId=""), "spec.jobId"),
        "job id outside the pattern": (_forge(victim, jobId="job_../../acme"), "spec.jobId"),
        "tenant outside the pattern": (_forge(victim, tenant="acme/.."), "spec.tenant"),
        # A well-formed copy under another name: its expiry would delete the victim's folder.
        "name of another job": (
            {**_forge(victim), "metadata": {"name": resource_name(other_id)}},
            "metadata.name must be spec.jobId",
        ),
        # Another tenant's job reading (and on expiry deleting around) acme's input.
        "input of another tenant": (
            {
                **_forge(victim, tenant="mallory", jobId=other_id),
                "metadata": {"name": resource_name(other_id)},
            },
            "input.key must lie in the job's own folder",
        ),
    }
    wrong = []
    for what, (resource, reason) in forged.items():
        try:
            jobs.api.create(jobs.path(), resource)
        except KubeError as exc:
            if exc.status != 422 or reason not in exc.message:
                wrong.append(f"{what}: HTTP {exc.status} {exc.message}")
        else:
            wrong.append(f"{what}: accepted")
    assert not wrong, wrong

    # The operator saw nothing to act on: the victim's job and objects are as they were.
    time.sleep(3)
    assert [r["metadata"]["name"] for r in jobs.api.items(jobs.path())] == [name]
    assert jobs.status(name)["phase"] == "Complete"
    assert _objects(store, "acme/") >= kept
    assert not _objects(store, "mallory/")
