"""One multi-page scan through docjobs against bare page-parallel ``tesseract``.

    .venv/bin/python bench/ocr_peers.py [--pages 20] [--workers N]

On the same generated scan (60 words a page, a PDF of images), in one run:
  * bare ``tesseract`` CLI, one process per page on every core (the pages rendered at 300 DPI
    beforehand, outside the timing): the limit;
  * docjobs, ``POST /api/v1/ocr/extract/simple?async=true`` polled until complete, with the
    pages read in parts by every warm worker;
  * the same docjobs with ``DOCJOBS_RUNNER__PART_PAGES=0``: one worker reads every page.
Prints a Markdown table of seconds, pages/s, word recall and the ratio to the limit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pypdfium2 as pdfium
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import Server
from tests.docs import pdf_of_images, recovered, sentence_lines, text_image

DPI = 300


def scan(pages: int) -> tuple[bytes, list[list[str]]]:
    texts = [sentence_lines(500 + p, 6, 10) for p in range(pages)]
    return pdf_of_images([text_image(t, size=36, width=1700) for t in texts]), texts


def bare_tesseract(pdf: Path, scratch: Path, workers: int) -> tuple[float, str]:
    document = pdfium.PdfDocument(pdf)
    images = []
    for number in range(len(document)):
        image = scratch / f"page-{number:04d}.png"
        document[number].render(scale=DPI / 72).to_pil().convert("L").save(image, dpi=(DPI, DPI))
        images.append(image)
    document.close()
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def read(image: Path) -> str:
        command = ["tesseract", str(image), "-", "--oem", "1", "--psm", "3", "--dpi", str(DPI)]
        return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        texts = list(pool.map(read, images))
    return time.perf_counter() - started, "\n".join(texts)


def docjobs(pdf: bytes, scratch: Path, workers: int, part_pages: str) -> tuple[float, str]:
    env = {"DOCJOBS_RUNNER__CONCURRENCY": str(workers), "DOCJOBS_RUNNER__PART_PAGES": part_pages}
    server = Server(scratch / f"data-{part_pages}", env=env).start()
    try:
        auth = {"X-API-Key": server.key("bench", "business")}
        time.sleep(2)  # the warm workers finish starting
        started = time.perf_counter()
        job = requests.post(
            f"{server.base}/api/v1/ocr/extract/simple?async=true",
            headers=auth,
            files={"file": ("scan.pdf", pdf, "application/pdf")},
            timeout=60,
        ).json()
        while (status := requests.get(job["status_url"], headers=auth).json()["status"]) not in {
            "complete",
            "failed",
        }:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        assert status == "complete", status
        result = requests.get(f"{job['status_url']}/result", headers=auth, timeout=60).json()
        return elapsed, str(result["data"]["text"])
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    pdf, texts = scan(args.pages)
    expected = [line for page in texts for line in page]
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        (scratch / "scan.pdf").write_bytes(pdf)
        rows = [
            (
                "bare `tesseract`, pages in parallel",
                *bare_tesseract(scratch / "scan.pdf", scratch, args.workers),
            ),
            ("docjobs, pages in parts on every worker", *docjobs(pdf, scratch, args.workers, "4")),
            ("docjobs, one worker per document", *docjobs(pdf, scratch, args.workers, "0")),
        ]
    limit = rows[0][1]
    print(f"{args.pages}-page scan, 60 words a page, {args.workers} workers/processes\n")
    print("| system | seconds | pages/s | word recall | / limit (pages/s) |")
    print("|---|---|---|---|---|")
    for name, seconds, text in rows:
        print(
            f"| {name} | {seconds:.1f} | {args.pages / seconds:.2f} "
            f"| {recovered(expected, text):.2f} | {limit / seconds:.2f}x |"
        )


if __name__ == "__main__":
    main()
