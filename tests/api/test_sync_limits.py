"""A request waits for its answer only while the document fits the bound its operation's
profile names (pages selected for OCR, bytes for conversions); past it, 202 and a job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from docjobs.api.app import create_app
from tests.api.conftest import InProcessApi, app_settings, running
from tests.docs import pdf_with_pages

LIMITS = {"sync_tesseract_pages": 2, "sync_convert_bytes": 64}


@pytest.fixture(scope="module")
async def small_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    data = Path(tmp_path_factory.mktemp("sync-limits")) / "data"
    async with running(create_app(app_settings(data, limits=LIMITS))) as api:
        yield api


@pytest.mark.anyio
async def test_ocr_waits_only_for_the_selected_pages_within_the_bound(small_api) -> None:
    key = small_api.key("pages")
    pdf, _ = pdf_with_pages(3, seed=5)
    scan = {"file": ("scan.pdf", pdf, "application/pdf")}

    whole = await small_api.post(key, "/api/v1/ocr/extract/simple", files=scan)
    assert whole.status_code == 202, whole.text
    assert whole.json()["status"] in ("pending", "processing")

    two = await small_api.post(key, "/api/v1/ocr/extract/simple", files=scan, data={"pages": "2-3"})
    assert two.status_code == 200, two.text
    assert two.json()["data"]["page_count"] == 2


@pytest.mark.anyio
async def test_a_conversion_past_the_byte_bound_becomes_a_job(small_api) -> None:
    key = small_api.key("bytes")
    path = "/api/v1/convert/text-to-pdf"
    small = await small_api.post(key, path, data={"content": "short"})
    assert small.status_code == 200, small.text
    assert small.headers["content-type"] == "application/pdf"

    large = await small_api.post(key, path, data={"content": "long words " * 20})
    assert large.status_code == 202, large.text
    done = await small_api.wait_for(key, large.json()["job_id"])
    assert done["status"] == "complete"
