"""A one-shot runner whose attempt manifest cannot be read (nor the file its URL is in) ends
like any failed attempt: a readable, transient termination message for the operator, no
traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from docjobs.domain.models import EXIT_TRANSIENT

ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)


class _Refusing(BaseHTTPRequestHandler):
    """What an object store answers to a presigned GET past its expiry."""

    def do_GET(self) -> None:
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(ACCESS_DENIED)))
        self.end_headers()
        self.wfile.write(ACCESS_DENIED)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def refusing_store() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/docjobs/acme/manifest.json?X-Amz-Signature=0"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/docjobs/acme/manifest.json"


def _run_attempt(manifest_url: str | None, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    """Run a one-shot runner as its pod does: the URL in a file (its Job's Secret, mounted),
    ``None``: a file that is not there."""
    log = tmp_path / "termination-log"
    url_file = tmp_path / "manifest" / "url"
    if manifest_url is not None:
        url_file.parent.mkdir()
        url_file.write_text(manifest_url)
        url_file.chmod(0o400)
    env = {
        **os.environ,
        "DOCJOBS_RUNNER__MANIFEST_FILE": str(url_file),
        "DOCJOBS_TERMINATION_LOG": str(log),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "docjobs"), "runner"],  # as the runner pod runs it
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, json.loads(log.read_text()), done.stderr


def test_a_refused_manifest_is_a_transient_failure_with_the_answer(
    refusing_store: str, tmp_path: Path
) -> None:
    code, summary, stderr = _run_attempt(refusing_store, tmp_path)
    assert code == EXIT_TRANSIENT
    assert summary["error"] == {
        "reason": "ManifestUnavailable",
        "message": "object store refused the attempt's manifest: AccessDenied (HTTP 403)",
        "permanent": False,
    }
    assert "Traceback" not in stderr
    assert "X-Amz-Signature" not in summary["error"]["message"]


def test_an_unreachable_store_is_a_transient_failure_that_says_so(
    closed_port: str, tmp_path: Path
) -> None:
    code, summary, stderr = _run_attempt(closed_port, tmp_path)
    assert code == EXIT_TRANSIENT
    error = summary["error"]
    assert (error["reason"], error["permanent"]) == ("ManifestUnavailable", False)
    assert error["message"].startswith("cannot reach the object store for the attempt's manifest")
    assert "Connection refused" in error["message"]
    assert "Traceback" not in stderr


def test_a_missing_url_file_is_a_transient_failure_naming_the_file(tmp_path: Path) -> None:
    code, summary, stderr = _run_attempt(None, tmp_path)
    assert code == EXIT_TRANSIENT
    error = summary["error"]
    assert (error["reason"], error["permanent"]) == ("ManifestUnavailable", False)
    assert error["message"] == (
        "cannot read the URL of the attempt's manifest: No such file or directory"
        f" ({tmp_path / 'manifest' / 'url'})"
    )
    assert "Traceback" not in stderr
