"""Webhook endpoints, their secrets, delivery records and the delivery journal in the
embedded database.

A delivery under way keeps its tries in ``webhook_tries`` (one row per job, event and
target, rewritten after every try with when the next is due); once it settles, the row makes
way for its record in ``webhook_deliveries``, in one transaction, so a restarted process
resumes each target where it stood and never sends to a settled one again.

Secrets are stored in clear, unlike API keys: they are HMAC signing keys we must use on every
delivery, not passwords we only compare. Protect the database file like the keys it holds.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from docjobs.auth.keys import check_tenant
from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.driver import PriorTries
from docjobs.webhooks.messages import new_secret
from docjobs.webhooks.records import (
    ATTEMPTS,
    MAX_ENDPOINTS_PER_TENANT,
    DeliveryRecord,
    PendingEvent,
    WebhookEndpoint,
    check_description,
    check_events,
    new_endpoint,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_tenant ON webhook_endpoints (tenant, created_at);
CREATE TABLE IF NOT EXISTS webhook_tenant_secrets (
    tenant TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    job_id TEXT NOT NULL,
    target TEXT NOT NULL,
    event_type TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    attempts TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_job ON webhook_deliveries (job_id, recorded_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_age ON webhook_deliveries (recorded_at);
CREATE TABLE IF NOT EXISTS webhook_outbox (
    job_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    tenant TEXT NOT NULL,
    data TEXT NOT NULL,
    webhook_url TEXT,
    occurred_at REAL NOT NULL,
    PRIMARY KEY (job_id, event_type)
);
CREATE TABLE IF NOT EXISTS webhook_tries (
    job_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    target TEXT NOT NULL,
    attempts TEXT NOT NULL,
    next_try_at REAL NOT NULL,
    PRIMARY KEY (job_id, event_type, target)
);
"""


UNFILLED = "null"
"""``data`` of an outbox entry reserved with the job's end, before its payload is built."""


