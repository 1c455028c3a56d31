"""Advanced OCR (docTR) end to end through a real ``docjobs serve`` in embedded mode.

The weights are randomly initialised stand-ins for trained ones (``tests.doctr_weights``),
loaded through the weights setting: the text they read is noise, so these tests check
what the API promises whatever the model: pages, shapes, boxes within their page.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api.test_jobs_api_client import DOCUMENTED_CLIENT
from tests.conftest import Server
from tests.docs import pdf_with_pages
from tests.doctr_weights import doctr_env, save_stand_in_weights

pytest.importorskip("doctr", reason="the doctr extra is not installed")

ADVANCED = "/api/v1/ocr/extract/advanced"
ONE_WORKER = {"DOCJOBS_RUNNER__CONCURRENCY": "1"}
# The first request loads PyTorch and the model in a fresh worker, which on a loaded CI
# machine can take longer than the default sync wait; these tests ask for a sync answer.
SYNC_WAIT = {"DOCJOBS_LIMITS__SYNC_WAIT_SECONDS": "170"}


@pytest.fixture(scope="module")
def doctr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    weights = save_stand_in_weights(tmp_path_factory.mktemp("weights"))
    srv = Server(
        tmp_path_factory.mktemp("doctr") / "data",
        env={**doctr_env(weights), **ONE_WORKER, **SYNC_WAIT},
    )
    yield srv.start()
    srv.stop()


@pytest.fixture(scope="module")
def key(doctr_server: Server) -> str:
    return doctr_server.key("doctr-user")


def post(srv: Server, key: str, pdf: bytes, query: str = "", **data: str) -> requests.Response:
    return requests.post(
        f"{srv.base}{ADVANCED}{query}",
        headers={"X-API-Key": key},
        files={"file": ("scan.pdf", pdf, "application/pdf")},
        data=data,
        timeout=180,
    )


def wait_for(srv: Server, key: str, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job: dict = requests.get(
            f"{srv.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10
        ).json()
        if job["status"] in ("complete", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_simple_output_has_the_text_of_every_page(doctr_server: Server, key: str) -> None:
    pdf, _ = pdf_with_pages(2)
    response = post(doctr_server, key, pdf)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["page_count"] == 2
    assert [page["page"] for page in data["pages"]] == [1, 2]
    assert data["word_count"] == sum(page["word_count"] for page in data["pages"])
    assert data["word_count"] == len(data["text"].split())
    assert all(set(page) == {"page", "text", "word_count", "confidence"} for page in data["pages"])


def test_detailed_output_boxes_lie_within_their_page(doctr_server: Server, key: str) -> None:
    pdf, _ = pdf_with_pages(1, seed=3)
    response = post(doctr_server, key, pdf, output="detailed", pages="1")
    assert response.status_code == 200, response.text
    [page] = response.json()["data"]["pages"]
    assert page["width"] > 0 and page["height"] > 0
    nested = [w for block in page["blocks"] for line in block["lines"] for w in line["words"]]
    assert nested == page["words"]
    assert page["words"], "random weights still find regions on a page of text"
    for box in [w["bbox"] for w in page["words"]] + [b["bbox"] for b in page["blocks"]]:
        assert 0 <= box["x"] <= box["x"] + box["width"] <= page["width"]
        assert 0 <= box["y"] <= box["y"] + box["height"] <= page["height"]


def test_the_documented_python_client_completes_against_advanced(
    doctr_server: Server, key: str, tmp_path: Path
) -> None:
    pdf, _ = pdf_with_pages(2, seed=9)
    document = tmp_path / "large-document.pdf"
    document.write_bytes(pdf)
    script = tmp_path / "client.py"
    # The document's example calls /advanced; the shared copy of it is pointed at /simple.
    client = DOCUMENTED_CLIENT.replace("/ocr/extract/simple?", "/ocr/extract/advanced?")
    assert "/ocr/extract/advanced?async=true" in client
    script.write_text(
        client.format(key=key, base=doctr_server.base, path=document, name=document.name)
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Job complete!" in run.stdout
    assert re.search(r"Extracted text \(\d+ words\)", run.stdout)


def test_without_weights_requests_are_refused_at_once_naming_the_fix(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", env={**doctr_env(tmp_path / "no-weights"), **ONE_WORKER})
    srv.start()
    try:
        key = srv.key("no-weights")
        for query, seed in (("?async=true", 1), ("", 2)):
            pdf = pdf_with_pages(1, seed=seed)[0]
            started = time.monotonic()
            refused = post(srv, key, pdf, query=query)
            # Loading PyTorch and a model would take longer, on a busy machine much longer.
            assert time.monotonic() - started < 3, "no worker, no model, no upload stored"
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "tier_unavailable"
            assert "docjobs models fetch" in error["message"]
            assert str(tmp_path / "no-weights") in error["message"]
        listing = requests.get(
            f"{srv.base}/api/v1/jobs", headers={"X-API-Key": key}, timeout=10
        ).json()
        assert listing["jobs"] == [], "nothing was queued"
    finally:
        srv.stop()
