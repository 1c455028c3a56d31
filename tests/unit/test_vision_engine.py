"""Vision OCR against a local HTTP server speaking the Anthropic Messages API (a stand-in:
Claude itself cannot be reached from the tests)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from docjobs.config import get_settings
from docjobs.domain.models import OcrVision
from docjobs.runner.engines import PermanentError, vision
from docjobs.runner.engines.claude import LlmUnavailable
from tests.docs import pdf_of_images, pdf_with_pages, png_bytes, text_image
from tests.receivers import Recorded, Reply, claude_overloaded, claude_tool_answer, serve

MODEL = "claude-vision-test"


def transcript(*pages: list[tuple[str, int, list[float]]]) -> bytes:
    return claude_tool_answer(
        {
            "pages": [
                {"page": i, "lines": [{"text": t, "block": b, "box": box} for t, b, box in lines]}
                for i, lines in enumerate(pages, start=1)
            ]
        },
        "record_pages",
    )


def pages_in(block: dict) -> int:
    return len(PdfReader(io.BytesIO(base64.b64decode(block["source"]["data"]))).pages)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DOCJOBS_LLM__API_KEY", "standin-key")
    monkeypatch.setenv("DOCJOBS_LLM__MODEL", MODEL)
    monkeypatch.setenv("DOCJOBS_LLM__VISION_MAX_TOKENS", "1234")
    monkeypatch.setenv("DOCJOBS_LLM__VISION_PAGES_PER_REQUEST", "2")
    # One request at a time: the stand-in answers in the order requests arrive.
    monkeypatch.setenv("DOCJOBS_LLM__VISION_CONCURRENCY", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def point_at(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCJOBS_LLM__BASE_URL", url)
    get_settings.cache_clear()


def test_pdf_pages_go_as_document_blocks_in_requests_of_two(
    settings_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_with_pages(3)[0])
    first_two = transcript(
        [("Invoice 42", 1, [100, 100, 500, 150])], [("Total due", 1, [0, 0, 1000, 100])]
    )
    third = transcript([("Thanks", 1, [0, 900, 300, 950]), ("Acme Ltd", 2, [0, 960, 300, 990])])
    answers = [(200, {}, first_two), (200, {}, third)]
    with serve(answers) as claude:
        point_at(claude.url, monkeypatch)
        output = vision.extract(OcrVision(output="detailed"), source, "application/pdf", tmp_path)

    first, second = (r.json() for r in claude.received)
    assert first["model"] == MODEL and first["max_tokens"] == 1234
    assert first["tool_choice"] == {"type": "tool", "name": "record_pages"}
    [document, prompt] = first["messages"][0]["content"]
    assert document["type"] == "document"
    assert document["source"]["media_type"] == "application/pdf"
    assert pages_in(document) == 2
    assert prompt["type"] == "text"
    assert pages_in(second["messages"][0]["content"][0]) == 1

    data = json.loads(output.path.read_bytes())["data"]
    assert data["page_count"] == 3
    assert [p["text"] for p in data["pages"]] == ["Invoice 42", "Total due", "Thanks\n\nAcme Ltd"]
    assert data["word_count"] == 7
    page = data["pages"][0]
    invoice, number = page["words"]
    # [100, 100, 500, 150] in thousandths of the page, shared by the words by length.
    assert page["width"] in (1800, 1801)
    assert invoice["bbox"]["x"] == round(0.1 * page["width"])
    assert invoice["bbox"]["y"] == round(0.1 * page["height"])
    assert number["bbox"]["x"] + number["bbox"]["width"] == round(0.5 * page["width"])
    assert invoice["bbox"]["width"] > 2 * number["bbox"]["width"]
    assert invoice["confidence"] is None
    assert [len(b["lines"]) for b in data["pages"][2]["blocks"]] == [1, 1]


def test_image_pages_go_as_png_blocks(
    settings_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "scan.png"
    source.write_bytes(png_bytes(text_image(["hello"], size=30, width=600)))
    with serve([(200, {}, transcript([("hello", 1, [0, 0, 100, 100])]))]) as claude:
        point_at(claude.url, monkeypatch)
        output = vision.extract(OcrVision(), source, "image/png", tmp_path)
    [image, _] = claude.received[0].json()["messages"][0]["content"]
    assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
    assert json.loads(output.path.read_bytes())["data"]["text"] == "hello"


def test_a_bad_key_fails_at_once_with_the_apis_message(
    settings_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_with_pages(1)[0])
    refusal = json.dumps(
        {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    ).encode()
    with serve([(401, {}, refusal)]) as claude:
        point_at(claude.url, monkeypatch)
        with pytest.raises(PermanentError) as failure:
            vision.extract(OcrVision(), source, "application/pdf", tmp_path)
    assert len(claude.received) == 1
    assert "invalid x-api-key" in failure.value.message


def test_overload_is_retried_by_the_sdk_then_completes(
    settings_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_with_pages(1)[0])
    # retry-after-ms keeps the SDK's backoff short.
    busy = (529, {"retry-after-ms": "10"}, claude_overloaded())
    with serve([busy, (200, {}, transcript([("fine", 1, [0, 0, 10, 10])]))]) as claude:
        point_at(claude.url, monkeypatch)
        output = vision.extract(OcrVision(), source, "application/pdf", tmp_path)
    assert len(claude.received) == 2
    assert json.loads(output.path.read_bytes())["data"]["text"] == "fine"


def test_overload_after_the_retries_is_transient(
    settings_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_with_pages(1)[0])
    with serve([(529, {"retry-after-ms": "10"}, claude_overloaded())]) as claude:
        point_at(claude.url, monkeypatch)
        with pytest.raises(LlmUnavailable):
            vision.extract(OcrVision(), source, "application/pdf", tmp_path)
    assert len(claude.received) == 3  # the first try and two retries (vision_max_retries)


def test_requests_go_in_parallel_up_to_the_concurrency_and_pages_keep_their_order(
    settings_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    concurrency, pages = 3, 7
    monkeypatch.setenv("DOCJOBS_LLM__VISION_CONCURRENCY", str(concurrency))
    monkeypatch.setenv("DOCJOBS_LLM__VISION_PAGES_PER_REQUEST", "1")
    # Page n is 200 + 10 n pixels wide, so the stand-in can tell which page it was sent.
    images = [text_image([f"page {n}"], size=20, width=200 + 10 * n) for n in range(1, pages + 1)]
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_of_images(images))
    in_flight, most_in_flight = 0, 0
    lock = threading.Lock()
    all_in_flight = threading.Barrier(concurrency)

    def answer(request: Recorded) -> Reply:
        nonlocal in_flight, most_in_flight
        block = request.json()["messages"][0]["content"][0]
        pdf = PdfReader(io.BytesIO(base64.b64decode(block["source"]["data"])))
        number = (round(float(pdf.pages[0].mediabox.width) * 200 / 72) - 200) // 10
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        if number <= concurrency:
            # The first requests wait until all are in flight, and the first page answers
            # last: the result's order cannot come from the order of the answers.
            with contextlib.suppress(threading.BrokenBarrierError):  # fewer came: asserted below
                all_in_flight.wait(timeout=10)
            time.sleep(0.05 * (concurrency - number))
        with lock:
            in_flight -= 1
        return 200, {}, transcript([(f"page {number}", 1, [0, 0, 500, 100])])

    with serve(answer) as claude:
        point_at(claude.url, monkeypatch)
        output = vision.extract(OcrVision(), source, "application/pdf", tmp_path)

    assert len(claude.received) == pages
    assert most_in_flight == concurrency
    data = json.loads(output.path.read_bytes())["data"]
    assert [page["page"] for page in data["pages"]] == list(range(1, pages + 1))
    assert [page["text"] for page in data["pages"]] == [f"page {n}" for n in range(1, pages + 1)]
