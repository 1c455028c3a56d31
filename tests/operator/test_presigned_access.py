"""Runner pods hold no store credentials: per attempt, the operator stores a manifest (the
job spec and presigned URLs of that attempt's objects) and the pod gets only its URL, from
its Job's own Secret: no Job or pod spec carries it."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from docjobs.config import OperatorSettings
from docjobs.domain.clock import utcnow
from docjobs.kube.paths import core_path, jobs_path
from docjobs.kube.resources import job_of
from docjobs.operator.manifests import write_manifest
from docjobs.storage.base import ObjectNotFound, manifest_key, outcome_key, part_key
from docjobs.storage.presigned import AttemptManifest, KeyNotGranted, PresignedStore
from docjobs.storage.s3 import S3Store
from tests.docs import pdf_with_pages, png_bytes, sentence_lines, text_image

from .conftest import Jobs, wait_for


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _manifest_secret(jobs: Jobs, runner_job: dict[str, Any]) -> dict[str, Any]:
    """The Secret ``runner_job``'s pod mounts its manifest URL from, owned by that Job."""
    volumes = runner_job["spec"]["template"]["spec"]["volumes"]
    (name,) = [v["secret"]["secretName"] for v in volumes if "secret" in v]
    secret = jobs.api.get(core_path(jobs.ns, "secrets", name))
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Job", runner_job["metadata"]["uid"])
    return secret


def _container_env(runner_job: dict[str, Any]) -> list[dict[str, Any]]:
    pod = runner_job["spec"]["template"]["spec"]
    assert "envFrom" not in pod["containers"][0]
    return list(pod["containers"][0]["env"])


def test_runner_pods_without_credentials_or_spec_complete_convert_ocr_and_shards(
    jobs: Jobs, make_operator, store: S3Store
) -> None:
    make_operator(
        DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES="4",
        DOCJOBS_RUNNER__PART_PAGES="2",
        DOCJOBS_OPERATOR__SHARD_PARALLELISM="3",
    )
    convert = jobs.submit({"kind": "convert", "sourceFormat": "text"}, b"hello", "text/plain")
    lines = sentence_lines(5, 3)
    ocr = jobs.submit({"kind": "ocr.simple"}, png_bytes(text_image(lines)), "image/png")
    pdf, _ = pdf_with_pages(6, seed=31)
    resource = jobs.prepare({"kind": "ocr.simple"}, pdf, "application/pdf", "scan.pdf")
    resource["spec"]["input"]["pageCount"] = 6
    jobs.api.create(jobs.path(), resource)
    sharded = str(resource["metadata"]["name"])

    for name in (convert, ocr, sharded):
        status = jobs.wait(name, timeout=240)
        assert status["phase"] == "Complete" and status["attempts"] == 1, status
        assert store.exists(status["result"]["key"])
    text = json.loads(b"".join(store.iter_chunks(jobs.status(ocr)["result"]["key"])))
    assert lines[0].split()[0].lower() in json.dumps(text).lower()
    runner_jobs = [job for name in (convert, ocr, sharded) for job in jobs.runner_jobs(name)]
    assert len(runner_jobs) == 4, "convert, OCR, the shards and their merge"
    for runner_job in runner_jobs:
        env = _container_env(runner_job)
        names = {e["name"] for e in env}
        assert names.isdisjoint({"DOCJOBS_JOB_SPEC", "DOCJOBS_S3__ACCESS_KEY"}), names
        assert not [n for n in names if n.startswith("DOCJOBS_S3")], names
        assert not [e for e in env if "valueFrom" in e], "no credential in its environment"
        _manifest_secret(jobs, runner_job)
        # The spec is not in the environment in any form.
        values = " ".join(e.get("value", "") for e in env)
        assert "tenant" not in values and "input" not in values, values
    # Nor the manifest's URL, nor its key: in no Job or pod of the namespace.
    keys = [
        manifest_key("acme", jobs.get(name)["spec"]["jobId"], 1) for name in (convert, ocr, sharded)
    ]
    for kind in (jobs_path(jobs.ns), core_path(jobs.ns, "pods")):
        for obj in jobs.api.items(kind):
            shown = json.dumps(obj)
            assert "X-Amz-Signature" not in shown and "manifest.json" not in shown, obj
            assert not [key for key in keys if key in shown]

    # The URL is in the Job's own Secret; the convert attempt's URLs reach its own input,
    # and no other job's.
    (convert_job,) = jobs.runner_jobs(convert)
    secret = _manifest_secret(jobs, convert_job)
    url = base64.b64decode(secret["data"]["url"]).decode()
    assert keys[0] in url and "X-Amz-Signature" in url
    manifest = AttemptManifest.model_validate_json(httpx.get(url).content)
    own_input = manifest.spec.input.key
    assert httpx.get(manifest.get[own_input]).content == b"hello"
    ocr_input = jobs.get(ocr)["spec"]["input"]["key"]
    forged = manifest.get[own_input].replace(own_input, ocr_input)
    answer = httpx.get(forged)
    assert answer.status_code == 403, answer.text
    assert "SignatureDoesNotMatch" in answer.text
    assert own_input not in manifest.put, "a runner may not overwrite its input"

    # The Secret goes with its Job (the garbage collector, by its owner reference).
    jobs.api.delete(jobs_path(jobs.ns, convert_job["metadata"]["name"]))
    secrets = core_path(jobs.ns, "secrets", secret["metadata"]["name"])
    wait_for(lambda: jobs.api.find(secrets) is None, 60, 0.2, what="the Secret to go")


