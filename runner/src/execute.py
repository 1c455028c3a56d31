"""One attempt of one job: fetch the input, run the engine, store the result, report."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from docjobs.domain.engines import PagedOperation, splittable
from docjobs.domain.models import (
    CPU_SECONDS,
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    ConvertToPdf,
    Extract,
    JobError,
    JobSpec,
    Operation,
    PagePart,
    ResultRef,
    RunnerSummary,
    RunOutcome,
)
from docjobs.office_files import CONTENT_TYPES as OFFICE_TYPES
from docjobs.runner import engines
from docjobs.runner.cputime import cpu_time, with_cpu_seconds
from docjobs.runner.engines import ocr_output
from docjobs.runner.limits import memory_exceeded, within_ceilings
from docjobs.runner.progress import StoredProgress
from docjobs.storage.base import (
    ObjectNotFound,
    ObjectStore,
    kept_parts_cpu,
    outcome_key,
    part_cpu_key,
    part_key,
    progress_key,
    result_key,
)
from docjobs.storage.templates import resolve_template

log = logging.getLogger(__name__)
TERMINATION_MESSAGE_LIMIT = 4096


def execute(
    spec: JobSpec, attempt: int, store: ObjectStore, *, report_progress: bool = False
) -> RunOutcome:
    """Runs the whole attempt; with ``report_progress``, the pages read so far go to the
    attempt's progress object as they are read (for readers that cannot ask the runner)."""
    progress = (
        StoredProgress(store, progress_key(spec.tenant, spec.job_id, attempt))
        if report_progress
        else None
    )
    outcome = _run(
        spec, lambda scratch: within_ceilings(lambda: _whole(spec, store, scratch, progress))
    )
    record(spec, attempt, outcome, store)
    return outcome


def execute_part(
    spec: JobSpec, attempt: int, part: PagePart, store: ObjectStore, *, record_failure: bool
) -> RunOutcome:
    """Reads one part of the attempt's pages into a stored part.

    A part that succeeded records nothing: the merge does, once every part is there. A
    failed part is recorded as the attempt's outcome when it ends the attempt
    (``record_failure``), not where the part alone is tried again (a Kubernetes shard).
    """
    outcome = _run(
        spec,
        lambda scratch: within_ceilings(lambda: _read_part(spec, attempt, part, store, scratch)),
    )
    if outcome.exit_code == EXIT_OK:
        _keep_part_cpu(spec, attempt, part, outcome.summary.cpu_seconds, store)
    elif record_failure:
        record(spec, attempt, outcome, store)
    return outcome


def _keep_part_cpu(
    spec: JobSpec, attempt: int, part: PagePart, seconds: float, store: ObjectStore
) -> None:
    """For the merge, which reports its parts' CPU time with its own: a part may have run
    in another process (a shard's pod), which reports it to no one else."""
    key = part_cpu_key(spec.tenant, spec.job_id, attempt, part.index)
    try:
        store.put_bytes(key, f"{seconds:.3f}".encode(), "text/plain")
    except Exception as exc:  # the part is read all the same; only its cost goes unbilled
        log.warning("cannot keep the CPU time of a part of %s: %s", spec.job_id, exc)


def merge_parts(spec: JobSpec, attempt: int, parts: int, store: ObjectStore) -> RunOutcome:
    """The result from the attempt's ``parts`` stored parts, in their order."""
    outcome = _run(
        spec, lambda scratch: within_ceilings(lambda: _merge(spec, attempt, parts, store, scratch))
    )
    if outcome.exit_code != EXIT_OK:  # the parts were read all the same
        try:
            kept = kept_parts_cpu(store, spec.tenant, spec.job_id, attempt, range(parts))
        except Exception:  # the store failed the merge already; the failure matters more
            kept = 0.0
        outcome = outcome.model_copy(update={"summary": outcome.summary.charged(kept)})
    record(spec, attempt, outcome, store)
    return outcome


def record(spec: JobSpec, attempt: int, outcome: RunOutcome, store: ObjectStore) -> None:
    # Recorded after the result, so its presence proves the attempt finished.
    store.put_bytes(
        outcome_key(spec.tenant, spec.job_id, attempt),
        outcome.model_dump_json().encode(),
        "application/json",
    )


def _whole(
    spec: JobSpec, store: ObjectStore, scratch: Path, progress: engines.PageProgress | None
) -> RunnerSummary:
    operation = _with_template(spec, store)
    source = scratch / "input"
    store.download(spec.input.key, source)
    if isinstance(operation, ConvertToPdf) or spec.input.content_type not in OFFICE_TYPES:
        output = engines.run(operation, source, spec.input.content_type, progress, workdir=scratch)
    else:
        output = _read_office_document(operation, source, progress, scratch)
    return store_result(spec, output, store)


def _read_office_document(
    operation: Operation, source: Path, progress: engines.PageProgress | None, scratch: Path
) -> engines.EngineOutput:
    """OCR or extraction of an Office document: the PDF LibreOffice lays it out to (under the
    office engine's ceilings), read as any PDF: extraction takes its text layer, the OCR
    tiers read its rendered pages."""
    from docjobs.runner.engines import office

    converted = scratch / "office"
    converted.mkdir()
    pdf = office.to_pdf(source, converted)
    output = engines.run(operation, pdf.path, pdf.content_type, progress, workdir=scratch)
    details = {**output.details, "source_type": pdf.details.get("source_type")}
    return dataclasses.replace(output, details=details)


