"""Which claims bind a DocumentJob, and when the operator looks at a claimed one again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from docjobs.config import OperatorSettings
from docjobs.kube.claims import CLAIM_ANNOTATION, Claim, claim_of, released
from docjobs.operator.agenda import Agenda

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def resource(annotations: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "job-1", "namespace": "ns", "annotations": annotations},
        "spec": {},
        "status": status or {},
    }


def test_a_claim_holds_until_its_duration_after_the_last_renewal() -> None:
    claim = Claim("api-0/7", NOW, 30)
    read = claim_of(resource(claim.annotations(), {"phase": "Processing", "attempts": 1}))
    assert read == claim
    assert read.held(NOW + timedelta(seconds=29.9))
    assert not read.held(NOW + timedelta(seconds=30))


def test_a_claim_no_longer_binds_a_finished_job_or_an_attempt_with_a_runner_job() -> None:
    annotations = Claim("api-0/7", NOW, 30).annotations()
    assert claim_of(resource(annotations, {"phase": "Complete"})) is None
    assert claim_of(resource(annotations, {"phase": "Processing", "currentJob": "j-a1"})) is None
    assert claim_of(resource({CLAIM_ANNOTATION: "{not json"})) is None
    assert claim_of(resource({CLAIM_ANNOTATION: '{"holder": "x"}'})) is None
    assert released()["metadata"]["annotations"] == {CLAIM_ANNOTATION: None}


def test_the_operator_looks_again_when_the_claim_lapses() -> None:
    agenda = Agenda(OperatorSettings.model_validate({"runner_image": "docjobs:test"}))
    claimed = resource(Claim("api-0/7", NOW, 30).annotations())
    assert agenda.next_look(claimed, NOW) == NOW + timedelta(seconds=30)
    lapsed = resource(Claim("api-0/7", NOW - timedelta(minutes=5), 30).annotations())
    assert agenda.next_look(lapsed, NOW) == NOW
    unclaimed = agenda.next_look(resource({}), NOW)
    assert unclaimed == NOW + timedelta(seconds=agenda.settings.pending_grace_seconds)
