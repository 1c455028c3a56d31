"""Jobs in the embedded database."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime

from docjobs.backends.base import JobPage, JobQuery
from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.recent import RecentJobs
from docjobs.domain.clock import utcnow
from docjobs.domain.idempotency import REUSABLE_PHASES
from docjobs.domain.models import Job, JobSpec, JobStatus, Phase, Progress

BATCH_OF_JOB = "json_extract(spec, '$.batch_id')"
"""The job's batch id, as the ``jobs_batch`` index (``embedded.batches``) has it."""


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    fingerprint TEXT,
    phase TEXT NOT NULL,
    interactive INTEGER NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL,
    expires_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    expired INTEGER NOT NULL DEFAULT 0,
    spec TEXT NOT NULL,
    status TEXT NOT NULL
);
DROP INDEX IF EXISTS jobs_tenant;
CREATE INDEX IF NOT EXISTS jobs_listing ON jobs (tenant, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_phase ON jobs (phase, interactive, created_at);
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at) WHERE expired = 0;
CREATE INDEX IF NOT EXISTS jobs_fingerprint ON jobs (tenant, fingerprint);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    at REAL NOT NULL,
    phase TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, at);
"""


class SQLiteJobStore:
    def __init__(self, db: SQLiteDatabase) -> None:
        self.db = db
        self.recent = RecentJobs()
        """Jobs read by ``read``; every write below forgets the jobs it changes."""
        with db.transaction() as conn:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)

    def create(self, spec: JobSpec) -> tuple[Job, bool]:
        job = Job(spec=spec)
        # Durable: the job is acknowledged (201/202) once this returns.
        with self.db.transaction(durable=True) as conn:
            if spec.fingerprint is not None:
                reusable = [phase.value for phase in REUSABLE_PHASES]
                cursor = conn.execute(
                    "SELECT * FROM jobs WHERE tenant = ? AND fingerprint = ? AND expired = 0"
                    f" AND cancel_requested = 0 AND phase IN ({','.join('?' * len(reusable))})"
                    " ORDER BY created_at DESC LIMIT 1",
                    (spec.tenant, spec.fingerprint, *reusable),
                )
                cursor.row_factory = sqlite3.Row
                if existing := cursor.fetchone():
                    return _job(existing), False
            conn.execute(
                "INSERT INTO jobs (job_id, tenant, fingerprint, phase, interactive, created_at,"
                " spec, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.job_id,
                    spec.tenant,
                    spec.fingerprint,
                    job.status.phase.value,
                    int(spec.interactive),
                    spec.created_at.timestamp(),
                    spec.model_dump_json(),
                    job.status.model_dump_json(),
                ),
            )
            self._event(conn, spec.job_id, job.status)
        return job, True

    def job_ids(self) -> set[str]:
        return {row["job_id"] for row in self.db.query("SELECT job_id FROM jobs")}

    def get(self, job_id: str, tenant: str | None = None) -> Job | None:
        rows = self.db.query("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        if not rows or (tenant is not None and rows[0]["tenant"] != tenant):
            return None
        return _job(rows[0])

    def get_stored(self, job_id: str) -> tuple[Job, str] | None:
        """The job with its status as the database holds it: the text a conditional
        :meth:`save_status` compares (``if_stored``)."""
        rows = self.db.query("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return (_job(rows[0]), str(rows[0]["status"])) if rows else None

    def read(self, job_id: str) -> Job | None:
        """``get`` for a poller: the job is kept in ``recent`` until it next changes."""
        mark = self.recent.mark()
        job = self.get(job_id)
        if job is not None:
            self.recent.keep(job, mark)
        return job

    def list_jobs(self, query: JobQuery) -> JobPage:
        """Walks the tenant's part of ``jobs_listing`` from the query's position, newest
        first, until the page is full: the filters are checked on those rows only."""
        where = "tenant = ? AND expired = 0"
        args: list[object] = [query.tenant]
        if query.phases is not None:
            wanted = [p.value for p in query.phases]
            where += f" AND phase IN ({','.join('?' * len(wanted))})"
            args += wanted
        if query.operation is not None:
            where += " AND json_extract(spec, '$.operation.kind') = ?"
            args.append(query.operation)
        if query.created_after is not None:
            where += " AND created_at > ?"
            args.append(query.created_after.timestamp())
        if query.created_before is not None:
            where += " AND created_at < ?"
            args.append(query.created_before.timestamp())
        if query.file_name is not None:
            where += " AND substr(json_extract(spec, '$.input.file_name'), 1, ?) = ?"
            args += [len(query.file_name), query.file_name]
        if query.batch_id is not None:
            where += f" AND {BATCH_OF_JOB} = ?"
            args.append(query.batch_id)
        total = self.db.query(f"SELECT count(*) AS n FROM jobs WHERE {where}", tuple(args))[0]["n"]
        if query.after is not None:
            where += " AND (created_at, job_id) < (?, ?)"
            args += list(query.after)
        rows = self.db.query(
            f"SELECT * FROM jobs WHERE {where} ORDER BY created_at DESC, job_id DESC LIMIT ?",
            (*args, query.limit + 1),
        )
        jobs = [_job(r) for r in rows[: query.limit]]
        return JobPage(jobs, int(total), more=len(rows) > query.limit)

    def erase(self, job_id: str, also: Callable[[sqlite3.Connection], None] | None = None) -> bool:
        """Deletes a finished job and its history; False if there was none (or it is not
        finished). ``also`` writes in the same transaction."""
        finished = [phase.value for phase in Phase if phase.terminal]
        with self.recent_forgotten(job_id), self.db.transaction() as conn:
            cursor = conn.execute(
                f"DELETE FROM jobs WHERE job_id = ? AND phase IN ({','.join('?' * len(finished))})",
                (job_id, *finished),
            )
            if cursor.rowcount == 0:
                return False
            conn.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
            if also is not None:
                also(conn)
            return True

    def save_status(
        self,
        job_id: str,
        status: JobStatus,
        also: Callable[[sqlite3.Connection], None] | None = None,
        if_stored: str | None = None,
        spec: JobSpec | None = None,
    ) -> str | None:
        """Writes ``status``; returns it as stored. ``also`` writes in the same transaction,
        to commit with the status or not at all. With ``if_stored``, only if the status
        stored is still that text (from :meth:`get_stored`): None, and nothing written, if
        it is not. With the job's ``spec``, the job as written is kept in ``recent``, so
        that its pollers' next read needs no query."""
        finished = _ts(status.completed_at) if status.phase.terminal else None
        text = status.model_dump_json()
        where, args = "job_id = ?", [job_id]
        if if_stored is not None:
            where, args = f"{where} AND status = ?", [job_id, if_stored]
        written: Job | None = None
        mark = 0
        try:
            with self.db.transaction() as conn:
                row = conn.execute(
                    "UPDATE jobs SET phase = ?, next_attempt_at = ?, status = ?,"
                    " expires_at = ? + json_extract(spec, '$.ttl_seconds_after_finished')"
                    f" WHERE {where} RETURNING cancel_requested, expired",
                    (status.phase.value, _ts(status.next_attempt_at), text, finished, *args),
                ).fetchone()
                if row is None and if_stored is not None:
                    return None
                if also is not None:
                    also(conn)
                self._event(conn, job_id, status)
                if row is not None and spec is not None:
                    written = Job(
                        spec=spec,
                        status=status,
                        cancel_requested=bool(row[0]),
                        expired=bool(row[1]),
                    )
                # Taken while this transaction holds the write lock: no other write commits
                # between this mark and this commit.
                mark = self.recent.mark()
        except BaseException:
            written = None
            raise
        finally:
            if written is None:
                self.recent.forget(job_id)
            else:
                self.recent.written(written, mark)
        return text

    def save_progress(self, job_id: str, progress: Progress) -> None:
        """Progress of a running attempt: no history entry, and only while it runs."""
        with self.recent_forgotten(job_id), self.db.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = json_set(status, '$.progress', json(?))"
                " WHERE job_id = ? AND phase = ?",
                (progress.model_dump_json(), job_id, Phase.PROCESSING.value),
            )

    def request_cancel(self, job_id: str) -> None:
        with self.recent_forgotten(job_id), self.db.transaction() as conn:
            conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?", (job_id,))

    # --- embedded-only queries ------------------------------------------------------------

    def runnable(
        self, now: datetime, per_tenant: int, waited: Collection[str] = ()
    ) -> list[tuple[Job, str]]:
        """Up to ``per_tenant`` jobs of every tenant that may start now, each tenant's in
        the order to start them: those in ``waited`` (a caller waits) first, then oldest;
        each with its status text, as :meth:`get_stored` gives it."""
        waited = list(waited)
        waited_first = f"job_id IN ({','.join('?' * len(waited))})" if waited else "0"
        rows = self.db.query(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY tenant"
            f" ORDER BY {waited_first} DESC, created_at) AS place FROM jobs"
            " WHERE phase = ? OR (phase = ? AND next_attempt_at <= ?))"
            " WHERE place <= ? ORDER BY place, created_at",
            (*waited, Phase.PENDING.value, Phase.RETRYING.value, now.timestamp(), per_tenant),
        )
        return [(_job(r), str(r["status"])) for r in rows]

    def in_phase(self, phase: Phase) -> list[Job]:
        return [
            _job(r) for r in self.db.query("SELECT * FROM jobs WHERE phase = ?", (phase.value,))
        ]

    def due_for_expiry(self, now: datetime, limit: int = 500) -> list[Job]:
        rows = self.db.query(
            "SELECT * FROM jobs WHERE expired = 0 AND expires_at <= ? LIMIT ?",
            (now.timestamp(), limit),
        )
        return [_job(r) for r in rows]

    def mark_expired(self, job_id: str) -> None:
        with self.recent_forgotten(job_id), self.db.transaction() as conn:
            conn.execute("UPDATE jobs SET expired = 1 WHERE job_id = ?", (job_id,))

    def forget_expired(self, before: datetime) -> int:
        with self.recent_forgotten(None), self.db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM jobs WHERE expired = 1 AND expires_at < ?", (before.timestamp(),)
            )
            conn.execute("DELETE FROM job_events WHERE job_id NOT IN (SELECT job_id FROM jobs)")
            return cursor.rowcount

    def count_by_phase(self) -> dict[Phase, int]:
        rows = self.db.query(
            "SELECT phase, count(*) AS n FROM jobs WHERE expired = 0 GROUP BY phase"
        )
        return {Phase(r["phase"]): int(r["n"]) for r in rows}

    def events(self, job_id: str) -> list[tuple[str, int, str]]:
        rows = self.db.query(
            "SELECT phase, attempts, message FROM job_events WHERE job_id = ? ORDER BY at",
            (job_id,),
        )
        return [(r["phase"], int(r["attempts"]), r["message"]) for r in rows]

    @contextmanager
    def recent_forgotten(self, job_id: str | None) -> Iterator[None]:
        """Around a write of ``job_id`` (None: of any job): forgets it once the write has
        committed or failed, so that no read from before the commit is kept."""
        try:
            yield
        finally:
            self.recent.forget(job_id)

    @staticmethod
    def _event(conn: sqlite3.Connection, job_id: str, status: JobStatus) -> None:
        conn.execute(
            "INSERT INTO job_events (job_id, at, phase, attempts, message) VALUES (?, ?, ?, ?, ?)",
            (job_id, utcnow().timestamp(), status.phase.value, status.attempts, status.message),
        )


def _job(row: sqlite3.Row) -> Job:
    return Job(
        spec=JobSpec.model_validate_json(row["spec"]),
        status=JobStatus.model_validate_json(row["status"]),
        cancel_requested=bool(row["cancel_requested"]),
        expired=bool(row["expired"]),
    )
