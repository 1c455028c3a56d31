"""The ``auto`` OCR tier on a mixed scan against all-Tesseract and all-vision.

    .venv/bin/python bench/auto_tier.py [--pages 20] [--degraded 4] [--latency 1.5] [--rounds 3]

One generated scan (a PDF of page images with known text), most pages clean and
``--degraded`` of them spoilt (blur; grey print speckled; salt and pepper), read by one
``docjobs serve`` (2 warm workers, docTR off) three ways, each submitted async and polled
until complete:
  * ``simple``: Tesseract on every page;
  * ``vision``: Claude on every page;
  * ``auto``: Tesseract on every page, Claude on the pages Tesseract reads badly.
Claude is a local stand-in for the Messages API that answers each page with its known text
after ``--latency`` seconds per page (it tells the pages apart by their pixels), so the
vision tier reads perfectly and costs time per page, as the real model does. Prints a
Markdown table: word recall (all pages, degraded pages), pages sent to Tesseract and to
Claude, wall time (the median of ``--rounds`` + 1 runs, the tiers taking turns, after a
warm-up run of each), and each as a ratio to all-vision.
"""

from __future__ import annotations

import argparse
import base64
import io
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageStat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import Server
from tests.docs import pdf_of_images, recovered, sentence_lines, text_image
from tests.receivers import Recorded, Reply, claude_tool_answer, serve

THUMBNAIL = (240, 120)
"""Pixels; pages are told apart by their print at this size."""


def spoil(image: Image.Image, kind: int) -> Image.Image:
    if kind == 0:
        return image.filter(ImageFilter.GaussianBlur(5))
    rng = random.Random(kind)
    speckled = ImageEnhance.Contrast(image).enhance(0.1) if kind == 1 else image.copy()
    pixels = speckled.load()
    assert pixels is not None
    width, height = speckled.size
    for _ in range(int(width * height * (0.05 if kind == 1 else 0.15))):
        pixels[rng.randrange(width), rng.randrange(height)] = rng.choice((0, 255))
    return speckled


