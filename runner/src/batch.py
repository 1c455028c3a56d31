"""Several docTR attempts run together by one warm worker, their pages read through the one
predictor in shared forward passes.

A one-page document alone gives the model a batch of one page; pages of several documents
in one pass use the device (a GPU above all) as a long document does. Each document still
ends on its own: it has its own scratch directory, page spool, deadline and progress, and is
finished, stored and recorded as :func:`~docjobs.runner.execute.execute` does it for one. A
document that cannot be read, or runs out of time, ends alone; its neighbours go on.

The batch's CPU time is shared out as it is used: a document's download and its finish are
its own, and the pages rendered and read in each forward pass cost each document its share
of the pages; so every document's outcome reports what it cost when it ends.

Memory stays bounded: pages are rasterised as the passes need them, one batch of page
images at a time, and each document's read pages go to its spool on disk.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from docjobs.config import get_settings
from docjobs.domain.models import (
    EXIT_OK,
    EXIT_TRANSIENT,
    JobError,
    OcrAdvanced,
    RunnerSummary,
    RunOutcome,
    WorkerRequest,
)
from docjobs.office_files import CONTENT_TYPES as OFFICE_TYPES
from docjobs.runner.cputime import CpuMeter, shares
from docjobs.runner.engines import PageCount, ocr_output, raster
from docjobs.runner.execute import execute, failed, record, store_result
from docjobs.runner.limits import CpuCeilingExceeded, within_ceilings
from docjobs.runner.progress import StoredProgress
from docjobs.storage.base import ObjectStore, progress_key

log = logging.getLogger(__name__)


def execute_batch(
    requests: Sequence[WorkerRequest], store: ObjectStore, *, report_progress: bool = False
) -> list[RunOutcome]:
    """Runs every request's attempt (whole docTR documents, as a
    :class:`~docjobs.domain.models.WorkerBatch` holds) and returns their outcomes in order.

    Advanced OCR documents share forward passes; an extraction that reads its scans with
    docTR, and an Office document (laid out by LibreOffice first), run on their own, through
    the same warm predictor. Each outcome is recorded in ``store`` as its document ends."""
    outcomes: dict[int, RunOutcome] = {}
    shared: list[tuple[int, WorkerRequest]] = []
    for index, request in enumerate(requests):
        spec = request.spec
        if isinstance(spec.operation, OcrAdvanced) and spec.input.content_type not in OFFICE_TYPES:
            shared.append((index, request))
        else:
            outcomes[index] = execute(
                request.spec, request.attempt, store, report_progress=report_progress
            )
    if shared:
        together = _read_together([request for _, request in shared], store, report_progress)
        outcomes.update(zip((index for index, _ in shared), together, strict=True))
    return [outcomes[index] for index in range(len(requests))]


class _Document:
    """One attempt of a batch, from its download to its recorded outcome."""

    def __init__(
        self,
        request: WorkerRequest,
        scratch: Path,
        store: ObjectStore,
        started: float,
        report_progress: bool,
    ) -> None:
        assert isinstance(request.spec.operation, OcrAdvanced)
        self.spec = request.spec
        self.attempt = request.attempt
        self.operation: OcrAdvanced = request.spec.operation
        self.scratch = scratch
        self.store = store
        self.deadline = started + request.spec.timeout_seconds
        progress = (
            StoredProgress(store, progress_key(self.spec.tenant, self.spec.job_id, self.attempt))
            if report_progress
            else None
        )
        self.count = PageCount(progress)
        self.source = scratch / "input"
        self.spool: ocr_output.PageSpool | None = None
        self.outcome: RunOutcome | None = None
        self.all_pages_taken = False
        """Every selected page is in a pass, done or being formed."""
        self.passes: set[int] = set()
        """The forward passes its pages went through, by number."""
        self.cpu_seconds = 0.0
        """Its share of the batch's CPU time so far."""

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    def fetch(self, meter: CpuMeter) -> None:
        """Its input downloaded, at its own CPU cost (what ``meter`` counts until then)."""
        try:
            self.scratch.mkdir()
            self.store.download(self.spec.input.key, self.source)
            self.spool = ocr_output.PageSpool(self.scratch)
        except CpuCeilingExceeded:
            raise
        except Exception as exc:
            self.cpu_seconds += meter.take()
            self.fail(exc)
            return
        self.cpu_seconds += meter.take()

    def pages(self) -> Iterator[raster.Page]:
        """Its selected pages, rendered one at a time, until it ends or a page cannot be
        read (which ends it)."""
        selected = raster.iter_pages(
            self.source, self.spec.input.content_type, self.operation.pages, self.count.selected
        )
        try:
            while not self.ended:
                try:
                    page = next(selected)
                except StopIteration:
                    break
                except CpuCeilingExceeded:
                    raise
                except Exception as exc:
                    self.fail(exc)
                    break
                yield page
        finally:
            # Dropped, the pages' generator closes its document.
            self.all_pages_taken = True

    def add(self, view: dict[str, Any], forward_pass: int) -> None:
        assert self.spool is not None
        self.spool.add(view)
        self.passes.add(forward_pass)

    def finish(self, shared_with: int, meter: CpuMeter) -> None:
        """Its result from its spooled pages, stored; ``shared_with``: how many documents
        (itself included) had pages in its forward passes. The CPU time ``meter`` counts
        from now on is its own."""
        assert self.spool is not None
        try:
            output = ocr_output.finish_spooled(
                self.operation,
                self.spool,
                self.source,
                self.spec.input.content_type,
                self.scratch,
            )
            summary = store_result(self.spec, output, self.store)
        except CpuCeilingExceeded:
            raise
        except Exception as exc:
            self.cpu_seconds += meter.take()
            self.fail(exc)
            return
        self.cpu_seconds += meter.take()
        details = {
            **summary.details,
            "batch_documents": shared_with,
            "forward_passes": len(self.passes),
        }
        self.end(
            RunOutcome(exit_code=EXIT_OK, summary=summary.model_copy(update={"details": details}))
        )

    def time_out(self) -> None:
        error = JobError(
            reason="DeadlineExceeded",
            message=f"attempt ran longer than {self.spec.timeout_seconds:g} s",
            permanent=False,
        )
        self.end(RunOutcome(exit_code=EXIT_TRANSIENT, summary=RunnerSummary(error=error)))

    def fail(self, exc: Exception) -> None:
        self.end(failed(self.spec, exc))

    def end(self, outcome: RunOutcome) -> None:
        if self.ended:
            return
        outcome = outcome.model_copy(update={"summary": outcome.summary.charged(self.cpu_seconds)})
        try:
            record(self.spec, self.attempt, outcome, self.store)
        except Exception as exc:
            # Unrecorded, the attempt is not proven finished: it runs again.
            log.warning("cannot record the outcome of %s: %s", self.spec.job_id, exc)
            error = JobError(reason=type(exc).__name__, message=str(exc)[:500], permanent=False)
            summary = RunnerSummary(error=error).charged(self.cpu_seconds)
            outcome = RunOutcome(exit_code=EXIT_TRANSIENT, summary=summary)
        self.outcome = outcome
        self.close()

    def close(self) -> None:
        if self.spool is not None:
            self.spool.__exit__()
            self.spool = None
        shutil.rmtree(self.scratch, ignore_errors=True)


