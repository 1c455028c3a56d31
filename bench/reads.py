"""Job reads against a bare FastAPI endpoint on the same uvicorn, side by side in one run.

    .venv/bin/python bench/reads.py [--seconds 2] [--connections 32] [--rounds 15] [--against REV]

Starts ``docjobs serve`` (embedded mode) and a bare FastAPI app run by ``uvicorn.run`` with
the same options ``docjobs serve`` uses, each on loopback in its own process. One job is
created; then ``wrk`` (Debian's ``wrk`` package) loads ``GET /api/v1/jobs/{id}``
(with its API key) and the bare endpoint (a JSON body of the same size) in turn, the same
number of connections and seconds each, ``--rounds`` times. Prints requests/s and the ratio
of each round, and the median ratio: on a shared machine, short interleaved rounds see the
same load on both sides more often than long ones do.

``--against REV`` also serves the same reads from the committed revision ``REV`` (``git
archive``, in the installed layout, on this environment), loaded in the same rounds: the
change's before and after in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
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


def revision_tree(rev: str, into: Path) -> Path:
    """The packages of ``rev`` laid out as installed (``docjobs.api`` is ``api/src``...), for
    ``PYTHONPATH``: ahead of the editable install, which maps the working tree."""
    repo = Path(__file__).resolve().parent.parent
    source = into / "source"
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    package = into / "path" / "docjobs"
    shutil.copytree(source / "docjobs", package)
    for name in ("api", "operator", "runner"):
        shutil.copytree(source / name / "src", package / name)
    return package.parent


def started(data_dir: Path, env: dict[str, str]) -> tuple[Server, str, str, dict[str, object]]:
    """A server with one finished job: the server, the job's URL, a key, the job's view."""
    server = Server(data_dir, env={"DOCJOBS_RUNNER__CONCURRENCY": "1", **env})
    server.start()
    key = server.key("bench", "business")
    view = finished_job(server, key)
    return server, f"{server.base}/api/v1/jobs/{view['job_id']}", key, view


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--against", metavar="REV", help="also serve the reads from REV")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt-get install wrk)")

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        variants: dict[str, dict[str, str]] = {"this tree": {}}
        if args.against:
            path = revision_tree(args.against, scratch / "revision")
            variants = {args.against: {"PYTHONPATH": str(path)}, **variants}
        servers: list[Server] = []
        bare = None
        try:
            targets: dict[str, tuple[str, dict[str, str]]] = {}
            for name, env in variants.items():
                server, url, key, view = started(scratch / f"data-{len(servers)}", env)
                servers.append(server)
                targets[name] = (url, {"X-API-Key": key})
            bare_port = free_port()
            bare_log = (scratch / "bare.log").open("wb")
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
            targets["bare FastAPI"] = (bare_url, {})
            rows = [
                {
                    name: wrk(url, headers, args.seconds, args.connections)
                    for name, (url, headers) in targets.items()
                }
                for _ in range(args.rounds)
            ]
        finally:
            if bare is not None:
                bare.terminate()
                bare.wait()
            for server in servers:
                server.stop()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; wrk -t1 -c{args.connections} -d{args.seconds}s; "
        f"body {len(json.dumps(view))} bytes\n"
    )
    served = list(variants)
    print("| round | " + " | ".join(f"{name} req/s" for name in [*served, "bare FastAPI"]) + " |")
    print("|---|" + "---|" * (len(served) + 1))
    for n, row in enumerate(rows, 1):
        print(f"| {n} | " + " | ".join(f"{rps:,.0f}" for rps in row.values()) + " |")
    print()
    for name in served:
        ratios = [row[name] / row["bare FastAPI"] for row in rows]
        low, middle, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        print(f"{name} / bare: median {middle:.2f}x, quartiles {low:.2f}x - {high:.2f}x")


if __name__ == "__main__":
    main()
