"""Fingerprints that make a repeated submission return the original job."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

from docjobs.domain.models import Job, Phase

ENGINE_VERSION = "1"
"""Raised when an engine's output for the same input changes, so old results are not reused."""

DUPLICATE_MESSAGE = "This document has already been submitted. Returning existing job."

REUSABLE_PHASES = frozenset({Phase.PENDING, Phase.PROCESSING, Phase.RETRYING, Phase.COMPLETE})
"""Phases in which a job is returned for a repeat of its submission. A failed or cancelled
twin is not: the user is retrying, and the document runs again as a new job."""


def reusable(job: Job) -> bool:
    """Whether ``job`` answers a repeat of its submission (a cancel on its way counts as done)."""
    return job.status.phase in REUSABLE_PHASES and not job.cancel_requested


def same_request(job: Job, operation: BaseModel, sha256: str) -> bool:
    """Whether ``job`` was submitted with this document and these parameters: an
    ``Idempotency-Key`` sent again with anything else is a client's mistake, not a repeat."""
    return job.spec.input.sha256 == sha256 and job.spec.operation.model_dump(
        mode="json"
    ) == operation.model_dump(mode="json")


def fingerprint(
    tenant: str, operation: BaseModel, sha256: str, idempotency_key: str | None = None
) -> str:
    """Same tenant, operation, parameters, engine version and bytes: same fingerprint.

    With an ``Idempotency-Key`` the client names the submission itself, and the key alone
    (within the tenant) identifies it.
    """
    if idempotency_key:
        material: dict[str, object] = {"tenant": tenant, "idempotency_key": idempotency_key}
    else:
        material = {
            "tenant": tenant,
            "operation": operation.model_dump(mode="json"),
            "engine_version": ENGINE_VERSION,
            "sha256": sha256,
        }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
