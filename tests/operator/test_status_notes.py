"""The operator's pure reading of a DocumentJob, without the rig: what a look at it is for,
and the notes its steps write besides the lifecycle's decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from docjobs.domain.models import Phase, Progress
from docjobs.kube.claims import Claim
from docjobs.kube.resources import DocumentJobStatus, job_of
from docjobs.operator.status import (
    PROCESSING,
    TENANT_CAP,
    WAITING,
    Move,
    claim_held,
    next_move,
    runs,
    with_current_job,
    with_merge_job,
    with_pages_read,
    with_shards_done,
    with_tenant_cap,
    with_waiting,
)
from tests.unit.test_documentjob_spec import documentjob_resource

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _resource(status: dict[str, Any], claim: Claim | None = None, cancel: bool = False) -> Any:
    resource = documentjob_resource("job_" + "a" * 24)
    resource["status"] = status
    if claim is not None:
        resource["metadata"]["annotations"] = claim.annotations()
    if cancel:
        resource["spec"]["cancel"] = True
    return resource


def _move(resource: Any) -> Move:
    return next_move(resource, job_of(resource), NOW)


def _running(attempt: int = 2, job: str | None = "job-a2", message: str = "") -> DocumentJobStatus:
    return DocumentJobStatus(
        phase=Phase.PROCESSING, attempts=attempt, current_job=job, message=message or PROCESSING
    )


LIVE = Claim("api-0/7", NOW - timedelta(seconds=5), 30)
LAPSED = Claim("api-0/7", NOW - timedelta(seconds=60), 30)


@pytest.mark.parametrize(
    ("status", "claim", "cancel", "move"),
    [
        ({"phase": "Pending"}, None, False, Move.START),
        ({"phase": "Processing", "attempts": 1}, None, True, Move.CANCEL),
        ({"phase": "Complete", "attempts": 1}, None, True, Move.EXPIRE),
        ({"phase": "Pending"}, LIVE, False, Move.CLAIMED),
        ({"phase": "Processing", "attempts": 1}, LIVE, False, Move.CLAIMED),
        ({"phase": "Processing", "attempts": 1}, LAPSED, False, Move.TAKE_OVER),
        # A lapsed claim on a job that never started: it starts as any job does.
        ({"phase": "Pending"}, LAPSED, False, Move.START),
        # A runner Job of its own ends the claim's say: the operator checks its runner.
        ({"phase": "Processing", "attempts": 1, "currentJob": "j-a1"}, LIVE, False, Move.WAIT),
        ({"phase": "Retrying", "nextAttemptAt": "2026-01-01T00:01:00Z"}, None, False, Move.WAIT),
        ({"phase": "Retrying", "nextAttemptAt": "2025-12-31T23:59:00Z"}, None, False, Move.START),
    ],
)
def test_a_look_knows_what_it_is_for(
    status: dict[str, Any], claim: Claim | None, cancel: bool, move: Move
) -> None:
    assert _move(_resource(status, claim, cancel)) is move


def test_a_claim_holds_only_while_it_is_live() -> None:
    assert claim_held(_resource({"phase": "Pending"}, LIVE), NOW)
    assert not claim_held(_resource({"phase": "Pending"}, LAPSED), NOW)
    assert not claim_held(_resource({"phase": "Pending"}), NOW)


def test_the_tenant_cap_note_is_shown_only_on_a_job_that_waits_to_start() -> None:
    waiting = with_tenant_cap(DocumentJobStatus(phase=Phase.PENDING), 3)
    assert waiting.message == f"{TENANT_CAP}3 jobs of this tenant are running, its limit"
    retrying = with_tenant_cap(DocumentJobStatus(phase=Phase.RETRYING), 1)
    assert retrying.message.startswith(TENANT_CAP)
    # Granted meanwhile (the decision started it) or ended: no note.
    assert with_tenant_cap(_running(), 3) == _running()


def test_notes_of_an_earlier_attempt_leave_the_current_one_alone() -> None:
    current = _running(attempt=2)
    assert with_current_job(current, 1, "job-a1") == current
    assert with_merge_job(current, 1, "job-a1-merge") == current
    assert with_shards_done(current, 1, 1, 4, None) == current
    assert with_pages_read(current, 1, "job-a1", Progress(pages_done=1, pages_total=2)) == current
    assert with_waiting(current, 1, "0/3 nodes are available") == current


def test_the_current_job_and_its_merge_job_are_recorded() -> None:
    started = DocumentJobStatus(phase=Phase.PROCESSING, attempts=2)
    assert with_current_job(started, 2, "job-a2").current_job == "job-a2"
    merging = with_merge_job(_running(), 2, "job-a2-merge")
    assert merging.current_job == "job-a2-merge"
    assert runs(merging, 2, "job-a2-merge")
    assert not runs(merging, 2, "job-a2")
    # An ended attempt has no merge to run.
    ended = DocumentJobStatus(phase=Phase.FAILED, attempts=2, current_job="job-a2")
    assert with_merge_job(ended, 2, "job-a2-merge") == ended


def test_shards_done_show_their_count_and_pages() -> None:
    pages = Progress(pages_done=20, pages_total=80)
    noted = with_shards_done(_running(), 2, 1, 4, pages)
    assert noted.message == f"{PROCESSING}: 1/4 shards done"
    assert noted.progress == pages
    assert noted.progress_text == "20/80"


def test_pages_read_are_shown_only_for_the_attempts_own_runner() -> None:
    pages = Progress(pages_done=6, pages_total=10)
    assert with_pages_read(_running(), 2, "job-a2", pages).progress_text == "6/10"
    # The merge Job took over: the single-pod progress no longer applies.
    merging = _running(job="job-a2-merge")
    assert with_pages_read(merging, 2, "job-a2", pages) == merging


def test_a_runner_waiting_for_a_node_says_so_until_it_gets_one() -> None:
    waiting = with_waiting(_running(), 2, "0/3 nodes are available: Insufficient memory.")
    assert waiting.message == f"{WAITING}0/3 nodes are available: Insufficient memory."
    placed = with_waiting(waiting, 2, None)
    assert placed.message == PROCESSING
    # A note that is not the scheduler's stays when a pod is placed.
    shards = _running(message=f"{PROCESSING}: 1/4 shards done")
    assert with_waiting(shards, 2, None) == shards
