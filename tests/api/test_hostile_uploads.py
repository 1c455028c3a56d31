"""Uploads and templates built to cost the API without bound are refused within seconds,
with the ceiling's code, while the API process's memory stays put; the next honest request
goes through. Patterns compile, and PDF page trees are walked, in child processes under
the ``ceilings`` settings."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from docjobs.api.app import create_app
from tests.docs import pdf_with_pages
from tests.hostile_pdfs import page_tree_pdf

from .conftest import InProcessApi, app_settings, running

OCR = "/api/v1/ocr/extract/simple"
PARSE = "/v1/documents/parse"
REGEX_BOMB = "(?:(?:(?:(?:a{100}){100}){100}){100})"
"""Compiles to 10^8 copies of ``a``: 23 GB before this was bounded."""
RSS_GROWTH_MB = 150
"""What one refusal may add to the API process (the upload's bytes included); reading the
610,000-page tree in this process used to add 380 MB."""
HEALTH_MEDIAN_SECONDS = 0.3
"""``/healthz`` while a bomb is refused: a probe restarts a pod that cannot answer. A loop
held by a refusal answers in seconds; a busy machine stretches a free one's answer a little."""
REFUSED_WITHIN_SECONDS = 20.0
"""Generous: a refusal takes a second or two, on a busy machine a few more."""

pytestmark = pytest.mark.anyio


def rss_mb() -> float:
    """Resident memory of this process, where the app runs."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = app_settings(tmp_path_factory.mktemp("hostile") / "data")
    async with running(create_app(settings)) as api:
        yield api


@pytest.fixture(scope="module")
def key(api: InProcessApi) -> str:
    return api.key("hostile")


@pytest.fixture(scope="module")
async def template_id(api: InProcessApi, key: str) -> str:
    spec = {"name": "numbers", "engine": "rules", "fields": [{"name": "number"}]}
    created = await api.post(key, "/v1/templates", json=spec)
    assert created.status_code == 201, created.text
    return str(created.json()["templateId"])


async def refused(api: InProcessApi, call: Any, status: int, code: str) -> dict[str, Any]:
    """The error of the refusal ``call`` gets, checked to come in time and cost little, while
    ``/healthz`` keeps answering at its usual pace (the app shares this event loop)."""
    before = rss_mb()
    latencies: list[float] = []
    answered = anyio.Event()

    async def probe_health() -> None:
        while not answered.is_set():
            sent = time.monotonic()
            assert (await api.client.get("/healthz")).status_code == 200
            latencies.append(time.monotonic() - sent)
            await anyio.sleep(0.05)

    started = time.monotonic()
    async with anyio.create_task_group() as probes:
        probes.start_soon(probe_health)
        response: httpx.Response = await call()
        answered.set()
    elapsed = time.monotonic() - started
    assert statistics.median(latencies) < HEALTH_MEDIAN_SECONDS, sorted(latencies)
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert elapsed < REFUSED_WITHIN_SECONDS, elapsed
    assert rss_mb() - before < RSS_GROWTH_MB, (before, rss_mb())
    return error


async def upload(
    api: InProcessApi, key: str, path: str, pdf: bytes, **params: str
) -> httpx.Response:
    files = {"file": ("hostile.pdf", pdf, "application/pdf")}
    data = {"templateId": params.pop("templateId")} if "templateId" in params else None
    return await api.post(key, path, files=files, data=data, params=params)


async def test_a_pattern_that_compiles_to_gigabytes_is_refused_on_create_and_replace(
    api: InProcessApi, key: str
) -> None:
    bomb = {"name": "bomb", "fields": [{"name": "x", "regex": REGEX_BOMB}]}
    error = await refused(
        api, lambda: api.post(key, "/v1/templates", json=bomb), 422, "pattern_too_complex"
    )
    assert "fields.0.regex" in error["message"] and "10,000" in error["message"]

    honest = {"name": "honest", "fields": [{"name": "x", "regex": r"INV-(\d{4,8})"}]}
    created = await api.post(key, "/v1/templates", json=honest)
    assert created.status_code == 201, created.text
    template_id = created.json()["templateId"]
    await refused(
        api,
        lambda: api.request("PUT", key, f"/v1/templates/{template_id}", json=bomb),
        422,
        "pattern_too_complex",
    )
    kept = await api.get(key, f"/v1/templates/{template_id}")
    assert kept.json()["fields"][0]["regex"] == r"INV-(\d{4,8})"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (OCR, {}),
        (OCR, {"async": "true"}),
        (PARSE, {}),
        (f"{PARSE}/async", {}),
    ],
)
async def test_a_100000_page_pdf_is_refused_at_submission(
    api: InProcessApi, key: str, template_id: str, path: str, params: dict[str, str]
) -> None:
    pdf = page_tree_pdf(100_000)
    assert len(pdf) < 12 * 1024 * 1024
    if path.startswith(PARSE):
        params = {**params, "templateId": template_id}
    error = await refused(api, lambda: upload(api, key, path, pdf, **params), 422, "too_many_pages")
    assert "2000 pages (DOCJOBS_CEILINGS__MAX_PAGES)" in error["message"]


async def test_a_610000_page_tree_is_refused_without_holding_the_apis_memory(
    api: InProcessApi, key: str
) -> None:
    pdf = page_tree_pdf(610_000, page=b"<<>>")
    await refused(api, lambda: upload(api, key, OCR, pdf), 422, "too_many_pages")


@pytest.mark.parametrize("path", [OCR, PARSE])
async def test_a_page_tree_that_claims_pages_it_lacks_is_unreadable(
    api: InProcessApi, key: str, template_id: str, path: str
) -> None:
    # Claims 100,000 pages, holds one: no reader can render pages 2 to 100,000.
    damaged = page_tree_pdf(1, declared=100_000)
    params = {"templateId": template_id} if path == PARSE else {}
    await refused(api, lambda: upload(api, key, path, damaged, **params), 400, "unreadable_pdf")
    # Claims fewer pages than it holds: refused too, for the same reason.
    await refused(
        api,
        lambda: upload(api, key, path, page_tree_pdf(3, declared=2), **params),
        400,
        "unreadable_pdf",
    )


async def test_honest_requests_go_through_after_the_bombs(
    api: InProcessApi, key: str, template_id: str
) -> None:
    pdf, texts = pdf_with_pages(1)
    answered = await upload(api, key, OCR, pdf)
    assert answered.status_code == 200, answered.text
    assert texts[0][0].split()[0] in answered.text  # read by Tesseract
    parsed = await upload(api, key, PARSE, pdf, templateId=template_id)
    assert parsed.status_code == 200, parsed.text
    spec = {"name": "after", "fields": [{"name": "date", "regex": r"\d{4}-\d{2}-\d{2}"}]}
    assert (await api.post(key, "/v1/templates", json=spec)).status_code == 201


async def test_a_pattern_check_past_its_time_ceiling_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    # Compiling in the child cannot finish within a millisecond: the ceiling answers.
    settings = app_settings(tmp_path / "data", ceilings={"pattern_seconds": 0.001})
    async with running(create_app(settings)) as api:
        key = api.key("impatient")
        spec = {"name": "dates", "fields": [{"name": "date", "regex": r"\d{4}-\d{2}"}]}
        error = await refused(
            api, lambda: api.post(key, "/v1/templates", json=spec), 422, "pattern_too_complex"
        )
        assert "DOCJOBS_CEILINGS__PATTERN_SECONDS" in error["message"]
