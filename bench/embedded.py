"""Embedded mode against the bare engines, side by side in one run.

    .venv/bin/python bench/embedded.py [--rounds 20]

Measures, on the same machine and inputs:
  * HTML -> PDF, one page: WeasyPrint called in-process vs. the sync API
    (``POST /api/v1/convert/html-to-pdf``).
  * OCR, one page: pytesseract called in-process (recognition only) vs. the sync API
    (``POST /api/v1/ocr/extract/simple``, which also detects page orientation first).
  * Async submit -> complete latency (``?async=true`` then polling every 20 ms), for the
    same one-page HTML conversion.
Prints a Markdown table of medians and p90s and the API/engine ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import Server
from tests.docs import png_bytes, sentence_lines, text_image

OCR_CONFIG = "--oem 1 --psm 3"
HTML = "<html><body><h1>Quarterly report</h1>" + "<p>Revenue grew in every region.</p>" * 20


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    action()  # warm-up: imports, worker start, caches
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def p90(samples: list[float]) -> float:
    return sorted(samples)[int(0.9 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds

    # The runner's Tesseract runs single-threaded (its concurrency is per process); the bare
    # engine is measured the same way, with the same recognition settings.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    import pytesseract
    from PIL import Image
    from weasyprint import HTML as WeasyHTML

    # Distinct pages of the same size: identical ones would be answered from the original
    # job (idempotency), which is not what is measured here.
    pages = [png_bytes(text_image(sentence_lines(n, 10), size=32)) for n in range(rounds + 1)]
    images = [Image.open(io.BytesIO(p)) for p in pages]

    with tempfile.TemporaryDirectory() as scratch:
        server = Server(Path(scratch) / "data", env={"DOCJOBS_RUNNER__CONCURRENCY": "2"}).start()
        try:
            key = server.key("bench", "business")
            auth = {"X-API-Key": key}
            counter = iter(range(10**9))
            api_pages, engine_pages = iter(range(rounds + 1)), iter(range(rounds + 1))

            def api_html() -> None:
                html = HTML + f"<!-- {next(counter)} -->"
                r = requests.post(
                    f"{server.base}/api/v1/convert/html-to-pdf",
                    headers=auth,
                    data={"content": html},
                    timeout=120,
                )
                assert r.status_code == 200, r.text

            def api_ocr() -> None:
                r = requests.post(
                    f"{server.base}/api/v1/ocr/extract/simple",
                    headers=auth,
                    files={"file": ("p.png", pages[next(api_pages)], "image/png")},
                    timeout=120,
                )
                assert r.status_code == 200, r.text

            def api_async_html() -> None:
                html = HTML + f"<!-- {next(counter)} -->"
                job = requests.post(
                    f"{server.base}/api/v1/convert/html-to-pdf?async=true",
                    headers=auth,
                    data={"content": html},
                    timeout=60,
                ).json()
                while requests.get(job["status_url"], headers=auth).json()["status"] != "complete":
                    time.sleep(0.02)

            rows = [
                (
                    "HTML -> PDF, 1 page",
                    timed(lambda: WeasyHTML(string=HTML).write_pdf(), rounds),
                    timed(api_html, rounds),
                ),
                (
                    "Tesseract OCR, 1 page",
                    timed(
                        lambda: pytesseract.image_to_string(
                            images[next(engine_pages)], config=OCR_CONFIG
                        ),
                        rounds,
                    ),
                    timed(api_ocr, rounds),
                ),
                (
                    "HTML -> PDF, async submit -> complete",
                    timed(lambda: WeasyHTML(string=HTML).write_pdf(), rounds),
                    timed(api_async_html, rounds),
                ),
            ]
        finally:
            server.stop()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {rounds} rounds after one warm-up\n"
    )
    print("| case | engine median | API median | API p90 | ratio (median) |")
    print("|---|---|---|---|---|")
    for name, engine, api in rows:
        e, a = statistics.median(engine), statistics.median(api)
        print(
            f"| {name} | {e * 1000:.0f} ms | {a * 1000:.0f} ms | {p90(api) * 1000:.0f} ms "
            f"| {a / e:.2f}x |"
        )


if __name__ == "__main__":
    main()
