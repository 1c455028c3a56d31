"""``docjobs jobs list|get|cancel|delete|result``: the tenant's jobs."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .connection import DEFAULT_URL, KeyOpt, UrlOpt, client_of, table

if TYPE_CHECKING:
    from docjobs.client.core import JobStatus
    from docjobs.client.models import JobListEntry

jobs_app = typer.Typer(no_args_is_help=True, help="Look at, cancel and erase a server's jobs.")


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


@jobs_app.command("list")
def jobs_list(
    key: KeyOpt,
    status: Annotated[Status | None, typer.Option(help="Only jobs in this state.")] = None,
    operation: Annotated[
        str | None,
        typer.Option(
            help="Only jobs of this operation: convert, ocr.simple, ocr.advanced, ocr.vision,"
            " ocr.auto or extract.",
            show_default=False,
        ),
    ] = None,
    file_name: Annotated[
        str | None,
        typer.Option(help="Only files whose name starts with this.", show_default=False),
    ] = None,
    created_after: Annotated[
        datetime | None,
        typer.Option(help="Only jobs created after this time (UTC).", show_default=False),
    ] = None,
    created_before: Annotated[
        datetime | None,
        typer.Option(help="Only jobs created before this time (UTC).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(help="Jobs per page, newest first.")] = 20,
    cursor: Annotated[
        str | None,
        typer.Option(
            help="Show the page this cursor (printed below a page) points to.", show_default=False
        ),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Show every page.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """List the tenant's jobs, newest first: id, status, operation, file, pages, created,
    and why a failed job failed. When more follow, says how to see them."""
    wanted: JobStatus | None = status.value if status else None
    rows: list[tuple[str, ...]] = []
    with client_of(url, key) as client:
        while True:
            page = client.jobs.list(
                wanted,
                limit,
                cursor=cursor,
                operation=operation,
                created_after=created_after,
                created_before=created_before,
                file_name=file_name,
            )
            rows += [_job_row(job) for job in page.jobs]
            cursor = page.next_cursor
            if not every or cursor is None:
                break
    if not rows:
        typer.echo("No jobs.", err=True)
        return
    table(("ID", "STATUS", "OPERATION", "FILE", "PAGES", "CREATED", "REASON"), rows)
    if cursor is not None:
        typer.echo(f"{len(rows)} of {page.total} jobs; next page: --cursor {cursor}", err=True)


def _job_row(job: JobListEntry) -> tuple[str, ...]:
    progress = job.progress
    if progress is not None and progress.pages_total:
        pages = f"{progress.pages_done}/{progress.pages_total}"
    else:
        pages = "" if job.page_count is None else str(job.page_count)
    reason = f"{job.error.code}: {job.error.message}" if job.error else ""
    return (job.job_id, job.status, job.operation, job.file_name, pages, job.created_at, reason)


@jobs_app.command("get")
def jobs_get(job_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Print a job as JSON."""
    with client_of(url, key) as client:
        job = client.jobs.get(job_id)
    typer.echo(job.model_dump_json(indent=2))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Cancel a pending or running job (`delete` erases a finished one)."""
    with client_of(url, key) as client:
        client.jobs.cancel(job_id)
    typer.echo(f"Cancelled {job_id}")


@jobs_app.command("delete")
def jobs_delete(job_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Erase a finished job for good (its document, result and records); a pending or
    running one is cancelled instead, and erased by a second delete once it has ended."""
    with client_of(url, key) as client:
        finished = client.jobs.get(job_id).finished
        client.jobs.delete(job_id)
    typer.echo(f"Erased {job_id}" if finished else f"Cancelled {job_id}")


@jobs_app.command("result")
def jobs_result(
    job_id: str,
    key: KeyOpt,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it here [standard output].")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Fetch a complete job's result."""
    with client_of(url, key) as client:
        content = client.jobs.result(job_id)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(content)
