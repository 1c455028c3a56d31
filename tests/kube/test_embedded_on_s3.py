"""Embedded mode with S3 settings keeps every file in the bucket: the API process and its
warm runner workers use one store, the rig's real MinIO, and nothing lands on local disk;
inputs left without a job by a crash are swept from the bucket at start."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from minio import Minio
from minio.deleteobjects import DeleteObject
from pypdf import PdfReader

from tests.conftest import Server
from tests.docs import pdf_with_pages, png_bytes, sentence_lines, text_image
from tests.kube.helpers import api_status
from tests.rig.fixtures import Cluster

OCR = "/api/v1/ocr/extract/simple"


@pytest.fixture
def bucket(s3: Minio) -> Iterator[str]:
    """A bucket name of this test's own; the server creates the bucket, the test removes it."""
    name = f"embedded-{uuid.uuid4().hex[:12]}"
    yield name
    if s3.bucket_exists(name):
        objects = s3.list_objects(name, recursive=True)
        for error in s3.remove_objects(name, (DeleteObject(o.object_name) for o in objects)):
            raise RuntimeError(error)
        s3.remove_bucket(name)


def test_embedded_mode_keeps_inputs_results_and_outcomes_in_s3(
    cluster: Cluster, s3: Minio, bucket: str, tmp_path: Path
) -> None:
    # The shell of a kubernetes-mode user (.local-cluster/env: DOCJOBS_S3_* for the endpoint
    # and credentials), serving in embedded mode into a bucket of its own.
    env = {**cluster.env, "DOCJOBS_S3__BUCKET": bucket, "DOCJOBS_RUNNER__CONCURRENCY": "2"}
    server = Server(tmp_path / "data", env=env).start()
    try:
        key = server.key("acme")
        headers = {"X-API-Key": key}

        def post(path: str, **kwargs: object) -> requests.Response:
            response = requests.post(server.base + path, headers=headers, timeout=120, **kwargs)
            assert response.status_code in (200, 202), response.text
            return response

        sync_pdf = post("/api/v1/convert/markdown-to-pdf", data={"content": "# Stored in S3"})
        assert "Stored in S3" in PdfReader(io.BytesIO(sync_pdf.content)).pages[0].extract_text()
        lines = sentence_lines(7, 3, 5)
        scan = png_bytes(text_image(lines))
        sync_ocr = post(OCR, files={"file": ("scan.png", scan, "image/png")})
        assert lines[0].split()[0] in sync_ocr.json()["data"]["text"]

        async_pdf = post("/api/v1/convert/text-to-pdf?async=true", data={"content": "later"})
        pdf, texts = pdf_with_pages(1, seed=11)
        async_ocr = post(f"{OCR}?async=true", files={"file": ("scan.pdf", pdf, "application/pdf")})
        async_ids = [async_pdf.json()["job_id"], async_ocr.json()["job_id"]]
        for job_id in async_ids:
            api_status(server, key, job_id, "complete", timeout=120)
        result = requests.get(f"{server.base}/api/v1/jobs/{async_ids[0]}/result", headers=headers)
        assert "later" in PdfReader(io.BytesIO(result.content)).pages[0].extract_text()
        result = requests.get(f"{server.base}/api/v1/jobs/{async_ids[1]}/result", headers=headers)
        assert texts[0][0].split()[0] in result.json()["data"]["text"]

        job_ids = [r.headers["X-Job-Id"] for r in (sync_pdf, sync_ocr)] + async_ids
        for job_id in job_ids:
            names = {
                o.object_name.removeprefix(f"acme/{job_id}/")
                for o in s3.list_objects(bucket, prefix=f"acme/{job_id}/", recursive=True)
                if o.object_name
            }
            assert "input" in names and "attempts/1.json" in names, names
            assert any(name.startswith("result") for name in names), names
        objects = tmp_path / "data" / "objects"
        assert not objects.exists() or not any(objects.iterdir())

        # An input stored for a job whose row never committed (a kill in between) goes at
        # the next start; the jobs' own objects stay.
        server.kill()
        orphan = "acme/job_000000000000000000000000/input"
        s3.put_object(bucket, orphan, io.BytesIO(b"orphan"), 6)
        server.start()
        assert list(s3.list_objects(bucket, prefix=orphan)) == []
        for job_id in job_ids:
            assert list(s3.list_objects(bucket, prefix=f"acme/{job_id}/input")), job_id
    finally:
        server.stop()
