"""The per-tenant cap on the rig: a tenant's jobs over it wait as Pending with a reason."""

from __future__ import annotations

import time

from tests.operator.conftest import Jobs, Operator

TEXT = {"kind": "convert", "sourceFormat": "text"}


def test_jobs_over_a_tenants_cap_wait_pending_with_a_reason(jobs: Jobs, make_operator) -> None:
    operator: Operator = make_operator(DOCJOBS_JOBS__MAX_RUNNING_PER_TENANT="1")
    names = [jobs.submit(TEXT, f"page {n}".encode(), "text/plain", "a.txt") for n in range(3)]
    other = jobs.submit(TEXT, b"other tenant", "text/plain", "b.txt", tenant="other")
    most, reasons = 0, set()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        statuses = [jobs.status(name) for name in names]
        phases = [s.get("phase") for s in statuses]
        most = max(most, phases.count("Processing"))
        reasons |= {
            s["message"] for s in statuses if s.get("phase") == "Pending" and s.get("message")
        }
        if all(p in ("Complete", "Failed", "Cancelled") for p in phases):
            break
        time.sleep(0.1)
    assert phases == ["Complete"] * 3, (phases, operator.log()[-3000:])
    assert most == 1
    assert any(r.startswith("Waiting for a slot: 1 jobs of this tenant") for r in reasons), reasons
    assert jobs.wait(other)["phase"] == "Complete"
