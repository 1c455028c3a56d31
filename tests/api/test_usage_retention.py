"""Usage records are kept ``usage.retention_days`` after the day their job ended, in embedded
mode: the server's periodic sweep deletes older ones, and what ``GET /api/v1/usage`` answers
for the days still kept does not change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from docjobs.api.app import create_app
from docjobs.backends.embedded.usage import SQLiteUsage
from docjobs.usage.records import UsageRecord
from tests.api.conftest import InProcessApi, app_settings, running

RETENTION_DAYS = 30


async def _usage(api: InProcessApi, key: str, days_ago: int) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    span = {"from": str(today - timedelta(days=days_ago)), "to": str(today)}
    response = await api.get(key, "/api/v1/usage", params=span)
    assert response.status_code == 200, response.text
    totals: dict[str, Any] = response.json()["totals"]
    return totals


@pytest.mark.anyio
async def test_the_periodic_sweep_deletes_records_past_their_retention(tmp_path: Path) -> None:
    settings = app_settings(
        tmp_path / "data",
        runner={"concurrency": 1, "sweep_seconds": 0.2},
        usage={"retention_days": RETENTION_DAYS},
    )
    today = datetime.now(UTC).date()
    async with running(create_app(settings)) as api:
        key = api.key("usage-kept")
        backend = api.app.state.backend
        with backend.db.transaction() as conn:
            for days_ago in (RETENTION_DAYS + 15, RETENTION_DAYS + 1, RETENTION_DAYS, 0):
                record = UsageRecord(
                    job_id=f"job_{days_ago:024d}",
                    tenant="usage-kept",
                    day=today - timedelta(days=days_ago),
                    operation="ocr.simple",
                    tier="tesseract",
                    status="complete",
                    pages={"tesseract": days_ago + 1},
                    input_bytes=100,
                )
                SQLiteUsage.record(conn, record)

        with anyio.fail_after(20):
            while (await _usage(api, key, RETENTION_DAYS + 20))["jobs"] != 2:
                await anyio.sleep(0.1)
        kept = await _usage(api, key, RETENTION_DAYS + 20)
        assert kept["pages"] == (RETENTION_DAYS + 1) + 1  # the record of the last day kept, today's
        assert await _usage(api, key, RETENTION_DAYS) == kept
