"""Documents by reference through ``docjobs.client`` and ``docjobs submit``, against a real
embedded server: direct uploads put with the client's ``upload``, ``source_url`` fetched from
a local document server (the server allows private targets, as a local receiver needs), and
the API's refusals as the client's typed errors.

The server's request limit is small, so a document larger than it can only arrive by a
direct upload; its counter of PUTs to the upload URL tells which way a file went.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pypdf import PdfReader

from docjobs.client import AsyncClient, Client
from docjobs.client import errors as client_errors
from tests.conftest import BIN, Server
from tests.docs import sentence_lines

REQUEST_LIMIT = 4 * 1024
"""The server's limit of a document sent in its request; direct uploads may be larger."""
PLANS = {"business": "6000/minute"}
SMALL = "\n".join(sentence_lines(31, 12))
LARGE = "\n".join(sentence_lines(32, 200))
PUT_ROUTE = "/api/v1/uploads/{upload_id}"


class Documents(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/notes/doc.txt":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = SMALL.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    """The URL of a text document on a local server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Documents)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/notes/doc.txt"
    server.shutdown()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("references") / "data",
        env={
            "DOCJOBS_LIMITS__MAX_UPLOAD_BYTES": str(REQUEST_LIMIT),
            "DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
            "DOCJOBS_RATE_LIMITS__PLANS": json.dumps(PLANS),
        },
    ).start()
    yield server
    server.stop()


def pdf_text(pdf: bytes) -> str:
    assert pdf.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return " ".join(text.split())


