"""A claim on a DocumentJob: an API pod runs the job on its own warm workers.

The claim is the annotation ``docjobs.io/claim`` (holder, renew time, duration), set when
the API creates the DocumentJob, so the operator never sees the job unclaimed, and renewed
while the work runs. The operator starts no runner Job for an attempt under a live claim;
once a claim lapses (its holder died) it takes the job over. A claim matters only while the
attempt has no runner Job (``currentJob`` unset) and the job has not ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from docjobs.domain.models import DOMAIN, TERMINAL_PHASE_NAMES
from docjobs.kube.status import parse_time

CLAIM_ANNOTATION = f"{DOMAIN}/claim"


@dataclass(frozen=True)
class Claim:
    holder: str
    """Who runs the job: the API pod's name and process id."""
    renewed_at: datetime
    seconds: float
    """How long the claim lasts without a renewal."""

    @property
    def expires_at(self) -> datetime:
        return self.renewed_at + timedelta(seconds=self.seconds)

    def held(self, now: datetime) -> bool:
        return now < self.expires_at

    def annotations(self) -> dict[str, str]:
        value = {
            "holder": self.holder,
            "renewedAt": self.renewed_at.isoformat(),
            "seconds": self.seconds,
        }
        return {CLAIM_ANNOTATION: json.dumps(value, separators=(",", ":"))}


def claim_of(resource: dict[str, Any]) -> Claim | None:
    """The claim that binds the DocumentJob now: None when there is none, when the job has
    ended or its attempt already has a runner Job, or when the annotation is unreadable
    (a claim nobody can check must not hold a job forever)."""
    status = resource.get("status") or {}
    if status.get("phase") in TERMINAL_PHASE_NAMES or status.get("currentJob"):
        return None
    text = (resource["metadata"].get("annotations") or {}).get(CLAIM_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
        renewed_at = parse_time(value["renewedAt"])
        if renewed_at is None:
            return None
        return Claim(str(value["holder"]), renewed_at, float(value["seconds"]))
    except (ValueError, KeyError, TypeError):
        return None


def released() -> dict[str, Any]:
    """A merge patch that removes the claim: the operator carries on from here."""
    return {"metadata": {"annotations": {CLAIM_ANNOTATION: None}}}
