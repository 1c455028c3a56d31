"""Usage records past their retention in Kubernetes mode, in process: the operator's tick
sweeps the object store's records of every tenant and namespace older than
``usage.retention_days`` (400 by default), keeps the others, and sweeps again only an hour
later."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest

from docjobs.config import UsageSettings
from docjobs.domain.clock import utcnow
from docjobs.usage.objects import StoredUsage, record_of_key, usage_folder
from docjobs.usage.records import UsageRecord
from tests.unit.operated import NS, TENANT, Operated, operated, wait_until

RETENTION_DAYS = UsageSettings().retention_days
NOON = datetime.combine(utcnow().date(), clock_time(12), tzinfo=UTC)
"""The ticks' time: an hour later is still the same day, whenever the test runs."""


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def _put(op: Operated, tenant: str, namespace: str, days_ago: int) -> None:
    record = UsageRecord(
        job_id=f"job_{tenant}{days_ago:020d}",
        tenant=tenant,
        day=NOON.date() - timedelta(days=days_ago),
        operation="convert",
        tier="convert",
        status="complete",
        pages={"convert": 1},
    )
    StoredUsage(op.store, namespace).put(record)


def _days(op: Operated, tenant: str, namespace: str) -> list[int]:
    today = NOON.date()
    keys = op.store.keys(usage_folder(tenant, namespace))
    return sorted((today - record_of_key(key).day).days for key in keys)


def test_the_operator_sweeps_records_past_their_retention(op: Operated) -> None:
    places = [(TENANT, NS), ("other", NS), (TENANT, "elsewhere")]
    for tenant, namespace in places:
        for days_ago in (RETENTION_DAYS + 30, RETENTION_DAYS + 1, RETENTION_DAYS, 0):
            _put(op, tenant, namespace, days_ago)

    now = NOON
    op.controller.tick(now)
    kept = [0, RETENTION_DAYS]
    wait_until(lambda: all(_days(op, *place) == kept for place in places), what="the sweep")

    # Not again within the hour: a record past its retention meanwhile waits for the next.
    _put(op, TENANT, NS, RETENTION_DAYS + 2)
    op.controller.tick(now + timedelta(minutes=59))
    time.sleep(0.5)  # what a sweep taken would have deleted by now
    assert _days(op, TENANT, NS) == [0, RETENTION_DAYS, RETENTION_DAYS + 2]
    op.controller.tick(now + timedelta(minutes=61))
    wait_until(lambda: _days(op, TENANT, NS) == kept, what="the next sweep")
