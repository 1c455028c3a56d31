"""``/openapi.json`` tells the truth about both route families.

Schemathesis generates requests from the document (``schemathesis.toml`` beside this file)
and sends them with a valid key to a server process: no answer may be a 5xx, and every
answer must be one the document describes (status code, content type, headers, body).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from tests.conftest import BIN

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_every_route_documents_its_answers(server) -> None:
    document = requests.get(f"{server.base}/openapi.json", timeout=10).json()
    routes = {"/api/v1/": 0, "/v1/": 0}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            answers = operation["responses"]
            success = [code for code in answers if code.startswith("2")]
            assert success, f"{where} documents no success answer"
            for code in success:
                assert code == "204" or answers[code].get("content"), f"{where} {code}: no body"
            if path != "/readyz":  # a probe: "not ready" has the probe's own shape
                for code in (c for c in answers if c[0] in "45"):
                    body = answers[code]["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/ErrorBody"}, f"{where} {code}"
            for prefix in routes:
                routes[prefix] += path.startswith(prefix)
    assert all(routes.values()), routes


def test_generated_requests_get_documented_answers(make_server) -> None:
    srv = make_server(
        # Generated requests come fast: no plan limit, and a sync wait that keeps it short.
        DOCJOBS_RATE_LIMITS__ENABLED="false",
        DOCJOBS_LIMITS__SYNC_WAIT_SECONDS="5",
        DOCJOBS_RUNNER__CONCURRENCY="1",
    ).start()
    run = subprocess.run(
        [str(BIN / "st"), "--config-file", str(CONFIG), "run", f"{srv.base}/openapi.json"],
        env={**os.environ, "DOCJOBS_FUZZ_API_KEY": srv.key("fuzz")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    server_log = srv.log_path.read_text()[-5000:] if srv.log_path else ""
    assert run.returncode == 0, f"{run.stdout[-20000:]}\n{run.stderr}\n--- server log\n{server_log}"
