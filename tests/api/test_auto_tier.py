"""The ``auto`` OCR tier: Tesseract reads every page, and the pages it reads badly are read
again by docTR and then Claude vision.

The app runs in this process on a real embedded backend, with a local HTTP server speaking
the Anthropic Messages API (a stand-in for Claude) that transcribes every page it is shown
as ``VISION_LINES``. docTR is off here (no weights): loading PyTorch would cost each run more
than its tests; ``tests/unit/test_ocr_auto.py`` reads pages with docTR on stand-in weights.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from PIL import Image, ImageEnhance, ImageFilter
from pypdf import PdfReader

from docjobs.api.app import create_app
from tests.api.conftest import InProcessApi, app_settings, running
from tests.docs import (
    INVOICE_TEMPLATE,
    invoice_pdf,
    pdf_of_images,
    png_bytes,
    rasterized,
    recovered,
    sentence_lines,
    text_image,
)
from tests.receivers import LocalServer, Recorded, Reply, claude_tool_answer
from tests.receivers import serve as serve_http

pytestmark = pytest.mark.anyio

AUTO = "/api/v1/ocr/extract/auto"
VISION_LINES = ["Vendor: Vision Supplies", "Invoice No: VIS-0042", "Total Due: $99.00"]
VISION_TEXT = "\n\n".join(VISION_LINES)
"""As the result shows it: the model puts each line in a block of its own."""


def blurred(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(5))


def noisy(image: Image.Image, share: float = 0.15) -> Image.Image:
    """Salt and pepper on ``share`` of the pixels, as a bad fax or photocopy has."""
    rng = random.Random(7)
    speckled = image.copy()
    pixels = speckled.load()
    assert pixels is not None
    width, height = speckled.size
    for _ in range(int(width * height * share)):
        pixels[rng.randrange(width), rng.randrange(height)] = rng.choice((0, 255))
    return speckled


def faded(image: Image.Image) -> Image.Image:
    """Grey print on grey paper, speckled."""
    return noisy(ImageEnhance.Contrast(image).enhance(0.1), share=0.05)


def page_texts(count: int, seed: int) -> list[list[str]]:
    return [sentence_lines(seed + n, 3, 5) for n in range(count)]


def document(texts: list[list[str]], degraded: dict[int, Any]) -> bytes:
    """A scanned PDF of ``texts``, page ``n`` (1-based) spoilt by ``degraded[n]``."""
    images = []
    for number, lines in enumerate(texts, start=1):
        image = text_image(lines, size=40, width=1200)
        images.append(degraded[number](image) if number in degraded else image)
    return pdf_of_images(images)


def vision_transcript() -> bytes:
    lines = [
        {"text": text, "block": n, "box": [100, 100 + 50 * n, 100 + 14 * len(text), 114 + 50 * n]}
        for n, text in enumerate(VISION_LINES)
    ]
    return claude_tool_answer({"pages": [{"page": 1, "lines": lines}]}, "record_pages")


class Script:
    """The stand-in's answer to every request until a test changes it."""

    def __init__(self) -> None:
        self.reply: Reply = (200, {}, vision_transcript())

    def __call__(self, _: Recorded) -> Reply:
        return self.reply


@pytest.fixture(scope="module")
def script() -> Script:
    return Script()


@pytest.fixture(scope="module")
def claude(script: Script) -> Iterator[LocalServer]:
    with serve_http(script) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, claude: LocalServer
) -> AsyncIterator[InProcessApi]:
    env = {
        "DOCJOBS_LLM__BASE_URL": claude.url,
        "DOCJOBS_LLM__API_KEY": "standin-key",
        "DOCJOBS_LLM__MODEL": "claude-vision-standin",
    }
    env["DOCJOBS_DOCTR__WEIGHTS_DIR"] = str(tmp_path_factory.mktemp("no-weights"))
    # Runner workers take their settings from the environment, as in a deployment.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = create_app(app_settings(tmp_path_factory.mktemp("app") / "data"))
        async with running(app) as started:
            yield started


async def details_of(api: InProcessApi, tenant: str, job_id: str) -> dict[str, Any]:
    job = await api.app.state.backend.get(tenant, job_id)
    assert job is not None
    return dict(job.status.details)


