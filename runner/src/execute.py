"""One attempt of one job: fetch the input, run the engine, store the result, report."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from docjobs.domain.models import (
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    JobError,
    JobSpec,
    ResultRef,
    RunnerSummary,
    RunOutcome,
)
from docjobs.runner import engines
from docjobs.storage.base import ObjectStore, outcome_key, result_key

log = logging.getLogger(__name__)
TERMINATION_MESSAGE_LIMIT = 4096


def execute(spec: JobSpec, attempt: int, store: ObjectStore) -> RunOutcome:
    outcome = _run(spec, store)
    # Recorded after the result, so its presence proves the attempt finished.
    store.put_bytes(
        outcome_key(spec.tenant, spec.job_id, attempt),
        outcome.model_dump_json().encode(),
        "application/json",
    )
    return outcome


def _run(spec: JobSpec, store: ObjectStore) -> RunOutcome:
    try:
        with tempfile.TemporaryDirectory(prefix="docjobs-") as scratch:
            source = Path(scratch) / "input"
            store.download(spec.input.key, source)
            output = engines.run(spec.operation, source, spec.input.content_type)
        key = result_key(spec.tenant, spec.job_id, output.extension)
        size = store.put_bytes(key, output.data, output.content_type)
    except engines.PermanentError as exc:
        error = JobError(reason=exc.reason, message=exc.message, permanent=True)
        return RunOutcome(exit_code=EXIT_PERMANENT, summary=RunnerSummary(error=error))
    except MemoryError:
        error = JobError(
            reason="OutOfMemory",
            message="the document needs more memory than allowed",
            permanent=True,
        )
        return RunOutcome(exit_code=EXIT_PERMANENT, summary=RunnerSummary(error=error))
    except Exception as exc:
        log.exception("attempt of %s failed", spec.job_id)
        error = JobError(reason=type(exc).__name__, message=str(exc)[:500], permanent=False)
        return RunOutcome(exit_code=EXIT_TRANSIENT, summary=RunnerSummary(error=error))
    summary = RunnerSummary(
        result=ResultRef(key=key, content_type=output.content_type, size=size),
        page_count=output.page_count,
        details=output.details,
    )
    return RunOutcome(exit_code=EXIT_OK, summary=summary)


def termination_message(outcome: RunOutcome) -> str:
    """The summary as JSON within the kubelet's 4 KB limit: details give way first."""
    text = outcome.summary.model_dump_json()
    if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
        text = outcome.summary.model_copy(update={"details": {}}).model_dump_json()
    return text[:TERMINATION_MESSAGE_LIMIT]
