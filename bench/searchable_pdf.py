"""Peak memory of laying a text layer over a short and a long PDF (``output=searchable_pdf``).

    .venv/bin/python bench/searchable_pdf.py [--pages 5 500]

Measures the searchable-PDF writer alone, without OCR: for each page count, a PDF of the
same small page images as ``bench/memory.py`` uses (3 x 2 inches at 200 DPI) gets 30
made-up words on every page, in a fresh process, written as an update of the input
(``build``) and, for comparison, by rewriting the whole document with pypdf. Prints each
process's peak RSS (``VmHWM``) and the ratio of the longest to the shortest PDF.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.docs import pdf_of_images, sentence_lines, text_image

WRITE = """
import re, sys
from pathlib import Path
from pypdf import PdfReader, PdfWriter
from docjobs.runner.engines import searchable_pdf

source, target, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
words = [
    {"text": f"word{i}", "bbox": {"x": 30 + 55 * (i % 10), "y": 30 + 32 * (i // 10),
     "width": 50, "height": 20}}
    for i in range(30)
]
read = {"width": 600, "height": 400, "words": words}
if how == "update":
    searchable_pdf.build(source, "application/pdf", lambda _: read, target)
else:
    writer = PdfWriter(clone_from=PdfReader(source))
    for page in writer.pages:
        page.merge_page(searchable_pdf._text_layer(page, searchable_pdf._text_commands(page, read)))
    writer.write(target)
peak = re.search(r"^VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text(), re.M)
print(peak[1])
"""


def peak_rss_kib(source: Path, how: str) -> int:
    target = source.with_name(f"{source.stem}-{how}.pdf")
    out = subprocess.run(
        [sys.executable, "-c", WRITE, str(source), str(target), how],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, nargs="+", default=[5, 500])
    counts = sorted(parser.parse_args().pages)
    with tempfile.TemporaryDirectory() as tmp:
        page = text_image(sentence_lines(500, 3, 10), size=20, width=600, margin=30)
        sources = [Path(tmp) / f"scan-{count}.pdf" for count in counts]
        for count, source in zip(counts, sources, strict=True):
            source.write_bytes(pdf_of_images([page] * count))
        rows = [(how, [peak_rss_kib(s, how) for s in sources]) for how in ("update", "rewrite")]
    print(f"| written as | {' | '.join(f'{count} pages' for count in counts)} | ratio |")
    print("|---|" + "---|" * (len(counts) + 1))
    for how, peaks in rows:
        cells = " | ".join(f"{peak / 1024:.0f} MiB" for peak in peaks)
        print(f"| {how} | {cells} | {peaks[-1] / peaks[0]:.2f}x |")


if __name__ == "__main__":
    main()
