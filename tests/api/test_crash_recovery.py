"""kill -9 of the service mid-work loses nothing and finishes nothing twice."""

from __future__ import annotations

import json
import sqlite3
import time

import psutil
import requests

from tests.docs import png_bytes, sentence_lines, text_image

JOBS = 8
"""Two running and the rest queued when the service is killed."""


def statuses(srv, key, ids):
    return {
        job_id: requests.get(f"{srv.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()[
            "status"
        ]
        for job_id in ids
    }


def test_kill_9_then_restart_completes_every_job_once(make_server) -> None:
    srv = make_server(DOCJOBS_RUNNER__CONCURRENCY="2").start()
    key = srv.key("crashy")
    ids = []
    for n in range(JOBS):
        document = png_bytes(text_image(sentence_lines(100 + n, 6), size=32))
        response = requests.post(
            f"{srv.base}/api/v1/ocr/extract/simple?async=true",
            headers={"X-API-Key": key},
            files={"file": (f"page{n}.png", document, "image/png")},
        )
        assert response.status_code == 202
        ids.append(response.json()["job_id"])
    deadline = time.monotonic() + 120
    while "processing" not in statuses(srv, key, ids).values():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    workers = psutil.Process(srv.process.pid).children(recursive=True)

    srv.kill()

    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == [], "runner workers outlived the killed service"
    srv.start()
    deadline = time.monotonic() + 300
    while set((seen := statuses(srv, key, ids)).values()) != {"complete"}:
        assert "failed" not in seen.values() and "cancelled" not in seen.values(), seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.5)

    db = sqlite3.connect(srv.data_dir / "docjobs.db")
    for job_id in ids:
        completions = db.execute(
            "SELECT count(*) FROM job_events WHERE job_id = ? AND phase = 'Complete'", (job_id,)
        ).fetchone()[0]
        assert completions == 1, job_id
        outcomes = [
            json.loads(p.read_text())
            for p in (srv.data_dir / "objects" / "crashy" / job_id / "attempts").glob("*.json")
        ]
        assert [o["exit_code"] for o in outcomes].count(0) == 1, job_id
        result = requests.get(
            f"{srv.base}/api/v1/jobs/{job_id}/result", headers={"X-API-Key": key}
        ).json()
        assert result["data"]["word_count"] > 30
    db.close()
