"""Tiers known before work starts: ``GET /api/v1/capabilities``, ``/readyz`` and the start-up
banner say which OCR tiers and engines can run, and a request for one that cannot is refused
at once with ``503 tier_unavailable`` naming the fix, before its upload is read or stored."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from docjobs.api.app import create_app
from docjobs.config import DoctrSettings, LlmSettings
from tests.api.conftest import InProcessApi, app_settings, running
from tests.conftest import Server
from tests.docs import INVOICE_TEMPLATE, pdf_with_pages
from tests.doctr_weights import DETECTION_ARCH, RECOGNITION_ARCH
from tests.receivers import LocalServer, claude_tool_answer
from tests.receivers import serve as serve_http

pytestmark = pytest.mark.anyio

ADVANCED = "/api/v1/ocr/extract/advanced"
VISION = "/api/v1/ocr/extract/vision"
CAPABILITIES = "/api/v1/capabilities"
PROMPT = 3.0
"""Seconds; a refusal needs no worker, no model and no upload: well under this even on a
busy machine, where loading PyTorch and a model alone takes longer."""


def bare_doctr(weights: Path) -> DoctrSettings:
    return DoctrSettings(
        weights_dir=weights, detection_arch=DETECTION_ARCH, recognition_arch=RECOGNITION_ARCH
    )


@pytest.fixture(scope="module")
async def bare(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    """A server as a first install leaves it: no docTR weights, no Claude key."""
    root = tmp_path_factory.mktemp("bare")
    settings = app_settings(
        root / "data", doctr=bare_doctr(root / "no-weights"), llm=LlmSettings(api_key="")
    )
    async with running(create_app(settings)) as api:
        yield api


def pdf_upload(seed: int = 1) -> dict[str, Any]:
    return {"file": ("scan.pdf", pdf_with_pages(1, seed=seed)[0], "application/pdf")}


async def jobs_of(api: InProcessApi, key: str) -> list[dict[str, Any]]:
    listing = await api.get(key, "/api/v1/jobs")
    assert listing.status_code == 200, listing.text
    jobs: list[dict[str, Any]] = listing.json()["jobs"]
    return jobs


@pytest.mark.parametrize("query", ["", "?async=true"])
async def test_advanced_without_weights_is_refused_at_once_naming_the_fix(
    bare: InProcessApi, query: str
) -> None:
    key = bare.key("no-weights-async" if query else "no-weights")
    started = time.monotonic()
    response = await bare.post(key, ADVANCED + query, files=pdf_upload())
    assert time.monotonic() - started < PROMPT
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "tier_unavailable"
    assert error["message"].startswith("Advanced OCR (docTR) is not available")
    # Without the extra the fix installs it first; either way it ends with fetching weights.
    assert "docjobs models fetch" in error["message"]
    assert await jobs_of(bare, key) == [], "nothing was queued"


async def test_vision_without_a_key_is_refused_at_once_naming_the_setting(
    bare: InProcessApi,
) -> None:
    key = bare.key("no-claude")
    started = time.monotonic()
    response = await bare.post(key, VISION, files=pdf_upload(2))
    assert time.monotonic() - started < PROMPT
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "tier_unavailable"
    assert "DOCJOBS_LLM__API_KEY" in error["message"]
    assert await jobs_of(bare, key) == []


async def test_simple_ocr_still_works_beside_unavailable_tiers(bare: InProcessApi) -> None:
    key = bare.key("simple-beside")
    response = await bare.post(key, "/api/v1/ocr/extract/simple", files=pdf_upload(3))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["word_count"] > 0


async def test_an_llm_template_is_refused_before_its_upload_is_stored(bare: InProcessApi) -> None:
    key = bare.key("llm-template")
    created = await bare.post(
        key, "/v1/templates", json={**INVOICE_TEMPLATE, "name": "llm", "engine": "llm"}
    )
    assert created.status_code == 201, created.text
    template_id = created.json()["templateId"]
    for route in ("/v1/documents/parse", "/v1/documents/parse/async"):
        response = await bare.post(
            key, route, files=pdf_upload(4), data={"templateId": template_id}
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "tier_unavailable"
        assert "DOCJOBS_LLM__API_KEY" in response.json()["error"]["message"]
    assert await jobs_of(bare, key) == []


async def test_a_template_asking_for_advanced_ocr_is_refused(bare: InProcessApi) -> None:
    key = bare.key("advanced-template")
    created = await bare.post(
        key, "/v1/templates", json={**INVOICE_TEMPLATE, "name": "adv", "ocr": "advanced"}
    )
    assert created.status_code == 201, created.text
    rules = await bare.post(key, "/v1/templates", json={**INVOICE_TEMPLATE, "name": "rules"})
    upload = pdf_upload(5)
    refused = await bare.post(
        key,
        "/v1/documents/parse/async",
        files=upload,
        data={"templateId": created.json()["templateId"]},
    )
    assert refused.status_code == 503, refused.text
    assert "docjobs models fetch" in refused.json()["error"]["message"]
    # The request's own tier wins over the template's, both ways.
    overridden = await bare.post(
        key,
        "/v1/documents/parse/async",
        files=upload,
        data={"templateId": rules.json()["templateId"], "ocr": "vision"},
    )
    assert overridden.status_code == 503, overridden.text
    accepted = await bare.post(
        key,
        "/v1/documents/parse/async",
        files=upload,
        data={"templateId": created.json()["templateId"], "ocr": "simple"},
    )
    assert accepted.status_code == 202, accepted.text


async def test_capabilities_report_what_is_missing_and_the_plan_limits(
    bare: InProcessApi,
) -> None:
    key = bare.key("caps", plan="pro")
    response = await bare.get(key, CAPABILITIES)
    assert response.status_code == 200, response.text
    body = response.json()
    tiers = body["tiers"]
    assert tiers["simple"]["available"] is True and tiers["simple"]["fix"] is None
    for name in ("advanced", "vision", "llm"):
        assert tiers[name]["available"] is False, name
        assert tiers[name]["reason"] and tiers[name]["fix"], name
    assert "docjobs models fetch" in tiers["advanced"]["fix"]
    assert "DOCJOBS_LLM__API_KEY" in tiers["vision"]["fix"]
    assert "eng" in body["languages"]
    assert body["outputs"] == ["simple", "detailed", "searchable_pdf", "hocr", "alto", "markdown"]
    settings = bare.app.state.settings
    assert body["limits"]["plan"] == "pro"
    assert body["limits"]["rate"] == settings.rate_limits.plans["pro"]
    assert body["limits"]["max_upload_bytes"] == settings.limits.max_upload_bytes
    assert body["limits"]["max_pages"] == settings.ceilings.max_pages
    assert body["limits"]["sync"]["doctr_pages"] == settings.limits.sync_doctr_pages


async def test_capabilities_need_a_key(bare: InProcessApi) -> None:
    response = await bare.client.get(CAPABILITIES)
    assert response.status_code == 401
    bare.check_documented(response)


async def test_readyz_names_the_tiers_and_stays_ready(bare: InProcessApi) -> None:
    response = await bare.client.get("/readyz")
    bare.check_documented(response)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["tiers"]["simple"] == "available"
    assert body["tiers"]["advanced"].startswith("unavailable: ")
    assert body["tiers"]["vision"] == "unavailable: no Claude API key is configured"


# --- with every tier configured ------------------------------------------------------------


@pytest.fixture(scope="module")
def claude() -> Iterator[LocalServer]:
    with serve_http([(200, {}, claude_tool_answer({"pages": []}, "record_pages"))]) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
async def equipped(
    tmp_path_factory: pytest.TempPathFactory, claude: LocalServer
) -> AsyncIterator[InProcessApi]:
    pytest.importorskip("doctr", reason="the doctr extra is not installed")
    from tests.doctr_weights import save_stand_in_weights

    root = tmp_path_factory.mktemp("equipped")
    weights = save_stand_in_weights(root / "weights")
    llm = LlmSettings(api_key="standin-key", base_url=claude.url)
    settings = app_settings(root / "data", doctr=bare_doctr(weights), llm=llm)
    async with running(create_app(settings)) as api:
        yield api


async def test_with_weights_and_a_key_every_tier_is_available(equipped: InProcessApi) -> None:
    key = equipped.key("equipped")
    body = (await equipped.get(key, CAPABILITIES)).json()
    for name in ("simple", "advanced", "vision", "llm"):
        assert body["tiers"][name]["available"] is True, body["tiers"][name]
        assert body["tiers"][name]["fix"] is None
    assert DETECTION_ARCH in body["tiers"]["advanced"]["reason"]
    ready = (await equipped.client.get("/readyz")).json()
    assert set(ready["tiers"].values()) == {"available"}


async def test_weights_fetched_while_serving_count_without_a_restart(
    tmp_path: Path,
) -> None:
    pytest.importorskip("doctr", reason="the doctr extra is not installed")
    weights = tmp_path / "weights"
    settings = app_settings(tmp_path / "data", doctr=bare_doctr(weights))
    async with running(create_app(settings)) as api:
        api.app.state.capabilities.max_age_seconds = 0.0
        key = api.key("late-weights")
        assert (await api.get(key, CAPABILITIES)).json()["tiers"]["advanced"]["available"] is False
        weights.mkdir()
        for arch in (DETECTION_ARCH, RECOGNITION_ARCH):
            (weights / f"{arch}-0123abcd.pt").write_bytes(b"stand-in")
        assert (await api.get(key, CAPABILITIES)).json()["tiers"]["advanced"]["available"] is True


# --- a real server: the banner, and a refusal before the body is read ----------------------


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("bare-server")
    env = {
        "DOCJOBS_DOCTR__WEIGHTS_DIR": str(root / "no-weights"),
        "DOCJOBS_LLM__API_KEY": "",
        "DOCJOBS_RUNNER__CONCURRENCY": "1",
    }
    srv = Server(root / "data", env=env)
    yield srv.start()
    srv.stop()


def test_the_banner_says_which_tiers_run_and_how_to_enable_the_others(
    bare_server: Server,
) -> None:
    assert bare_server.log_path is not None
    log = bare_server.log_path.read_text()
    assert "Simple OCR (Tesseract): available" in log
    assert "Advanced OCR (docTR): UNAVAILABLE" in log
    assert "Vision OCR (Claude): UNAVAILABLE, no Claude API key is configured" in log
    assert "docjobs models fetch" in log


def test_the_refusal_comes_before_the_upload_is_read(bare_server: Server) -> None:
    key = bare_server.key("unread")
    declared = 40 * 1024 * 1024
    head = (
        f"POST {VISION} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", bare_server.port), timeout=10) as conn:
        # Headers and the start of a 40 MB body: the rest is never sent.
        conn.sendall(head + b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\n")
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert time.monotonic() - started < 5
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    assert b'"tier_unavailable"' in answer


def test_a_refused_request_leaves_the_server_serving(bare_server: Server) -> None:
    key = bare_server.key("after-refusal")
    upload = {"file": ("scan.pdf", pdf_with_pages(1, seed=6)[0], "application/pdf")}
    refused = requests.post(
        f"{bare_server.base}{ADVANCED}", headers={"X-API-Key": key}, files=upload, timeout=30
    )
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "tier_unavailable"
    health = httpx.get(f"{bare_server.base}/readyz", timeout=10)
    assert health.status_code == 200
    assert health.json()["tiers"]["advanced"].startswith("unavailable")