class SQLiteWebhookStore:
    """URLs are stored as given: the API checks them with ``webhooks.check_url`` first, and
    every delivery checks them again.

    (``builtins.list`` below: inside the class, ``list`` names the method.)
    """

    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        with db.transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)

    # --- endpoints ----------------------------------------------------------------------------

    def create(
        self, tenant: str, url: str, events: Sequence[str], description: str = ""
    ) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret, which the caller shows once."""
        endpoint, secret = new_endpoint(tenant, url, events, description)
        now = endpoint.created_at
        with self.db.transaction() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM webhook_endpoints WHERE tenant = ?", (tenant,)
            ).fetchone()
            if count >= MAX_ENDPOINTS_PER_TENANT:
                raise ValueError(f"at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints per tenant")
            conn.execute(
                "INSERT INTO webhook_endpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    endpoint.id,
                    tenant,
                    url,
                    json.dumps(endpoint.events),
                    endpoint.description,
                    secret,
                    now.timestamp(),
                    now.timestamp(),
                ),
            )
        return endpoint, secret

    def list(self, tenant: str) -> list[WebhookEndpoint]:
        rows = self.db.query(
            "SELECT * FROM webhook_endpoints WHERE tenant = ? ORDER BY created_at, rowid",
            (tenant,),
        )
        return [_endpoint(r) for r in rows]

    def get(self, tenant: str, endpoint_id: str) -> WebhookEndpoint | None:
        rows = self.db.query(
            "SELECT * FROM webhook_endpoints WHERE tenant = ? AND id = ?", (tenant, endpoint_id)
        )
        return _endpoint(rows[0]) if rows else None

    def update(
        self,
        tenant: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint | None:
        """Change the given fields; None when the tenant has no such endpoint."""
        changes: dict[str, object] = {"updated_at": datetime.now(UTC).timestamp()}
        if url is not None:
            changes["url"] = url
        if events is not None:
            changes["events"] = json.dumps(check_events(events))
        if description is not None:
            changes["description"] = check_description(description)
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self.db.transaction() as conn:
            cursor = conn.execute(
                f"UPDATE webhook_endpoints SET {assignments} WHERE tenant = ? AND id = ?",
                (*changes.values(), tenant, endpoint_id),
            )
        return self.get(tenant, endpoint_id) if cursor.rowcount else None

    def delete(self, tenant: str, endpoint_id: str) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM webhook_endpoints WHERE tenant = ? AND id = ?", (tenant, endpoint_id)
            )
            return cursor.rowcount > 0

    def subscribed(
        self, tenant: str, event_type: str, conn: sqlite3.Connection | None = None
    ) -> builtins.list[tuple[WebhookEndpoint, str]]:
        """The tenant's endpoints that want ``event_type``, each with its signing secret;
        with ``conn``, read in its transaction (the one that ends a job)."""
        sql = "SELECT * FROM webhook_endpoints WHERE tenant = ? ORDER BY created_at, rowid"
        if conn is None:
            rows = self.db.query(sql, (tenant,))
        else:
            cursor = conn.execute(sql, (tenant,))
            cursor.row_factory = sqlite3.Row
            rows = cursor.fetchall()
        return [
            (endpoint, row["secret"])
            for row in rows
            if event_type in (endpoint := _endpoint(row)).events
        ]

    def endpoint_secret(self, tenant: str, endpoint_id: str) -> str | None:
        rows = self.db.query(
            "SELECT secret FROM webhook_endpoints WHERE tenant = ? AND id = ?",
            (tenant, endpoint_id),
        )
        return str(rows[0]["secret"]) if rows else None

    # --- the secret for jobs' own webhook URLs --------------------------------------------------

    def tenant_secret(self, tenant: str) -> str:
        """The secret that signs events sent to a job's own URL; made on first use."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO webhook_tenant_secrets VALUES (?, ?, ?)",
                (check_tenant(tenant), new_secret(), datetime.now(UTC).timestamp()),
            )
            row = conn.execute(
                "SELECT secret FROM webhook_tenant_secrets WHERE tenant = ?", (tenant,)
            ).fetchone()
        return str(row[0])

    # --- deliveries ---------------------------------------------------------------------------

    def record(
        self,
        job_id: str,
        target: str,
        event_type: str,
        attempts: Sequence[DeliveryAttempt],
        delivered: bool,
    ) -> DeliveryRecord:
        """Settle one target's delivery: its record in, its pending tries out."""
        record = DeliveryRecord(
            job_id, target, event_type, delivered, tuple(attempts), datetime.now(UTC)
        )
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM webhook_tries WHERE job_id = ? AND event_type = ? AND target = ?",
                (job_id, event_type, target),
            )
            conn.execute(
                "INSERT INTO webhook_deliveries VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    target,
                    event_type,
                    int(delivered),
                    ATTEMPTS.dump_json(record.attempts).decode(),
                    record.recorded_at.timestamp(),
                ),
            )
        return record

    def deliveries(self, job_id: str) -> builtins.list[DeliveryRecord]:
        rows = self.db.query(
            "SELECT * FROM webhook_deliveries WHERE job_id = ? ORDER BY recorded_at, rowid",
            (job_id,),
        )
        return [_delivery(r) for r in rows]

    def record_replay(
        self, tenant: str, job_id: str, target: str, event_type: str, attempt: DeliveryAttempt
    ) -> DeliveryRecord | None:
        """The try added in one transaction, so two replays cannot lose each other's."""
        key = (job_id, target, event_type)
        where = "WHERE job_id = ? AND target = ? AND event_type = ?"
        with self.db.transaction() as conn:
            cursor = conn.execute(f"SELECT * FROM webhook_deliveries {where}", key)
            cursor.row_factory = sqlite3.Row
            row = cursor.fetchone()
            if row is None:
                return None
            before = _delivery(row)
            attempts = (*before.attempts, attempt)
            delivered = before.delivered or attempt.ok
            conn.execute(
                f"UPDATE webhook_deliveries SET attempts = ?, delivered = ? {where}",
                (ATTEMPTS.dump_json(attempts).decode(), int(delivered), *key),
            )
        return DeliveryRecord(job_id, target, event_type, delivered, attempts, before.recorded_at)

    def journal(self, job_id: str, event_type: str) -> SQLiteDeliveryJournal:
        """Where the driver keeps the event's deliveries."""
        return SQLiteDeliveryJournal(self, job_id, event_type)

    # --- the outbox: events not yet delivered, kept across restarts --------------------------

    @staticmethod
    def reserve(
        conn: sqlite3.Connection,
        job_id: str,
        event_type: str,
        tenant: str,
        webhook_url: str | None,
        occurred_at: datetime,
    ) -> None:
        """An outbox entry without its payload, written in the transaction that ends the job
        (the payload needs the result, read later off the event loop); ``enqueue`` fills it.
        """
        conn.execute(
            "INSERT OR IGNORE INTO webhook_outbox VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, event_type, tenant, UNFILLED, webhook_url, occurred_at.timestamp()),
        )

    def unfilled(self) -> builtins.list[str]:
        """Jobs whose end was recorded but whose event was never built: the process died in
        between."""
        rows = self.db.query("SELECT job_id FROM webhook_outbox WHERE data = ?", (UNFILLED,))
        return [r["job_id"] for r in rows]

    def enqueue(self, event: PendingEvent) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO webhook_outbox VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, event_type) DO UPDATE SET data = excluded.data"
                " WHERE webhook_outbox.data = ?",
                (
                    event.job_id,
                    event.event_type,
                    event.tenant,
                    json.dumps(event.data),
                    event.webhook_url,
                    event.occurred_at.timestamp(),
                    UNFILLED,
                ),
            )

    def pending(self) -> builtins.list[PendingEvent]:
        return [
            PendingEvent(
                r["job_id"],
                r["event_type"],
                r["tenant"],
                json.loads(r["data"]),
                r["webhook_url"],
                datetime.fromtimestamp(r["occurred_at"], UTC),
                r["traceparent"],
            )
            for r in self.db.query(
                # The job's trace, from its spec: a delivery resumed after a restart is still
                # a span of it.
                "SELECT o.*, json_extract(j.spec, '$.traceparent') AS traceparent"
                " FROM webhook_outbox o LEFT JOIN jobs j ON j.job_id = o.job_id"
                " WHERE o.data != ? ORDER BY o.occurred_at",
                (UNFILLED,),
            )
        ]

    def sent(self, event: PendingEvent) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM webhook_outbox WHERE job_id = ? AND event_type = ?",
                (event.job_id, event.event_type),
            )

    def forget_deliveries(self, before: datetime) -> int:
        """Drop records older than ``before``; call it from the sweep that expires jobs."""
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM webhook_deliveries WHERE recorded_at < ?", (before.timestamp(),)
            )
            return cursor.rowcount


