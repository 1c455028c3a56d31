"""Batches in the embedded database: a ``batches`` row each, their jobs found by the batch id
in the job's spec (the ``jobs_batch`` index).

The batch's end is decided inside SQLite's write lock, by whichever transaction makes it
true: the end of its last job (:meth:`SQLiteBatches.job_ended`, in the transaction of that
job's status) or the seal of a batch whose jobs had all ended already
(:meth:`SQLiteBatches.seal`). Writers take turns on that lock, so exactly one of them sees
the batch sealed, all its jobs ended and ``completed_at`` still empty; it sets
``completed_at``, keeps the final counts (jobs may be erased or expire later) and writes
the ``batch.completed`` outbox entry, already filled, in the same commit. Its deliveries are
recorded under the batch's id (``webhook_deliveries.job_id``), as a job's are under its own.
The sweep that expires jobs deletes completed batches past their TTL.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.jobs import BATCH_OF_JOB
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.domain.batches import (
    BATCH_COMPLETED,
    Batch,
    BatchState,
    completed_event_data,
    ended,
)
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Phase
from docjobs.webhooks.records import PendingEvent

_TABLE = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    operation TEXT NOT NULL,
    created_at REAL NOT NULL,
    total INTEGER,
    completed_at REAL,
    final_phases TEXT
)
"""
_SCHEMA = f"""
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs ({BATCH_OF_JOB}, created_at, job_id)
    WHERE {BATCH_OF_JOB} IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_completed ON batches (tenant, created_at, batch_id)
    WHERE completed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_expiry ON batches (completed_at + ttl_seconds)
    WHERE completed_at IS NOT NULL
"""
_COLUMNS = {"ttl_seconds": "INTEGER NOT NULL DEFAULT 86400", "traceparent": "TEXT"}
"""Columns added since the table was first made, added to an older database at start."""


class SQLiteBatches:
    def __init__(self, db: SQLiteDatabase, webhooks: SQLiteWebhookStore) -> None:
        """Made after the job store: the index is on its table."""
        self.db = db
        self.webhooks = webhooks
        with db.transaction() as conn:
            conn.execute(_TABLE)
            have = {row[1] for row in conn.execute("PRAGMA table_info(batches)")}
            for column, kind in _COLUMNS.items():
                if column not in have:
                    conn.execute(f"ALTER TABLE batches ADD COLUMN {column} {kind}")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)

    def create(self, batch: Batch) -> Batch:
        """The batch as stored: ``batch``, or the one already stored under its id."""
        with self.db.transaction(durable=True) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO batches"
                " (batch_id, tenant, operation, created_at, ttl_seconds, traceparent)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    batch.batch_id,
                    batch.tenant,
                    batch.operation,
                    batch.created_at.timestamp(),
                    batch.ttl_seconds_after_finished,
                    batch.traceparent,
                ),
            )
            stored = _read(conn, batch.batch_id)
        assert stored is not None
        return stored[0]

    def get(self, tenant: str, batch_id: str) -> BatchState | None:
        with self.db.transaction() as conn:
            row = _read(conn, batch_id)
            if row is None or row[0].tenant != tenant:
                return None
            batch, final_phases = row
            phases = final_phases if final_phases is not None else _phases(conn, batch_id)
        return BatchState(batch, phases)

    def completed(self, tenant: str, limit: int, after: tuple[float, str] | None) -> list[Batch]:
        """Up to ``limit`` of the tenant's completed batches, newest created first, after
        ``after`` (creation time, batch id)."""
        where = "tenant = ? AND completed_at IS NOT NULL"
        args: list[object] = [tenant]
        if after is not None:
            where += " AND (created_at < ? OR (created_at = ? AND batch_id < ?))"
            args += [after[0], after[0], after[1]]
        with self.db.transaction() as conn:
            cursor = conn.execute(
                f"SELECT * FROM batches WHERE {where}"
                " ORDER BY created_at DESC, batch_id DESC LIMIT ?",
                (*args, limit),
            )
            cursor.row_factory = sqlite3.Row
            return [_batch(row) for row in cursor.fetchall()]

    def forget_expired(self, now: datetime) -> int:
        """Delete the completed batches whose TTL has ended (their jobs' went as theirs
        did); they then read as unknown."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM batches WHERE completed_at IS NOT NULL"
                " AND completed_at + ttl_seconds <= ?",
                (now.timestamp(),),
            )
            return cursor.rowcount

    def seal(self, batch_id: str, total: int) -> PendingEvent | None:
        """Sets the number of the batch's jobs, once; the batch's end event if this
        completed it (every job had ended already) and someone listens for it."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE batches SET total = ? WHERE batch_id = ? AND total IS NULL",
                (total, batch_id),
            )
            return self._complete(conn, batch_id)

    def job_ended(self, batch_id: str, conn: sqlite3.Connection) -> PendingEvent | None:
        """In the transaction that ends one of the batch's jobs: the batch's end event if
        that was its last job and someone listens for it."""
        return self._complete(conn, batch_id)

    def _complete(self, conn: sqlite3.Connection, batch_id: str) -> PendingEvent | None:
        row = _read(conn, batch_id)
        if row is None or row[0].completed_at is not None or row[0].total is None:
            return None
        phases = _phases(conn, batch_id)
        if not ended(BatchState(row[0], phases)):
            return None
        # To the millisecond, so the time stored reads back as the event was stamped (a
        # replay rebuilds the event from the row).
        now = utcnow()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        batch = row[0].model_copy(update={"completed_at": now})
        conn.execute(
            "UPDATE batches SET completed_at = ?, final_phases = ? WHERE batch_id = ?",
            (now.timestamp(), json.dumps({p.value: n for p, n in phases.items()}), batch_id),
        )
        if not self.webhooks.subscribed(batch.tenant, BATCH_COMPLETED, conn):
            return None
        event = PendingEvent(
            batch_id,
            BATCH_COMPLETED,
            batch.tenant,
            completed_event_data(BatchState(batch, phases)),
            None,
            now,
            batch.traceparent,
        )
        # Filled at once (the counts are all it carries): a restart delivers it as it is.
        conn.execute(
            "INSERT OR IGNORE INTO webhook_outbox VALUES (?, ?, ?, ?, ?, ?)",
            (
                batch_id,
                BATCH_COMPLETED,
                batch.tenant,
                json.dumps(event.data),
                None,
                now.timestamp(),
            ),
        )
        return event


def _read(conn: sqlite3.Connection, batch_id: str) -> tuple[Batch, dict[Phase, int] | None] | None:
    cursor = conn.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,))
    cursor.row_factory = sqlite3.Row
    row = cursor.fetchone()
    if row is None:
        return None
    final = row["final_phases"]
    phases = None if final is None else {Phase(p): int(n) for p, n in json.loads(final).items()}
    return _batch(row), phases


def _batch(row: sqlite3.Row) -> Batch:
    return Batch(
        batch_id=row["batch_id"],
        tenant=row["tenant"],
        operation=row["operation"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        total=row["total"],
        completed_at=(
            None
            if row["completed_at"] is None
            else datetime.fromtimestamp(row["completed_at"], UTC)
        ),
        ttl_seconds_after_finished=row["ttl_seconds"],
        traceparent=row["traceparent"],
    )


def _phases(conn: sqlite3.Connection, batch_id: str) -> dict[Phase, int]:
    rows = conn.execute(
        f"SELECT phase, count(*) FROM jobs WHERE {BATCH_OF_JOB} = ? GROUP BY phase", (batch_id,)
    ).fetchall()
    return {Phase(phase): int(count) for phase, count in rows}