def test_the_presigned_store_refuses_foreign_keys_and_expired_urls(
    jobs: Jobs, store: S3Store, tmp_path: Path
) -> None:
    mine = job_of(jobs.prepare({"kind": "convert", "sourceFormat": "text"}, b"mine", "text/plain"))
    theirs = job_of(
        jobs.prepare({"kind": "convert", "sourceFormat": "text"}, b"their", "text/plain")
    )
    spec, own_input = mine.spec, mine.spec.input.key
    # One shard: the attempt may write its part, and read it back (for the merge).
    url = write_manifest(store, spec, 1, 1, OperatorSettings(), deadline_seconds=60)
    runner = PresignedStore.fetch(url)
    assert runner.manifest.spec == spec
    assert b"".join(runner.iter_chunks(own_input)) == b"mine"
    assert runner.exists(own_input)
    part = part_key(spec.tenant, spec.job_id, 1, 0)
    assert not runner.exists(part)
    with pytest.raises(ObjectNotFound):
        runner.download(part, tmp_path / "none")
    runner.put_file(part, _file(tmp_path / "part", b"[]"), "application/json")
    assert runner.exists(part)
    runner.put_bytes(outcome_key(spec.tenant, spec.job_id, 1), b"{}", "application/json")
    assert b"".join(store.iter_chunks(outcome_key(spec.tenant, spec.job_id, 1))) == b"{}"

    with pytest.raises(KeyNotGranted, match="may not GET"):
        next(runner.iter_chunks(theirs.spec.input.key))
    with pytest.raises(KeyNotGranted, match="may not PUT"):
        runner.put_bytes(own_input, b"overwritten", "text/plain")
    with pytest.raises(KeyNotGranted):
        runner.delete_prefix(f"{spec.tenant}/{spec.job_id}")
    assert b"".join(store.iter_chunks(own_input)) == b"mine"

    expired = runner.manifest.model_copy(update={"expires_at": utcnow() - timedelta(seconds=1)})
    with pytest.raises(KeyNotGranted, match="expired"):
        PresignedStore(expired).download(own_input, tmp_path / "input")
    assert not (tmp_path / "input").exists()

    # Past its expiry the store itself refuses a URL, whatever a runner does with it.
    short = store.presign("GET", own_input, utcnow() + timedelta(seconds=5))
    assert httpx.get(short).status_code == 200
    time.sleep(6.5)
    answer = httpx.get(short)
    assert answer.status_code == 403 and "expired" in answer.text.lower(), answer.text
