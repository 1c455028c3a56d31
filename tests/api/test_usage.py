"""Usage per tenant in embedded mode: ten jobs of two tenants across operations, one of them
retried (Claude answers 529 once) and one failed (Claude's answer does not fit the
template). Each tenant's usage counts each of its jobs once, with its final status, pages
and bytes; no tenant sees another's; it survives a restart of the API, and ``docjobs usage``
prints every tenant's as CSV. A plan's monthly page quota is answered with 429."""

from __future__ import annotations

import csv
import io
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from docjobs.api.app import create_app
from tests.api.conftest import PLANS, InProcessApi, app_settings, running
from tests.conftest import BIN
from tests.docs import INVOICE_TEMPLATE, invoice_pdf, pdf_with_pages, png_bytes, text_image
from tests.receivers import LocalServer, Recorded, Reply, claude_overloaded, claude_tool_answer
from tests.receivers import serve as serve_http

ANSWER = {"invoice": {"number": "INV-U-1", "date": "2025-05-26", "total": 1.5, "vendor": "Acme"}}


def _claude(record: Recorded, asked: dict[str, int]) -> Reply:
    """Overloaded on the first try at INV-RETRY, a wrong answer for INV-BAD, else fields."""
    text = record.body.decode(errors="replace")
    if "INV-RETRY" in text:
        asked["retry"] = asked.get("retry", 0) + 1
        if asked["retry"] == 1:
            return 529, {}, claude_overloaded()
    if "INV-BAD" in text:
        return 200, {}, claude_tool_answer({"invoice": {"total": "lots"}})
    return 200, {}, claude_tool_answer(ANSWER)


