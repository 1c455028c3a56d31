"""The job API of the jobs API: sync and async answers, auto-async, list, cancel, erasure,
expiry."""

from __future__ import annotations

import io
import sqlite3
import time

import psutil
import pytest
import requests
from pypdf import PdfReader

from tests.docs import pdf_with_pages

OCR = "/api/v1/ocr/extract/simple"


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def wait_for(server, key, job_id, statuses=("complete", "failed", "cancelled"), timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = requests.get(f"{server.base}/api/v1/jobs/{job_id}", headers=headers(key)).json()
        if body["status"] in statuses:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{job_id} still {body['status']}")


@pytest.mark.anyio
async def test_sync_conversions_answer_with_the_pdf(api) -> None:
    key = api.key("converter")
    for kind, content, expected in [
        ("text", "plain words here", "plain words here"),
        ("markdown", "# Quarterly report\n\n| a | b |\n|---|---|\n| 1 | 2 |", "Quarterly report"),
        ("json", '{"customer": "Acme", "total": 12.5}', "customer"),
        ("html", "<h1>Hello docjobs</h1>", "Hello docjobs"),
    ]:
        response = await api.post(key, f"/api/v1/convert/{kind}-to-pdf", data={"content": content})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert expected in PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
        job = (await api.get(key, f"/api/v1/jobs/{response.headers['X-Job-Id']}")).json()
        assert job["status"] == "complete" and job["attempts"] == 1


@pytest.mark.anyio
async def test_sync_ocr_answers_in_the_documented_shape(api) -> None:
    pdf, texts = pdf_with_pages(2, seed=3)
    response = await api.post(
        api.key("reader"),
        OCR,
        files={"file": ("scan.pdf", pdf, "application/pdf")},
        data={"output": "detailed", "pages": "2"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["page_count"] == 1 and data["pages"][0]["page"] == 2
    assert texts[1][0].split()[0] in data["text"]
    assert texts[0][0] not in data["text"]
    word = data["pages"][0]["words"][0]
    assert {"text", "confidence", "bbox"} <= set(word)


@pytest.mark.anyio
async def test_async_flag_list_and_result(api) -> None:
    key = api.key("lister")
    ids = []
    for n in range(3):
        response = await api.post(
            key, "/api/v1/convert/text-to-pdf?async=true", data={"content": f"document {n}"}
        )
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "pending" and body["message"] == "Job queued for processing"
        assert body["status_url"] == f"http://testserver/api/v1/jobs/{body['job_id']}"
        assert body["result_url"] == body["status_url"] + "/result"
        ids.append(body["job_id"])
    for job_id in ids:
        assert (await api.wait_for(key, job_id))["status"] == "complete"
    listed = (await api.get(key, "/api/v1/jobs?status=complete&limit=2")).json()
    assert listed["total"] == 3 and listed["limit"] == 2
    assert [j["job_id"] for j in listed["jobs"]] == ids[::-1][:2]
    assert (await api.get(key, "/api/v1/jobs?status=failed")).json()["total"] == 0
    result = await api.get(key, f"/api/v1/jobs/{ids[0]}/result")
    assert "document 0" in PdfReader(io.BytesIO(result.content)).pages[0].extract_text()


@pytest.mark.anyio
async def test_deleting_a_finished_job_erases_it_and_its_files(api) -> None:
    key = api.key("eraser")
    backend = api.app.state.backend
    objects = backend.settings.data_dir / "objects" / "eraser"
    database = backend.settings.data_dir / "docjobs.db"
    done = []
    for n, family in enumerate(("/api/v1/jobs", "/v1/jobs")):
        response = await api.post(
            key, "/api/v1/convert/text-to-pdf", data={"content": f"private letter {n}"}
        )
        assert response.status_code == 200
        job_id = response.headers["X-Job-Id"]
        files = [p for p in (objects / job_id).rglob("*") if p.is_file()]
        assert len(files) >= 2, files  # the input and the result at least

        erased = await api.request("DELETE", key, f"{family}/{job_id}")
        assert erased.status_code == 204, erased.text
        for path in (
            f"/api/v1/jobs/{job_id}",
            f"/api/v1/jobs/{job_id}/result",
            f"/v1/jobs/{job_id}",
        ):
            gone = await api.get(key, path)
            assert gone.status_code == 404, path
            assert gone.json()["error"]["code"] == "job_not_found", path
        again = await api.request("DELETE", key, f"{family}/{job_id}")
        assert again.status_code == 404
        assert not (objects / job_id).exists()
        assert not any(p.exists() for p in files)
        done.append(job_id)

    listed = (await api.get(key, "/api/v1/jobs")).json()
    assert listed["total"] == 0 and listed["jobs"] == []
    db = sqlite3.connect(database)
    try:
        for table in ("jobs", "job_events", "webhook_deliveries"):
            rows = db.execute(
                f"SELECT count(*) FROM {table} WHERE job_id IN (?, ?)", tuple(done)
            ).fetchone()
            assert rows == (0,), table
    finally:
        db.close()


@pytest.mark.anyio
async def test_deleting_an_unfinished_job_cancels_it_and_again_erases_it(api) -> None:
    key = api.key("second-thoughts")
    long = pdf_with_pages(30, seed=31)[0]
    job_id = (
        await api.post(
            key, f"{OCR}?async=true", files={"file": ("long.pdf", long, "application/pdf")}
        )
    ).json()["job_id"]
    assert (await api.request("DELETE", key, f"/api/v1/jobs/{job_id}")).status_code == 204
    cancelled = await api.wait_for(key, job_id)
    assert cancelled["status"] == "cancelled", "a running job is cancelled, not erased"
    assert (await api.request("DELETE", key, f"/v1/jobs/{job_id}")).status_code == 204
    assert (await api.get(key, f"/api/v1/jobs/{job_id}")).status_code == 404
    objects = api.app.state.backend.settings.data_dir / "objects" / "second-thoughts" / job_id
    assert not objects.exists()


def test_large_inputs_switch_to_async_on_their_own(server, api_key) -> None:
    pdf, _ = pdf_with_pages(25, seed=11)
    response = requests.post(
        f"{server.base}{OCR}",
        headers=headers(api_key),
        files={"file": ("long.pdf", pdf, "application/pdf")},
    )
    assert response.status_code == 202, response.text
    long_job = response.json()["job_id"]
    paragraph = "<p>" + "lorem ipsum dolor " * 20 + "</p>\n"
    html = "<html><body>" + paragraph * 20_000 + "</body></html>"
    assert len(html.encode()) > 6_000_000
    response = requests.post(
        f"{server.base}/api/v1/convert/html-to-pdf",
        headers=headers(api_key),
        files={"file": ("big.html", html.encode(), "text/html")},
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    for job_id in (long_job, response.json()["job_id"]):
        assert (
            requests.delete(
                f"{server.base}/api/v1/jobs/{job_id}", headers=headers(api_key)
            ).status_code
            == 204
        )
        assert wait_for(server, api_key, job_id)["status"] == "cancelled"


def test_sync_request_past_the_wait_becomes_a_job(make_server) -> None:
    srv = make_server(DOCJOBS_LIMITS__SYNC_WAIT_SECONDS="0.5").start()
    key = srv.key("patient")
    pdf, _ = pdf_with_pages(4, seed=5)
    response = requests.post(
        f"{srv.base}{OCR}",
        headers=headers(key),
        files={"file": ("four.pdf", pdf, "application/pdf")},
    )
    assert response.status_code == 202, response.text
    assert "sync limit" in response.json()["message"]
    assert wait_for(srv, key, response.json()["job_id"])["status"] == "complete"


def _busy_runner(server_pid: int, timeout: float = 60) -> psutil.Process:
    """The runner worker that is running Tesseract right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.Process(server_pid).children(recursive=True):
            try:
                if proc.name().startswith("tesseract"):
                    return proc.parent()
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.05)
    raise AssertionError("no runner started Tesseract")


def test_cancel_stops_the_running_runner(make_server) -> None:
    srv = make_server(DOCJOBS_RUNNER__CONCURRENCY="1").start()
    key = srv.key("canceller")
    pdf, _ = pdf_with_pages(30, seed=21)
    job_id = requests.post(
        f"{srv.base}{OCR}?async=true",
        headers=headers(key),
        files={"file": ("long.pdf", pdf, "application/pdf")},
    ).json()["job_id"]
    runner = _busy_runner(srv.process.pid)
    family = [runner, *runner.children(recursive=True)]
    assert wait_for(srv, key, job_id, ("processing",))["status"] == "processing"

    assert (
        requests.delete(f"{srv.base}/api/v1/jobs/{job_id}", headers=headers(key)).status_code == 204
    )

    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == []
    assert wait_for(srv, key, job_id)["status"] == "cancelled"
    result = requests.get(f"{srv.base}/api/v1/jobs/{job_id}/result", headers=headers(key))
    assert result.status_code == 409 and result.json()["error"]["status"] == "cancelled"
    # The service carries on with a fresh worker.
    done = requests.post(
        f"{srv.base}/api/v1/convert/text-to-pdf",
        headers=headers(key),
        data={"content": "after cancel"},
        timeout=60,
    )
    assert done.status_code == 200


@pytest.mark.anyio
async def test_tenants_never_see_each_other(api) -> None:
    alice, bob = api.key("alice"), api.key("bob")
    job_id = (
        await api.post(
            alice, "/api/v1/convert/text-to-pdf?async=true", data={"content": "alice's secret"}
        )
    ).json()["job_id"]
    await api.wait_for(alice, job_id)
    for method, path in [("GET", ""), ("GET", "/result"), ("DELETE", "")]:
        response = await api.request(method, bob, f"/api/v1/jobs/{job_id}{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
    assert job_id not in str((await api.get(bob, "/api/v1/jobs")).json())
    assert (await api.get(alice, f"/api/v1/jobs/{job_id}")).is_success


def test_finished_jobs_expire_with_their_files(make_server) -> None:
    srv = make_server(DOCJOBS_JOBS__TTL_SECONDS="1", DOCJOBS_RUNNER__SWEEP_SECONDS="0.3").start()
    key = srv.key("shortlived")
    response = requests.post(
        f"{srv.base}/api/v1/convert/text-to-pdf",
        headers=headers(key),
        data={"content": "ephemeral"},
    )
    job_id = response.headers["X-Job-Id"]
    files = list((srv.data_dir / "objects" / "shortlived" / job_id).rglob("*"))
    assert files
    time.sleep(2.5)
    for path in ("", "/result"):
        gone = requests.get(f"{srv.base}/api/v1/jobs/{job_id}{path}", headers=headers(key))
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "job_expired"
        assert "retention" in gone.json()["error"]["message"]
    assert not any(p.exists() for p in files)
    assert requests.get(f"{srv.base}/api/v1/jobs", headers=headers(key)).json()["total"] == 0


def test_keys_are_stored_hashed(server) -> None:
    key = server.key("hashcheck")
    db = sqlite3.connect(server.data_dir / "docjobs.db")
    rows = db.execute("SELECT * FROM api_keys").fetchall()
    db.close()
    secret = key.split("_", 2)[2]  # dj_<id>_<secret>; the secret may hold "_" too
    assert key not in repr(rows) and secret not in repr(rows)
    assert requests.get(f"{server.base}/api/v1/jobs", headers=headers(key)).ok


def test_probes_metrics_and_docs(server, api_key) -> None:
    # A finished job, then a poll of it: what the metrics below count.
    done = requests.post(
        f"{server.base}/api/v1/convert/text-to-pdf",
        headers=headers(api_key),
        data={"content": "measured"},
        timeout=60,
    )
    requests.get(f"{server.base}/api/v1/jobs/{done.headers['X-Job-Id']}", headers=headers(api_key))
    assert requests.get(f"{server.base}/healthz").json() == {"status": "ok"}
    assert requests.get(f"{server.base}/readyz").status_code == 200
    metrics = requests.get(f"{server.base}/metrics").text
    assert 'docjobs_jobs{phase="Complete"}' in metrics
    assert "docjobs_queue_depth" in metrics
    assert 'docjobs_http_requests_total{method="GET",route="/api/v1/jobs/{job_id}"' in metrics
    assert "docjobs_job_duration_seconds_bucket" in metrics
    assert requests.get(f"{server.base}/docs").status_code == 200
    spec = requests.get(f"{server.base}/openapi.json").json()
    assert "/api/v1/ocr/extract/simple" in spec["paths"]