def _with_template(spec: JobSpec, store: ObjectStore) -> Operation:
    """The operation; an extract one with the template version it was submitted with."""
    operation = spec.operation
    if not isinstance(operation, Extract):
        return operation
    try:
        template = resolve_template(operation, spec.tenant, store)
    except ObjectNotFound:
        raise engines.PermanentError(
            "TemplateNotFound",
            f"version {operation.template_version} of template {operation.template_id!r}"
            " is not in the object store",
        ) from None
    return operation.model_copy(update={"template": template})


def _read_part(
    spec: JobSpec, attempt: int, part: PagePart, store: ObjectStore, scratch: Path
) -> RunnerSummary:
    operation = _paged(spec)
    source = scratch / "input"
    store.download(spec.input.key, source)
    narrowed = operation.model_copy(update={"pages": part.pages})
    pages = engines.read_pages(narrowed, source, spec.input.content_type)
    stored = scratch / "part.json"
    stored.write_text(json.dumps(pages, ensure_ascii=False), encoding="utf-8")
    store.put_file(
        part_key(spec.tenant, spec.job_id, attempt, part.index), stored, "application/json"
    )
    # The pool reads which tiers an ``auto`` part used (docTR leaves PyTorch loaded).
    tiers = [page["tier"] for page in pages if "tier" in page]
    details = {"pages_by_tier": {tier: tiers.count(tier) for tier in set(tiers)}} if tiers else {}
    return RunnerSummary(page_count=len(pages), details=details)


def _merge(
    spec: JobSpec, attempt: int, parts: int, store: ObjectStore, scratch: Path
) -> RunnerSummary:
    operation = _paged(spec)
    pages = _stored_parts(spec, attempt, parts, store)
    source = scratch / "input"
    if operation.output == "searchable_pdf":  # the only result that embeds the input
        store.download(spec.input.key, source)
    output = ocr_output.finish(operation, pages, source, spec.input.content_type, scratch)
    kept = kept_parts_cpu(store, spec.tenant, spec.job_id, attempt, range(parts))
    return store_result(spec, output, store).charged(kept)


def _stored_parts(
    spec: JobSpec, attempt: int, parts: int, store: ObjectStore
) -> Iterator[dict[str, Any]]:
    """The pages of the stored parts, in order, one part in memory at a time."""
    for index in range(parts):
        key = part_key(spec.tenant, spec.job_id, attempt, index)
        yield from json.loads(b"".join(store.iter_chunks(key)))


def _paged(spec: JobSpec) -> PagedOperation:
    operation = spec.operation
    if not splittable(operation):
        raise engines.PermanentError("NotSplittable", f"{operation.kind} is not read page by page")
    return operation


def store_result(spec: JobSpec, output: engines.EngineOutput, store: ObjectStore) -> RunnerSummary:
    key = result_key(spec.tenant, spec.job_id, output.extension)
    size = store.put_file(key, output.path, output.content_type)
    return RunnerSummary(
        result=ResultRef(key=key, content_type=output.content_type, size=size),
        page_count=output.page_count,
        details=output.details,
    )


def _run(spec: JobSpec, work: Callable[[Path], RunnerSummary]) -> RunOutcome:
    """``work`` in a scratch directory of its own, removed when it ends in any way this
    process lives through. A process killed mid-attempt leaves it in its ``TMPDIR``, which
    goes with the process: a warm worker's own directory, removed by its pool; a runner
    pod's ``/tmp`` emptyDir, removed with the pod."""
    started = cpu_time()
    try:
        with tempfile.TemporaryDirectory(
            prefix="docjobs-attempt-", ignore_cleanup_errors=True
        ) as scratch:
            # The libraries under the engines (pytesseract's page images and text) make
            # temp files of their own: in the scratch, they go with it.
            outer, tempfile.tempdir = tempfile.tempdir, scratch
            try:
                summary = work(Path(scratch))
            finally:
                tempfile.tempdir = outer
    except Exception as exc:
        outcome = failed(spec, exc)  # a failed attempt cost CPU time too
        return outcome.model_copy(update={"summary": with_cpu_seconds(outcome.summary, started)})
    return RunOutcome(exit_code=EXIT_OK, summary=with_cpu_seconds(summary, started))


def failed(spec: JobSpec, exc: Exception) -> RunOutcome:
    """How an attempt that raised ``exc`` ended: permanent when the document or its
    parameters are at fault (or it ran out of memory), else transient."""
    if isinstance(exc, engines.PermanentError | MemoryError):
        # Out of memory outside an engine's work (storing, merging): the same ceiling.
        failure = exc if isinstance(exc, engines.PermanentError) else memory_exceeded()
        error = JobError(reason=failure.reason, message=failure.message, permanent=True)
        return RunOutcome(exit_code=EXIT_PERMANENT, summary=RunnerSummary(error=error))
    log.error("attempt of %s failed", spec.job_id, exc_info=exc)
    error = JobError(reason=type(exc).__name__, message=str(exc)[:500], permanent=False)
    return RunOutcome(exit_code=EXIT_TRANSIENT, summary=RunnerSummary(error=error))


def termination_message(outcome: RunOutcome) -> str:
    """The summary as JSON within the kubelet's 4 KB limit: details give way first."""
    text = outcome.summary.model_dump_json()
    if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
        kept = {CPU_SECONDS: outcome.summary.cpu_seconds}  # usage needs it, the rest waits
        text = outcome.summary.model_copy(update={"details": kept}).model_dump_json()
    return text[:TERMINATION_MESSAGE_LIMIT]