def scan(pages: int, degraded: int) -> tuple[bytes, list[list[str]], list[Image.Image], set[int]]:
    texts = [sentence_lines(900 + p, 5, 8) for p in range(pages)]
    step = pages // max(degraded, 1)
    spoilt = {1 + step // 2 + n * step for n in range(degraded)}
    images = []
    for number, lines in enumerate(texts, start=1):
        image = text_image(lines, size=36, width=1700)
        images.append(spoil(image, number % 3) if number in spoilt else image)
    return pdf_of_images(images), texts, images, spoilt


class StandIn:
    """The Messages API: each page image it is sent is answered with its page's known text,
    after ``latency`` seconds per page."""

    def __init__(self, texts: list[list[str]], images: list[Image.Image], latency: float) -> None:
        self.texts = texts
        self.thumbnails = [self._thumbnail(image) for image in images]
        self.latency = latency
        self.pages_read = 0
        self._lock = threading.Lock()

    @staticmethod
    def _thumbnail(image: Image.Image) -> Image.Image:
        return image.convert("L").resize(THUMBNAIL, Image.Resampling.BOX)

    def page_of(self, image: Image.Image) -> int:
        seen = self._thumbnail(image)
        distances = [
            sum(ImageStat.Stat(ImageChops.difference(seen, known)).mean)
            for known in self.thumbnails
        ]
        return distances.index(min(distances))

    def __call__(self, recorded: Recorded) -> Reply:
        content = recorded.json()["messages"][0]["content"]
        shown = [
            Image.open(io.BytesIO(base64.b64decode(block["source"]["data"])))
            for block in content
            if block["type"] == "image"
        ]
        with self._lock:
            self.pages_read += len(shown)
        time.sleep(self.latency * len(shown))
        pages = []
        for position, image in enumerate(shown, start=1):
            lines = self.texts[self.page_of(image)]
            pages.append(
                {
                    "page": position,
                    "lines": [
                        {"text": text, "block": n, "box": [60, 80 + 60 * n, 900, 120 + 60 * n]}
                        for n, text in enumerate(lines)
                    ],
                }
            )
        return 200, {}, claude_tool_answer({"pages": pages}, "record_pages")


def run(server: Server, key: str, tier: str, pdf: bytes) -> tuple[float, dict[str, Any]]:
    auth = {"X-API-Key": key}
    started = time.perf_counter()
    job = requests.post(
        f"{server.base}/api/v1/ocr/extract/{tier}?async=true",
        # A new submission each round, not the finished job of the same document.
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        files={"file": (f"{tier}.pdf", pdf, "application/pdf")},
        timeout=60,
    ).json()
    while (status := requests.get(job["status_url"], headers=auth, timeout=10).json())[
        "status"
    ] not in {"complete", "failed"}:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert status["status"] == "complete", status
    result = requests.get(job["result_url"], headers=auth, timeout=60).json()
    return elapsed, result["data"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--degraded", type=int, default=4)
    parser.add_argument("--latency", type=float, default=1.5, help="seconds per vision page")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tier, alternating")
    args = parser.parse_args()
    pdf, texts, images, spoilt = scan(args.pages, args.degraded)
    stand_in = StandIn(texts, images, args.latency)
    rows = []
    with serve(stand_in) as claude, tempfile.TemporaryDirectory() as scratch:
        env = {
            "DOCJOBS_RUNNER__CONCURRENCY": "2",
            "DOCJOBS_LLM__BASE_URL": claude.url,
            "DOCJOBS_LLM__API_KEY": "standin-key",
            "DOCJOBS_LLM__VISION_PAGE_FORMAT": "image",
            "DOCJOBS_DOCTR__WEIGHTS_DIR": str(Path(scratch) / "no-weights"),
        }
        server = Server(Path(scratch) / "data", env=env).start()
        try:
            key = server.key("bench", "business")
            time.sleep(2)  # the warm workers finish starting
            # Warm-up: each worker loads each tier's modules (the Claude SDK) once, as a
            # server that has been running for a while has.
            warm_up, _, _, _ = scan(8, 4)
            for tier in ("simple", "vision", "auto"):
                run(server, key, tier, warm_up)
            seconds: dict[str, list[float]] = {"simple": [], "vision": [], "auto": []}
            for _ in range(args.rounds):
                for tier in seconds:
                    seconds[tier].append(run(server, key, tier, pdf)[0])
            for tier in ("simple", "vision", "auto"):
                asked = stand_in.pages_read
                elapsed, data = run(server, key, tier, pdf)
                seconds[tier].append(elapsed)
                pages = data["pages"]
                bad = [page for page in pages if page["page"] in spoilt]
                rows.append(
                    {
                        "tier": tier,
                        "recall": recovered(
                            [line for lines in texts for line in lines], data["text"]
                        ),
                        "bad_recall": recovered(
                            [line for n in sorted(spoilt) for line in texts[n - 1]],
                            "\n".join(page["text"] for page in bad),
                        ),
                        "tesseract": 0 if tier == "vision" else len(pages),
                        "vision": stand_in.pages_read - asked,
                        "seconds": statistics.median(seconds[tier]),
                        "spread": (min(seconds[tier]), max(seconds[tier])),
                        "by_tier": data.get("pages_by_tier"),
                    }
                )
        finally:
            server.stop()
    base = next(row for row in rows if row["tier"] == "vision")
    print(
        f"{args.pages} pages, {len(spoilt)} degraded (pages {sorted(spoilt)}), "
        f"vision stand-in {args.latency} s a page, wall time the median of "
        f"{args.rounds + 1} runs (min-max)\n"
    )
    print(
        "| tier | word recall: all / degraded pages | pages to Tesseract | pages to Claude "
        "| wall time | recall / all-vision | Claude pages / all-vision | time / all-vision |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['tier']} | {row['recall']:.2f} / {row['bad_recall']:.2f} "
            f"| {row['tesseract']} | {row['vision']} | {row['seconds']:.1f} s "
            f"({row['spread'][0]:.1f}-{row['spread'][1]:.1f}) "
            f"| {row['recall'] / base['recall']:.2f}x | {row['vision'] / base['vision']:.2f}x "
            f"| {row['seconds'] / base['seconds']:.2f}x |"
        )
    auto = next(row for row in rows if row["tier"] == "auto")
    print(f"\nauto pages_by_tier: {auto['by_tier']}")


if __name__ == "__main__":
    main()
