"""The operator is killed (SIGKILL) in the middle of a burst and started again: nothing is
lost, nothing runs twice."""

from __future__ import annotations

import time
from collections import Counter

from tests.rig.fixtures import wait_for

from .conftest import TERMINAL, Jobs

BURST = 100


def _failed(job: dict) -> bool:
    conditions = job.get("status", {}).get("conditions") or []
    return any(c["type"] == "Failed" and c["status"] == "True" for c in conditions)


def test_operator_killed_and_restarted_during_a_burst(jobs: Jobs, make_operator) -> None:
    first = make_operator()
    names = [
        jobs.submit({"kind": "convert", "sourceFormat": "text"}, f"doc {i}".encode(), "text/plain")
        for i in range(BURST)
    ]
    # Kill it while some Jobs exist and most DocumentJobs are still being started.
    wait_for(lambda: len(jobs.runner_jobs()) >= BURST // 4, 120, 0.05, what="a quarter started")
    first.kill()
    time.sleep(2)
    make_operator()

    def all_terminal() -> dict[str, str] | None:
        items = jobs.api.get(jobs.path())["items"]
        phases = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}
        return phases if all(p in TERMINAL for p in phases.values()) else None

    phases = wait_for(all_terminal, 300, 1.0, what=f"all {BURST} DocumentJobs to end")
    assert set(phases) == set(names)
    assert Counter(phases.values()) == {"Complete": BURST}

    # Checked first: a second attempt is what a wrong decision looks like (a live or finished
    # runner taken for lost or failed), whatever happened to the runner Jobs afterwards.
    attempts = Counter(jobs.status(n)["attempts"] for n in names)
    assert attempts == {1: BURST}, attempts
    # Runner Jobs whose outcome was already stored may be deleted by the operator's resync, so
    # what is left must be first attempts only, at most one per DocumentJob, none failed.
    runner_jobs = jobs.runner_jobs()
    per_job = Counter(j["metadata"]["labels"]["docjobs.io/job"] for j in runner_jobs)
    assert all(count == 1 for count in per_job.values()), per_job
    assert {j["metadata"]["labels"]["docjobs.io/attempt"] for j in runner_jobs} <= {"1"}
    assert not [j for j in runner_jobs if _failed(j)]
