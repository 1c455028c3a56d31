"""Usage records in the embedded database: one row per finished job, inserted in the
transaction that writes the job's end, so that the end and its record commit together: a
job is either not ended (a row of ``jobs`` in a phase that is not terminal) or recorded,
which lets one read count a tenant's month for its quota exactly."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.domain.models import Job, JobSpec, JobStatus, Phase
from docjobs.usage.counted import MonthUsage
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
DROP INDEX IF EXISTS usage_tenant_day;
CREATE INDEX IF NOT EXISTS usage_tenant_day_pages ON usage (tenant, day, page_total);
CREATE INDEX IF NOT EXISTS usage_day ON usage (day)
"""
_NOT_ENDED = tuple(phase.value for phase in Phase if not phase.terminal)


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

    def month(self, tenant: str, first: date) -> MonthUsage:
        """The tenant's pages recorded from day ``first`` on, and its jobs not ended, in one
        statement: one snapshot of the database, in which every job is one or the other."""
        rows = self.db.query(
            "SELECT coalesce(sum(page_total), 0) AS pages, NULL AS spec, NULL AS status"
            " FROM usage WHERE tenant = ? AND day >= ?"
            " UNION ALL SELECT 0, spec, status FROM jobs"
            f" WHERE tenant = ? AND phase IN ({','.join('?' * len(_NOT_ENDED))})",
            (tenant, first.isoformat(), tenant, *_NOT_ENDED),
        )
        recorded = sum(int(row["pages"]) for row in rows if row["spec"] is None)
        jobs = [
            Job(
                spec=JobSpec.model_validate_json(row["spec"]),
                status=JobStatus.model_validate_json(row["status"]),
            )
            for row in rows
            if row["spec"] is not None
        ]
        return MonthUsage(recorded, jobs)

    def forget_before(self, day: date) -> int:
        """Deletes the records of the jobs that ended before ``day``; how many."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM usage WHERE day < ?", (day.isoformat(),)).rowcount