def _read_together(
    requests: Sequence[WorkerRequest], store: ObjectStore, report_progress: bool
) -> list[RunOutcome]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="docjobs-batch-", ignore_cleanup_errors=True) as root:
        # The libraries under the engine make temp files of their own: they go with it.
        outer, tempfile.tempdir = tempfile.tempdir, root
        documents = [
            _Document(request, Path(root) / str(index), store, started, report_progress)
            for index, request in enumerate(requests)
        ]
        meter = CpuMeter()
        try:
            within_ceilings(lambda: _read(documents, meter), attempts=len(documents))
        except Exception as exc:
            # The batch's own ceiling (CPU time for them all) ends whatever is still running,
            # and they share what it used since the last share, alike.
            running = [document for document in documents if not document.ended]
            left = meter.take()
            for document in running:
                document.cpu_seconds += left / len(running)
            for document in documents:
                document.fail(exc)
        finally:
            tempfile.tempdir = outer
            for document in documents:
                document.close()
    return [document.outcome or _lost() for document in documents]


def _read(documents: Sequence[_Document], meter: CpuMeter) -> None:
    for document in documents:
        document.fetch(meter)
    shared: dict[int, set[int]] = {}
    """Forward pass -> the documents (by position) whose pages went through it."""
    size = get_settings().doctr.page_batch_size
    pages = ((index, page) for index, document in enumerate(documents) for page in document.pages())
    for number, batch in enumerate(iter(lambda: list(islice(pages, size)), [])):
        # A document that failed on a later page while the batch formed reads no more.
        live = [(index, page) for index, page in batch if not documents[index].ended]
        if live:
            _forward_pass(documents, live, number, meter)
            shared[number] = {index for index, _ in live}
        del batch, live  # their page images go before the next batch is rendered
        _end_some(documents, shared, time.monotonic(), meter)
    _end_some(documents, shared, float("-inf"), meter)


def _forward_pass(
    documents: Sequence[_Document],
    live: list[tuple[int, raster.Page]],
    number: int,
    meter: CpuMeter,
) -> None:
    from docjobs.runner.engines import doctr_ocr

    try:
        views = doctr_ocr.read_batch(
            [page for _, page in live],
            [documents[index].operation.output != "simple" for index, _ in live],
        )
    except CpuCeilingExceeded:
        raise
    except Exception as exc:
        _share_pass(documents, live, meter)
        # The pass cannot say whose page it choked on: its documents fail together.
        for index in {index for index, _ in live}:
            documents[index].fail(exc)
        return
    _share_pass(documents, live, meter)
    for (index, _), view in zip(live, views, strict=True):
        documents[index].add(view, number)
    for index in {index for index, _ in live}:
        documents[index].count.read(sum(1 for i, _ in live if i == index))


def _share_pass(
    documents: Sequence[_Document], live: list[tuple[int, raster.Page]], meter: CpuMeter
) -> None:
    """The CPU time since the last share (the pass, and the rendering of its pages) to the
    documents of its pages, by pages: a page rendered for a document that has ended since
    is paid for by the others."""
    pages_of = Counter(index for index, _ in live)
    for index, share in shares(meter.take(), dict(pages_of)).items():
        documents[index].cpu_seconds += share


def _end_some(
    documents: Sequence[_Document], shared: dict[int, set[int]], now: float, meter: CpuMeter
) -> None:
    """Times out the documents past their deadline at ``now``, and finishes those whose
    pages have all been read."""
    for document in documents:
        if document.ended:
            continue
        if now > document.deadline:
            document.time_out()
        elif document.all_pages_taken:
            neighbours = set().union(*(shared[number] for number in document.passes))
            document.finish(shared_with=max(len(neighbours), 1), meter=meter)


def _lost() -> RunOutcome:
    error = JobError(
        reason="RunnerFailed", message="the batch ended without this document", permanent=False
    )
    return RunOutcome(exit_code=EXIT_TRANSIENT, summary=RunnerSummary(error=error))
