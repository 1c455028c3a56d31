"""Which waiting jobs start next: tenants take turns; a waited job goes first within its
tenant's queue, never before another tenant's; the cap holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from docjobs.domain.fairshare import next_jobs
from docjobs.domain.models import ConvertToPdf, InputRef, Job, JobSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(tenant: str, n: int) -> Job:
    job_id = f"{tenant}_{n}"
    return Job(
        spec=JobSpec(
            job_id=job_id,
            tenant=tenant,
            operation=ConvertToPdf(source_format="text"),
            input=InputRef(
                key=f"{tenant}/{job_id}/input",
                file_name="a.txt",
                content_type="text/plain",
                sha256="0" * 64,
                size=1,
            ),
            created_at=T0 + timedelta(seconds=n),
        )
    )


def ids(jobs: list[Job]) -> list[str]:
    return [j.spec.job_id for j in jobs]


def test_a_burst_does_not_keep_another_tenants_job_waiting() -> None:
    burst = [job("a", n) for n in range(200)]
    late = job("b", 500)
    assert ids(next_jobs([*burst, late], {"a": 1}, 1)) == ["b_500"]
    assert ids(next_jobs([*burst, late], {}, 3)) == ["a_0", "b_500", "a_1"]


def test_tenants_with_fewest_running_go_first_then_the_one_served_longest_ago() -> None:
    waiting = [job("a", 0), job("a", 1), job("b", 2), job("c", 3)]
    assert ids(next_jobs(waiting, {"a": 0, "b": 2, "c": 1}, 4)) == ["a_0", "c_3", "a_1", "b_2"]


def test_no_tenant_runs_more_than_the_cap() -> None:
    waiting = [job("a", n) for n in range(10)]
    assert ids(next_jobs(waiting, {"a": 1}, 8, cap=3)) == ["a_0", "a_1"]
    assert next_jobs(waiting, {"a": 3}, 8, cap=3) == []
    assert len(next_jobs(waiting, {"a": 3}, 8, cap=0)) == 8


def test_a_job_with_a_waiting_caller_goes_first_within_its_tenants_queue() -> None:
    waiting = [job("a", 0), job("a", 1), job("b", 2), job("b", 3)]
    assert ids(next_jobs(waiting, {}, 2, waited={"b_3"})) == ["a_0", "b_3"]
    assert ids(next_jobs(waiting, {"a": 1}, 1, waited={"b_3"})) == ["b_3"]
    # Once nobody waits, the same job is one of its tenant's queue again.
    assert ids(next_jobs(waiting, {}, 2)) == ["a_0", "b_2"]


def test_waiting_callers_never_jump_another_tenants_queue() -> None:
    # Tenant a calls synchronously from four threads; b queued one job before them.
    calls = [job("a", n) for n in range(10, 14)]
    single = job("b", 0)
    waited = {j.spec.job_id for j in calls}
    assert ids(next_jobs([*calls, single], {"a": 1}, 1, waited=waited)) == ["b_0"]
    assert ids(next_jobs([*calls, single], {}, 2, waited=waited, turns={"a": 5})) == [
        "b_0",
        "a_10",
    ]
    # The cap counts the callers' jobs like any other: no more of a's start.
    assert next_jobs(calls, {"a": 2}, 4, cap=2, waited=waited) == []


def test_tenants_take_turns_however_old_their_queues() -> None:
    waiting = [*(job("a", n) for n in range(5)), job("b", 100), job("b", 101)]
    assert ids(next_jobs(waiting, {}, 1, turns={"a": 7})) == ["b_100"]
    assert ids(next_jobs(waiting, {}, 1, turns={"a": 7, "b": 8})) == ["a_0"]
    assert ids(next_jobs(waiting, {}, 4)) == ["a_0", "b_100", "a_1", "b_101"]
