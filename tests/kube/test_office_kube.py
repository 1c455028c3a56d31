"""Office documents in kubernetes mode on the rig: a sync .docx conversion on the API's warm
workers, and async jobs the operator gives to runner pods of the ``office`` and ``tesseract``
engines (a .xlsx to PDF, a .docx read by Tesseract from the PDF LibreOffice lays it out to),
with the real API server, operator and MinIO. Their words are in what comes back."""

from __future__ import annotations

import io
from typing import Any

import requests
from pypdf import PdfReader

from docjobs.kube.client import KubeClient
from docjobs.kube.paths import jobs_path
from docjobs.operator.builders import LABEL_ENGINE
from tests import office_docs
from tests.conftest import Server
from tests.kube.helpers import api_status

from .conftest import Operator


def post(server: Server, key: str, path: str, name: str, data: bytes) -> requests.Response:
    return requests.post(
        server.base + path,
        headers={"X-API-Key": key},
        files={"file": (name, data, "application/octet-stream")},
        timeout=180,
    )


def pdf_text(pdf: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def runner_engines(kube: KubeClient, namespace: str) -> set[str]:
    jobs: list[dict[str, Any]] = kube.items(jobs_path(namespace))
    return {job["metadata"]["labels"].get(LABEL_ENGINE, "") for job in jobs}


def test_office_documents_convert_and_are_read_on_kubernetes(
    kube_server: Server, operator: Operator, kube: KubeClient, namespace: str
) -> None:
    key = kube_server.key("acme")
    memo = office_docs.docx("Cluster memo", "The kookaburra sings")
    sheet = office_docs.xlsx([["Item", "Qty"], ["platypus", 17]])
    scan = office_docs.docx("Cluster scan", "The dugong reads well")

    sync = post(kube_server, key, "/api/v1/convert/office-to-pdf", "memo.docx", memo)
    later = post(kube_server, key, "/api/v1/convert/office-to-pdf?async=true", "sheet.xlsx", sheet)
    read = post(kube_server, key, "/api/v1/ocr/extract/simple?async=true", "scan.docx", scan)

    assert sync.status_code == 200, sync.text
    assert sync.headers["content-type"] == "application/pdf"
    assert "kookaburra sings" in pdf_text(sync.content)
    for queued in (later, read):
        assert queued.status_code == 202, queued.text
    for queued in (later, read):
        operator.check_alive()
        api_status(kube_server, key, queued.json()["job_id"], "complete", timeout=180)
    converted = requests.get(
        f"{kube_server.base}/api/v1/jobs/{later.json()['job_id']}/result",
        headers={"X-API-Key": key},
        timeout=30,
    )
    assert "platypus" in pdf_text(converted.content) and "17" in pdf_text(converted.content)
    text = requests.get(
        f"{kube_server.base}/api/v1/jobs/{read.json()['job_id']}/result",
        headers={"X-API-Key": key},
        timeout=30,
    ).json()["data"]["text"]
    assert "dugong reads well" in text, text
    # The async ones ran in runner pods of their engines, not on the API's warm workers.
    assert {"office", "tesseract"} <= runner_engines(kube, namespace)
