"""Documents built to cost without bound fail at a ceiling, permanently, within seconds.

Each bomb goes through the in-process app on a real embedded backend (real WeasyPrint,
PDFium, Tesseract in the runner workers): an async job fails on its first attempt with the
ceiling's reason, the sync route answers 400 with the same code in snake case, and the next
honest job completes. The ceilings are set small through the environment the workers
inherit, so that each bomb stays cheap.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image

from docjobs.api.app import create_app
from docjobs.domain.models import error_code
from tests.api.conftest import InProcessApi, app_settings, running
from tests.docs import pdf_with_pages, png_claiming, svg_use_bomb
from tests.hostile_pdfs import flate_bomb_pdf

HTML = "/api/v1/convert/html-to-pdf"
OCR = "/api/v1/ocr/extract/simple"
CEILINGS = {
    "DOCJOBS_CEILINGS__MAX_CONVERT_PAGES": "20",
    "DOCJOBS_CEILINGS__MAX_STREAM_BYTES": str(8 * 1024 * 1024),
    "DOCJOBS_CEILINGS__MAX_SVG_ELEMENTS": "10000",
}
WITHIN_SECONDS = 30.0
"""Far more than any refusal here takes, far less than the bombs cost without a ceiling."""


def many_pages(pages: int) -> str:
    """A small document that lays out ``pages`` pages."""
    breaks = '<p style="page-break-after: always">page</p>' * pages
    return f"<!DOCTYPE html><html><body>{breaks}</body></html>"


def png_bomb(side: int = 13_000) -> str:
    """HTML with a data: PNG whose header claims ``side`` x ``side`` pixels."""
    data = base64.b64encode(png_claiming(side, side)).decode()
    return f'<html><body><p>bomb</p><img src="data:image/png;base64,{data}"></body></html>'


@pytest.fixture(scope="module")
def ceilings_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CEILINGS.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, ceilings_env: None
) -> AsyncIterator[InProcessApi]:
    app = create_app(app_settings(tmp_path_factory.mktemp("hostile") / "data"))
    async with running(app) as api:
        yield api


async def failed_job(api: InProcessApi, key: str, path: str, **upload: object) -> dict:
    """The job ``upload`` makes at ``path`` (async), once failed, and how long it took."""
    started = time.monotonic()
    response = await api.post(key, path, params={"async": "true"}, **upload)
    assert response.status_code == 202, response.text
    job = await api.wait_for(key, response.json()["job_id"], timeout=WITHIN_SECONDS * 2)
    assert job["status"] == "failed", job
    assert time.monotonic() - started < WITHIN_SECONDS, job
    # Failed on its first attempt, never retried: the same bytes would fail again.
    assert job["attempts"] == 1, job
    return job


async def assert_honest_work_completes(api: InProcessApi, key: str) -> None:
    converted = await api.post(key, HTML, data={"content": "<h1>Quarterly report</h1>"})
    assert converted.status_code == 200 and converted.content.startswith(b"%PDF")


CONVERSION_BOMBS = [
    pytest.param(many_pages(400), "TooManyPages", "MAX_CONVERT_PAGES", id="20k-pages-style"),
    pytest.param(png_bomb(), "ImageTooLarge", "MAX_IMAGE_PIXELS", id="data-png-13000"),
    pytest.param(
        f"<html><body>{svg_use_bomb()}</body></html>",
        "TooManySvgElements",
        "MAX_SVG_ELEMENTS",
        id="inline-svg-use",
    ),
    pytest.param(
        '<html><body><img src="data:image/svg+xml;base64,'
        f'{base64.b64encode(svg_use_bomb().encode()).decode()}"></body></html>',
        "TooManySvgElements",
        "MAX_SVG_ELEMENTS",
        id="data-svg-use",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("html", "reason", "setting"), CONVERSION_BOMBS)
async def test_conversion_bombs_fail_permanently_at_their_ceiling(
    api: InProcessApi, html: str, reason: str, setting: str
) -> None:
    key = api.key(f"hostile-{reason.lower()}")
    job = await failed_job(api, key, HTML, data={"content": html})
    assert job["error"]["code"] == error_code(reason)
    assert f"DOCJOBS_CEILINGS__{setting}" in job["error"]["message"]
    # The sync route answers with the same ceiling, in the API's snake case.
    started = time.monotonic()
    sync = await api.post(key, HTML, data={"content": html + "<!-- sync -->"})
    assert time.monotonic() - started < WITHIN_SECONDS
    assert sync.status_code == 400, sync.text
    assert sync.json()["error"]["code"] == error_code(reason)
    await assert_honest_work_completes(api, key)


@pytest.mark.anyio
async def test_a_flate_bomb_fails_ocr_at_the_stream_ceiling(api: InProcessApi) -> None:
    key = api.key("hostile-flate")
    bomb = flate_bomb_pdf(256 * 1024 * 1024)  # 256 MiB of spaces in ~250 KB
    job = await failed_job(api, key, OCR, files={"file": ("bomb.pdf", bomb, "application/pdf")})
    assert job["error"]["code"] == "stream_too_large"
    assert "DOCJOBS_CEILINGS__MAX_STREAM_BYTES" in job["error"]["message"]
    honest = pdf_with_pages(1, seed=3)[0]
    read = await api.post(key, OCR, files={"file": ("scan.pdf", honest, "application/pdf")})
    assert read.status_code == 200 and read.json()["data"]["word_count"] > 0


@pytest.mark.anyio
async def test_a_memory_bomb_fails_permanently_naming_the_memory_ceiling(
    tmp_path: Path, ceilings_env: None
) -> None:
    # 81 million white RGB pixels: under the pixel ceiling, 243 MB once decoded, 250 KB sent.
    picture = io.BytesIO()
    Image.new("RGB", (9000, 9000), "white").save(picture, "PNG")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCJOBS_RUNNER__MEMORY_LIMIT_MB", "320")
        async with running(create_app(app_settings(tmp_path / "data"))) as api:
            await _memory_bomb_fails(api, picture.getvalue())


async def _memory_bomb_fails(api: InProcessApi, picture: bytes) -> None:
    key = api.key("hostile-memory")
    upload = {"file": ("big.png", picture, "image/png")}
    job = await failed_job(api, key, OCR, files=upload)
    assert job["error"]["code"] == "memory_ceiling_exceeded"
    assert "DOCJOBS_RUNNER__MEMORY_LIMIT_MB" in job["error"]["message"]
    honest = pdf_with_pages(1, seed=4)[0]
    read = await api.post(key, OCR, files={"file": ("scan.pdf", honest, "application/pdf")})
    assert read.status_code == 200 and read.json()["data"]["word_count"] > 0
