"""Vision OCR through a real ``docjobs serve``, against a local HTTP server speaking the
Anthropic Messages API (a stand-in: Claude itself cannot be reached from the tests)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest
import requests
from pypdf import PdfReader

from tests.conftest import Server
from tests.docs import pdf_with_pages
from tests.receivers import LocalServer, Recorded, Reply, claude_overloaded, claude_tool_answer
from tests.receivers import serve as serve_http

VISION = "/api/v1/ocr/extract/vision"
MODEL = "claude-vision-standin"
REFUSAL = json.dumps(
    {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
).encode()


def transcript(*lines: str) -> bytes:
    box = [100, 100, 900, 200]
    page = {"page": 1, "lines": [{"text": t, "block": 1, "box": box} for t in lines]}
    return claude_tool_answer({"pages": [page]}, "record_pages")


class Script:
    """The stand-in's next answers, in order; the last one repeats."""

    def __init__(self) -> None:
        self.replies: list[Reply] = [(200, {}, transcript("nothing"))]

    def __call__(self, _: Recorded) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture(scope="module")
def claude() -> Iterator[tuple[LocalServer, Script]]:
    script = Script()
    with serve_http(script) as stand_in:
        yield stand_in, script


@pytest.fixture(scope="module")
def vision_server(
    tmp_path_factory: pytest.TempPathFactory, claude: tuple[LocalServer, Script]
) -> Iterator[Server]:
    env = {
        "DOCJOBS_LLM__BASE_URL": claude[0].url,
        "DOCJOBS_LLM__API_KEY": "standin-key",
        "DOCJOBS_LLM__MODEL": MODEL,
        "DOCJOBS_LLM__VISION_MAX_TOKENS": "3000",
        "DOCJOBS_RUNNER__CONCURRENCY": "1",
    }
    srv = Server(tmp_path_factory.mktemp("vision") / "data", env=env)
    yield srv.start()
    srv.stop()


@pytest.fixture(scope="module")
def key(vision_server: Server) -> str:
    return vision_server.key("vision-user")


def post(srv: Server, key: str, seed: int, query: str = "", **data: str) -> requests.Response:
    return requests.post(
        f"{srv.base}{VISION}{query}",
        headers={"X-API-Key": key},
        files={"file": ("scan.pdf", pdf_with_pages(1, seed=seed)[0], "application/pdf")},
        data=data,
        timeout=120,
    )


def test_overload_is_retried_then_the_text_comes_back(
    vision_server: Server, key: str, claude: tuple[LocalServer, Script]
) -> None:
    stand_in, script = claude
    before = len(stand_in.received)
    script.replies = [
        (529, {"retry-after-ms": "10"}, claude_overloaded()),
        (200, {}, transcript("Invoice 4711", "Total 12.50")),
    ]
    response = post(vision_server, key, seed=11)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["text"] == "Invoice 4711\nTotal 12.50"
    assert response.json()["data"]["word_count"] == 4
    sent = [r.json() for r in stand_in.received[before:]]
    assert len(sent) == 2
    assert sent[1]["model"] == MODEL and sent[1]["max_tokens"] == 3000
    assert sent[1]["messages"][0]["content"][0]["type"] == "document"


def test_a_refused_key_fails_the_job_at_once(
    vision_server: Server, key: str, claude: tuple[LocalServer, Script]
) -> None:
    stand_in, script = claude
    before = len(stand_in.received)
    script.replies = [(401, {}, REFUSAL)]
    submitted = post(vision_server, key, seed=12, query="?async=true")
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    deadline = time.monotonic() + 60
    while (job := _job(vision_server, key, job_id))["status"] not in ("complete", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert "invalid x-api-key" in job["error"]["message"]
    assert len(stand_in.received) == before + 1


def test_searchable_pdf_downloads_with_the_read_words(
    vision_server: Server, key: str, claude: tuple[LocalServer, Script]
) -> None:
    _, script = claude
    script.replies = [(200, {}, transcript("Quarterly report"))]
    response = post(vision_server, key, seed=13, output="searchable_pdf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].endswith('.pdf"')
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert "Quarterly" in text and "report" in text


def _job(srv: Server, key: str, job_id: str) -> dict:
    answer: dict = requests.get(
        f"{srv.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10
    ).json()
    return answer
