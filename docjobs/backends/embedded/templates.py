"""Templates per tenant in the embedded database."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.templates.schema import TemplateSpec
from docjobs.templates.store import Template, TemplateBounds, check_room, check_size


class SQLiteTemplateStore:
    def __init__(self, db: SQLiteDatabase, bounds: TemplateBounds | None = None) -> None:
        self.db = db
        self.bounds = bounds or TemplateBounds()
        with db.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS templates (template_id TEXT PRIMARY KEY,"
                " tenant TEXT NOT NULL, spec TEXT NOT NULL, created_at REAL NOT NULL,"
                " updated_at REAL NOT NULL)"
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS templates_tenant ON templates (tenant, created_at)"
            )

    def create(self, tenant: str, spec: TemplateSpec) -> Template:
        now = datetime.now(UTC).timestamp()
        template_id = str(uuid.uuid4())
        check_size(spec, self.bounds)
        with self.db.transaction() as conn:
            # Counted in the insert's transaction, so concurrent creates cannot pass the cap.
            (existing,) = conn.execute(
                "SELECT count(*) FROM templates WHERE tenant = ?", (tenant,)
            ).fetchone()
            check_room(tenant, existing, self.bounds)
            conn.execute(
                "INSERT INTO templates VALUES (?, ?, ?, ?, ?)",
                (template_id, tenant, spec.model_dump_json(), now, now),
            )
        created = self.get(tenant, template_id)
        assert created is not None
        return created

    def get(self, tenant: str, template_id: str) -> Template | None:
        rows = self.db.query(
            "SELECT * FROM templates WHERE template_id = ? AND tenant = ?", (template_id, tenant)
        )
        return _template(rows[0]) if rows else None

    def list_templates(self, tenant: str) -> list[Template]:
        rows = self.db.query(
            "SELECT * FROM templates WHERE tenant = ? ORDER BY created_at", (tenant,)
        )
        return [_template(r) for r in rows]

    def replace(self, tenant: str, template_id: str, spec: TemplateSpec) -> Template | None:
        check_size(spec, self.bounds)
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE templates SET spec = ?, updated_at = ?"
                " WHERE template_id = ? AND tenant = ?",
                (spec.model_dump_json(), datetime.now(UTC).timestamp(), template_id, tenant),
            )
        return self.get(tenant, template_id) if cursor.rowcount else None

    def delete(self, tenant: str, template_id: str) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM templates WHERE template_id = ? AND tenant = ?", (template_id, tenant)
            )
        return cursor.rowcount > 0


def _template(row: sqlite3.Row) -> Template:
    return Template(
        template_id=row["template_id"],
        tenant=row["tenant"],
        spec=TemplateSpec.model_validate_json(row["spec"]),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], UTC),
    )
