"""The ``auto`` OCR tier: Tesseract reads every page; a page it reads with a confidence
under the threshold is read again by docTR where this runner has it, then by Claude vision
where a key is configured, and the best reading is kept.

"Best" is the highest page confidence. Claude gives no confidence (the page's is ``null``),
so a vision reading counts as reading exactly at the threshold: it replaces any reading
under it, unless the model found no word where an earlier tier found some. A page with no
word at all counts as confidence 0. Each page of the result says which tier read it
(``tier``) and why (``reason``); the summary counts the pages per tier
(``pages_by_tier``).

docTR counts as available where its extra is installed and its weight files are in
``doctr.weights_dir`` (or under ``doctr.weights_prefix``, outside a one-shot pod, whose
manifest grants no weights to a Tesseract attempt). In Kubernetes mode the tier runs on the
CPU pool with Tesseract: the shared image has no docTR, so weak pages go straight to Claude.
A docTR that fails to load, or a Claude that refuses or fails a page, is reported in the
pages' reasons and the best reading so far is kept: the tier never fails a document that
Tesseract could read.

Claude reads one page per request, up to ``llm.vision_concurrency`` at once, while
Tesseract goes on with the next pages; the pages still come out in order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from docjobs.capabilities import doctr_extra_installed, find_weights
from docjobs.config import Settings, get_settings
from docjobs.domain.models import OcrAuto
from docjobs.runner.engines import (
    PageCount,
    PageProgress,
    PermanentError,
    ocr_output,
    raster,
    tesseract,
)

if TYPE_CHECKING:
    from pathlib import Path

    import anthropic
    from PIL import Image

TESSERACT, DOCTR, VISION = ocr_output.TIERS
MAX_WAITING_PAGES = 64
"""Pages read but held back behind an earlier page Claude is still reading."""


def threshold_of(operation: OcrAuto, settings: Settings) -> float:
    if operation.confidence_threshold is not None:
        return operation.confidence_threshold
    return settings.ocr.auto_threshold


def read_pages(
    operation: OcrAuto, source: Path, content_type: str, progress: PageProgress | None = None
) -> Iterator[dict[str, Any]]:
    """Each selected page's result, in page order, with its ``tier`` and ``reason``."""
    # Tesseract's OpenMP threads would fight the other runner processes on the node.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    settings = get_settings()
    language = tesseract.check_language(operation.language)
    detailed = operation.output != "simple"
    threshold = threshold_of(operation, settings)
    count = PageCount(progress)
    waiting: deque[_Page] = deque()
    with StrongerTiers(settings, operation.language, detailed) as stronger:
        for page in raster.iter_pages(source, content_type, operation.pages, count.selected):
            read = _Page(threshold)
            read.add(TESSERACT, tesseract.read_page(page, language, detailed))
            if read.weak:
                stronger.reread(read, page)
            waiting.append(read)
            while waiting and (
                waiting[0].ready
                or stronger.in_flight >= stronger.concurrency
                or len(waiting) > MAX_WAITING_PAGES
            ):
                yield _done(waiting.popleft(), stronger, count)
        while waiting:
            yield _done(waiting.popleft(), stronger, count)


def _done(read: _Page, stronger: StrongerTiers, count: PageCount) -> dict[str, Any]:
    view = stronger.finish(read)
    count.read()
    return view


@dataclass
class _Page:
    """One page's readings so far, and what was found on the way."""

    threshold: float
    readings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    pending: Future[dict[str, Any]] | None = None
    """Claude's reading, while it is on its way."""

    def add(self, tier: str, view: dict[str, Any]) -> None:
        self.readings.append((tier, view))
        if tier == VISION:
            return
        confidence = view.get("confidence")
        if confidence is None:
            self.steps.append(f"{tier} found no words")
        else:
            sign = "<" if confidence < self.threshold else ">="
            self.steps.append(f"{tier} {confidence:g} {sign} {self.threshold:g}")

    @property
    def weak(self) -> bool:
        """No reading so far reaches the threshold."""
        return max(self._score(*reading) for reading in self.readings) < self.threshold

    @property
    def ready(self) -> bool:
        return self.pending is None or self.pending.done()

    def _score(self, tier: str, view: dict[str, Any]) -> float:
        if tier == VISION:
            return self.threshold if view.get("word_count") else -1.0
        confidence = view.get("confidence")
        return float(confidence) if confidence is not None else 0.0

    def best(self) -> dict[str, Any]:
        """The kept reading, with its tier and the reason."""
        # The cheapest of equally good readings: max keeps the first it meets.
        tier, view = max(self.readings, key=lambda reading: self._score(*reading))
        steps = self.steps
        confidence = view.get("confidence")
        if len(self.readings) == 1 and not self.weak and confidence is not None:
            steps = [f"confidence {confidence:g} >= {self.threshold:g}"]
        elif tier != self.readings[-1][0]:
            steps = [*steps, f"{tier}'s reading kept, the most confident"]
        return {**view, "tier": tier, "reason": "; ".join(steps)}


