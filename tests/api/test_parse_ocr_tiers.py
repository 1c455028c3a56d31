"""Parse templates choose the OCR tier that reads scanned pages; a request may override it.

The app runs in this process with both non-Tesseract tiers configured: docTR with randomly
initialised weights saved to files (``tests.doctr_weights``, stand-ins for trained ones)
and a local HTTP server speaking the Anthropic Messages API (a stand-in for Claude).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from docjobs.api.app import create_app
from docjobs.domain.models import Extract
from tests.api.conftest import InProcessApi, app_settings, running
from tests.docs import INVOICE, INVOICE_TEMPLATE, invoice_pdf, rasterized
from tests.doctr_weights import doctr_env, save_stand_in_weights
from tests.receivers import LocalServer, claude_tool_answer
from tests.receivers import serve as serve_http

pytest.importorskip("doctr", reason="the doctr extra is not installed")

pytestmark = pytest.mark.anyio

MODEL = "claude-vision-standin"
VISION_LINES = ["Vendor: Vision Supplies", "Invoice No: VIS-0042", "Total Due: $99.00"]
"""What the stand-in transcribes, unlike what the scan says: only the vision tier reads it."""


def vision_transcript() -> bytes:
    # Boxes as a model gives them for 12pt print on A4: a character about half as wide as
    # its line is high (thousandths of the page's width and height).
    lines = [
        {"text": text, "block": n, "box": [100, 100 + 50 * n, 100 + 14 * len(text), 114 + 50 * n]}
        for n, text in enumerate(VISION_LINES)
    ]
    return claude_tool_answer({"pages": [{"page": 1, "lines": lines}]}, "record_pages")


@pytest.fixture(scope="module")
def claude() -> Iterator[LocalServer]:
    with serve_http([(200, {}, vision_transcript())]) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, claude: LocalServer
) -> AsyncIterator[InProcessApi]:
    weights = save_stand_in_weights(tmp_path_factory.mktemp("weights"))
    env = {
        **doctr_env(weights),
        "DOCJOBS_LLM__BASE_URL": claude.url,
        "DOCJOBS_LLM__API_KEY": "standin-key",
        "DOCJOBS_LLM__MODEL": MODEL,
    }
    # Runner workers take their settings from the environment, as in a deployment.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app(app_settings(tmp_path_factory.mktemp("app") / "data"))
        async with running(app) as started:
            yield started


@pytest.fixture(scope="module")
def scanned_invoice() -> bytes:
    return rasterized(invoice_pdf())


async def create_template(api: InProcessApi, key: str, ocr: str) -> str:
    response = await api.post(key, "/v1/templates", json={**INVOICE_TEMPLATE, "ocr": ocr})
    assert response.status_code == 201, response.text
    assert response.json()["ocr"] == ocr
    return str(response.json()["templateId"])


async def parse(
    api: InProcessApi, key: str, template_id: str, scan: bytes, **form: str
) -> dict[str, Any]:
    response = await api.post(
        key,
        "/v1/documents/parse",
        files={"file": ("invoice.png", scan, "image/png")},
        data={"templateId": template_id, **form},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "completed", body
    return body


async def operation_of(api: InProcessApi, tenant: str, job_id: str) -> Extract:
    job = await api.app.state.backend.get(tenant, job_id)
    assert isinstance(job.spec.operation, Extract)
    assert job.status.details["ocr"] == job.spec.operation.ocr
    return job.spec.operation


async def test_a_template_choosing_advanced_reads_the_scan_with_doctr(
    api: InProcessApi, scanned_invoice: bytes
) -> None:
    key = api.key("tier-advanced")
    template_id = await create_template(api, key, "advanced")

    body = await parse(api, key, template_id, scanned_invoice)

    assert body["pageCount"] == 1
    assert set(body["result"]["invoice"]) == {"number", "date", "total", "vendor"}
    # Random weights read noise: the number Tesseract finds on this scan is out of reach.
    assert body["result"]["invoice"]["number"] != INVOICE["number"]
    assert (await operation_of(api, "tier-advanced", body["jobId"])).ocr == "advanced"


async def test_a_request_overrides_the_templates_tier(
    api: InProcessApi, scanned_invoice: bytes
) -> None:
    key = api.key("tier-override")
    template_id = await create_template(api, key, "advanced")

    body = await parse(api, key, template_id, scanned_invoice, ocr="simple")

    assert body["result"]["invoice"]["number"] == INVOICE["number"]
    assert body["result"]["invoice"]["total"] == INVOICE["total"]
    assert (await operation_of(api, "tier-override", body["jobId"])).ocr == "simple"


async def test_a_template_choosing_vision_reads_the_scan_with_the_model(
    api: InProcessApi, scanned_invoice: bytes, claude: LocalServer
) -> None:
    key = api.key("tier-vision")
    template_id = await create_template(api, key, "vision")
    before = len(claude.received)

    body = await parse(api, key, template_id, scanned_invoice)

    assert body["result"]["invoice"]["number"] == "VIS-0042"
    assert body["result"]["invoice"]["total"] == 99.0
    assert body["result"]["invoice"]["vendor"] == "Vision Supplies"
    [request] = [r.json() for r in claude.received[before:]]
    assert request["model"] == MODEL
    assert [block["type"] for block in request["messages"][0]["content"]] == ["image", "text"]
    assert (await operation_of(api, "tier-vision", body["jobId"])).ocr == "vision"


async def test_a_template_reads_with_tesseract_unless_it_says_otherwise(
    api: InProcessApi,
) -> None:
    key = api.key("tier-default")
    response = await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)
    assert response.status_code == 201, response.text
    assert response.json()["ocr"] == "simple"


async def test_an_unknown_tier_is_refused(api: InProcessApi, scanned_invoice: bytes) -> None:
    key = api.key("tier-unknown")
    refused = await api.post(key, "/v1/templates", json={**INVOICE_TEMPLATE, "ocr": "magic"})
    assert refused.status_code == 422, refused.text
    template_id = await create_template(api, key, "simple")
    response = await api.post(
        key,
        "/v1/documents/parse",
        files={"file": ("invoice.png", scanned_invoice, "image/png")},
        data={"templateId": template_id, "ocr": "magic"},
    )
    assert response.status_code == 422, response.text