def holds_lines(pdf: bytes, text: str) -> bool:
    found = pdf_text(pdf)
    lines = text.splitlines()
    return all(line in found for line in (lines[0], lines[len(lines) // 2], lines[-1]))


def puts(srv: Server) -> float:
    """Direct uploads the server took on its signed URL so far."""
    metrics = requests.get(f"{srv.base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(metrics):
        if family.name == "docjobs_http_requests":
            return sum(
                sample.value
                for sample in family.samples
                if sample.name.endswith("_total")
                and sample.labels == {"method": "PUT", "route": PUT_ROUTE, "status": "201"}
            )
    return 0.0


def test_an_upload_larger_than_the_request_limit_becomes_a_job_by_its_id(
    srv: Server, tmp_path: Path
) -> None:
    large = tmp_path / "large.txt"
    large.write_text(LARGE)
    assert large.stat().st_size > 2 * REQUEST_LIMIT
    with Client(srv.base, srv.key("client-upload")) as docjobs:
        assert docjobs.capabilities().limits.max_upload_bytes == REQUEST_LIMIT
        with pytest.raises(client_errors.PayloadTooLarge):
            docjobs.convert(large, "text")  # in the request itself: past the limit

        upload_id = docjobs.upload(large)
        accepted = docjobs.convert(source_format="text", upload_id=upload_id)
        done = docjobs.jobs.wait(accepted.job_id, timeout=120)
        assert done.status == "complete", done
        assert done.file_name == "large.txt"
        assert holds_lines(docjobs.jobs.result(done.job_id), LARGE)

        with pytest.raises(client_errors.UploadNotFound) as spent:  # one submission per upload
            docjobs.convert(source_format="text", upload_id=upload_id)
        assert upload_id in spent.value.message

    async def scenario() -> bytes:
        async with AsyncClient(srv.base, srv.key("client-upload-async")) as docjobs:
            upload_id = await docjobs.upload(large, "text/plain", file_name="async.txt")
            accepted = await docjobs.convert(source_format="text", upload_id=upload_id)
            done = await docjobs.jobs.wait(accepted.job_id, timeout=120)
            assert done.status == "complete" and done.file_name == "async.txt", done
            return await docjobs.jobs.result(done.job_id)

    assert holds_lines(asyncio.run(scenario()), LARGE)


def test_a_source_url_is_fetched_by_the_server_and_processed(srv: Server, origin: str) -> None:
    with Client(srv.base, srv.key("client-source")) as docjobs:
        accepted = docjobs.convert(source_format="text", source_url=origin)
        done = docjobs.jobs.wait(accepted.job_id, timeout=120)
        assert done.status == "complete", done
        assert done.file_name == "doc.txt"
        assert holds_lines(docjobs.jobs.result(done.job_id), SMALL)

        other = "\n".join(sentence_lines(33, 5))
        batch = docjobs.submit_batch(
            [],
            "convert/text-to-pdf",
            source_urls=[origin],
            upload_ids=[docjobs.upload(other.encode(), file_name="other.txt")],
        )
        jobs = [document.job_id for document in batch.documents]
        assert len(jobs) == 2 and None not in jobs, batch
        for job_id, text in zip(jobs, (SMALL, other), strict=True):
            assert job_id is not None
            assert docjobs.jobs.wait(job_id, timeout=120).status == "complete"
            assert holds_lines(docjobs.jobs.result(job_id), text)

    async def scenario() -> str:
        async with AsyncClient(srv.base, srv.key("client-source-async")) as docjobs:
            accepted = await docjobs.ocr(source_url=origin.replace("doc.txt", "gone.pdf"))
            return accepted.job_id

    with pytest.raises(client_errors.SourceUnavailable) as gone:
        asyncio.run(scenario())
    assert "404" in gone.value.message


def test_refused_references_raise_the_clients_errors_with_the_servers_reason(
    srv: Server,
) -> None:
    with Client(srv.base, srv.key("client-refused")) as docjobs:
        with pytest.raises(client_errors.UnsafeSourceUrl) as unsafe:
            docjobs.ocr(source_url="ftp://example.com/scan.pdf")
        assert unsafe.value.status_code == 422
        assert "scheme must be http or https" in unsafe.value.message

        with pytest.raises(client_errors.SourceBucketNotAllowed) as bucket:
            docjobs.convert(source_format="text", source_url="s3://someone-elses/doc.txt")
        assert "someone-elses" in bucket.value.message

        with pytest.raises(client_errors.UploadNotFound) as missing:
            docjobs.ocr(upload_id="up_nothing")
        assert "up_nothing" in missing.value.message

        with pytest.raises(ValueError, match="one document"):
            docjobs.convert(b"text", "text", source_url="https://example.com/doc.txt")


def docjobs(*args: str, srv: Server, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCJOBS_URL": srv.base, "DOCJOBS_API_KEY": key}
    return subprocess.run(
        [str(BIN / "docjobs"), *args], capture_output=True, text=True, timeout=300, env=env
    )


def job_ids(out: str) -> dict[str, str]:
    return dict(re.findall(r"^(\S+)  (job_\w+)$", out, re.MULTILINE))


def test_submit_takes_source_urls_and_uploads_files_the_request_cannot_carry(
    srv: Server, origin: str, tmp_path: Path
) -> None:
    key = srv.key("cli-references")
    small, large = tmp_path / "small.md", tmp_path / "large.txt"
    small.write_text(SMALL)
    large.write_text(LARGE)

    before = puts(srv)
    run = docjobs("submit", str(small), str(large), "--op", "convert", "--wait", srv=srv, key=key)
    assert run.returncode == 0, run.stderr
    assert set(job_ids(run.stdout)) == {str(small), str(large)}
    assert puts(srv) == before + 1, "only the large file goes through a direct upload"

    run = docjobs(
        "submit", str(small), "--op", "convert", "--direct-upload", "--wait", srv=srv, key=key
    )
    assert run.returncode == 0, run.stderr
    assert puts(srv) == before + 2

    run = docjobs(
        "submit",
        "--op",
        "convert",
        "--source-url",
        origin,
        "--source-url",
        "ftp://example.com/doc.txt",
        "--wait",
        srv=srv,
        key=key,
    )
    assert run.returncode == 1, run.stderr  # the ftp URL is refused, the other still sent
    assert "ftp://example.com/doc.txt: refused: unsafe_source_url" in run.stderr
    jobs = job_ids(run.stdout)
    assert list(jobs) == [origin]
    with Client(srv.base, key) as client:
        assert client.jobs.get(jobs[origin]).status == "complete"
        assert holds_lines(client.jobs.result(jobs[origin]), SMALL)
