"""Embedded mode on a bad day: a killed upload leaves no scratch file behind, a job's end is
never recorded without its webhook event, the database (which holds webhook secrets) is
private, and runner workers get no credentials they do not use."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Phase
from tests.conftest import Server
from tests.receivers import serve

MB = 1024 * 1024


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_directory_and_database_files_are_private(tmp_path: Path) -> None:
    # A data directory made before: world-readable, as the issue found it.
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    srv = Server(data_dir).start()
    try:
        srv.key("private")  # a write: the WAL and its index exist from here on
        assert mode(data_dir) == 0o700
        for name in ("docjobs.db", "docjobs.db-wal", "docjobs.db-shm"):
            assert mode(data_dir / name) == 0o600, name
    finally:
        srv.stop()


def test_runner_workers_get_only_the_credentials_they_use(tmp_path: Path) -> None:
    env = {
        "GITHUB_TOKEN": "ghp_not_for_workers",
        "AWS_SECRET_ACCESS_KEY": "aws_not_for_workers",
        "DOCJOBS_FUZZ_API_KEY": "dj_not_for_workers",
        "DOCJOBS_LLM__API_KEY": "sk-ant-for-llm-extraction",
        "DOCJOBS_RUNNER__CONCURRENCY": "1",
    }
    srv = Server(tmp_path / "data", env=env).start()
    try:
        workers = psutil.Process(srv.process.pid).children(recursive=True)
        assert workers, "no runner worker started"
        for worker in workers:
            seen = worker.environ()
            assert not {"GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DOCJOBS_FUZZ_API_KEY"} & set(seen)
            assert seen["DOCJOBS_LLM__API_KEY"] == "sk-ant-for-llm-extraction"
            assert seen["DOCJOBS_DATA_DIR"] == str((tmp_path / "data").resolve())
    finally:
        srv.stop()


def upload_killed_while_saving(srv: Server, key: str) -> list[Path]:
    """Posts a 40 MB upload and kills the server with SIGKILL while the upload is being saved
    to its scratch file; the scratch files left on disk."""
    scratch = srv.data_dir / "tmp"
    document = b"A line of text to convert.\n" * (40 * MB // 27)

    def post() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.post(
                f"{srv.base}/api/v1/convert/text-to-pdf?async=true",
                headers={"X-API-Key": key},
                files={"file": ("big.txt", document, "text/plain")},
                timeout=60,
            )

    poster = threading.Thread(target=post)
    poster.start()
    deadline = time.monotonic() + 60
    while not list(scratch.glob("upload-*")) and time.monotonic() < deadline:
        time.sleep(0.001)
    srv.kill()
    poster.join()
    return list(scratch.glob("upload-*"))


def test_a_kill_9_mid_upload_leaves_no_scratch_file_after_restart(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", env={"DOCJOBS_RUNNER__CONCURRENCY": "1"}).start()
    try:
        key = srv.key("killed-upload")
        # The scratch file lives for a fraction of a second: try until the kill lands in it.
        for _ in range(5):
            leftovers = upload_killed_while_saving(srv, key)
            if leftovers:
                break
            srv.start()
        assert leftovers, "the kill never landed while an upload was being saved"
        srv.start()
        assert list((srv.data_dir / "tmp").glob("upload-*")) == []
    finally:
        srv.stop()


def outbox_empty(data_dir: Path) -> bool:
    """Whether the running server has nothing left in its webhook outbox (read-only)."""
    conn = sqlite3.connect(f"file:{data_dir / 'docjobs.db'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_job_end_and_its_outbox_entry_commit_together(tmp_path: Path) -> None:
    srv = Server(
        tmp_path / "data",
        env={"DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true", "DOCJOBS_RUNNER__CONCURRENCY": "1"},
    ).start()
    try:
        with serve([(200, {}, b"{}")]) as receiver:
            key = srv.key("outbox-tx")
            requests.post(
                f"{srv.base}/v1/webhooks", headers={"X-API-Key": key}, json={"url": receiver.url}
            ).raise_for_status()
            job_id = requests.post(
                f"{srv.base}/api/v1/convert/text-to-pdf?async=true",
                headers={"X-API-Key": key},
                data={"content": "announce me"},
            ).json()["job_id"]
            (first,) = receiver.wait_for(1)
            # The receiver has the event; the server settles it (and empties its outbox) just
            # after. Stopping before that would leave an entry this test did not put there.
            deadline = time.monotonic() + 30
            while not outbox_empty(srv.data_dir) and time.monotonic() < deadline:
                time.sleep(0.1)
            srv.stop()

            db = SQLiteDatabase(srv.data_dir / "docjobs.db")
            jobs = SQLiteJobStore(db)
            ended = jobs.get(job_id)
            assert ended is not None and ended.status.phase is Phase.COMPLETE

            def reserve_then_crash(conn: sqlite3.Connection) -> None:
                SQLiteWebhookStore.reserve(conn, job_id, "job.failed", "outbox-tx", None, utcnow())
                raise RuntimeError("power lost")

            changed = ended.status.model_copy(update={"message": "not saved"})
            with pytest.raises(RuntimeError):
                jobs.save_status(job_id, changed, also=reserve_then_crash)
            assert jobs.get(job_id) == ended
            assert db.query("SELECT * FROM webhook_outbox") == []

            # What a crash right after the job's end leaves: the end and its outbox entry
            # committed, the event never built nor delivered.
            with db.transaction() as conn:
                SQLiteWebhookStore.reserve(
                    conn, job_id, "job.completed", "outbox-tx", None, utcnow()
                )
                conn.execute("DELETE FROM webhook_deliveries WHERE job_id = ?", (job_id,))
            db.close()

            srv.start()
            _, resumed = receiver.wait_for(2)
            assert resumed.json()["type"] == "job.completed"
            assert resumed.json()["data"]["jobId"] == job_id
            assert resumed.headers["webhook-id"] == first.headers["webhook-id"]
    finally:
        srv.stop()


def test_inputs_without_a_job_are_swept_at_start(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", env={"DOCJOBS_RUNNER__CONCURRENCY": "1"}).start()
    try:
        key = srv.key("orphans")
        job_id = requests.post(
            f"{srv.base}/api/v1/convert/text-to-pdf?async=true",
            headers={"X-API-Key": key},
            data={"content": "keep me"},
        ).json()["job_id"]
        deadline = time.monotonic() + 60
        while (
            requests.get(f"{srv.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()[
                "status"
            ]
            != "complete"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        srv.kill()
        # What a kill between storing an input and committing its job leaves.
        orphan = srv.data_dir / "objects" / "orphans" / "job_000000000000000000000000"
        orphan.mkdir(parents=True)
        (orphan / "input").write_bytes(b"x" * MB)

        srv.start()
        assert not orphan.exists()
        result = requests.get(f"{srv.base}/api/v1/jobs/{job_id}/result", headers={"X-API-Key": key})
        assert result.status_code == 200 and result.content.startswith(b"%PDF")
    finally:
        srv.stop()
