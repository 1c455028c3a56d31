"""``docjobs runner``: one attempt by the runner contract, or a warm worker serving many.

One-shot (Kubernetes Jobs): the job spec and attempt come from the attempt's manifest, read
through the presigned URL in the file ``DOCJOBS_RUNNER__MANIFEST_FILE`` (the runner Job's
own Secret, mounted); the manifest's URLs are the runner's whole object store
(:class:`PresignedStore`). A shard of an Indexed Job reads the part ``JOB_COMPLETION_INDEX``
of ``DOCJOBS_PAGE_PARTS`` (a JSON list of page selections), and ``DOCJOBS_MERGE_PARTS`` (a
count) merges the stored parts into the result. The summary goes to the termination-message
path and the exit code says how it ended (0 done, 42 permanent, other transient).

Worker (embedded mode and the sync path): JSON lines in on stdin (:class:`WorkerRequest`),
one :class:`RunOutcome` line out per request on stdout; a :class:`WorkerBatch` line (docTR
documents read together) is answered with one line per request of the batch, in order.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import signal
import sys
from pathlib import Path

import httpx
from pydantic import TypeAdapter, ValidationError

from docjobs.config import get_settings
from docjobs.domain.models import (
    EXIT_TRANSIENT,
    JobError,
    PagePart,
    RunnerSummary,
    RunOutcome,
    WorkerBatch,
    WorkerRequest,
)
from docjobs.runner.execute import execute, execute_part, merge_parts, termination_message
from docjobs.runner.limits import enforce_ceilings
from docjobs.runner.traced import start_tracing, traced
from docjobs.storage.base import ObjectNotFound, ObjectStore
from docjobs.storage.factory import manifest_url, store_from_settings
from docjobs.storage.presigned import PresignedRequestFailed, PresignedStore
from docjobs.tracing import flush as flush_traces

_PR_SET_PDEATHSIG = 1
_WORK: TypeAdapter[WorkerBatch | WorkerRequest] = TypeAdapter(WorkerBatch | WorkerRequest)


def run_once() -> int:
    manifest_file = get_settings().runner.manifest_file
    if manifest_file is None:
        raise SystemExit("a one-shot runner needs DOCJOBS_RUNNER__MANIFEST_FILE (its attempt)")
    enforce_ceilings()
    try:
        store = PresignedStore.fetch(manifest_url(manifest_file))
    except (
        OSError,
        httpx.HTTPError,
        PresignedRequestFailed,
        ObjectNotFound,
        ValidationError,
    ) as exc:
        return _report(_manifest_unavailable(exc))
    spec, attempt = store.manifest.spec, store.manifest.attempt
    if "DOCJOBS_PAGE_PARTS" in os.environ:
        # A shard of an Indexed Job: Kubernetes numbers the pods, the parts are in order.
        index = int(os.environ["JOB_COMPLETION_INDEX"])
        pages = json.loads(os.environ["DOCJOBS_PAGE_PARTS"])[index]
        part = PagePart(index=index, pages=pages)
        outcome = traced(
            spec,
            attempt,
            lambda: execute_part(spec, attempt, part, store, record_failure=False),
            f"attempt part {index}",
        )
    elif "DOCJOBS_MERGE_PARTS" in os.environ:
        merged = int(os.environ["DOCJOBS_MERGE_PARTS"])
        outcome = traced(
            spec, attempt, lambda: merge_parts(spec, attempt, merged, store), "merge parts"
        )
    else:
        # The operator copies the progress into the DocumentJob: the pod has no API access.
        outcome = traced(spec, attempt, lambda: execute(spec, attempt, store, report_progress=True))
    flush_traces()  # a one-shot process: its spans go before it exits
    return _report(outcome)


def _manifest_unavailable(exc: Exception) -> RunOutcome:
    """A failed attempt, tried again: the manifest may be late, its URL expired, the object
    store down. The message names the answer (never the URL: it carries a signature)."""
    what = "the attempt's manifest"
    if isinstance(exc, PresignedRequestFailed):
        message = str(exc)  # "object store refused <what>: AccessDenied (HTTP 403)"
    elif isinstance(exc, ObjectNotFound):
        message = f"object store has no {what} (HTTP 404)"
    elif isinstance(exc, ValidationError):
        message = f"{what} is not valid ({exc.error_count()} errors)"
    elif isinstance(exc, OSError):  # the mounted file: the pod spec names it, nothing else
        message = f"cannot read the URL of {what}: {exc.strerror or exc} ({exc.filename})"
    else:
        message = f"cannot reach the object store for {what}: {type(exc).__name__}: {exc}"
    error = JobError(reason="ManifestUnavailable", message=message[:500], permanent=False)
    return RunOutcome(exit_code=EXIT_TRANSIENT, summary=RunnerSummary(error=error))


def _report(outcome: RunOutcome) -> int:
    """The summary to the termination-message path (the operator reads it) and stderr."""
    path = Path(os.environ.get("DOCJOBS_TERMINATION_LOG", "/dev/termination-log"))
    try:
        path.write_text(termination_message(outcome))
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write termination message: %s", exc)
    print(termination_message(outcome), file=sys.stderr)
    return outcome.exit_code


def serve_worker() -> int:
    _die_with_parent()
    enforce_ceilings()
    # Engines and the libraries under them may print; only protocol lines may reach stdout.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    store = store_from_settings(get_settings())
    for line in sys.stdin:
        if not line.strip():
            continue
        work = _WORK.validate_json(line)
        if isinstance(work, WorkerBatch):
            # Only a docTR worker gets batches: the others never import what they need.
            from docjobs.runner.batch import execute_batch

            outcomes = execute_batch(work.requests, store)
            protocol.write("".join(outcome.model_dump_json() + "\n" for outcome in outcomes))
            continue
        request = work
        outcome = traced(
            request.spec,
            request.attempt,
            functools.partial(_run_request, request, store),
            _step_of(request),
        )
        protocol.write(outcome.model_dump_json() + "\n")
    return 0


def _run_request(request: WorkerRequest, store: ObjectStore) -> RunOutcome:
    if request.part is not None:
        return execute_part(request.spec, request.attempt, request.part, store, record_failure=True)
    if request.merge_parts is not None:
        return merge_parts(request.spec, request.attempt, request.merge_parts, store)
    return execute(request.spec, request.attempt, store)


def _step_of(request: WorkerRequest) -> str:
    if request.part is not None:
        return f"attempt part {request.part.index}"
    return "merge parts" if request.merge_parts is not None else "attempt"


def _die_with_parent() -> None:
    """A worker must not outlive its supervisor, even one killed with SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit(0)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
    worker = "--worker" in args
    start_tracing(get_settings(), worker)
    return serve_worker() if worker else run_once()
