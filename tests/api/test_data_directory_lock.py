"""One server per data directory: a second ``docjobs serve`` on a directory in use exits at
once, names the directory and leaves the first server's jobs alone."""

from __future__ import annotations

import sqlite3
import subprocess
import time

import requests

from tests.conftest import BIN, free_port
from tests.docs import pdf_with_pages


def second_serve(data_dir: str, port: int) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "docjobs"), "serve", "--port", str(port), "--data-dir", data_dir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, time.monotonic() - started


def test_second_server_on_a_directory_in_use_exits_and_changes_nothing(make_server) -> None:
    srv = make_server(DOCJOBS_RUNNER__CONCURRENCY="1", DOCJOBS_RUNNER__PART_PAGES="0").start()
    key = srv.key("owner")
    document, _ = pdf_with_pages(6)
    submitted = requests.post(
        f"{srv.base}/api/v1/ocr/extract/simple?async=true",
        headers={"X-API-Key": key},
        files={"file": ("six.pdf", document, "application/pdf")},
    )
    assert submitted.status_code == 202, submitted.text
    job_url = f"{srv.base}/api/v1/jobs/{submitted.json()['job_id']}"
    deadline = time.monotonic() + 60
    while requests.get(job_url, headers={"X-API-Key": key}).json()["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    for port in (free_port(), srv.port):
        done, took = second_serve(str(srv.data_dir), port)
        assert done.returncode != 0
        # Waiting for the lock would never end while the first server runs; the bound only
        # leaves room for a cold start of the CLI on a loaded machine.
        assert took < 40, f"the second server took {took:.1f} s to give up"
        assert str(srv.data_dir.resolve()) in done.stderr, done.stderr
        assert f"process {srv.process.pid}" in done.stderr, done.stderr

    deadline = time.monotonic() + 120
    while (job := requests.get(job_url, headers={"X-API-Key": key}).json())["status"] not in (
        "complete",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "complete", job
    assert job["attempts"] == 1, job


def test_a_killed_server_leaves_no_lock_behind(make_server) -> None:
    srv = make_server().start()
    srv.kill()
    srv.start(timeout=60)
    assert requests.get(f"{srv.base}/readyz", timeout=5).status_code == 200


def test_a_server_whose_port_is_taken_exits_before_recovering_any_job(make_server) -> None:
    stranded = make_server(DOCJOBS_RUNNER__CONCURRENCY="1", DOCJOBS_RUNNER__PART_PAGES="0")
    stranded.start()
    key = stranded.key("stranded")
    document, _ = pdf_with_pages(6, seed=7)
    submitted = requests.post(
        f"{stranded.base}/api/v1/ocr/extract/simple?async=true",
        headers={"X-API-Key": key},
        files={"file": ("six.pdf", document, "application/pdf")},
    )
    job_url = f"{stranded.base}/api/v1/jobs/{submitted.json()['job_id']}"
    deadline = time.monotonic() + 60
    while requests.get(job_url, headers={"X-API-Key": key}).json()["status"] != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stranded.kill()  # the job stays "processing" in the database, for recovery to find
    holder = make_server().start()  # another directory's server, on the port to be asked for

    done, _ = second_serve(str(stranded.data_dir), holder.port)

    assert done.returncode != 0
    assert "address already in use" in done.stderr.lower(), done.stderr
    db = sqlite3.connect(stranded.data_dir / "docjobs.db")
    phases = [row[0] for row in db.execute("SELECT phase FROM jobs")]
    db.close()
    assert phases == ["Processing"], "a server that could not serve recovered jobs"