class SQLiteDeliveryJournal:
    """One event's deliveries: pending tries in ``webhook_tries``, settled ones as records."""

    def __init__(self, store: SQLiteWebhookStore, job_id: str, event_type: str) -> None:
        self.store, self.job_id, self.event_type = store, job_id, event_type

    def prior(self) -> dict[str, PriorTries]:
        key = (self.job_id, self.event_type)
        found = {
            r["target"]: PriorTries(
                ATTEMPTS.validate_json(r["attempts"]),
                datetime.fromtimestamp(r["next_try_at"], UTC),
            )
            for r in self.store.db.query(
                "SELECT * FROM webhook_tries WHERE job_id = ? AND event_type = ?", key
            )
        }
        for record in self.store.deliveries(self.job_id):
            if record.event_type == self.event_type:
                found[record.target] = PriorTries(record.attempts, settled=True)
        return found

    def record_try(
        self, target: str, attempts: Sequence[DeliveryAttempt], next_try_at: datetime
    ) -> None:
        row: tuple[Any, ...] = (
            self.job_id,
            self.event_type,
            target,
            ATTEMPTS.dump_json(tuple(attempts)).decode(),
            next_try_at.timestamp(),
        )
        with self.store.db.transaction() as conn:
            conn.execute(
                "INSERT INTO webhook_tries VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (job_id, event_type, target)"
                " DO UPDATE SET attempts = excluded.attempts, next_try_at = excluded.next_try_at",
                row,
            )

    def settle(self, target: str, attempts: Sequence[DeliveryAttempt], delivered: bool) -> None:
        self.store.record(self.job_id, target, self.event_type, attempts, delivered)


def _delivery(row: sqlite3.Row) -> DeliveryRecord:
    return DeliveryRecord(
        row["job_id"],
        row["target"],
        row["event_type"],
        bool(row["delivered"]),
        ATTEMPTS.validate_json(row["attempts"]),
        datetime.fromtimestamp(row["recorded_at"], UTC),
    )


def _endpoint(row: sqlite3.Row) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        tenant=row["tenant"],
        url=row["url"],
        events=tuple(json.loads(row["events"])),
        description=row["description"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], UTC),
    )
