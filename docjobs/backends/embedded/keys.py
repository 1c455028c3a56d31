"""API keys in the embedded database, as SHA-256 hashes only."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from docjobs.auth.keys import (
    KEY_FORMAT,
    ApiKey,
    Principal,
    check_plan,
    check_tenant,
    hash_key,
    new_key,
    verify,
)
from docjobs.backends.embedded.database import SQLiteDatabase


class SQLiteKeyStore:
    def __init__(self, db: SQLiteDatabase, plans: Collection[str]) -> None:
        self.db = db
        self.plans = plans
        """The plans a new key may have: those the settings give rates for."""
        with db.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, key_hash TEXT"
                " NOT NULL, tenant TEXT NOT NULL, plan TEXT NOT NULL, created_at REAL NOT NULL,"
                " revoked_at REAL)"
            )

    def create(self, tenant: str, plan: str = "free") -> tuple[str, ApiKey]:
        key, key_id = new_key()
        record = ApiKey(
            key_id, check_tenant(tenant), check_plan(plan, self.plans), datetime.now(UTC)
        )
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, hash_key(key), tenant, plan, record.created_at.timestamp()),
            )
        return key, record

    def authenticate(self, presented: str) -> Principal | None:
        match = KEY_FORMAT.fullmatch(presented)
        rows = (
            self.db.query(
                "SELECT * FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
                (match.group(1),),
            )
            if match
            else []
        )
        stored = rows[0]["key_hash"] if rows else None
        if not verify(presented, stored):
            return None
        return Principal(tenant=rows[0]["tenant"], plan=rows[0]["plan"], key_id=rows[0]["key_id"])

    def list_keys(self) -> list[ApiKey]:
        return [
            ApiKey(
                r["key_id"],
                r["tenant"],
                r["plan"],
                datetime.fromtimestamp(r["created_at"], UTC),
                None if r["revoked_at"] is None else datetime.fromtimestamp(r["revoked_at"], UTC),
            )
            for r in self.db.query("SELECT * FROM api_keys ORDER BY created_at")
        ]

    def revoke(self, key_id: str) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (datetime.now(UTC).timestamp(), key_id),
            )
            return cursor.rowcount > 0