@pytest.fixture
def claude(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    asked: dict[str, int] = {}
    with serve_http(lambda record: _claude(record, asked)) as standin:
        # The runner workers read Claude's address and key from their environment.
        monkeypatch.setenv("DOCJOBS_LLM__BASE_URL", standin.url)
        monkeypatch.setenv("DOCJOBS_LLM__API_KEY", "standin-key")
        yield standin


def _settings(data_dir: Path, claude_url: str, **usage: Any) -> Any:
    return app_settings(
        data_dir,
        llm={"base_url": claude_url, "api_key": "standin-key"},
        jobs={"retry": {"initial_backoff_seconds": 0.2}},
        rate_limits={"plans": {**PLANS, "metered": "6000/minute"}},
        usage=usage,
    )


async def _submit(api: InProcessApi, key: str, path: str, **kwargs: Any) -> str:
    response = await api.post(key, path, **kwargs)
    assert response.status_code == 202, response.text
    body = response.json()
    return str(body.get("job_id") or body.get("jobId"))


async def _run_jobs(api: InProcessApi, keys: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Ten jobs, six of tenant ``a`` and four of ``b``: each as the jobs API shows it once
    ended, with the bytes it was submitted with."""
    templates = {}
    for tenant in ("a", "b"):
        made = await api.post(
            keys[tenant], "/v1/templates", json={**INVOICE_TEMPLATE, "engine": "llm"}
        )
        templates[tenant] = made.json()["templateId"]
    scan = png_bytes(text_image(["usage is counted once per job"], size=32))
    two_pages, _ = pdf_with_pages(2)
    ocr = "/api/v1/ocr/extract/simple?async=true"
    work: list[tuple[str, str, bytes, dict[str, Any]]] = []
    for tenant, kind, text in (
        ("a", "markdown", "# notes"),
        ("a", "text", "plain"),
        ("b", "html", "<p>x</p>"),
    ):
        path = f"/api/v1/convert/{kind}-to-pdf?async=true"
        work.append((tenant, path, text.encode(), {"data": {"content": text}}))
    for tenant in ("a", "b"):
        work.append((tenant, ocr, scan, {"files": {"file": ("s.png", scan, "image/png")}}))
        pdf = {"files": {"file": ("two.pdf", two_pages, "application/pdf")}}
        work.append((tenant, ocr, two_pages, pdf))
    for tenant, number in (("a", "INV-RETRY"), ("a", "INV-BAD"), ("b", "INV-OK")):
        invoice = invoice_pdf(number=number)
        parse = {
            "files": {"file": ("invoice.pdf", invoice, "application/pdf")},
            "data": {"templateId": templates[tenant]},
        }
        work.append((tenant, "/v1/documents/parse/async", invoice, parse))
    submitted = [
        (tenant, await _submit(api, keys[tenant], path, **kwargs), len(document))
        for tenant, path, document, kwargs in work
    ]
    ended: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for tenant, job_id, size in submitted:
        ended[tenant].append({**await api.wait_for(keys[tenant], job_id), "bytes": size})
    return ended


def _expected(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = [job["status"] for job in jobs]
    return {
        "jobs": len(jobs),
        "complete": statuses.count("complete"),
        "failed": statuses.count("failed"),
        "cancelled": statuses.count("cancelled"),
        "pages": sum(job["page_count"] or 0 for job in jobs if job["status"] == "complete"),
        "input_bytes": sum(job["bytes"] for job in jobs),
    }


async def _usage(api: InProcessApi, key: str, **params: str) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    span = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}
    response = await api.get(key, "/api/v1/usage", params={**span, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.anyio
async def test_each_tenant_sees_its_own_usage_counted_once_across_a_restart(
    tmp_path: Path, claude: LocalServer
) -> None:
    data_dir = tmp_path / "data"
    async with running(create_app(_settings(data_dir, claude.url))) as api:
        keys = {tenant: api.key(f"usage-{tenant}") for tenant in ("a", "b", "c")}
        ended = await _run_jobs(api, keys)
        a_jobs = ended["a"]
        retried = next(job for job in a_jobs if job.get("attempts") == 2)
        assert retried["status"] == "complete"
        assert [job["status"] for job in a_jobs].count("failed") == 1
        before = {tenant: await _usage(api, keys[tenant]) for tenant in keys}
        grouped = await _usage(api, keys["a"], group_by="operation,status")
        by_tier = await _usage(api, keys["b"], group_by="tier")
        refused = await api.get(keys["a"], "/api/v1/usage", params={"group_by": "tenant"})
        assert refused.status_code == 422
        metrics = (await api.client.get("/metrics")).text
    failed_extractions = (
        'docjobs_usage_jobs_total{operation="extract",status="failed",tier="extract"}'
    )
    assert failed_extractions in metrics
    # The dashboard's failures-by-reason panel reads the reason the failed job ended with.
    assert 'docjobs_jobs_failed_total{operation="extract",reason="' in metrics
    assert "usage-a" not in metrics  # no tenant label unless the setting asks for one

    for tenant in ("a", "b"):
        totals = before[tenant]["totals"]
        assert before[tenant]["tenant"] == f"usage-{tenant}"
        assert {k: totals[k] for k in _expected(ended[tenant])} == _expected(ended[tenant])
    # Tesseract read a one-page scan and a two-page PDF for each tenant.
    assert before["a"]["totals"]["pages_by_tier"]["tesseract"] == 3
    assert before["a"]["totals"]["cpu_seconds"] > 0
    assert before["c"]["totals"]["jobs"] == 0 and before["c"]["groups"] == []

    groups = {(g["operation"], g["status"]): g for g in grouped["groups"]}
    assert set(groups) == {
        ("convert", "complete"),
        ("ocr.simple", "complete"),
        ("extract", "complete"),
        ("extract", "failed"),
    }
    assert groups["convert", "complete"]["jobs"] == 2
    assert groups["extract", "failed"]["jobs"] == 1 and groups["extract", "failed"]["pages"] == 0
    assert groups["ocr.simple", "complete"]["pages"] == 3
    tiers = {g["tier"]: g for g in by_tier["groups"]}
    assert set(tiers) == {"convert", "tesseract", "extract"}
    assert tiers["tesseract"]["pages"] == 3 and tiers["tesseract"]["jobs"] == 2
    assert sum(g["jobs"] for g in by_tier["groups"]) == 4

    # The records are the database's: a new API process on the same data answers the same.
    async with running(create_app(_settings(data_dir, claude.url))) as api:
        after = {tenant: await _usage(api, keys[tenant]) for tenant in keys}
    assert after == before

    today = datetime.now(UTC).date()
    span = ["--from", str(today - timedelta(days=1)), "--to", str(today)]
    printed = subprocess.run(
        [str(BIN / "docjobs"), "usage", "--data-dir", str(data_dir), *span],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(printed)))
    for tenant in ("a", "b"):
        mine = [row for row in rows if row["tenant"] == f"usage-{tenant}"]
        assert sum(int(row["jobs"]) for row in mine) == len(ended[tenant])
        assert sum(int(row["pages"]) for row in mine) == before[tenant]["totals"]["pages"]
        assert (
            sum(int(row["input_bytes"]) for row in mine) == _expected(ended[tenant])["input_bytes"]
        )
    assert {row["tenant"] for row in rows} == {"usage-a", "usage-b"}


@pytest.mark.anyio
async def test_a_plan_quota_refuses_what_would_pass_it(tmp_path: Path) -> None:
    settings = app_settings(
        tmp_path / "data",
        rate_limits={"plans": {**PLANS, "metered": "6000/minute"}},
        usage={"monthly_page_quotas": {"metered": 2}, "quota_fresh_seconds": 0},
    )
    scans = [png_bytes(text_image([f"page {n} of the quota"], size=32)) for n in range(3)]
    two_pages, _ = pdf_with_pages(2)
    async with running(create_app(settings)) as api:
        key = api.key("usage-q", plan="metered")
        unlimited = api.key("usage-u")
        path = "/api/v1/ocr/extract/simple?async=true"
        first = await _submit(api, key, path, files={"file": ("s.png", scans[0], "image/png")})
        assert (await api.wait_for(key, first))["status"] == "complete"

        files = {"file": ("two.pdf", two_pages, "application/pdf")}
        over = await api.post(key, path, files=files)
        assert over.status_code == 429
        error = over.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert "2 pages a month" in error["message"] and "1 are used" in error["message"]
        # Another plan has no quota; one page more still fits this one.
        assert (await api.post(unlimited, path, files=files)).status_code == 202
        second = await _submit(api, key, path, files={"file": ("s.png", scans[1], "image/png")})
        assert (await api.wait_for(key, second))["status"] == "complete"
        used_up = await api.post(key, path, files={"file": ("s.png", scans[2], "image/png")})
        assert used_up.status_code == 429 and used_up.json()["error"]["code"] == "quota_exceeded"
