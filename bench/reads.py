"""Job reads against a bare FastAPI endpoint on the same uvicorn, side by side in one run.

    .venv/bin/python bench/reads.py [--seconds 10] [--connections 32] [--rounds 2]

Starts ``docjobs serve`` (embedded mode) and a bare FastAPI app run by ``uvicorn.run`` with
the same options ``docjobs serve`` uses, each on loopback in its own process. One job is
created; then ``wrk`` (Debian's ``wrk`` package) loads ``GET /api/v1/jobs/{id}``
(with its API key) and the bare endpoint (a JSON body of the same size) in turn, the same
number of connections and seconds each, ``--rounds`` times. Prints requests/s and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import Server, free_port

BARE_APP = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
BODY = {body}
@app.get("/bare")
async def bare() -> dict[str, object]:
    return BODY
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
"""


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    """Requests per second; non-2xx answers make the run count for nothing."""
    header_args = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *header_args, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"errors while loading {url}:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found is not None, out
    return float(found.group(1))


def finished_job(server: Server, key: str) -> dict[str, object]:
    """A job's view once it has ended (or after 20 s, whatever its status then)."""
    job = requests.post(
        f"{server.base}/api/v1/convert/html-to-pdf?async=true",
        headers={"X-API-Key": key},
        data={"content": "<p>Quarterly report</p>"},
        timeout=60,
    ).json()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        view: dict[str, object] = requests.get(
            str(job["status_url"]), headers={"X-API-Key": key}, timeout=10
        ).json()
        if view["status"] in ("complete", "failed", "cancelled"):
            break
        time.sleep(0.05)
    return view


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt-get install wrk)")

    with tempfile.TemporaryDirectory() as scratch:
        server = Server(Path(scratch) / "data", env={"DOCJOBS_RUNNER__CONCURRENCY": "1"})
        server.start()
        bare_port = free_port()
        bare = None
        try:
            key = server.key("bench", "business")
            view = finished_job(server, key)
            bare_log = (Path(scratch) / "bare.log").open("wb")
            bare = subprocess.Popen(
                [sys.executable, "-c", BARE_APP.format(body=repr(view)), str(bare_port)],
                stdout=bare_log,
                stderr=subprocess.STDOUT,
            )
            bare_url = f"http://127.0.0.1:{bare_port}/bare"
            for _ in range(100):
                try:
                    requests.get(bare_url, timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            job_url = f"{server.base}/api/v1/jobs/{view['job_id']}"
            rows = []
            for _ in range(args.rounds):
                job_rps = wrk(job_url, {"X-API-Key": key}, args.seconds, args.connections)
                bare_rps = wrk(bare_url, {}, args.seconds, args.connections)
                rows.append((job_rps, bare_rps))
        finally:
            if bare is not None:
                bare.terminate()
                bare.wait()
            server.stop()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; wrk -t1 -c{args.connections} -d{args.seconds}s; "
        f"body {len(json.dumps(view))} bytes\n"
    )
    print("| round | GET /api/v1/jobs/{id} req/s | bare FastAPI req/s | ratio |")
    print("|---|---|---|---|")
    for n, (job_rps, bare_rps) in enumerate(rows, 1):
        print(f"| {n} | {job_rps:,.0f} | {bare_rps:,.0f} | {job_rps / bare_rps:.2f}x |")


if __name__ == "__main__":
    main()