class StrongerTiers:
    """docTR and Claude as this runner has them, for the pages Tesseract reads badly."""

    def __init__(self, settings: Settings, language: str, detailed: bool) -> None:
        self._settings = settings
        self._language = language
        self._detailed = detailed
        self.doctr_missing = _doctr_missing(settings)
        """Why docTR cannot read here; ``None`` while it can."""
        self.vision_missing: str | None = (
            None if settings.llm.api_key else "vision not configured (no Claude API key)"
        )
        self.concurrency = settings.llm.vision_concurrency
        self._client: anthropic.Anthropic | None = None
        self._requests: ThreadPoolExecutor | None = None
        self.in_flight = 0

    def __enter__(self) -> StrongerTiers:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._requests is not None:
            # A failed attempt drops the requests not yet sent.
            self._requests.shutdown(wait=error is None, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def reread(self, read: _Page, page: raster.Page) -> None:
        """docTR's reading now, then Claude's on its way if the page is still weak."""
        if self.doctr_missing is not None:
            read.steps.append(self.doctr_missing)
        else:
            try:
                read.add(DOCTR, self._doctr(page))
            except PermanentError as exc:
                # Weights missing or unreadable: no page of this attempt gets docTR.
                self.doctr_missing = f"doctr not available ({exc.message})"
                read.steps.append(self.doctr_missing)
        if not read.weak:
            return
        if self.vision_missing is not None:
            read.steps.append(self.vision_missing)
            return
        from docjobs.runner.engines import vision

        shown = (page.number, page.image.size, vision.image_block(page.image))
        read.pending = self._pool().submit(
            vision.read_page,
            self._claude(),
            self._settings.llm,
            shown,
            self._language,
            self._detailed,
        )
        self.in_flight += 1

    def finish(self, read: _Page) -> dict[str, Any]:
        """The page's kept reading, once Claude's (if asked) is in."""
        if read.pending is not None:
            from docjobs.runner.engines import claude

            self.in_flight -= 1
            try:
                read.add(VISION, read.pending.result())
            except PermanentError as exc:
                read.steps.append(f"vision failed ({exc.message})")
                if exc.reason != claude.MALFORMED:  # a refused key refuses every page
                    self.vision_missing = f"vision not asked (it failed: {exc.message})"
            except claude.LlmUnavailable as exc:
                # Still unreachable after the SDK's retries: the page keeps its best reading.
                read.steps.append(f"vision failed ({exc})")
            read.pending = None
        return read.best()

    def _doctr(self, page: raster.Page) -> dict[str, Any]:
        from docjobs.runner.engines import doctr_ocr

        [view] = doctr_ocr.read_batch([page], [self._detailed])
        return view

    def _claude(self) -> anthropic.Anthropic:
        if self._client is None:
            from docjobs.runner.engines import claude

            llm = self._settings.llm
            self._client = claude.client(llm, max_retries=llm.vision_max_retries)
        return self._client

    def _pool(self) -> ThreadPoolExecutor:
        if self._requests is None:
            self._requests = ThreadPoolExecutor(self.concurrency, "docjobs-auto-vision")
        return self._requests


def _doctr_missing(settings: Settings) -> str | None:
    if not doctr_extra_installed():
        return "doctr not available (its extra is not installed)"
    config = settings.doctr
    directory = config.weights_directory(settings.data_dir)
    archs = (config.detection_arch, config.recognition_arch)
    if all(find_weights(directory, arch) is not None for arch in archs):
        return None
    if config.weights_prefix and settings.runner.manifest_file is None:
        return None  # copied from the object store on first use
    return f"doctr not available (no weights in {directory})"


def page_words(
    image: Image.Image, language: str, first: list[ocr_output.Word], settings: Settings
) -> tuple[str, list[ocr_output.Word]]:
    """For extraction: the tier that read a scanned page and its words, from Tesseract's
    words ``first`` and, where they read badly, docTR's and Claude's as for an OCR page."""
    read = _Page(settings.ocr.auto_threshold)
    read.add(TESSERACT, _words_view(first))
    words = {TESSERACT: first}
    if read.weak and _doctr_missing(settings) is None:
        from docjobs.runner.engines import doctr_ocr

        with suppress(PermanentError):  # weights missing or unreadable: as without docTR
            words[DOCTR] = doctr_ocr.read_words(image)
            read.add(DOCTR, _words_view(words[DOCTR]))
    if read.weak and settings.llm.api_key:
        from docjobs.runner.engines import claude, vision

        with suppress(PermanentError, claude.LlmUnavailable):
            words[VISION] = vision.read_words(image, language)
            read.add(VISION, _words_view(words[VISION]))
    tier = str(read.best()["tier"])
    return tier, words[tier]


def _words_view(words: list[ocr_output.Word]) -> dict[str, Any]:
    return {
        "word_count": len(words),
        "confidence": ocr_output.page_confidence(words),
    }
