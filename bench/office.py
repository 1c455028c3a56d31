"""One-page ``.docx`` -> PDF: docjobs (sync, embedded mode) against bare ``soffice``.

    .venv/bin/python bench/office.py [--rounds 10]

On the same machine and documents, one after the other: ``soffice --headless --convert-to
pdf`` started for each document with a profile of its own made once (what a script around
LibreOffice does), and ``POST /api/v1/convert/office-to-pdf`` on ``docjobs serve`` with one
runner worker, whose LibreOffice stays running across documents. One warm-up each first
(it makes the bare profile, and starts the worker's LibreOffice); distinct documents each
round (an identical one would be answered from the original job). Prints medians, p90s and
the ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import Server
from tests.office_docs import docx

ROUTE = "/api/v1/convert/office-to-pdf"


def document(n: int) -> bytes:
    return docx(f"Quarterly report {n}", *(f"Revenue grew in region {n}-{i}." for i in range(12)))


def bare(soffice: str, profile: Path, source: Path, out: Path) -> None:
    subprocess.run(
        [
            soffice,
            "--headless",
            "--norestore",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def p90(samples: list[float]) -> float:
    return sorted(samples)[int(0.9 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    load_before = os.getloadavg()[0]
    soffice = shutil.which("soffice")
    if soffice is None:
        raise SystemExit("no soffice: scripts/setup installs LibreOffice")
    documents = [document(n) for n in range(2 * rounds + 2)]

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        profile = root / "profile"
        bare_times: list[float] = []
        for n in range(rounds + 1):
            source = root / f"bare-{n}.docx"
            source.write_bytes(documents[n])
            started = time.perf_counter()
            bare(soffice, profile, source, root / "out")
            if n:  # the first start makes the profile
                bare_times.append(time.perf_counter() - started)

        server = Server(root / "data", env={"DOCJOBS_RUNNER__CONCURRENCY": "1"}).start()
        try:
            auth = {"X-API-Key": server.key("bench", "business")}
            api_times: list[float] = []
            for n in range(rounds + 1):
                files = {"file": (f"report-{n}.docx", documents[rounds + 1 + n])}
                started = time.perf_counter()
                answer = requests.post(f"{server.base}{ROUTE}", headers=auth, files=files)
                elapsed = time.perf_counter() - started
                answer.raise_for_status()
                assert answer.content.startswith(b"%PDF"), answer.text[:200]
                if n:  # the first one starts the worker's LibreOffice
                    api_times.append(elapsed)
        finally:
            server.stop()

    bare_median, api_median = statistics.median(bare_times), statistics.median(api_times)
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, 1-minute load"
        f" {load_before:.2f} before and {os.getloadavg()[0]:.2f} after,"
        f" Python {platform.python_version()}, {rounds} rounds\n"
    )
    print("| one-page .docx -> PDF | median | p90 |")
    print("|---|---|---|")
    print(f"| bare soffice | {bare_median * 1000:.0f} ms | {p90(bare_times) * 1000:.0f} ms |")
    print(f"| docjobs sync | {api_median * 1000:.0f} ms | {p90(api_times) * 1000:.0f} ms |")
    print(f"\ndocjobs / bare: {api_median / bare_median:.2f}x")


if __name__ == "__main__":
    main()