async def auto(
    api: InProcessApi, tenant: str, pdf: bytes, **form: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON result of ``pdf`` read by the auto tier, and its job's status details."""
    key = api.key(tenant)
    response = await api.post(
        key, AUTO, files={"file": ("scan.pdf", pdf, "application/pdf")}, data=form
    )
    assert response.status_code == 200, response.text
    job_id = response.headers["X-Job-Id"]
    details = await details_of(api, tenant, job_id)
    # The job's own view counts the pages per tier too, as its status keeps them.
    job = (await api.get(key, f"/api/v1/jobs/{job_id}")).json()
    assert job["pages_by_tier"] == details["pages_by_tier"]
    return response.json()["data"], details


async def test_clean_pages_stay_tesseract_and_degraded_ones_are_read_again(
    api: InProcessApi, claude: LocalServer
) -> None:
    texts = page_texts(5, seed=40)
    pdf = document(texts, {2: blurred, 3: faded, 5: noisy})
    before = len(claude.received)

    data, details = await auto(api, "auto-mixed", pdf)

    pages = data["pages"]
    assert [page["tier"] for page in pages] == [
        "tesseract",
        "vision",
        "vision",
        "tesseract",
        "vision",
    ]
    for page, lines in zip(pages, texts, strict=True):
        if page["tier"] == "tesseract":
            assert recovered(lines, page["text"]) >= 0.9, page["text"]
            assert page["reason"] == f"confidence {page['confidence']:g} >= 75"
        else:
            # The stand-in's transcript, not the scan's words: Claude's reading was kept.
            assert page["text"] == VISION_TEXT
            assert page["confidence"] is None
            first, *rest = page["reason"].split("; ")
            assert first.startswith("tesseract"), page["reason"]
            assert first.endswith("< 75") or first == "tesseract found no words"
            # No docTR weights here: straight from Tesseract to Claude, saying why.
            assert len(rest) == 1 and rest[0].startswith("doctr not available ("), page["reason"]
    # One request per degraded page, each carrying that page's image.
    sent = [r.json() for r in claude.received[before:]]
    assert len(sent) == 3
    assert all(s["messages"][0]["content"][0]["type"] == "image" for s in sent)
    by_tier = {"tesseract": 2, "doctr": 0, "vision": 3}
    assert data["pages_by_tier"] == details["pages_by_tier"] == by_tier
    assert sum(details["pages_by_tier"].values()) == details["page_count"] == 5
    assert data["confidence"]["mean"] >= 90  # over the pages that have one: Tesseract's


async def test_the_threshold_decides_which_pages_are_read_again(api: InProcessApi) -> None:
    pdf = document(page_texts(2, seed=60), {2: noisy})

    kept, kept_details = await auto(api, "auto-threshold", pdf, confidence_threshold="0")
    everything, details = await auto(api, "auto-threshold", pdf, confidence_threshold="100")

    assert [page["tier"] for page in kept["pages"]] == ["tesseract", "tesseract"]
    assert kept["pages"][1]["text"] != VISION_TEXT
    assert kept_details["pages_by_tier"] == {"tesseract": 2, "doctr": 0, "vision": 0}
    assert [page["tier"] for page in everything["pages"]] == ["vision", "vision"]
    assert all(
        page["reason"].split("; ")[0].endswith("< 100") or "no words" in page["reason"]
        for page in everything["pages"]
    )
    assert details["pages_by_tier"] == {"tesseract": 0, "doctr": 0, "vision": 2}


@pytest.mark.parametrize("threshold", ["-1", "100.5", "high"])
async def test_a_threshold_outside_0_to_100_is_refused(api: InProcessApi, threshold: str) -> None:
    pdf = document(page_texts(1, seed=70), {})
    response = await api.post(
        api.key("auto-refused"),
        AUTO,
        files={"file": ("scan.pdf", pdf, "application/pdf")},
        data={"confidence_threshold": threshold},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_parameters"
    assert "confidence_threshold" in response.json()["error"]["message"]


async def test_a_template_reading_scans_with_auto_keeps_the_model_for_a_bad_scan(
    api: InProcessApi,
) -> None:
    key = api.key("auto-parse")
    created = await api.post(key, "/v1/templates", json={**INVOICE_TEMPLATE, "ocr": "auto"})
    assert created.status_code == 201, created.text
    assert created.json()["ocr"] == "auto"
    scan = png_bytes(noisy(Image.open(io.BytesIO(rasterized(invoice_pdf())))))

    response = await api.post(
        key,
        "/v1/documents/parse",
        files={"file": ("invoice.png", scan, "image/png")},
        data={"templateId": created.json()["templateId"]},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed", body
    details = await details_of(api, "auto-parse", body["jobId"])
    assert body["result"]["invoice"]["number"] == "VIS-0042"
    assert details["ocr"] == "auto"
    assert details["pages_by_tier"] == {"tesseract": 0, "doctr": 0, "vision": 1}


async def test_a_page_claude_refuses_keeps_tesseracts_reading(
    api: InProcessApi, script: Script, claude: LocalServer
) -> None:
    texts = page_texts(3, seed=90)
    pdf = document(texts, {1: noisy, 3: blurred})
    before = len(claude.received)
    refusal = {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}
    script.reply = (401, {}, json.dumps(refusal).encode())
    try:
        data, details = await auto(api, "auto-refused-key", pdf)
    finally:
        script.reply = (200, {}, vision_transcript())

    assert [page["tier"] for page in data["pages"]] == ["tesseract"] * 3
    assert "vision failed (Claude refused the request (401)" in data["pages"][0]["reason"]
    assert recovered(texts[1], data["pages"][1]["text"]) >= 0.9
    # A refused key refuses every page: the later weak page is not sent.
    assert "vision not asked" in data["pages"][2]["reason"]
    assert len(claude.received) == before + 1
    assert details["pages_by_tier"] == {"tesseract": 3, "doctr": 0, "vision": 0}


async def test_a_searchable_pdf_carries_each_pages_kept_reading(api: InProcessApi) -> None:
    texts = page_texts(2, seed=100)
    response = await api.post(
        api.key("auto-searchable"),
        AUTO,
        files={"file": ("scan.pdf", document(texts, {2: noisy}), "application/pdf")},
        data={"output": "searchable_pdf"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    first, second = (page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert recovered(texts[0], first) >= 0.9
    assert "VIS-0042" in second  # Claude's reading of the speckled page
