"""One error vocabulary: every error answer of both route families has one shape, and the
same mistake gets the same code on every route."""

from __future__ import annotations

import re

import pytest

from tests.docs import INVOICE_TEMPLATE, pdf_with_pages

SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
PROCESSING_ROUTES = (
    "/api/v1/convert/text-to-pdf",
    "/api/v1/convert/html-to-pdf",
    "/api/v1/ocr/extract/simple",
    "/v1/documents/parse",
    "/v1/documents/parse/async",
)


def assert_one_shape(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message"} <= set(error), body
    assert SNAKE.fullmatch(error["code"]), error
    assert error["message"].strip(), error
    return error


@pytest.mark.anyio
async def test_a_request_without_a_file_gets_one_code_on_every_route(api) -> None:
    key = api.key("no-file")
    template = await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)
    codes = set()
    for route in PROCESSING_ROUTES:
        data = {"language": "en"}
        if route.startswith("/v1/"):
            data = {"templateId": template.json()["templateId"]}
        response = await api.post(key, route, data=data)
        assert response.status_code == 400, (route, response.text)
        codes.add(assert_one_shape(response)["code"])
    assert codes == {"missing_file"}


@pytest.mark.anyio
async def test_auth_and_size_refusals_read_like_every_other_error(api) -> None:
    missing_key = await api.client.get("/api/v1/jobs")
    wrong_key = await api.client.get("/api/v1/jobs", headers={"X-API-Key": "dj_wrong"})
    unknown_job = await api.get(api.key("shape"), "/api/v1/jobs/job_nothing")
    for response in (missing_key, wrong_key, unknown_job):
        assert_one_shape(response)
    # Byte for byte the same serialisation, whichever layer refused.
    assert missing_key.content.startswith(b'{"error":{"code":')
    assert unknown_job.content.startswith(b'{"error":{"code":')


@pytest.mark.anyio
async def test_page_ranges_are_refused_in_words(api) -> None:
    key = api.key("pages")
    document, _ = pdf_with_pages(4)
    for pages, words in (("1-3,x", "page"), ("9-12", "4 pages")):
        response = await api.post(
            key,
            "/api/v1/ocr/extract/simple",
            data={"pages": pages},
            files={"file": ("four.pdf", document, "application/pdf")},
        )
        assert 400 <= response.status_code < 500, response.text
        error = assert_one_shape(response)
        assert words in error["message"], error
        assert "\\d" not in error["message"] and "[" not in error["message"], error
        assert "upwards from page 1" not in error["message"], error
