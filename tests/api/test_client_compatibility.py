"""What clients written against the two API documents send, and must get: a retry after a
failure runs again, language hints as people write them, timestamps to the second, and one
document per request."""

from __future__ import annotations

import re
from typing import Any

import pytest

from docjobs.domain.idempotency import DUPLICATE_MESSAGE
from tests.api.test_bad_input import assert_error
from tests.docs import INVOICE_TEMPLATE, invoice_pdf, pdf_with_pages, svg_use_bomb

pytestmark = pytest.mark.anyio

OCR = "/api/v1/ocr/extract/simple"
PARSE_ASYNC = "/v1/documents/parse/async"
QUEUED = "Job queued for processing"
HTML = "/api/v1/convert/html-to-pdf"
TO_THE_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


async def create_template(api: Any, key: str, **changes: Any) -> str:
    response = await api.post(key, "/v1/templates", json={**INVOICE_TEMPLATE, **changes})
    assert response.status_code == 201, response.text
    return str(response.json()["templateId"])


async def test_a_failed_twin_runs_again(api) -> None:
    key = api.key("retry-after-failure")
    # Past the SVG ceiling: the conversion fails for good, on every attempt.
    html = f"<html><body>{svg_use_bomb()}</body></html>"

    async def submit() -> dict[str, Any]:
        response = await api.post(key, f"{HTML}?async=true", data={"content": html})
        assert response.status_code == 202, response.text
        return dict(response.json())

    first = await submit()
    assert (await api.wait_for(key, first["job_id"]))["status"] == "failed"
    again = await submit()
    assert again["job_id"] != first["job_id"]


async def test_a_cancelled_twin_runs_again_and_its_successor_is_the_duplicate(api) -> None:
    key = api.key("retry-after-cancel")
    pdf, _ = pdf_with_pages(3, seed=31)

    async def submit() -> dict[str, Any]:
        files = {"file": ("scan.pdf", pdf, "application/pdf")}
        response = await api.post(key, f"{OCR}?async=true", files=files)
        assert response.status_code == 202, response.text
        return dict(response.json())

    first = await submit()
    cancel = await api.request("DELETE", key, f"/api/v1/jobs/{first['job_id']}")
    assert cancel.status_code == 204
    assert (await api.wait_for(key, first["job_id"]))["status"] == "cancelled"

    again = await submit()
    assert again["job_id"] != first["job_id"] and again["message"] == QUEUED
    twin = await submit()
    assert twin["job_id"] == again["job_id"] and twin["message"] == DUPLICATE_MESSAGE


async def test_language_hints_as_clients_send_them(api) -> None:
    key = api.key("language-hints")
    pdf, _ = pdf_with_pages(1, seed=32)
    files = {"file": ("scan.pdf", pdf, "application/pdf")}

    first = await api.post(key, f"{OCR}?async=true", files=files, data={"language": "eng+fra"})
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    # The same Tesseract languages however they are written: the same submission.
    for hint in ("en+fr", "english+French", "en-GB+fr-FR"):
        same = await api.post(key, f"{OCR}?async=true", files=files, data={"language": hint})
        assert same.status_code == 202, (hint, same.text)
        assert same.json()["job_id"] == job_id, hint
    assert (await api.wait_for(key, job_id))["status"] == "complete"

    refused = await api.post(key, OCR, files=files, data={"language": "klingon"})
    error = assert_error(refused, 422, "unsupported_language")
    assert "klingon" in error["message"] and "deu, eng, fra" in error["message"]

    template_id = await create_template(api, key)
    parse = await api.post(
        key,
        PARSE_ASYNC,
        files={"file": ("invoice.pdf", invoice_pdf(number="INV-LANG-1"), "application/pdf")},
        data={"templateId": template_id, "language": "english"},
    )
    assert parse.status_code == 202, parse.text


def timestamps(body: Any) -> list[str | None]:
    """Every value under a key that names a time (``created_at``, ``completedAt``, ``at``)."""
    if isinstance(body, list):
        return [value for item in body for value in timestamps(item)]
    if not isinstance(body, dict):
        return []
    found: list[str | None] = []
    for name, value in body.items():
        if name == "at" or name.endswith(("_at", "At")):
            found.append(value)
        else:
            found.extend(timestamps(value))
    return found


async def test_every_timestamp_on_the_wire_is_to_the_second(api) -> None:
    key = api.key("timestamps")
    queued = await api.post(key, "/api/v1/convert/text-to-pdf?async=true", data={"content": "t"})
    job_id = queued.json()["job_id"]
    await api.wait_for(key, job_id)
    template_id = await create_template(api, key)
    parsed = await api.post(
        key,
        PARSE_ASYNC,
        files={"file": ("invoice.pdf", invoice_pdf(number="INV-TIME-1"), "application/pdf")},
        data={"templateId": template_id},
    )
    # A tenant without jobs, so that nothing is ever delivered to the endpoint.
    hooks_key = api.key("timestamps-hooks")
    endpoint = await api.post(hooks_key, "/v1/webhooks", json={"url": "https://example.com/hook"})
    assert endpoint.status_code == 201, endpoint.text
    bodies = [
        parsed.json(),
        endpoint.json(),
        *[
            (await api.get(key, path)).json()
            for path in (
                f"/api/v1/jobs/{job_id}",
                "/api/v1/jobs",
                f"/v1/jobs/{job_id}",
                f"/v1/templates/{template_id}",
            )
        ],
        (await api.get(hooks_key, "/v1/webhooks")).json(),
    ]

    found = timestamps(bodies)
    assert len([t for t in found if t is not None]) >= 10, bodies
    for value in found:
        assert value is None or TO_THE_SECOND.fullmatch(value), value


async def test_a_second_file_part_is_refused(api) -> None:
    key = api.key("two-files")
    template_id = await create_template(api, key)
    pdfs = [pdf_with_pages(1, seed=seed)[0] for seed in (33, 34)]
    two_pdfs = [("file", (f"{n}.pdf", pdf, "application/pdf")) for n, pdf in enumerate(pdfs)]
    two_texts = [("file", (f"{n}.txt", b"text", "text/plain")) for n in range(2)]
    for path, files, data in (
        (OCR, two_pdfs, {}),
        ("/api/v1/convert/text-to-pdf", two_texts, {}),
        (PARSE_ASYNC, two_pdfs, {"templateId": template_id}),
        ("/v1/documents/parse", two_pdfs, {"templateId": template_id}),
    ):
        error = assert_error(await api.post(key, path, files=files, data=data), 400)
        assert error["code"] == "too_many_files" and "one document" in error["message"], path
    assert (await api.get(key, "/api/v1/jobs")).json()["total"] == 0


async def test_a_page_number_of_thousands_of_digits_is_a_422(api) -> None:
    key = api.key("long-pages")
    files = {"file": ("two.pdf", pdf_with_pages(2, seed=35)[0], "application/pdf")}
    for pages in ("9" * 5000, "1-" + "9" * 5000):
        response = await api.post(key, OCR, files=files, data={"pages": pages})
        error = assert_error(response, 422, "page_range_out_of_bounds")
        assert "2 pages" in error["message"] and len(error["message"]) < 200
