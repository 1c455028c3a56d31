"""docTR against Tesseract on the same scan, side by side in one run.

    .venv/bin/python bench/ocr_tiers.py [--pages 5] [--devices cpu] [--threads 1]
    .venv/bin/python bench/ocr_tiers.py --pages 50 --devices cuda,cpu --threads 0 --no-tesseract

Both engines are called in-process on one scanned-looking PDF (letter pages at 200 DPI, 25
lines of 8 words). docTR runs with randomly initialised weights (trained ones come from a
hub this machine cannot reach): the detection network costs the same whatever its weights,
but an untrained detector finds few words, so recognition would be nearly free. The
*every word* column therefore adds the recognition network's time on one crop per printed
word, as a trained detector would hand it. Prints a Markdown table and the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The repository root instead of bench/, whose operator.py would hide the standard library's.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from docjobs.config import get_settings  # noqa: E402
from docjobs.domain.models import OcrAdvanced, OcrSimple  # noqa: E402
from docjobs.runner.engines import doctr_ocr, tesseract  # noqa: E402
from tests.docs import FONTS, pdf_of_images, sentence_lines  # noqa: E402
from tests.doctr_weights import save_stand_in_weights  # noqa: E402

LINES, WORDS_PER_LINE, FONT_SIZE = 25, 8, 34


def scan(pages: int) -> tuple[bytes, list[str]]:
    """A PDF of ``pages`` letter-size scans at 200 DPI, and every word printed on them."""
    face = ImageFont.truetype(FONTS["sans"], FONT_SIZE)
    images, words = [], []
    for number in range(pages):
        image = Image.new("L", (1700, 2200), 255)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(sentence_lines(number, LINES, WORDS_PER_LINE)):
            draw.text((150, 150 + i * 75), line, font=face, fill=0)
            words.extend(line.split())
        images.append(image)
    return pdf_of_images(images), words


def word_crops(words: list[str]) -> list[np.ndarray]:
    """Each word as the recogniser would see it cut out of a page."""
    face = ImageFont.truetype(FONTS["sans"], FONT_SIZE)
    crops = []
    for word in words:
        left, top, right, bottom = face.getbbox(word)
        image = Image.new("RGB", (right - left + 8, bottom - top + 8), "white")
        ImageDraw.Draw(image).text((4 - left, 4 - top), word, font=face, fill="black")
        crops.append(np.asarray(image))
    return crops


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--devices", default="cpu", help="comma-separated: cpu, cuda")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads; 0: all")
    parser.add_argument("--detection", default="db_mobilenet_v3_large")
    parser.add_argument("--recognition", default="crnn_mobilenet_v3_small")
    parser.add_argument("--no-tesseract", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "scan.pdf"
        pdf, words = scan(args.pages)
        source.write_bytes(pdf)
        weights = save_stand_in_weights(Path(tmp) / "weights", args.detection, args.recognition)
        os.environ.update(
            DOCJOBS_DOCTR__WEIGHTS_DIR=str(weights),
            DOCJOBS_DOCTR__DETECTION_ARCH=args.detection,
            DOCJOBS_DOCTR__RECOGNITION_ARCH=args.recognition,
            DOCJOBS_DOCTR__CPU_THREADS=str(args.threads),
        )
        rows: list[tuple[str, float]] = []
        if not args.no_tesseract:
            seconds = timed(
                lambda: tesseract.extract(OcrSimple(), source, "application/pdf", source.parent)
            )
            rows.append(("Tesseract (1 thread)", args.pages / seconds))
        crops = word_crops(words)
        for device in args.devices.split(","):
            os.environ["DOCJOBS_DOCTR__DEVICE"] = device
            get_settings.cache_clear()
            settings = get_settings().doctr
            predictor = doctr_ocr.predictor_for(settings, weights)
            # Warm-up: the first batch pays for lazy initialisation.
            doctr_ocr.extract(OcrAdvanced(pages="1"), source, "application/pdf", source.parent)
            pipeline = timed(
                lambda: doctr_ocr.extract(OcrAdvanced(), source, "application/pdf", source.parent)
            )
            if device == "cuda":
                import torch

                torch.cuda.synchronize()
            recognition = timed(lambda: predictor.reco_predictor(crops))  # noqa: B023
            threads = "all threads" if args.threads == 0 else f"{args.threads} thread(s)"
            label = f"docTR {args.detection} + {args.recognition}, {device}, {threads}"
            rows.append((f"{label}, as measured", args.pages / pipeline))
            rows.append((f"{label}, every word", args.pages / (pipeline + recognition)))

    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.pages} pages, {len(words)} words"
    )
    print("\n| engine | pages/s | vs. first row |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {rate / rows[0][1]:.2f}x |")


if __name__ == "__main__":
    main()
