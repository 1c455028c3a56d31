"""Usage records in the embedded database: one row per finished job, inserted in the
transaction that writes the job's end, so that the end and its record commit together."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.usage.records import UsageRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    day TEXT NOT NULL,
    operation TEXT NOT NULL,
    tier TEXT NOT NULL,
    status TEXT NOT NULL,
    pages TEXT NOT NULL,
    page_total INTEGER NOT NULL,
    input_bytes INTEGER NOT NULL,
    cpu_seconds REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_tenant_day ON usage (tenant, day);
CREATE INDEX IF NOT EXISTS usage_day ON usage (day)
"""


class SQLiteUsage:
    """Kept when a job is erased or expires: usage is the tenant's history, not the job's."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        with db.transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)

    @staticmethod
    def record(conn: sqlite3.Connection, record: UsageRecord) -> None:
        """Within the transaction of the job's end; a job's second end would change nothing."""
        conn.execute(
            "INSERT OR IGNORE INTO usage (job_id, tenant, day, operation, tier, status, pages,"
            " page_total, input_bytes, cpu_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.job_id,
                record.tenant,
                record.day.isoformat(),
                record.operation,
                record.tier,
                record.status,
                json.dumps(dict(record.pages), sort_keys=True),
                record.page_total,
                record.input_bytes,
                record.cpu_seconds,
            ),
        )

    def records(self, tenant: str | None, first: date, last: date) -> Iterator[UsageRecord]:
        where, args = "day >= ? AND day <= ?", [first.isoformat(), last.isoformat()]
        if tenant is not None:
            where, args = f"tenant = ? AND {where}", [tenant, *args]
        rows = self.db.query(f"SELECT * FROM usage WHERE {where} ORDER BY day, job_id", tuple(args))
        for row in rows:
            yield UsageRecord(
                job_id=row["job_id"],
                tenant=row["tenant"],
                day=date.fromisoformat(row["day"]),
                operation=row["operation"],
                tier=row["tier"],
                status=row["status"],
                pages=json.loads(row["pages"]),
                input_bytes=int(row["input_bytes"]),
                cpu_seconds=float(row["cpu_seconds"]),
            )
